"""Where erasure and consent sit in the graph (issue 17): before ingest, on every sync, and after the syncs."""

from __future__ import annotations

import dagster as dg
import pytest

ERASURE = dg.AssetKey(["privacy", "erasure_receipts"])
COMPACTION = dg.AssetKey(["privacy", "warehouse_compaction"])


@pytest.fixture(scope="module")
def graph():
    from orchestration.definitions import defs

    return defs.resolve_asset_graph()


def sync_keys(graph) -> list[dg.AssetKey]:
    # sync/<audience>/<destination>; the two-part sync/<table> keys are the sync ledger's tables.
    return [k for k in graph.get_all_asset_keys() if k.path[0] == "sync" and len(k.path) == 3]


def test_erasure_requests_are_applied_before_every_raw_table(graph):
    raw = [k for k in graph.get_all_asset_keys() if k.path[0] == "raw"]
    # raw/event_vocabulary is made from raw.events, so erasure is before it too (one step further up).
    assert raw and all(ERASURE in graph.get_ancestor_asset_keys(k) for k in raw)


def test_the_receipt_chain_is_checked_on_every_run(graph):
    check = dg.AssetCheckKey(ERASURE, "check_receipt_chain_verifies")
    assert check in graph.asset_check_keys


def test_every_sync_carries_a_blocking_consent_check_and_the_warehouse_is_rewritten_after_them(graph):
    syncs = sync_keys(graph)
    assert len(syncs) >= 5
    for sync in syncs:
        check = dg.AssetCheckKey(sync, "check_members_have_marketing_consent")
        assert check in graph.asset_check_keys and graph.get_check_spec(check).blocking
    assert set(syncs) <= graph.get(COMPACTION).parent_keys
