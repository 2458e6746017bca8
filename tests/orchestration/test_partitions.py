"""The staging window of a run: which days the order and event staging re-stages, and the dbt vars they become."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from orchestration.cli import main as cli_main
from orchestration.definitions import defs
from orchestration.defs.dbt_models import DAILY_STAGING_KEYS, dbt_feature_models
from orchestration.lib.partitions import (
    FEATURE_STEP,
    StagingWindow,
    StagingWindowConfig,
    dbt_window_vars,
    staged_days,
    trailing_days,
)

DAILY_MODELS = {
    ("staging", "stg_orders"), ("staging", "stg_visitor_event_days"), ("staging", "stg_visitor_event_type_days"),
}  # fmt: skip


def test_a_window_becomes_the_feature_steps_run_config_and_a_tag_naming_it():
    window = StagingWindow(date(2026, 3, 1), date(2026, 3, 3))
    assert window.run_config == {
        "ops": {FEATURE_STEP: {"config": {"stage_from": "2026-03-01", "stage_to": "2026-03-03"}}}
    }
    assert window.run_tags == {"segmint/staged_days": "2026-03-01..2026-03-03"}
    assert trailing_days(date(2026, 3, 3), 3) == window
    with pytest.raises(ValueError, match="ends .* before it starts"):
        StagingWindow(date(2026, 1, 5), date(2026, 1, 1))


def test_a_window_of_days_becomes_dbt_vars_with_an_exclusive_end_and_no_window_rebuilds_every_day():
    assert dbt_window_vars(StagingWindow(date(2026, 3, 1), date(2026, 3, 3))) == {
        "min_date": "2026-03-01",
        "max_date": "2026-03-04",
    }
    assert dbt_window_vars(None) == {}
    assert staged_days(None) == "every day"


def test_the_config_reads_a_window_or_every_day_and_refuses_a_bad_one_in_one_line():
    assert StagingWindowConfig().window() is None
    assert StagingWindowConfig(stage_from="2026-03-01").window() == StagingWindow(date(2026, 3, 1), date(2026, 3, 1))
    assert StagingWindowConfig(stage_from="2026-03-01", stage_to="2026-03-03").window() == StagingWindow(
        date(2026, 3, 1), date(2026, 3, 3)
    )
    with pytest.raises(ValueError, match="stage_to='2026-03-03' needs stage_from"):
        StagingWindowConfig(stage_to="2026-03-03").window()
    with pytest.raises(ValueError, match="expected dates as YYYY-MM-DD"):
        StagingWindowConfig(stage_from="March").window()
    with pytest.raises(ValueError, match="before it starts"):
        StagingWindowConfig(stage_from="2026-03-03", stage_to="2026-03-01").window()


def test_no_asset_is_partitioned_and_the_staging_is_built_by_the_one_feature_step():
    graph = defs.resolve_asset_graph()
    assert not [node.key for node in graph.asset_nodes if node.is_partitioned]
    assert {tuple(key.path) for key in DAILY_STAGING_KEYS} == DAILY_MODELS
    # Staging and feature marts: one dbt invocation.
    assert DAILY_STAGING_KEYS < dbt_feature_models.keys
    assert dg.AssetKey(["marts", "customer_features"]) in dbt_feature_models.keys


def test_the_backfill_job_stages_only_the_incremental_models():
    staged = {tuple(key.path) for key in defs.resolve_job_def("daily_staging").asset_layer.executable_asset_keys}
    assert staged == DAILY_MODELS
    for name in ("segmint_refresh", "segmint_refresh_multiprocess", "daily_staging"):
        assert defs.resolve_job_def(name).has_node_named(FEATURE_STEP)


def test_the_cli_refuses_a_reversed_window_or_a_window_for_a_job_that_stages_nothing(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["segmint_refresh", "--from", "2026-03-05", "--to", "2026-03-01"])
    assert exit_info.value.code == 2
    assert "ends (2026-03-01) before it starts (2026-03-05)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["audience_exports", "--from", "2026-03-01"])
    assert exit_info.value.code == 2
    assert "audience_exports does not stage orders or events" in capsys.readouterr().err
