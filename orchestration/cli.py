"""`make run`: execute a job against $DAGSTER_HOME with one readable line per step.

The run is recorded in the Dagster instance like any other (open `make dev` to see every log line, stack trace and
metadata); the console only says what a person needs: which step finished, which failed and why, in one line.
Exit status 0 when the run succeeded, 1 when it failed.

The daily staging models are partitioned (orchestration/lib/partitions.py). A run covers every day by default
(`make run`); `--from/--to` runs the same job over a window of days, like the daily schedule or a backfill.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import date

import dagster as dg

from orchestration.lib.partitions import PartitionWindow, full_history
from orchestration.lib.settings import SettingsError

SHOWN_EVENTS = {"STEP_SUCCESS", "STEP_FAILURE", "STEP_UP_FOR_RETRY", "ASSET_CHECK_EVALUATION", "PIPELINE_START",
                "PIPELINE_SUCCESS", "PIPELINE_FAILURE"}


def failure_reason(event: dg.DagsterEvent) -> str:
    """The user-facing reason of a failed step: a Failure's description, else the error's first line."""
    data = event.step_failure_data
    if data is None:
        return event.message or ""
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error is not None and error.cause is not None and error.cls_name in {"DagsterExecutionStepExecutionError"}:
        error = error.cause
    return (error.message.strip().splitlines() or ["unknown error"])[-1] if error else "unknown error"


def describe(event: dg.DagsterEvent) -> str | None:
    """One console line for the events worth showing, None for the rest."""
    kind = event.event_type_value
    if kind not in SHOWN_EVENTS:
        return None
    if kind == "STEP_FAILURE":
        return f"FAILED  {event.step_key}: {failure_reason(event)}"
    if kind == "STEP_SUCCESS":
        return f"ok      {event.step_key}"
    if kind == "ASSET_CHECK_EVALUATION":
        evaluation = event.event_specific_data
        status = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value.lower()}): {evaluation.description}"
        return f"check   {evaluation.asset_check_key.asset_key.to_user_string()}:{evaluation.asset_check_key.name} {status}"
    if kind == "PIPELINE_START":
        return f"run     {event.job_name} started"
    return None


class _ConciseHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        line = describe(event) if event is not None else None
        if line:
            print(f"{time.strftime('%H:%M:%S')}  {line}", flush=True)


@dg.logger(description="One readable console line per step and check; everything else stays in the Dagster UI.")
def concise_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("segmint", level=logging.DEBUG)
    logger.addHandler(_ConciseHandler())
    return logger


def run_job(job_name: str, window: PartitionWindow | None = None) -> int:
    """Execute `job_name` in process over `window` (default: every day), recorded in $DAGSTER_HOME; exit status."""
    from orchestration.definitions import defs

    job = defs.resolve_job_def(job_name).with_logger_defs({"concise": concise_console_logger})
    tags: dict[str, str] = {}
    if job.partitions_def is not None:
        window = (window or full_history(job.partitions_def)).clipped_to(job.partitions_def)
        tags = window.run_tags
        print(f"segmint: {job_name} over the days {window.first}..{window.last}", flush=True)
    # One "planned" event per asset rather than per day in a run over many days (also set by the Makefile).
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config={"loggers": {"concise": {}}}, tags=tags
        )
    minutes = (time.monotonic() - started) / 60
    if result.success:
        print(f"segmint: {job_name} succeeded in {minutes:.1f} min (run {result.run_id}). `make dev` shows it in the UI.")
        return 0
    reasons = [f"{e.step_key}: {failure_reason(e)}" for e in result.get_step_failure_events()]
    reasons += [
        f"check {data.asset_check_key.name} on {data.asset_check_key.asset_key.to_user_string()}: {data.description}"
        for data in (e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION")
        if not data.passed and data.severity == dg.AssetCheckSeverity.ERROR
    ]
    print(f"segmint: {job_name} FAILED after {minutes:.1f} min (run {result.run_id}).", file=sys.stderr)
    for reason in reasons:
        print(f"  - {reason}", file=sys.stderr)
    print("  Details, logs and check metadata: `make dev`, then Runs.", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.cli", description=__doc__)
    parser.add_argument("job", nargs="?", default="segmint_refresh", help="job to execute (default: segmint_refresh)")
    parser.add_argument("--from", dest="first", type=date.fromisoformat, help="first day of the window (YYYY-MM-DD)")
    parser.add_argument("--to", dest="last", type=date.fromisoformat, help="last day of the window (default: today)")
    args = parser.parse_args(argv)
    window = None
    if args.last is not None and args.first is None:
        parser.error("--to needs --from")
    try:
        if args.first is not None:
            window = PartitionWindow(args.first, args.last or date.today())
        return run_job(args.job, window)
    except (ValueError, SettingsError) as error:  # a wrong window or setting: one line, no traceback
        parser.error(str(error))


if __name__ == "__main__":
    sys.exit(main())
