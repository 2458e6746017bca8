"""A tiny hash router: several segment-service instances behind one address, each visitor always on one instance.

Why it is enough: the service keeps state per visitor (session, cart, published segments) and nothing across
visitors, so instances shard by a hash of the visitor id with no coordination. The id is the one the service
keeps state under, `customer_id` when given, else `anonymous_id` (realtime.events.Event.visitor_id), so every
event of a visitor and every profile read of it reach the instance that holds its state.

How a visitor is placed: rendezvous (highest-random-weight) hashing, the instance with the largest
blake2b(instance URL, visitor id) wins. It is stable (the same id, the same instance list: the same instance, in
every process and after restarts) and adding or removing one of N instances moves only about 1/N of the visitors.
(A moved visitor starts a new session on its new instance; its batch scores come with the bundle every instance
loads.) A visitor who logs in mid-session (anonymous_id, then customer_id) changes id, on one instance as on many:
identities are stitched by the batch, not by the service.

What the router does per route:
- `POST /v1/events`: the body is validated first with the service's own parser (realtime.events.parse_body), so a
  batch with one bad event is still rejected whole with the same 4xx naming its index and field, before any
  instance sees it; then the events are grouped by instance, each group is forwarded as one batch (concurrently),
  and the answers are put back in request order. An instance that cannot be reached gives a 502 naming it (its
  events were not acknowledged; other instances' were: the client retries the request and repeated event_ids
  are counted once, so a retry is safe when the client sends its own event_id).
- `GET /v1/profiles/{id}`: to the visitor's instance. `GET /v1/segments`: to the first instance (every instance
  loads the same rules). `GET /healthz`: 200 when every instance answers 200, else 503 with each one's state.
- `Authorization` is passed through: each instance checks its own SEGMINT_SERVE_TOKEN. Metrics are scraped from
  each instance directly (`/metrics` is not proxied).

Where the instances keep their logs: in one shared data folder (the pid in each log file's name keeps them
apart; the batch reads them all; but at start an instance replays every instance's recent events, holding the
other shards' visitors too), or, better for memory and for separate hosts, each its own SEGMINT_DATA_DIR with
its own copy of the bundle folder, and for the batch each instance's `realtime/log/` gathered under the run's data
folder as `realtime/log/<instance>/` (the ingest, the history and the sync sensor read sub-folders too).

Run: `python -m realtime.router --port 8700 --instances http://127.0.0.1:8701,http://127.0.0.1:8702`.
The upstream client is a minimal HTTP/1.1 keep-alive client on asyncio streams (the service always answers
with Content-Length), so the router needs nothing beyond the service's own stack.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from realtime.events import MAX_BODY_BYTES, EventError, parse_body, utc_now

FORWARDED_HEADERS = ("authorization",)
UPSTREAM_TIMEOUT_SECONDS = 10.0


def instance_for(visitor_id: str, instances: Sequence[str]) -> str:
    """The instance (one of `instances`) that holds `visitor_id`: rendezvous hashing, see the module docstring."""
    if not instances:
        raise ValueError("no instance to route to")
    key = b"\0" + visitor_id.encode("utf-8")

    def weight(instance: str) -> bytes:
        return hashlib.blake2b(instance.encode("utf-8") + key, digest_size=8).digest()

    return max(instances, key=weight)


class UpstreamError(RuntimeError):
    """An instance could not be reached or answered something that is not HTTP."""


class Upstream:
    """Keep-alive HTTP/1.1 connections to one instance (http://host:port)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"instance {url!r}: expected http://host:port")
        self.url = url.rstrip("/")
        self.host, self.port = parts.hostname, parts.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, str]:
        """(status, body, content type); one retry on a fresh connection when a kept-alive one was closed."""
        for attempt in (0, 1):
            reader, writer = self.idle.pop() if self.idle and attempt == 0 else await self._connect()
            try:
                answer = await asyncio.wait_for(
                    self._exchange(reader, writer, method, path, body, headers or {}), UPSTREAM_TIMEOUT_SECONDS
                )
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as failure:
                writer.close()
                if attempt == 1:
                    raise UpstreamError(f"instance {self.url}: {type(failure).__name__} {failure}") from None
                continue
            self.idle.append((reader, writer))
            return answer
        raise AssertionError("unreachable")

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(asyncio.open_connection(self.host, self.port), UPSTREAM_TIMEOUT_SECONDS)
        except (TimeoutError, OSError) as failure:
            raise UpstreamError(f"instance {self.url}: cannot connect ({failure})") from None

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
    ) -> tuple[int, bytes, str]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body:
            lines.append("Content-Type: application/json")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "content-length" not in fields:
            raise ValueError("answer without Content-Length")
        content = await reader.readexactly(int(fields["content-length"]))
        return status, content, fields.get("content-type", "application/json")

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def create_router(instances: Sequence[str]) -> Starlette:
    """The router's ASGI app over `instances` (base URLs, order irrelevant to placement)."""
    if not instances:
        raise ValueError("at least one instance URL is required")
    upstreams = {url.rstrip("/"): Upstream(url) for url in instances}
    names = list(upstreams)

    def passed_headers(request: Request) -> dict[str, str]:
        return {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}

    def relay(status: int, content: bytes, content_type: str) -> Response:
        return Response(content, status_code=status, media_type=content_type.split(";")[0])

    async def post_events(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _json({"error": f"body: larger than {MAX_BODY_BYTES} bytes (1 MiB)", "field": "body"}, 413)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as failure:
            return _json({"error": f"body: malformed JSON ({failure})", "field": "body"}, 400)
        try:
            # The service's own validation, so a bad batch is refused whole before any instance acknowledges part.
            events, is_batch = parse_body(doc, utc_now())
        except EventError as failure:
            details: dict[str, Any] = {"error": str(failure), "field": failure.field}
            if failure.index is not None:
                details["index"] = failure.index
            return _json(details, 413 if failure.field == "events" and "at most" in failure.message else 400)
        raw = doc["events"] if is_batch else [doc]
        groups: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            groups.setdefault(instance_for(event.visitor_id, names), []).append(index)
        headers = passed_headers(request)

        async def forward(url: str, indices: list[int]) -> tuple[str, list[int], int, bytes, str]:
            payload = orjson.dumps({"events": [raw[i] for i in indices]})
            status, content, content_type = await upstreams[url].request("POST", "/v1/events", payload, headers)
            return url, indices, status, content, content_type

        try:
            answers = await asyncio.gather(*(forward(url, indices) for url, indices in groups.items()))
        except UpstreamError as failure:
            return _json({"error": f"{failure}; its events were not acknowledged, retry the request"}, 502)
        results: list[Any] = [None] * len(events)
        for _url, indices, status, content, content_type in answers:
            if status != 200:
                return relay(status, content, content_type)
            for index, result in zip(indices, orjson.loads(content)["results"], strict=True):
                results[index] = result
        return _json({"results": results} if is_batch else results[0])

    async def get_profile(request: Request) -> Response:
        visitor_id = request.path_params["id"]
        url = instance_for(visitor_id, names)
        try:
            return relay(*await upstreams[url].request("GET", request.url.path, headers=passed_headers(request)))
        except UpstreamError as failure:
            return _json({"error": str(failure)}, 502)

    async def get_segments(request: Request) -> Response:
        try:
            return relay(*await upstreams[names[0]].request("GET", "/v1/segments", headers=passed_headers(request)))
        except UpstreamError as failure:
            return _json({"error": str(failure)}, 502)

    async def healthz(request: Request) -> Response:
        async def one(url: str) -> tuple[str, Any]:
            try:
                status, content, _ = await upstreams[url].request("GET", "/healthz")
                return url, orjson.loads(content) if status == 200 else {"status": f"HTTP {status}"}
            except (UpstreamError, orjson.JSONDecodeError) as failure:
                return url, {"status": "unreachable", "error": str(failure)}

        states = dict(await asyncio.gather(*(one(url) for url in names)))
        healthy = all(state.get("status") == "ok" for state in states.values())
        return _json({"status": "ok" if healthy else "degraded", "instances": states}, 200 if healthy else 503)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        for upstream in upstreams.values():
            await upstream.close()

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/v1/events", post_events, methods=["POST"]),
            Route("/v1/profiles/{id:path}", get_profile, methods=["GET"]),
            Route("/v1/segments", get_segments, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime.router", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", required=True, help="comma-separated base URLs, e.g. http://127.0.0.1:8701")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    args = parser.parse_args(argv)
    try:
        app = create_router([url.strip() for url in args.instances.split(",") if url.strip()])
    except ValueError as failure:
        print(f"segmint router: {failure}", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(
        app, host=args.host, port=args.port, loop="uvloop", http="httptools", access_log=False, log_level="warning"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
