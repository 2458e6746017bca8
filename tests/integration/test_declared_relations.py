"""After a whole-graph run, every table and view in the warehouse is declared by an asset, in its owner's schema.

The demo shop runs once per session in the shared `operated` fixture (conftest.py); the orders-only shop is the run
of test_make_run.py::test_make_run_works_with_only_an_orders_file, which calls the same assertion.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration.lib.lineage import declared_relations, ownership_problems, undeclared_relations, warehouse_relations
from orchestration.lib.settings import DBT_PROJECT_DIR

# The manifest the session fixture parses (tests/conftest.py); read as a file so collection needs no parse.
DBT_MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"

pytestmark = pytest.mark.slow


def assert_every_relation_is_declared(warehouse: Path) -> list[str]:
    """Fails naming each relation no asset declares (or that sits in another owner's schema); returns them all."""
    from orchestration.definitions import defs

    declared = declared_relations(defs.resolve_asset_graph(), DBT_MANIFEST)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        relations = warehouse_relations(conn)
    assert undeclared_relations(relations, declared) == []
    assert ownership_problems({relation: declared[relation] for relation in relations}) == []
    return relations


def test_every_relation_of_the_demo_run_is_declared_by_an_asset(operated):
    relations = assert_every_relation_is_declared(operated.warehouse)
    # The ones this check exists for are there, declared: the sync edge, the cluster profiles, the sync ledger.
    assert {
        "edge.customer_contacts",
        "ml.cluster_profiles",
        "sync.members_provenance",
        "ml.segment_cards",
        "marts.segment_cards",
    } <= set(relations)
