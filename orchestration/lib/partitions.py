"""Daily partitions of the order and event staging, and the partition windows runs are launched with.

The raw tables are whole files (quarantine and reconciliation are per file), so a day cannot be half-loaded
into raw. The dbt models that stage orders and events (`tag:daily`) are the partitioned layer: a run over a
window of days deletes and rebuilds exactly those days (dbt vars `min_date`/`max_date`), which is what a
backfill or the daily schedule does. The customer marts, models and audiences stay snapshots per run.

A run over *every* partition passes no window at all, so it rebuilds the whole staging, including rows
dated before SEGMINT_HISTORY_START (they exist in every full run but cannot be backfilled one day at a time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.lib.settings import SettingsError

HISTORY_START_ENV = "SEGMINT_HISTORY_START"
# Covers the demo shop's training and scoring windows (as-of 2026-06-30 minus the 365-day horizon). A run over
# every day records one materialization per day and asset (~30 ms each with the local SQLite instance, measured),
# so the default is not decades back; a shop that wants day-level backfills further back sets its first order date.
DEFAULT_HISTORY_START = date(2025, 1, 1)
PARTITION_DATE_FORMAT = "%Y-%m-%d"


def history_start(env: dict[str, str] | None = None) -> date:
    """The first daily partition (SEGMINT_HISTORY_START, default 2025-01-01), read when the code location loads."""
    raw = (os.environ if env is None else env).get(HISTORY_START_ENV, "").strip()
    if not raw:
        return DEFAULT_HISTORY_START
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{HISTORY_START_ENV}={raw!r} is not a date (expected YYYY-MM-DD)") from None


def daily_partitions(env: dict[str, str] | None = None) -> dg.DailyPartitionsDefinition:
    """One partition per UTC day from the history start to today (today included: orders keep landing)."""
    return dg.DailyPartitionsDefinition(
        start_date=history_start(env).strftime(PARTITION_DATE_FORMAT), timezone="UTC", end_offset=1
    )


@dataclass(frozen=True)
class PartitionWindow:
    """Days first..last (inclusive) of the daily partitions a run covers."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"the window ends ({self.last}) before it starts ({self.first})")

    @property
    def run_tags(self) -> dict[str, str]:
        """The tags Dagster reads to give a run this partition range (one run, like a single-run backfill)."""
        return {
            ASSET_PARTITION_RANGE_START_TAG: self.first.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: self.last.isoformat(),
        }

    def clipped_to(self, partitions: dg.DailyPartitionsDefinition) -> PartitionWindow:
        """The same window limited to the days that exist as partitions (a window before the start is an error)."""
        keys = partitions.get_partition_keys()
        first, last = date.fromisoformat(keys[0]), date.fromisoformat(keys[-1])
        if self.last < first:
            raise SettingsError(
                f"the window {self.first}..{self.last} ends before the first partition {first} "
                f"(set {HISTORY_START_ENV} to an earlier date)"
            )
        return PartitionWindow(max(self.first, first), min(self.last, last))


def full_history(partitions: dg.DailyPartitionsDefinition) -> PartitionWindow:
    """Every partition: the window of `make run`, of a changed landing file and of a first load."""
    keys = partitions.get_partition_keys()
    return PartitionWindow(date.fromisoformat(keys[0]), date.fromisoformat(keys[-1]))


def trailing_days(last: date, days: int) -> PartitionWindow:
    """The `days` days ending on `last`: the daily schedule's window (late orders and events included)."""
    return PartitionWindow(last - timedelta(days=days - 1), last)


def dbt_window_vars(context: dg.AssetExecutionContext, partitions: dg.DailyPartitionsDefinition) -> dict[str, str]:
    """dbt vars for the run's partitions: {min_date, max_date} (max exclusive), or {} when it covers every one."""
    keys, every_key = context.partition_keys, partitions.get_partition_keys()
    # "Every partition" also when the day turned after the run was launched (a new, empty partition appeared).
    if keys[0] == every_key[0] and keys[-1] in every_key[-2:]:
        return {}
    window = context.partition_time_window
    return {"min_date": window.start.date().isoformat(), "max_date": window.end.date().isoformat()}
