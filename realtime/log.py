"""The durable log: events and transitions appended as JSON lines before the service answers, and read back.

Files (shared contract with landing/): `<data>/realtime/log/events-<UTC %Y%m%dT%H%M%S>-<pid>.jsonl` and
`transitions-<same stamp>-<pid>.jsonl`, a new pair per process start, append-only, UTF-8, one object per line.

Write and fsync policy (SEGMINT_REALTIME_FSYNC), group commit either way: requests hand their lines to
`LogWriter.append`; one writer thread takes everything queued since its last pass, writes it with one `write`
per file and then releases every request of that batch; the HTTP layer answers only after that.
- `interval` (default): lines are in the kernel before the answer, and the writer fsyncs both files at most
  FSYNC_INTERVAL_SECONDS later (and on shutdown). An acknowledged event survives `kill -9` or any crash of the
  service (the kernel holds its bytes); an OS crash or power cut can lose the last ~0.1 s of acknowledged
  events. This is Redis's `appendfsync everysec` trade, tightened to 0.1 s: on this shared 2-core VM a single
  fsync takes 2-20 ms (measured), so waiting for one per request would by itself break the 10 ms p99 target.
- `always`: the writer also fsyncs both files before releasing the batch (PostgreSQL-style group commit): one
  fsync covers every request that arrived during the previous one, and an acknowledged event also survives a
  power cut, at the cost of fsync latency on every answer.
- Events are written before transitions in each batch; a crash can leave a torn last line (and a batch's events
  without its transitions, for a request that was never answered). Readers skip a final line that is not
  valid JSON and count it (`LogStats.torn_lines`).
"""

from __future__ import annotations

import glob
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

FSYNC_ENV = "SEGMINT_REALTIME_FSYNC"
FSYNC_POLICIES = ("interval", "always")
FSYNC_INTERVAL_SECONDS = 0.1
EVENTS_PREFIX = "events-"
TRANSITIONS_PREFIX = "transitions-"


def log_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "realtime" / "log"


def fsync_policy(env: dict[str, str] | None = None) -> str:
    raw = (os.environ if env is None else env).get(FSYNC_ENV, "").strip().lower() or "interval"
    if raw not in FSYNC_POLICIES:
        raise ValueError(f"{FSYNC_ENV}={raw!r} must be one of {', '.join(FSYNC_POLICIES)}")
    return raw


@dataclass
class LogStats:
    """What a read saw: files, lines and torn (unparseable) final lines."""

    files: int = 0
    lines: int = 0
    torn_lines: int = 0
    bad_lines: int = 0  # unparseable lines that are not the last of their file (should never happen)


def read_events(
    directory: str | Path, stats: LogStats | None = None, since_mtime: float | None = None
) -> Iterator[dict[str, Any]]:
    """Every event line of `events-*.jsonl` under `directory`, file by file in name order (= start time)."""
    return _read(Path(directory), EVENTS_PREFIX, stats, since_mtime)


def read_transitions(
    directory: str | Path, stats: LogStats | None = None, since_mtime: float | None = None
) -> Iterator[dict[str, Any]]:
    """Every transition line of `transitions-*.jsonl` under `directory`, in name order."""
    return _read(Path(directory), TRANSITIONS_PREFIX, stats, since_mtime)


def _read(directory: Path, prefix: str, stats: LogStats | None, since_mtime: float | None) -> Iterator[dict[str, Any]]:
    stats = stats if stats is not None else LogStats()
    for name in sorted(glob.glob(str(directory / f"{prefix}*.jsonl"))):
        path = Path(name)
        if since_mtime is not None and path.stat().st_mtime < since_mtime:
            continue
        stats.files += 1
        with path.open("rb") as handle:
            lines = handle.read().split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for number, line in enumerate(lines):
            try:
                record = orjson.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except (orjson.JSONDecodeError, ValueError):
                if number == len(lines) - 1:
                    stats.torn_lines += 1
                else:
                    stats.bad_lines += 1
                continue
            stats.lines += 1
            yield record


@dataclass
class _Batch:
    events: list[bytes] = field(default_factory=list)
    transitions: list[bytes] = field(default_factory=list)
    callbacks: list[Callable[[BaseException | None], None]] = field(default_factory=list)


class LogWriter:
    """Group-commit appender: `append(events, transitions, done)` queues lines; `done(error)` is called from the
    writer thread once they are durable per the policy (error None) or could not be written."""

    def __init__(
        self,
        directory: str | Path,
        policy: str = "interval",
        now: datetime | None = None,
        dispatch: Callable[[list[Callable[[BaseException | None], None]], BaseException | None], None] | None = None,
    ):
        """`dispatch(callbacks, error)`, when given, is called once per batch instead of each callback (an asyncio
        service passes one `loop.call_soon_threadsafe` per batch rather than one per request)."""
        self.directory = Path(directory)
        self._dispatch = dispatch
        self.directory.mkdir(parents=True, exist_ok=True)
        self.policy = policy
        stamp = f"{(now or datetime.now(UTC)):%Y%m%dT%H%M%S}-{os.getpid()}"
        self.events_path = self.directory / f"{EVENTS_PREFIX}{stamp}.jsonl"
        self.transitions_path = self.directory / f"{TRANSITIONS_PREFIX}{stamp}.jsonl"
        self._events = open(self.events_path, "ab", buffering=0)
        self._transitions = open(self.transitions_path, "ab", buffering=0)
        self._pending = _Batch()
        self._cond = threading.Condition()
        self._closed = False
        self.stats = {"batches": 0, "events": 0, "transitions": 0, "bytes": 0, "errors": 0}
        self.sync_seconds: list[float] = []  # recent batch durations, drained by the metrics
        self._thread = threading.Thread(target=self._run, name="segmint-log-writer", daemon=True)
        self._thread.start()

    def append(
        self,
        events: list[dict[str, Any]],
        transitions: list[dict[str, Any]],
        done: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        event_lines = [orjson.dumps(record) + b"\n" for record in events]
        transition_lines = [orjson.dumps(record) + b"\n" for record in transitions]
        with self._cond:
            if self._closed:
                raise RuntimeError("the log writer is closed")
            self._pending.events.extend(event_lines)
            self._pending.transitions.extend(transition_lines)
            if done is not None:
                self._pending.callbacks.append(done)
            self._cond.notify()

    def append_sync(self, events: list[dict[str, Any]], transitions: list[dict[str, Any]], timeout: float = 30) -> None:
        """Append and wait until durable (for code outside an event loop)."""
        finished = threading.Event()
        failure: list[BaseException | None] = [None]

        def done(error: BaseException | None) -> None:
            failure[0] = error
            finished.set()

        self.append(events, transitions, done)
        if not finished.wait(timeout):
            raise TimeoutError("the durable log did not confirm the write")
        if failure[0] is not None:
            raise failure[0]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)
        self._events.close()
        self._transitions.close()

    def _has_pending(self) -> bool:
        return bool(self._pending.events or self._pending.transitions or self._pending.callbacks)

    def _run(self) -> None:
        dirty = False  # written but not yet fsynced (policy interval)
        last_sync = time.monotonic()
        while True:
            with self._cond:
                while not self._closed and not self._has_pending():
                    if not dirty:
                        self._cond.wait()
                        continue
                    remaining = FSYNC_INTERVAL_SECONDS - (time.monotonic() - last_sync)
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch, self._pending = self._pending, _Batch()
                closing = self._closed
            if batch.events or batch.transitions or batch.callbacks:
                dirty = self._commit(batch) or dirty
            if dirty and (closing or time.monotonic() - last_sync >= FSYNC_INTERVAL_SECONDS):
                try:
                    self._sync()
                except OSError:
                    self.stats["errors"] += 1
                dirty = False
                last_sync = time.monotonic()
            if closing:
                return

    def _sync(self) -> None:
        os.fsync(self._events.fileno())
        os.fsync(self._transitions.fileno())

    def _commit(self, batch: _Batch) -> bool:
        """Write one batch (and fsync it under `always`), then release its waiters; True when bytes await an fsync."""
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            for handle, lines in ((self._events, batch.events), (self._transitions, batch.transitions)):
                if lines:
                    _write_all(handle, b"".join(lines))
            if self.policy == "always":
                if batch.events:
                    os.fsync(self._events.fileno())
                if batch.transitions:
                    os.fsync(self._transitions.fileno())
            self.stats["batches"] += 1
            self.stats["events"] += len(batch.events)
            self.stats["transitions"] += len(batch.transitions)
            self.stats["bytes"] += sum(map(len, batch.events)) + sum(map(len, batch.transitions))
        except OSError as failure:
            self.stats["errors"] += 1
            error = failure
        self.sync_seconds.append(time.perf_counter() - started)
        if len(self.sync_seconds) > 10000:
            del self.sync_seconds[:5000]
        if self._dispatch is not None and batch.callbacks:
            self._dispatch(batch.callbacks, error)
        else:
            for callback in batch.callbacks:
                callback(error)
        return self.policy != "always" and error is None and bool(batch.events or batch.transitions)


def _write_all(handle: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = handle.write(view)
        view = view[written:]
