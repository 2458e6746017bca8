"""Lineage says everything that is read and written: one owner per schema, contact data only from the sync edge."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pytest

from orchestration.lib.lineage import (
    DBT,
    PYTHON,
    dbt_relations,
    declared_relations,
    ownership_problems,
    undeclared_relations,
    warehouse_relations,
)
from orchestration.lib.settings import DBT_PROJECT_DIR

# The manifest the session fixture parses (tests/conftest.py); read as a file so collection needs no parse.
DBT_MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"

# Python assets that publish their table under `marts` through a dbt view (the contract names readers use).
PUBLISHED_VIEWS = {
    "marts/clv_model_evaluation": "ml/clv_model_evaluation",
    "marts/segment_membership_history": "ml/segment_membership_history",
    "marts/segment_cards": "ml/segment_cards",
    "marts/audience_lift": "activation/audience_lift",
}


@pytest.fixture(scope="module")
def graph() -> dg.AssetGraph:
    from orchestration.definitions import defs

    return defs.resolve_asset_graph()


def key(path: str) -> dg.AssetKey:
    return dg.AssetKey(path.split("/"))


def test_every_relation_an_asset_writes_is_in_a_schema_its_kind_of_asset_owns(graph):
    assert ownership_problems(declared_relations(graph, DBT_MANIFEST)) == []


def test_python_assets_write_no_relation_in_dbts_schemas(graph):
    declared = declared_relations(graph, DBT_MANIFEST)
    python_in_dbt_schemas = {
        relation for relation, writer in declared.items()
        if writer == PYTHON and relation.split(".")[0] in {"staging", "intermediate", "marts", "edge"}
    }  # fmt: skip
    assert python_in_dbt_schemas == set()


def test_every_audience_reads_contacts_from_the_sync_edge_and_never_from_raw(graph):
    audiences = [k for k in graph.get_all_asset_keys() if k.path[0] == "audiences"]
    assert audiences
    for audience in audiences:
        parents = graph.get(audience).parent_keys
        assert key("edge/customer_contacts") in parents, audience
        assert key("raw/customers") not in parents, audience
    # The edge view takes the winning row from stg_customers (the one dedup rule) and the contact fields from raw.
    assert graph.get(key("edge/customer_contacts")).parent_keys == {key("staging/stg_customers"), key("raw/customers")}


def test_exports_guards_and_syncs_declare_the_stored_match_forms_they_read(graph):
    forms = key("edge_forms/customer_match_forms")
    # exports/<audience> and sync/<audience>/<destination> (sync/<table> are the ledger's tables)
    readers = [k for k in graph.get_all_asset_keys() if k.path[0] == "exports" or len(k.path) == 3]
    assert readers
    for reader in readers:
        assert forms in graph.get(reader).parent_keys, reader
    assert graph.get(forms).parent_keys == {key("edge/customer_contacts")}


def test_cluster_profiles_are_an_asset_the_report_declares_it_reads(graph):
    assert key("ml/cluster_profiles") in graph.materializable_asset_keys
    assert key("ml/cluster_profiles") in graph.get(key("ml/segment_cards")).parent_keys


@pytest.mark.parametrize(("view", "python_asset"), PUBLISHED_VIEWS.items())
def test_python_outputs_reach_marts_only_through_a_dbt_view_of_them(graph, view, python_asset):
    assert "dbt" in graph.get(key(view)).kinds
    assert graph.get(key(view)).parent_keys == {key(python_asset)}
    assert "dbt" not in graph.get(key(python_asset)).kinds


def test_pii_columns_appear_in_no_dbt_model_outside_the_sync_edge():
    manifest = json.loads(DBT_MANIFEST.read_text(encoding="utf-8"))
    with_contacts = {
        f"{node['schema']}.{node['name']}"
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and {"email", "phone", "first_name", "last_name"} & set(node["columns"])
    }
    assert with_contacts <= {"edge.customer_contacts"}
    assert "edge.customer_contacts" in dbt_relations(manifest)


def test_a_table_no_asset_declares_is_named(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    conn.execute("create schema ml")
    conn.execute("create table ml.rfm_segments (customer_id varchar)")
    conn.execute("create table ml.scratch (x int)")  # planted: written by nobody the graph knows
    conn.execute("create view ml.scratch_view as select * from ml.scratch")  # planted: views count too
    relations = warehouse_relations(conn)
    assert undeclared_relations(relations, {"ml.rfm_segments": PYTHON}) == ["ml.scratch", "ml.scratch_view"]


def test_a_relation_written_by_the_wrong_kind_of_asset_is_named():
    problems = ownership_problems({"marts.segment_cards": PYTHON, "ml.rfm_segments": PYTHON, "scratch.t": DBT})
    assert problems == [
        "marts.segment_cards: written by python, but dbt owns schema 'marts'",
        "scratch.t: schema 'scratch' has no owner in orchestration/lib/lineage.py SCHEMA_OWNERS",
    ]


def test_a_warehouse_from_before_the_move_keeps_its_membership_history(tmp_path):
    from orchestration.defs.membership import _previous_history

    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    conn.execute("create schema marts")
    # The table segment_membership_history wrote into `marts` before Python moved to `ml`.
    conn.execute(
        "create table marts.segment_membership_history as select 'c1' as customer_id, 'rfm_segment' as segment_kind, "
        "'champions' as segment, timestamp '2026-01-01' as valid_from, cast(null as timestamp) as valid_to"
    )
    # _previous_history gives the query of the carried-over batch rows (the history advances inside DuckDB).
    assert conn.execute(f"select customer_id from {_previous_history(conn)}").fetchall() == [("c1",)]
    # Once ml.segment_membership_history exists it is the history, and a marts view of it is not read twice.
    conn.execute("create schema ml")
    conn.execute(
        "create table ml.segment_membership_history as select * from marts.segment_membership_history where false"
    )
    assert conn.execute(f"select count(*) from {_previous_history(conn)}").fetchone()[0] == 0
