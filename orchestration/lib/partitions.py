"""The window of days a run re-stages: how the order and event staging is incremental without Dagster partitions.

The raw tables are whole files (quarantine and reconciliation are per file), so a day cannot be half-loaded into
raw. The dbt models that stage orders and events (`tag:daily`: stg_orders, stg_visitor_event_days,
stg_visitor_event_type_days) are the incremental layer: a run over a window of days deletes and rebuilds exactly
those days (`min_date`/`max_date`, dbt_project/macros/partition_window.sql), which is what the daily
schedule (the last 3 days, late data included; widened to raw days changed outside it, staged_days.py) and a
backfill (`make backfill FROM=... TO=...`) do. A run
without a window (`make run`, the landing-file sensor) rebuilds the whole staging. Everything after the staging
(customer marts, models, audiences) is a snapshot per run either way.

Why a run setting rather than Dagster daily partitions (which this module used to define): Dagster records one
materialization per partition and asset, and has no event for a range of partitions (dagster-io/dagster#31694,
#30641), so a run over every day since 2025 wrote ~2,000 event-log records: ~33 s of a 49 s staging step at
1 M customers, more every day. The staging assets are therefore unpartitioned: every run records one
materialization per asset, and its metadata (`segmint/staged_days`) says which days that run re-staged. The window
is the run config of the feature step (`ops: {dbt_feature_models: {config: {stage_from, stage_to}}}`), so the
launchpad shows it with its description, and the run carries the tag `segmint/staged_days` for the runs list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
from pydantic import Field

# The dbt step that stages orders and events and builds the feature marts (orchestration/defs/dbt_models.py).
FEATURE_STEP = "dbt_feature_models"
STAGED_DAYS_TAG = "segmint/staged_days"
STAGED_DAYS_METADATA = "segmint/staged_days"
EVERY_DAY = "every day"


@dataclass(frozen=True)
class StagingWindow:
    """Days first..last (inclusive) that a run re-stages."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"the window ends ({self.last}) before it starts ({self.first})")

    def __str__(self) -> str:
        return f"{self.first.isoformat()}..{self.last.isoformat()}"

    @property
    def dbt_vars(self) -> dict[str, str]:
        """dbt vars of the daily staging: {min_date, max_date}, max exclusive."""
        return {"min_date": self.first.isoformat(), "max_date": (self.last + timedelta(days=1)).isoformat()}

    @property
    def run_config(self) -> dict:
        """The run config that makes a run of a job with the feature step re-stage exactly these days."""
        return {
            "ops": {FEATURE_STEP: {"config": {"stage_from": self.first.isoformat(), "stage_to": self.last.isoformat()}}}
        }

    @property
    def run_tags(self) -> dict[str, str]:
        """A tag naming the window, for the runs list (the config is what the step reads)."""
        return {STAGED_DAYS_TAG: str(self)}


def trailing_days(last: date, days: int) -> StagingWindow:
    """The `days` days ending on `last`: the daily schedule's window (late orders and events included)."""
    return StagingWindow(last - timedelta(days=days - 1), last)


class StagingWindowConfig(dg.Config):
    """The days this run re-stages in the order and event staging; both empty (the default): every day."""

    stage_from: str = Field(
        default="", description="First day to re-stage (YYYY-MM-DD); empty with stage_to empty: every day."
    )
    stage_to: str = Field(default="", description="Last day to re-stage (YYYY-MM-DD, inclusive); empty: stage_from.")

    def window(self) -> StagingWindow | None:
        """The window, None for every day; a malformed or reversed one raises ValueError with one line."""
        first, last = self.stage_from.strip(), self.stage_to.strip()
        if not first and not last:
            return None
        if not first:
            raise ValueError(f"stage_to={last!r} needs stage_from (the first day to re-stage)")
        try:
            start = date.fromisoformat(first)
            end = date.fromisoformat(last) if last else start
        except ValueError:
            raise ValueError(f"stage_from={first!r}/stage_to={last!r}: expected dates as YYYY-MM-DD") from None
        return StagingWindow(start, end)


# The window reaches dbt in its process environment (read by macros/partition_window.sql), not as `--vars`: dbt
# re-parses the whole project when its vars differ from the previous run's, and the daily window moves every day.
STAGE_MIN_DATE_ENV = "SEGMINT_STAGE_MIN_DATE"
STAGE_MAX_DATE_ENV = "SEGMINT_STAGE_MAX_DATE"


def dbt_window_vars(window: StagingWindow | None) -> dict[str, str]:
    """dbt vars for a run: the window's {min_date, max_date}, or {} to rebuild every day."""
    return {} if window is None else window.dbt_vars


def dbt_window_env(window: StagingWindow | None) -> dict[str, str]:
    """The dbt process's environment for a run's window: {SEGMINT_STAGE_MIN_DATE, SEGMINT_STAGE_MAX_DATE} (the
    same dates as `dbt_window_vars`, max exclusive), both empty to rebuild every day."""
    dbt_vars = dbt_window_vars(window)
    return {STAGE_MIN_DATE_ENV: dbt_vars.get("min_date", ""), STAGE_MAX_DATE_ENV: dbt_vars.get("max_date", "")}


def staged_days(window: StagingWindow | None) -> str:
    """What a run re-staged, in words: `every day` or `first..last`."""
    return EVERY_DAY if window is None else str(window)
