"""The thin HTTP layer (Starlette on uvicorn) around the pure engine, the durable log and the bundle poller.

Concurrency model: one event loop. A request is parsed and folded into the engine synchronously (no await in
between), so the engine needs no lock; the handler then awaits its lines' durable write (group commit in the
log writer thread, realtime/log.py) and answers. The bundle poller loads a newer bundle in a worker thread and
swaps it in with one assignment on the loop, so no request ever sees a half-loaded bundle and none is dropped.

Garbage collection: with 1 M known customers and 100 k visitors the heap holds about a million tracked objects,
and one automatic full collection of them stops the loop for 0.5-2 s (measured 2.3 s on this loaded machine),
which would dominate the p99. Visitor state holds no reference cycles (freed by reference counting), so the
service turns automatic collection off, collects the young objects itself once a second (a second's allocations,
around a millisecond) and freezes the survivors (`gc.freeze`) so no collection walks them again.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from realtime.bundle import Bundle, BundleError, current_version, load_bundle
from realtime.engine import Engine
from realtime.events import MAX_BODY_BYTES, EventError, parse_body, parse_event, parse_time, utc_now
from realtime.log import LogStats, LogWriter, read_events, read_transitions
from realtime.metrics import Metrics
from realtime.rules import Rules, RulesError, load_rules

logger = logging.getLogger("segmint.realtime")
RELOAD_POLL_SECONDS = 2.0
RELOAD_SWITCH_INTERVAL = 0.0005
# The sweep runs often on small slices so it never stalls the loop for long: 500 visitors per 0.1 s is a
# capacity of 5,000 lapsing sessions per second, each slice a few milliseconds at most.
SWEEP_SECONDS = 0.1
SWEEP_SLICE = 500
GC_SECONDS = 1.0


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, message: str, **details: Any) -> JSONResponse:
    return JSONResponse({"error": message, **details}, status_code=status)


class Service:
    """Everything one serving process holds: engine, log writer, bundle location, settings and metrics."""

    def __init__(
        self,
        bundle_root: Path,
        log_directory: Path,
        token: str | None = None,
        rules_override: Path | None = None,
        fsync: str = "interval",
        reload_seconds: float = RELOAD_POLL_SECONDS,
        sweep_seconds: float = SWEEP_SECONDS,
        clock: Callable[[], float] = time.time,
    ):
        self.bundle_root = bundle_root
        self.log_directory = log_directory
        self.token = token
        self.rules_override = rules_override
        self.fsync = fsync
        self.reload_seconds = reload_seconds
        self.sweep_seconds = sweep_seconds
        self.clock = clock
        self.metrics = Metrics()
        self.engine = Engine(self.load(None))
        self.recovery = LogStats()
        self.recovered_events = 0
        self.writer: LogWriter | None = None
        self._tasks: list[asyncio.Task] = []
        self.started = time.time()

    # --- lifecycle -----------------------------------------------------------------------------------------

    def load(self, version: str | None) -> Bundle:
        rules: Rules | None = load_rules(self.rules_override) if self.rules_override else None
        return load_bundle(self.bundle_root, version, rules=rules)

    def recover(self) -> int:
        """Rebuild visitor states from the events received in the last `recovery_replay_hours`, then their
        published segments from the transitions log."""
        rules = self.engine.rules
        window_start = self.clock() - rules.recovery_replay_seconds
        cutoff = datetime.fromtimestamp(window_start, UTC).isoformat()  # received_at is always written in UTC
        since = window_start - 3600  # files last written before this hold nothing newer
        count = 0
        for record in read_events(self.log_directory, self.recovery, since_mtime=since):
            received_text = record.get("received_at")
            if not isinstance(received_text, str) or received_text < cutoff:
                continue
            try:
                received = parse_time(received_text, "received_at")
                event = parse_event(record, received)
            except EventError:
                self.recovery.bad_lines += 1
                continue
            self.engine.apply(event, received.timestamp(), emit=False)
            count += 1
        self.engine.restore_published(read_transitions(self.log_directory, since_mtime=since))
        self.recovered_events = count
        return count

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        gc.disable()
        gc.collect()
        gc.freeze()

        def dispatch(callbacks: list, failure: BaseException | None) -> None:
            loop.call_soon_threadsafe(_run_callbacks, callbacks, failure)

        self.writer = LogWriter(self.log_directory, self.fsync, dispatch=dispatch)
        self._tasks = [asyncio.create_task(self._poll_bundle()), asyncio.create_task(self._sweep())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        gc.enable()
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)

    async def _poll_bundle(self) -> None:
        while True:
            await asyncio.sleep(self.reload_seconds)
            try:
                version = current_version(self.bundle_root)
                if version and version != self.engine.bundle.version:
                    # While a worker thread builds the new bundle, hand the GIL back to the loop every 0.5 ms
                    # instead of Python's 5 ms, so requests are not queued behind the loader.
                    interval = sys.getswitchinterval()
                    sys.setswitchinterval(RELOAD_SWITCH_INTERVAL)
                    try:
                        bundle = await asyncio.to_thread(self.load, version)
                        old, self.engine.bundle = self.engine.bundle, bundle  # one assignment: requests see old or new
                        self.metrics.counters["reloads_ok"] += 1
                        await asyncio.to_thread(old.customers.release)
                        del old
                    finally:
                        sys.setswitchinterval(interval)
                    logger.warning("segmint serve: hot-reloaded bundle %s", version)
            except (BundleError, RulesError, OSError, ValueError) as failure:
                self.metrics.counters["reloads_failed"] += 1
                logger.warning("segmint serve: keeping bundle %s: %s", self.engine.bundle.version, failure)
                await asyncio.sleep(self.reload_seconds * 5)

    async def _sweep(self) -> None:
        last_gc = time.monotonic()
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                transitions = self.engine.sweep(self.clock(), limit=SWEEP_SLICE)
            except Exception:  # a bug here must not end the sweeps for good; it is logged and counted
                logger.exception("segmint serve: sweep failed")
                self.metrics.counters["sweep_errors"] += 1
                continue
            if transitions and self.writer is not None:
                self.writer.append([], transitions)
            if time.monotonic() - last_gc >= GC_SECONDS:
                gc.collect(1)
                gc.freeze()
                last_gc = time.monotonic()

    async def durable(self, events: list[dict], transitions: list[dict]) -> None:
        future = asyncio.get_running_loop().create_future()

        def done(failure: BaseException | None) -> None:
            if not future.done():
                future.set_exception(failure) if failure else future.set_result(None)

        assert self.writer is not None
        self.writer.append(events, transitions, done)
        await future

    # --- routes --------------------------------------------------------------------------------------------

    def authorised(self, request: Request) -> bool:
        if not self.token:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), self.token.encode())

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "bundle_version": self.engine.bundle.version})

    async def post_events(self, request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return error(
                413,
                f"body: larger than {MAX_BODY_BYTES} bytes (1 MiB); send at most 1,000 events per request",
                field="body",
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return error(
                    413,
                    f"body: larger than {MAX_BODY_BYTES} bytes (1 MiB); send at most 1,000 events per request",
                    field="body",
                )
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as failure:
            return error(400, f"body: malformed JSON ({failure})", field="body")
        received_at = utc_now()
        try:
            events, is_batch = parse_body(doc, received_at)
        except EventError as failure:
            self.metrics.counters["events_rejected"] += 1
            details: dict[str, Any] = {"field": failure.field}
            if failure.index is not None:
                details["index"] = failure.index
            status = 413 if failure.field == "events" and "at most" in failure.message else 400
            return error(status, str(failure), **details)
        received_ts = received_at.timestamp()
        results, records, transitions = [], [], []
        for event in events:
            result = self.engine.apply(event, received_ts)
            results.append(result)
            if not result.duplicate:
                records.append(event.log_record())
                transitions.extend(result.transitions)
        try:
            await self.durable(records, transitions)
        except OSError as failure:
            for event, result in zip(events, results):
                if not result.duplicate:
                    self.engine.unmark(event)
            return error(
                503, f"durable log: the write failed ({failure.strerror or failure}); events not acknowledged, retry"
            )
        answers = [result.answer() for result in results]
        return JSONResponse({"results": answers} if is_batch else answers[0])

    async def get_profile(self, request: Request) -> Response:
        visitor_id = request.path_params["id"]
        profile = self.engine.profile(visitor_id, self.clock())
        if profile is None:
            return error(404, f"id: {visitor_id[:80]!r} was never seen and is not a known customer", field="id")
        return JSONResponse(profile)

    async def get_segments(self, request: Request) -> Response:
        return JSONResponse({"segments": self.engine.rules.segment_catalogue()})

    async def get_metrics(self, request: Request) -> Response:
        engine, writer = self.engine, self.writer
        counters = {
            "segmint_realtime_events_accepted_total": (
                "Events accepted and logged (duplicates excluded).",
                engine.stats["accepted"],
            ),
            "segmint_realtime_events_duplicate_total": (
                "Events whose event_id was already seen (acknowledged, counted once).",
                engine.stats["duplicate"],
            ),
            "segmint_realtime_events_rejected_total": (
                "Requests rejected for bad input (4xx).",
                self.metrics.counters["events_rejected"],
            ),
            "segmint_realtime_transitions_entered_total": ("Segment entries.", engine.stats["entered"]),
            "segmint_realtime_transitions_exited_total": ("Segment exits.", engine.stats["exited"]),
            "segmint_realtime_visitors_forgotten_total": (
                "Visitors dropped after the retention window.",
                engine.stats["evicted"],
            ),
            "segmint_realtime_bundle_reloads_total": ("Bundles hot-reloaded.", self.metrics.counters["reloads_ok"]),
            "segmint_realtime_bundle_reload_failures_total": (
                "Newer bundles that could not be loaded (the old one stays).",
                self.metrics.counters["reloads_failed"],
            ),
            "segmint_realtime_sweep_errors_total": (
                "Sweeps (idle sessions, cart abandoners) that failed.",
                self.metrics.counters["sweep_errors"],
            ),
            "segmint_realtime_log_batches_total": (
                "Group commits of the durable log.",
                writer.stats["batches"] if writer else 0,
            ),
            "segmint_realtime_log_errors_total": (
                "Failed durable log writes.",
                writer.stats["errors"] if writer else 0,
            ),
        }
        gauges = {
            "segmint_realtime_visitors": ("Visitors in memory.", len(engine.visitors), ""),
            "segmint_realtime_known_customers": (
                "Known customers in the serving bundle.",
                len(engine.bundle.customers),
                "",
            ),
            "segmint_realtime_recovered_events": ("Events replayed from the log at start.", self.recovered_events, ""),
            "segmint_realtime_recovery_torn_lines": (
                "Torn final log lines skipped at start.",
                self.recovery.torn_lines,
                "",
            ),
            "segmint_realtime_uptime_seconds": (
                "Seconds since the process started.",
                round(time.time() - self.started, 3),
                "",
            ),
            "segmint_realtime_resident_memory_bytes": ("Resident set size.", _rss_bytes(), ""),
        }
        if writer is not None and writer.sync_seconds:
            recent = sorted(writer.sync_seconds[-1000:])
            gauges["segmint_realtime_log_commit_seconds_p99"] = (
                "p99 of the last 1,000 group commits (write, plus fsync under policy always).",
                recent[int(0.99 * (len(recent) - 1))],
                "",
            )
        info = {"bundle_version": engine.bundle.version, "rules_version": engine.rules.version, "fsync": self.fsync}
        return Response(
            self.metrics.render(gauges, counters, info), media_type="text/plain; version=0.0.4; charset=utf-8"
        )


def _run_callbacks(callbacks: list, failure: BaseException | None) -> None:
    for callback in callbacks:
        callback(failure)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def create_app(service: Service, cors_origins: list[str] | None = None) -> Starlette:
    """The ASGI app. Auth, metrics and error shaping wrap every route here (no middleware stack per request).

    `cors_origins` (SEGMINT_SERVE_CORS_ORIGINS): pages on these origins may call the service from the browser
    (preflight answered before auth, as browsers send no credentials on it). Empty: no CORS headers at all.
    """

    def route(name: str, handler: Callable, open_route: bool = False) -> Callable:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            if not open_route and not service.authorised(request):
                response: Response = error(
                    401, "Authorization: send 'Bearer <SEGMINT_SERVE_TOKEN>'", field="Authorization"
                )
            else:
                try:
                    response = await handler(request)
                except Exception as failure:  # never a traceback to the client; the log line carries it
                    logger.exception("segmint serve: %s failed", name)
                    response = error(500, f"internal error: {type(failure).__name__}")
            service.metrics.request(name, response.status_code, time.perf_counter() - started)
            return response

        return endpoint

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return error(status, f"{request.method} {request.url.path}: {getattr(exc, 'detail', 'error')}")

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await service.start()
        print(
            f"segmint serve: bundle {service.engine.bundle.version} ({len(service.engine.bundle.customers):,} known customers), "
            f"{service.recovered_events:,} events recovered from {service.log_directory}",
            file=sys.stderr,
            flush=True,
        )
        try:
            yield
        finally:
            await service.stop()

    routes = [
        Route("/healthz", route("/healthz", service.healthz, open_route=True), methods=["GET"]),
        Route("/v1/events", route("/v1/events", service.post_events), methods=["POST"]),
        Route("/v1/profiles/{id:path}", route("/v1/profiles", service.get_profile), methods=["GET"]),
        Route("/v1/segments", route("/v1/segments", service.get_segments), methods=["GET"]),
        Route("/metrics", route("/metrics", service.get_metrics), methods=["GET"]),
    ]
    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=3600,
            )
        )
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, 404: http_error, 405: http_error},
    )
