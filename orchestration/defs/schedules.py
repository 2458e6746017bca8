"""The daily refresh schedule: the whole graph (segmint_refresh) once a day.

Ticks are evaluated by the Dagster daemon, which `make dev` (`dagster dev`) starts next to the webserver.
Runs queue behind each other (dagster.yaml: one run at a time, because DuckDB allows a single writer), so a
tick that fires while the landing-file sensor's run is still going waits instead of failing on the file lock.
"""

import dagster as dg

from orchestration.defs.jobs import refresh_job

DAILY_REFRESH_CRON = "0 6 * * *"  # 06:00 every day: after nightly exports have landed, before the working day
DAILY_REFRESH_TIMEZONE = "UTC"
TRIGGER_TAG = "segmint/trigger"


@dg.schedule(
    name="segmint_daily_refresh",
    cron_schedule=DAILY_REFRESH_CRON,
    execution_timezone=DAILY_REFRESH_TIMEZONE,
    job=refresh_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refresh the whole graph every day at 06:00 UTC (landing -> features -> checks -> models -> audiences).",
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """One run of segmint_refresh per tick; the run key is the tick's date, so a tick never launches twice."""
    scheduled_for = context.scheduled_execution_time
    day = scheduled_for.date().isoformat() if scheduled_for else "manual"
    return dg.RunRequest(run_key=f"daily-{day}", tags={TRIGGER_TAG: "schedule", "segmint/scheduled_for": day})


schedules = [daily_refresh_schedule]
