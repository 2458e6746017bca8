"""The daily partitions of the order and event staging: settings, run windows and the dbt vars they become."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.cli import main as cli_main
from orchestration.definitions import defs
from orchestration.defs.dbt_models import DAILY_PARTITIONS
from orchestration.lib.partitions import (
    DEFAULT_HISTORY_START,
    PartitionWindow,
    daily_partitions,
    dbt_window_vars,
    full_history,
    history_start,
    trailing_days,
)
from orchestration.lib.settings import SettingsError

DAILY_MODELS = {
    ("staging", "stg_orders"), ("staging", "stg_visitor_event_days"), ("staging", "stg_visitor_event_type_days"),
}  # fmt: skip


def test_the_history_start_is_a_setting_with_a_documented_default():
    assert history_start({}) == DEFAULT_HISTORY_START
    assert history_start({"SEGMINT_HISTORY_START": "2019-03-01"}) == date(2019, 3, 1)
    with pytest.raises(SettingsError, match="SEGMINT_HISTORY_START='March 2019' is not a date"):
        history_start({"SEGMINT_HISTORY_START": "March 2019"})


def test_partitions_are_utc_days_from_the_history_start_to_today():
    partitions = daily_partitions({"SEGMINT_HISTORY_START": "2026-01-01"})
    keys = partitions.get_partition_keys()
    assert keys[0] == "2026-01-01"
    assert keys[-1] == date.today().isoformat()  # today is a partition: orders keep landing during the day
    assert partitions.timezone == "UTC"


def test_a_window_becomes_the_run_tags_of_one_range_run():
    window = PartitionWindow(date(2026, 3, 1), date(2026, 3, 3))
    assert window.run_tags == {
        ASSET_PARTITION_RANGE_START_TAG: "2026-03-01",
        ASSET_PARTITION_RANGE_END_TAG: "2026-03-03",
    }
    assert trailing_days(date(2026, 3, 3), 3) == window


def test_a_window_is_clipped_to_the_partitions_and_a_reversed_or_too_early_one_is_refused():
    partitions = daily_partitions({"SEGMINT_HISTORY_START": "2026-01-01"})
    assert PartitionWindow(date(2025, 12, 1), date(2026, 1, 5)).clipped_to(partitions) == PartitionWindow(
        date(2026, 1, 1), date(2026, 1, 5)
    )
    assert full_history(partitions).first == date(2026, 1, 1)
    with pytest.raises(ValueError, match="ends .* before it starts"):
        PartitionWindow(date(2026, 1, 5), date(2026, 1, 1))
    with pytest.raises(SettingsError, match="set SEGMINT_HISTORY_START to an earlier date"):
        PartitionWindow(date(2025, 1, 1), date(2025, 2, 1)).clipped_to(partitions)


def _context(partitions: dg.DailyPartitionsDefinition, first: str, last: str) -> SimpleNamespace:
    """What dbt_window_vars reads from an asset context in a range run."""
    keys = partitions.get_partition_keys()
    chosen = keys[keys.index(first) : keys.index(last) + 1]
    window = partitions.time_window_for_partition_key(first)._replace(
        end=partitions.time_window_for_partition_key(last).end
    )
    return SimpleNamespace(partition_keys=chosen, partition_time_window=window)


def test_a_window_of_days_becomes_dbt_vars_with_an_exclusive_end():
    partitions = daily_partitions({"SEGMINT_HISTORY_START": "2026-01-01"})
    assert dbt_window_vars(_context(partitions, "2026-03-01", "2026-03-03"), partitions) == {
        "min_date": "2026-03-01",
        "max_date": "2026-03-04",
    }


def test_a_run_over_every_day_passes_no_window_so_dbt_rebuilds_the_whole_history():
    partitions = daily_partitions({"SEGMINT_HISTORY_START": "2026-01-01"})
    keys = partitions.get_partition_keys()
    assert dbt_window_vars(_context(partitions, keys[0], keys[-1]), partitions) == {}
    # Launched before midnight, run after it: the new day's partition is not in the run, still "every day".
    assert dbt_window_vars(_context(partitions, keys[0], keys[-2]), partitions) == {}


def test_only_the_order_and_event_staging_is_partitioned_and_backfills_run_once():
    graph = defs.resolve_asset_graph()
    partitioned = {tuple(node.key.path) for node in graph.asset_nodes if node.is_partitioned}
    assert partitioned == DAILY_MODELS
    for path in DAILY_MODELS:
        node = graph.get(dg.AssetKey(list(path)))
        assert node.partitions_def == DAILY_PARTITIONS
        assert node.backfill_policy == dg.BackfillPolicy.single_run()


def test_the_refresh_jobs_and_the_backfill_job_carry_the_daily_partitions():
    for name in ("segmint_refresh", "segmint_refresh_multiprocess", "daily_staging"):
        assert defs.resolve_job_def(name).partitions_def == DAILY_PARTITIONS
    staged = {tuple(key.path) for key in defs.resolve_job_def("daily_staging").asset_layer.executable_asset_keys}
    assert staged == DAILY_MODELS


def test_the_cli_refuses_a_reversed_window_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["segmint_refresh", "--from", "2026-03-05", "--to", "2026-03-01"])
    assert exit_info.value.code == 2
    assert "ends (2026-03-01) before it starts (2026-03-05)" in capsys.readouterr().err
