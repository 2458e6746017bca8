"""The real Dagster webserver serves the whole asset graph: every asset, check, lineage edge, schedule and sensor."""

from __future__ import annotations

import pytest

from tests.integration.conftest import graphql
from tests.orchestration.test_definitions import BLOCKING_CHECKS, EXPECTED_ASSETS, EXPECTED_SENSORS, SEGMENT_LINEAGE

pytestmark = pytest.mark.slow

ASSET_GRAPH_QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    dependencyKeys { path }
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
  }
}
"""
AUTOMATION_QUERY = """
{
  repositoriesOrError {
    ... on RepositoryConnection { nodes { name location { name } schedules { name cronSchedule } sensors { name } } }
  }
}
"""
CHECK_STATUS_QUERY = """
{
  assetNodeOrError(assetKey: {path: ["raw", "orders"]}) {
    ... on AssetNode {
      assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization { status runId } } } }
    }
  }
}
"""


@pytest.fixture(scope="module")
def asset_graph(webserver) -> dict[str, dict]:
    """Asset path ("raw/orders") -> its node as the UI receives it."""
    nodes = graphql(webserver, ASSET_GRAPH_QUERY)["assetNodes"]
    return {"/".join(node["assetKey"]["path"]): node for node in nodes}


def test_the_ui_serves_every_expected_asset(asset_graph):
    assert set(EXPECTED_ASSETS) <= set(asset_graph)


def test_the_ui_shows_the_lineage_from_order_file_to_segment_scores(asset_graph):
    for parent, child in zip(SEGMENT_LINEAGE, SEGMENT_LINEAGE[1:]):
        parents = {"/".join(dep["path"]) for dep in asset_graph[child]["dependencyKeys"]}
        assert parent in parents, f"{parent} -> {child} missing in the UI"


def test_the_ui_shows_every_quality_gate_as_a_blocking_check(asset_graph):
    for asset, check in BLOCKING_CHECKS:
        checks = {c["name"]: c["blocking"] for c in asset_graph[asset]["assetChecksOrError"]["checks"]}
        assert checks.get(check) is True, f"{asset}:{check} missing or not blocking"


def test_the_ui_lists_the_daily_schedule_and_every_sensor(webserver):
    [repository] = graphql(webserver, AUTOMATION_QUERY)["repositoriesOrError"]["nodes"]
    assert repository["location"]["name"] == "segmint"  # workspace.yaml location_name, not the module path
    assert {s["name"]: s["cronSchedule"] for s in repository["schedules"]} == {"segmint_daily_refresh": "0 6 * * *"}
    assert {s["name"] for s in repository["sensors"]} >= EXPECTED_SENSORS


def test_the_ui_shows_the_planted_defect_as_a_failed_check_in_a_failed_run(webserver):
    node = graphql(webserver, CHECK_STATUS_QUERY)["assetNodeOrError"]
    executions = {c["name"]: c["executionForLatestMaterialization"] for c in node["assetChecksOrError"]["checks"]}
    assert executions["gx_raw_orders"]["status"] == "FAILED"
    run_id = executions["gx_raw_orders"]["runId"]
    run = graphql(webserver, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status jobName }} }} }}')["runOrError"]
    assert run == {"status": "FAILURE", "jobName": "segmint_refresh"}


PARTITIONS_QUERY = "{ assetNodes { assetKey { path } isPartitioned partitionDefinition { description } } }"


def test_no_asset_is_partitioned_so_a_full_run_records_one_materialization_per_asset(webserver):
    # The staging is incremental by a run's window of days (orchestration/lib/partitions.py), not Dagster
    # partitions: those cost one event-log record per day and asset on every full run.
    nodes = graphql(webserver, PARTITIONS_QUERY)["assetNodes"]
    assert [node["assetKey"]["path"] for node in nodes if node["isPartitioned"]] == []
