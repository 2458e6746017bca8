"""The Dagster code location: loads every definition module under orchestration/defs/."""

import dagster as dg

from orchestration.defs import (
    audiences,
    automation,
    btyd,
    clv,
    dbt_models,
    jobs,
    landing,
    membership,
    privacy,
    quality_checks,
    reporting,
    schedules,
    segments,
    sensors,
    vocabulary,
)
from orchestration.defs.resources import resources

_modules = [landing, vocabulary, dbt_models, quality_checks, segments, clv, btyd, membership, reporting, audiences, privacy]

defs = dg.Definitions(
    assets=automation.with_automation(dg.load_assets_from_modules(_modules)),
    asset_checks=dg.load_asset_checks_from_modules(_modules),
    jobs=[jobs.refresh_job, jobs.refresh_job_multiprocess, jobs.daily_staging_job, jobs.export_job, jobs.report_job],
    schedules=schedules.schedules,
    sensors=[*sensors.sensors, *automation.sensors],
    executor=dg.in_process_executor,
    resources=resources(),
)
