"""Which asset declares each relation of the warehouse, and who owns each schema (docs/ARCHITECTURE.md).

Every table and view in the warehouse must be declared by an asset, so the lineage in the UI is the whole truth:
a Python asset of kind `duckdb` (it writes the warehouse) whose key is `[schema, table]`, or a dbt model (its relation as dbt builds it, from the manifest).
A dbt *source* alone declares nothing: it names a table somebody else must write, and that somebody must be a
Python asset with the same key. Each schema has one owner: dbt builds every relation in its schemas, Python
assets write only theirs, so a table's owner is known from its schema alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg
import duckdb

DBT = "dbt"
PYTHON = "python"
SCHEMA_OWNERS: Mapping[str, str] = {
    "raw": PYTHON,  # the landing step: typed copies of the landing files, quarantine, event vocabulary
    "staging": DBT,
    "intermediate": DBT,
    "marts": DBT,  # including views of Python outputs under their contract names (models/marts/python_outputs/)
    "edge": DBT,  # the sync edge: the only relation outside raw with contact PII (edge.customer_contacts)
    # The sync edge's stored match forms (PII like edge: activation.member_records.refresh_match_forms).
    "edge_forms": PYTHON,
    "ml": PYTHON,  # models, scores, segments, evaluation, cards, membership history
    "audiences": PYTHON,  # one table per audience (config/audiences.yaml)
    "sync": PYTHON,  # the sync ledger (activation/ledger.py)
    "activation": PYTHON,  # what the syncs produced (audience lift)
    "privacy": PYTHON,  # erasure receipts, the suppression list and the salt fingerprint (privacy/)
}
WAREHOUSE_KIND = "duckdb"
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog"})


def python_relations(asset_graph: dg.AssetGraph) -> dict[str, str]:
    """`schema.table` -> PYTHON for every materializable non-dbt asset of kind `duckdb` keyed `[schema, table]`.

    Assets without the kind write no table (upload files, syncs, the CLV gate).
    """
    relations = {}
    for key in asset_graph.materializable_asset_keys:
        node = asset_graph.get(key)
        if DBT not in node.kinds and WAREHOUSE_KIND in node.kinds and len(key.path) == 2:
            relations[".".join(key.path)] = PYTHON
    return relations


def dbt_relations(manifest: Mapping) -> dict[str, str]:
    """`schema.relation` -> DBT for every model, seed and snapshot dbt builds (ephemeral models build nothing)."""
    relations = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] not in ("model", "seed", "snapshot"):
            continue
        if node["config"].get("materialized") == "ephemeral":
            continue
        relations[f"{node['schema']}.{node.get('alias') or node['name']}"] = DBT
    return relations


def declared_relations(asset_graph: dg.AssetGraph, manifest_path: Path) -> dict[str, str]:
    """Every relation some asset declares, with the kind of asset that writes it (DBT or PYTHON)."""
    manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    return python_relations(asset_graph) | dbt_relations(manifest)


def warehouse_relations(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """`schema.name` of every table and view of the connected database (system schemas left out)."""
    rows = conn.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_catalog = current_database() order by 1, 2"
    ).fetchall()
    return [f"{schema}.{name}" for schema, name in rows if schema not in SYSTEM_SCHEMAS]


def ownership_problems(declared: Mapping[str, str]) -> list[str]:
    """One line per declared relation whose writer is not the owner of its schema (or whose schema has none)."""
    problems = []
    for relation, writer in sorted(declared.items()):
        schema = relation.split(".")[0]
        owner = SCHEMA_OWNERS.get(schema)
        if owner is None:
            problems.append(f"{relation}: schema '{schema}' has no owner in orchestration/lib/lineage.py SCHEMA_OWNERS")
        elif owner != writer:
            problems.append(f"{relation}: written by {writer}, but {owner} owns schema '{schema}'")
    return problems


def undeclared_relations(relations: Iterable[str], declared: Mapping[str, str]) -> list[str]:
    """The relations of the warehouse that no asset declares."""
    return [relation for relation in relations if relation not in declared]
