"""The daily refresh schedule: the whole graph (segmint_refresh) once a day, staging only the last days.

Each tick's run re-stages the last LATE_ARRIVAL_DAYS days (today included; its staging window, run config of the
feature step: orchestration/lib/partitions.py), so orders and events that arrive a day or two late are still
staged, while the history is not re-staged every day. The raw
tables, customer marts, models and audiences are rebuilt as snapshots, as in every run. A landing file that
changes older days is picked up by the landing-file sensor, whose runs cover every day (sensors.py), and a
windowed run re-stages such days too (orchestration/lib/staged_days.py).

Ticks are evaluated by the Dagster daemon, which `make dev` (`dagster dev`) starts next to the webserver.
Runs queue behind each other (dagster.yaml: one run at a time, because DuckDB allows a single writer), so a
tick that fires while the landing-file sensor's run is still going waits instead of failing on the file lock.
"""

from datetime import UTC, datetime

import dagster as dg

from orchestration.defs.jobs import refresh_job
from orchestration.lib.partitions import trailing_days

DAILY_REFRESH_CRON = "0 6 * * *"  # 06:00 every day: after nightly exports have landed, before the working day
DAILY_REFRESH_TIMEZONE = "UTC"
TRIGGER_TAG = "segmint/trigger"
LATE_ARRIVAL_DAYS = 3


@dg.schedule(
    name="segmint_daily_refresh",
    cron_schedule=DAILY_REFRESH_CRON,
    execution_timezone=DAILY_REFRESH_TIMEZONE,
    job=refresh_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refresh the whole graph every day at 06:00 UTC (landing -> features -> checks -> models -> audiences).",
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """One run of segmint_refresh per tick over the last days; the run key is the tick's date (never twice)."""
    scheduled_for = context.scheduled_execution_time
    if scheduled_for is None:  # evaluated by hand (UI "test schedule"): today
        scheduled_for = datetime.now(UTC)
    day = scheduled_for.date()
    window = trailing_days(day, LATE_ARRIVAL_DAYS)
    return dg.RunRequest(
        run_key=f"daily-{day.isoformat()}",
        run_config=window.run_config,
        tags={TRIGGER_TAG: "schedule", "segmint/scheduled_for": day.isoformat(), **window.run_tags},
    )


schedules = [daily_refresh_schedule]
