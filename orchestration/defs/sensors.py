"""Sensors: a refresh when landing files change, event-triggered syncs of real-time audiences, and alerts.

All are evaluated by the Dagster daemon (`make dev` starts it). Alerts go to SEGMINT_ALERT_WEBHOOK_URL as JSON
(see orchestration/lib/alerts.py), or to the daemon's log when it is unset; links point to SEGMINT_DAGSTER_URL.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from activation.audiences import Audience, matches_realtime_segment
from landing.formats.detect import landing_data_files
from landing.realtime_log import transition_log_files
from orchestration.defs.audiences import AUDIENCES
from orchestration.defs.automation import FRESH_MARTS
from orchestration.defs.jobs import refresh_job
from orchestration.defs.schedules import TRIGGER_TAG
from orchestration.lib import keys
from orchestration.lib.alerts import (
    FailedCheck,
    alert_config,
    check_failure_payload,
    run_failure_payload,
    send_alert,
    stale_asset_payload,
)
from orchestration.lib.partitions import EVERY_DAY, STAGED_DAYS_TAG
from orchestration.lib.settings import SettingsError, load_settings

# A file younger than this may still be being copied in: wait for it rather than ingest half a file.
SETTLE_SECONDS = 30
LANDING_SENSOR_INTERVAL_SECONDS = 60
ALERT_SENSOR_INTERVAL_SECONDS = 30
MAX_RUNS_PER_TICK = 50  # runs looked at per tick by the failed-check sensor; the rest wait for the next tick
SEEN_RUNS_KEPT = 200  # run ids remembered in the cursor so a run whose record is touched again is not re-alerted
FINISHED_STATUSES = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]

FileState = dict[str, tuple[int, int]]  # path inside the landing folder -> (mtime in ns, size in bytes)


# ---- landing zone: pure helpers --------------------------------------------------------------------------------


def scan_landing(landing_dir: Path) -> FileState:
    """Path inside the folder -> (mtime_ns, size) of every landing file a format may read (landing_data_files: the
    folder's own files and its table folders' parts)."""
    state: FileState = {}
    for path in landing_data_files(landing_dir):
        stat = path.stat()
        state[path.relative_to(landing_dir).as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return state


def unsettled_files(state: FileState, now_ns: int, settle_seconds: float = SETTLE_SECONDS) -> list[str]:
    """Files modified less than `settle_seconds` ago (probably still being written)."""
    return sorted(name for name, (mtime_ns, _) in state.items() if now_ns - mtime_ns < settle_seconds * 1e9)


def changed_files(previous: FileState, current: FileState) -> list[str]:
    """Files that are new, or whose mtime or size differs from the previous scan."""
    return sorted(name for name, stamp in current.items() if previous.get(name) != stamp)


def removed_files(previous: FileState, current: FileState) -> list[str]:
    return sorted(set(previous) - set(current))


def encode_landing_cursor(state: FileState) -> str:
    """The cursor: file names with mtimes and sizes, as stable JSON."""
    return json.dumps({name: list(stamp) for name, stamp in sorted(state.items())}, separators=(",", ":"))


def decode_landing_cursor(cursor: str | None) -> FileState:
    """The previous scan from the cursor; an empty or unreadable cursor means 'nothing seen yet'."""
    if not cursor:
        return {}
    try:
        raw = json.loads(cursor)
        return {str(name): (int(stamp[0]), int(stamp[1])) for name, stamp in raw.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return {}


def landing_run_key(state: FileState) -> str:
    """Same files, same key: Dagster never launches two runs for one state of the landing zone."""
    return "landing-" + hashlib.sha256(encode_landing_cursor(state).encode()).hexdigest()[:16]


@dg.sensor(
    name="segmint_landing_files",
    job=refresh_job,
    minimum_interval_seconds=LANDING_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Starts segmint_refresh when a file in SEGMINT_LANDING_DIR is added or changed (name, mtime, size), "
        f"once every file has been still for {SETTLE_SECONDS} s. Does nothing for the demo shop."
    ),
)
def landing_files_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    try:
        landing_dir = load_settings().landing_dir
    except SettingsError as error:
        return dg.SkipReason(str(error))
    if landing_dir is None:
        return dg.SkipReason(
            "SEGMINT_LANDING_DIR is not set: each run generates the demo shop, there is nothing to watch"
        )
    current = scan_landing(landing_dir)
    waiting = unsettled_files(current, time.time_ns())
    if waiting:
        # Cursor untouched: the same files are looked at again on the next tick.
        return dg.SkipReason(f"waiting for {', '.join(waiting)} to stop changing")
    previous = decode_landing_cursor(context.cursor)
    changed, removed = changed_files(previous, current), removed_files(previous, current)
    cursor = encode_landing_cursor(current)
    if not changed:
        reason = (
            f"removed {', '.join(removed)}; no new or changed file" if removed else "no new or changed landing file"
        )
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor)
    context.log.info(f"landing files changed: {', '.join(changed)}")
    request = dg.RunRequest(
        run_key=landing_run_key(current),
        # A changed file may change any day, so the run (no staging window) stages every day; the schedule's runs
        # stage the last few.
        tags={
            TRIGGER_TAG: "landing_files",
            "segmint/changed_files": ",".join(changed)[:200],
            STAGED_DAYS_TAG: EVERY_DAY,
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor)


# ---- real-time audiences: event-triggered syncs ------------------------------------------------------------------

# Checked every 15 s: with a run's start-up (~10-20 s in-process) a segment change reaches the destination in
# well under a minute (measured in tests/orchestration/test_realtime_sync_sensor.py).
REALTIME_SENSOR_INTERVAL_SECONDS = 15
LogOffsets = dict[str, int]  # transitions log file name -> bytes already looked at (whole lines only)
MAX_READ_BYTES = 64 * 2**20  # per file and tick: a long backlog is worked through over several ticks


def read_new_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """Complete lines appended to `path` since byte `offset`, and the offset after the last complete one.

    A line still being written (no newline yet) is left for the next look. A file shorter than the offset was
    replaced: it is read again from the start.
    """
    size = path.stat().st_size
    if size < offset:
        offset = 0
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read(min(size - offset, MAX_READ_BYTES))
    end = chunk.rfind(b"\n") + 1
    return chunk[:end].splitlines(), offset + end


def segments_of(lines: list[bytes]) -> set[str]:
    """Segment names of transition lines; a line that is not a transition names none (the audience asset counts it)."""
    segments = set()
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("segment"), str):
            segments.add(record["segment"])
    return segments


def decode_offsets(cursor: str | None) -> LogOffsets:
    """The cursor's offsets; empty or unreadable -> nothing seen yet (the whole log is looked at once more)."""
    try:
        raw = json.loads(cursor) if cursor else {}
        return {str(name): int(offset) for name, offset in raw.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def realtime_sync_selection(audiences: list[Audience]) -> list[dg.AssetKey]:
    """The member table and every sync of each audience, and the contact forms they read (brought up to date: a
    refresh computes only changed contacts): what an event-triggered run materializes."""
    selected = [keys.CUSTOMER_MATCH_FORMS] if audiences else []
    for audience in audiences:
        selected.append(keys.audience(audience.name))
        selected += [keys.sync(audience.name, d.name) for d in audience.destinations]
    return selected


REALTIME_AUDIENCES = [audience for audience in AUDIENCES if audience.realtime_segment is not None]


@dg.sensor(
    name="segmint_realtime_audience_sync",
    minimum_interval_seconds=REALTIME_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=realtime_sync_selection(REALTIME_AUDIENCES) or [keys.AUDIENCE_LIFT],
    description=(
        "Event-triggered syncs: when the segment service appends transitions (SEGMINT_DATA_DIR/realtime/log/"
        "transitions-*.jsonl) into a segment an audience is defined on (realtime_segment in audiences.yaml), "
        "rebuilds that audience and runs its syncs (ledger, dry-run without credentials), within a minute."
    ),
)
def realtime_audience_sync_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    if not REALTIME_AUDIENCES:
        return dg.SkipReason("no audience in audiences.yaml is defined on a real-time segment")
    try:
        log_dir = load_settings().realtime_log_dir
    except SettingsError as error:
        return dg.SkipReason(str(error))
    offsets = decode_offsets(context.cursor)
    touched: set[str] = set()
    for path in transition_log_files(log_dir):
        name = path.relative_to(log_dir).as_posix()  # sub-folders hold other instances' logs
        lines, offsets[name] = read_new_lines(path, offsets.get(name, 0))
        touched |= segments_of(lines)
    cursor = json.dumps(offsets, sort_keys=True, separators=(",", ":"))
    affected = [a for a in REALTIME_AUDIENCES if any(matches_realtime_segment(a, s) for s in touched)]
    if not affected:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("no new transition into a real-time audience's segment"), cursor=cursor
        )
    names = ", ".join(a.name for a in affected)
    context.log.info(f"real-time segments changed ({', '.join(sorted(touched))[:200]}): syncing {names}")
    request = dg.RunRequest(
        # Same log position, same key: one run per batch of new transitions, never two.
        run_key="realtime-" + hashlib.sha256(cursor.encode()).hexdigest()[:16],
        asset_selection=realtime_sync_selection(affected),
        tags={TRIGGER_TAG: "realtime_transitions", "segmint/realtime_audiences": names[:200]},
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor)


# ---- alerts -----------------------------------------------------------------------------------------------------


def failed_checks_of_run(instance: dg.DagsterInstance, run_id: str) -> list[FailedCheck]:
    """Every asset check that did not pass in the run, in execution order."""
    connection = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    failed = []
    for record in connection.records:
        event = record.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event else None
        if evaluation is not None and not evaluation.passed:
            failed.append(
                FailedCheck(
                    asset=evaluation.asset_key.to_user_string(),
                    check=evaluation.check_name,
                    severity=evaluation.severity.value,
                    description=evaluation.description,
                )
            )
    return failed


@dg.run_failure_sensor(
    name="segmint_run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=ALERT_SENSOR_INTERVAL_SECONDS,
    description="Posts a JSON alert (run id, job, failed step, failed check, run link) when any run fails.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    payload = run_failure_payload(
        run_id=run.run_id,
        job=run.job_name,
        error=context.failure_event.message,
        failed_steps=[event.step_key for event in context.get_step_failure_events() if event.step_key],
        failed_checks=failed_checks_of_run(context.instance, run.run_id),
        dagster_url=alert_config().dagster_url,
    )
    send_alert(payload, alert_config(), context.log.warning)


@dataclass
class RunCursor:
    """Where the failed-check sensor stopped: last run update time seen (epoch s) and recent run ids."""

    updated_after: float
    seen: list[str] = field(default_factory=list)

    def encode(self) -> str:
        return json.dumps({"updated_after": self.updated_after, "seen": self.seen[-SEEN_RUNS_KEPT:]})

    @staticmethod
    def decode(cursor: str | None) -> RunCursor | None:
        if not cursor:
            return None
        try:
            raw = json.loads(cursor)
            return RunCursor(float(raw["updated_after"]), [str(run_id) for run_id in raw.get("seen", [])])
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def finished_runs_after(instance: dg.DagsterInstance, cursor: RunCursor) -> list[dg.RunRecord]:
    """Runs that finished (success, failure, cancel) after the cursor, oldest first, not seen before."""
    # Look one second back and skip the runs already seen: runs updated within the same instant are not lost.
    since = datetime.fromtimestamp(cursor.updated_after - 1.0, tz=UTC)
    records: Iterable[dg.RunRecord] = instance.get_run_records(
        filters=dg.RunsFilter(statuses=FINISHED_STATUSES, updated_after=since),
        order_by="update_timestamp",
        ascending=True,
        limit=MAX_RUNS_PER_TICK,
    )
    seen = set(cursor.seen)
    return [record for record in records if record.dagster_run.run_id not in seen]


@dg.sensor(
    name="segmint_failed_check_alert",
    minimum_interval_seconds=ALERT_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Posts one JSON alert per failed asset check (GX suites, dbt tests, model gate, freshness) in any finished run, "
        "with run id, job, asset, check and links. Starts watching from its first tick."
    ),
)
def failed_check_alert_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    cursor = RunCursor.decode(context.cursor)
    if cursor is None:
        # First tick: alert on what happens from now on, not on the whole history of the instance.
        context.update_cursor(RunCursor(updated_after=time.time()).encode())
        return dg.SkipReason("started watching for failed checks")
    config = alert_config()
    alerts = 0
    for record in finished_runs_after(context.instance, cursor):
        run = record.dagster_run
        for check in failed_checks_of_run(context.instance, run.run_id):
            payload = check_failure_payload(
                run_id=run.run_id, job=run.job_name, check=check, dagster_url=config.dagster_url
            )
            # A webhook error raises: the tick fails with the host-only message and is retried from this cursor.
            send_alert(payload, config, context.log.warning)
            alerts += 1
        cursor = RunCursor(record.update_timestamp.timestamp(), [*cursor.seen, run.run_id])
        context.update_cursor(cursor.encode())
    return dg.SkipReason(f"{alerts} failed check alert(s) sent" if alerts else "no failed checks in finished runs")


def newly_failed(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """Assets whose freshness state is FAIL now and was not FAIL at the last look."""
    return sorted(asset for asset, state in current.items() if state == "FAIL" and previous.get(asset) != "FAIL")


@dg.sensor(
    name="segmint_stale_mart_alert",
    minimum_interval_seconds=ALERT_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts an alert when a mart's freshness policy turns FAIL (once per stale spell, not every tick).",
)
def stale_mart_alert_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    records = context.instance.get_freshness_state_records(FRESH_MARTS)
    current = {key.to_user_string(): record.freshness_state.value for key, record in records.items()}
    previous = json.loads(context.cursor) if context.cursor else {}
    config = alert_config()
    stale = newly_failed(previous, current)
    for asset in stale:
        latest = context.instance.get_latest_materialization_event(dg.AssetKey.from_user_string(asset))
        last_updated = (
            datetime.fromtimestamp(latest.timestamp, tz=UTC).isoformat(timespec="minutes") if latest else None
        )
        send_alert(
            stale_asset_payload(asset=asset, state="FAIL", last_updated=last_updated, dagster_url=config.dagster_url),
            config,
            context.log.warning,
        )
    context.update_cursor(json.dumps(current, sort_keys=True))
    return dg.SkipReason(f"stale: {', '.join(stale)}" if stale else "no mart newly stale")


sensors = [
    landing_files_sensor,
    realtime_audience_sync_sensor,
    run_failure_alert_sensor,
    failed_check_alert_sensor,
    stale_mart_alert_sensor,
]
