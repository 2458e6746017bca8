"""`make run`: execute a job against $DAGSTER_HOME with one readable line per step.

The run is recorded in the Dagster instance like any other (open `make dev` to see every log line, stack trace and
metadata); the console only says what a person needs: which step finished, which failed and why, in one line.
Exit status 0 when the run succeeded, 1 when it failed. One failure is expected rather than fatal: when the CLV
activation gate's blocking check (`check_clv_model_beats_baselines` on `ml/clv_activation_gate`) is the only
thing that failed, every score, segment and the report were built and only the syncs and value-based exports
were held back, so the exit status is 0 and one line says why: `segmint: WARNING audiences not synced: <reason>`.
The run itself stays failed in the Dagster instance, so ops see the failed check in the UI and the alert sensors.

Warnings the steps logged (context.log.warning: the landing's notes, such as the reporting currency against the
rates, generated ids or a mostly-quarantined optional file) are printed once each before the closing lines,
`segmint: WARNING <step>: <message>`, whatever the outcome (collected by the console logger as they are logged).

The order and event staging is incremental (orchestration/lib/partitions.py). A run re-stages every day by default
(`make run`); `--from/--to` re-stages only that window of days, like the daily schedule or a backfill.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import NoReturn

import dagster as dg

from orchestration.lib import event_log
from orchestration.lib.keys import ACTIVATION_GATE_CHECK
from orchestration.lib.memory import collector_paused, freeze_loaded
from orchestration.lib.partitions import EVERY_DAY, FEATURE_STEP, StagingWindow
from orchestration.lib.settings import SettingsError

BLOCKED_CHECK_ERROR = "DagsterAssetCheckFailedError"
SHOWN_EVENTS = {
    "STEP_SUCCESS",
    "STEP_FAILURE",
    "STEP_UP_FOR_RETRY",
    "ASSET_CHECK_EVALUATION",
    "PIPELINE_START",
    "PIPELINE_SUCCESS",
    "PIPELINE_FAILURE",
}


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


def is_blocking_check_failure(event: dg.DagsterEvent) -> bool:
    """A step that failed only because a blocking check it ran did not pass (the check line says why)."""
    data = event.step_failure_data
    return data is not None and data.error is not None and data.error.cls_name == BLOCKED_CHECK_ERROR


def describe(event: dg.DagsterEvent) -> str | None:
    """One console line for the events worth showing, None for the rest."""
    kind = event.event_type_value
    if kind not in SHOWN_EVENTS:
        return None
    if kind == "STEP_FAILURE" and is_blocking_check_failure(event):
        return f"blocked {event.step_key}: a blocking check failed, the steps after it are skipped"
    if kind == "STEP_FAILURE":
        return f"FAILED  {event.step_key}: {failure_reason(event)}"
    if kind == "STEP_SUCCESS":
        return f"ok      {event.step_key}"
    if kind == "ASSET_CHECK_EVALUATION":
        evaluation = event.event_specific_data
        status = (
            "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value.lower()}): {evaluation.description}"
        )
        return f"check   {evaluation.asset_check_key.asset_key.to_user_string()}:{evaluation.asset_check_key.name} {status}"
    if kind == "PIPELINE_START":
        return f"run     {event.job_name} started"
    return None


class _ConciseHandler(logging.Handler):
    def __init__(self, warnings: list[str]) -> None:
        super().__init__()
        self.warnings = warnings
        self.started: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        step = meta.get("step_key")
        if event is not None and event.event_type_value == "STEP_START":
            self.started.add(step)
        # A started step's own warning (context.log.warning): kept for the summary, not printed mid-run. Dagster's
        # "Dependencies for step ... Not executing." comes from steps that never start: the FAILED lines say why.
        if event is None and record.levelno >= logging.WARNING and step in self.started:
            self.warnings.append(warning_line(step, str(meta.get("orig_message") or record.getMessage())))
        line = describe(event) if event is not None else None
        if line:
            print(f"{time.strftime('%H:%M:%S')}  {line}", flush=True)


def warning_line(step_key: str, message: str) -> str:
    """How the summary names a step's warning: "<step>: <message on one line>"."""
    return f"{step_key}: {' '.join(message.split())}"


def concise_console_logger(warnings: list[str]) -> dg.LoggerDefinition:
    """One readable console line per step and check; the steps' warnings are appended to `warnings` (the run's
    summary prints them, report_outcome); everything else stays in the Dagster UI."""

    @dg.logger(description="One readable console line per step and check; everything else stays in the Dagster UI.")
    def concise(init_context: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger("segmint", level=logging.DEBUG)
        logger.addHandler(_ConciseHandler(warnings))
        return logger

    return concise


def run_job(job_name: str, window: StagingWindow | None = None) -> int:
    """Execute `job_name` in process, re-staging `window` (default: every day), recorded in $DAGSTER_HOME; exit
    status. A window for a job without the staging step is refused (ValueError: one line)."""
    # The run's collector policy from before the definitions load, not only around the run: loading them makes
    # ~0.6 M long-lived objects, and the collector walked that growing heap again and again (the load: 3.76 -> 3.07
    # CPU s, bench/notes.md). Once loaded they are frozen too (_run_job), with the ~10 k objects of garbage the
    # load leaves.
    with collector_paused(collect_in_hooks=True):
        return _run_job(job_name, window)


def _run_job(job_name: str, window: StagingWindow | None) -> int:
    from orchestration.definitions import defs

    warnings: list[str] = []  # the steps' warnings, collected as they are logged (no read of the run history)
    job = defs.resolve_job_def(job_name).with_logger_defs({"concise": concise_console_logger(warnings)})
    run_config: dict = {"loggers": {"concise": {}}}
    tags: dict[str, str] = {}
    if job.has_node_named(FEATURE_STEP):
        if window is not None:
            run_config |= window.run_config
            tags = window.run_tags
        print(f"segmint: {job_name} re-staging {window or EVERY_DAY}", flush=True)
    elif window is not None:
        raise ValueError(f"{job_name} does not stage orders or events: --from/--to apply to segmint_refresh")
    freeze_loaded()  # the definitions just loaded: no collection between steps walks them
    started = time.monotonic()
    event_log.install()  # the run history's fsync policy (SEGMINT_EVENT_LOG_SYNC, orchestration/lib/event_log.py)
    with dg.DagsterInstance.get() as instance:
        event_log.keep_engines(instance)  # the run history's SQLite engines made once, not per event
        # execute_in_process runs Dagster's own in-process executor, not the job's: the run's collector policy is
        # applied by run_job, and the job's hooks collect between steps (orchestration/lib/memory.py).
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config, tags=tags)
    minutes = (time.monotonic() - started) / 60
    return report_outcome(job_name, result.success, run_outcome(result.all_events), minutes, result.run_id, warnings)


@dataclass(frozen=True)
class RunOutcome:
    """What went wrong in a run: failed steps (key, reason) and failed ERROR checks (key, step, description)."""

    failed_steps: list[tuple[str, str]]
    failed_checks: list[tuple[dg.AssetCheckKey, str, str]]

    def gate_warning(self, gate: dg.AssetCheckKey = ACTIVATION_GATE_CHECK) -> str | None:
        """The gate's reason when the gate's check is the only failure of the run (skipped syncs are its effect)."""
        if not self.failed_checks or any(key != gate for key, _, _ in self.failed_checks):
            return None
        gate_steps = {step for _, step, _ in self.failed_checks}
        if any(step not in gate_steps for step, _ in self.failed_steps):
            return None
        return "; ".join(dict.fromkeys(description for _, _, description in self.failed_checks)) or "gate failed"

    def reasons(self) -> list[str]:
        lines = [f"{step}: {reason}" for step, reason in self.failed_steps]
        lines += [
            f"check {key.name} on {key.asset_key.to_user_string()}: {description}"
            for key, _, description in self.failed_checks
        ]
        return lines


def run_outcome(events: Iterable[dg.DagsterEvent]) -> RunOutcome:
    failed_steps, failed_checks = [], []
    for event in events:
        if event.event_type_value == "STEP_FAILURE":
            failed_steps.append((event.step_key, failure_reason(event)))
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed and data.severity == dg.AssetCheckSeverity.ERROR:
                failed_checks.append((data.asset_check_key, event.step_key, data.description or ""))
    return RunOutcome(failed_steps, failed_checks)


def report_outcome(
    job_name: str, success: bool, outcome: RunOutcome, minutes: float, run_id: str, warnings: Iterable[str] = ()
) -> int:
    """Print the run's last lines and return the exit status: 0 succeeded or only the activation gate held, else 1.
    `warnings` (the steps' warnings, warning_line) come first, each once: they hold whatever the outcome."""
    for warning in dict.fromkeys(warnings):
        print(f"segmint: WARNING {warning}", file=sys.stderr, flush=True)
    if success:
        print(f"segmint: {job_name} succeeded in {minutes:.1f} min (run {run_id}). `make dev` shows it in the UI.")
        return 0
    warning = outcome.gate_warning()
    if warning is not None:
        print(
            f"segmint: {job_name} finished in {minutes:.1f} min (run {run_id}); every other step ran, the syncs and "
            "value-based exports were held back by the CLV activation gate."
        )
        print(f"segmint: WARNING audiences not synced: {' '.join(warning.split())}", file=sys.stderr, flush=True)
        return 0
    print(f"segmint: {job_name} FAILED after {minutes:.1f} min (run {run_id}).", file=sys.stderr)
    for reason in outcome.reasons():
        print(f"  - {reason}", file=sys.stderr)
    print("  Details, logs and check metadata: `make dev`, then Runs.", file=sys.stderr)
    return 1


def forget(argv: list[str]) -> int:
    """`forget <id> [<id> ...]`: erase customers now (privacy/erasure.py); one line per id, exit 1 on a problem."""
    import json

    import duckdb

    from orchestration.lib.erasure import apply_erasures
    from orchestration.lib.settings import load_settings
    from privacy.erasure import ErasureRequest, compact_warehouse
    from privacy.subjects import PrivacyError

    parser = argparse.ArgumentParser(
        prog="python -m orchestration.cli forget",
        description="Erase customers everywhere segmint keeps data (README, Privacy).",
    )
    parser.add_argument("customer_ids", nargs="+", metavar="customer_id")
    parser.add_argument("--requested-at", type=_timestamp, help="when the person asked (default: now, UTC)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
        requested_at = args.requested_at or datetime.now(UTC).replace(tzinfo=None)
        requests = [ErasureRequest(i.strip(), requested_at, "cli") for i in args.customer_ids if i.strip()]
        with duckdb.connect(str(settings.warehouse)) as conn:
            outcome = apply_erasures(conn, requests, settings)
        if outcome.receipts:
            compact_warehouse(settings.warehouse)
    except duckdb.IOException as error:
        print(
            f"segmint: forget: the warehouse is in use ({str(error).splitlines()[0]}); retry when the run ends",
            file=sys.stderr,
        )
        return 1
    except (PrivacyError, SettingsError) as error:
        print(f"segmint: forget: {error}", file=sys.stderr)
        return 1
    for receipt in outcome.receipts:
        removed = json.loads(receipt["removed_json"])
        rows = sum(removed["warehouse_rows"].values())
        print(
            f"segmint: erased receipt #{receipt['seq']}: {rows} rows in {len(removed['warehouse_rows'])} tables, "
            f"{len(removed['files_deleted'])} files, removals arranged at {len(removed['destinations'])} "
            "destinations (sent by the next run); suppressed at ingest from now on"
        )
    if outcome.already_erased:
        print(f"segmint: {outcome.already_erased} of the ids were erased before (nothing to do)")
    return 0


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["forget"]:
        return forget(argv[1:])
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
            window = StagingWindow(args.first, args.last or date.today())
        return run_job(args.job, window)
    except (ValueError, SettingsError) as error:  # a wrong window or setting: one line, no traceback
        parser.error(str(error))


def exit_without_teardown(status: int) -> NoReturn:
    """End the process as Python's own exit does, without its last part: freeing every object one by one.

    Python's exit waits for the non-daemon threads, runs the atexit callbacks, flushes the standard streams, then
    clears every module, which frees the whole heap in full collections: 2 CPU s after only loading the
    definitions, more after a run (issue 18; the same pass as at the run's start, orchestration/lib/memory.py).
    Here the first three happen in the same order and the operating system takes the memory back at once, as
    Python's own multiprocessing children do. Nothing of a run waits for that teardown: the run history is closed
    with its instance, the warehouse handle at the run's end, dbt's connection with its command."""
    threading._shutdown()  # the non-daemon threads and threading's exit hooks (concurrent.futures), as at exit
    atexit._run_exitfuncs()  # logging's flush, temporary folders, multiprocessing: every registered callback
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    # Only a finished main(): a traceback or an argparse error still leaves through Python's usual exit.
    exit_without_teardown(main())
