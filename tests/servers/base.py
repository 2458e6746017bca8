"""A threaded fake API server on 127.0.0.1 (free port) with fault injection and a violations log.

Faults, consumed one per mutating request in order: ("429", retry_after_seconds), ("500",), ("timeout", s)
(answer only after s seconds, without applying), ("drop",) (apply the request, then close the connection
without answering: a lost acknowledgement). `fail_after(n)`: after n applied mutating requests every further
mutating request gets 503 (a destination that goes down mid-sync) until `recover()`.
A request that breaks the documented contract is answered 400 in the platform's error shape and logged in
`violations`; tests assert the log stays empty on the happy path.
"""

from __future__ import annotations

import abc
import json
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Violation(Exception):
    """The request breaks the documented API contract."""


class Reply:
    """A fake response: status, JSON (or raw text) body, headers."""

    def __init__(
        self,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ):
        self.status, self.body, self.headers = status, body, headers or {}
        self.raw, self.content_type = raw, content_type


class _LocalServer(ThreadingHTTPServer):
    """ThreadingHTTPServer without the reverse-DNS lookup (socket.getfqdn) that HTTPServer.server_bind does."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class FakeApi(abc.ABC):
    """Base class: subclasses implement `route(method, path, query, headers, body) -> Reply` and `error_body`."""

    read_only_paths: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults: list[tuple] = []
        self.violations: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.applied_mutations = 0
        self._fail_after: int | None = None
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> FakeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms ACK stalls

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                return

            def _handle(self) -> None:
                api._dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = _LocalServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- fault control -----------------------------------------------------------------------------------
    def inject(self, *faults: tuple) -> None:
        with self.lock:
            self.faults.extend(faults)

    def fail_after(self, applied: int) -> None:
        with self.lock:
            self._fail_after = applied

    def recover(self) -> None:
        with self.lock:
            self._fail_after = None
            self.faults.clear()

    # -- to implement ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def route(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> Reply:
        """Validate one request the way the real API documents it and answer it."""

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"code": status, "message": message}}

    # -- plumbing ----------------------------------------------------------------------------------------
    def _is_mutation(self, method: str, path: str) -> bool:
        return method in MUTATING_METHODS and not any(path.startswith(p) for p in self.read_only_paths)

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        method = handler.command
        split = urlsplit(handler.path)
        path, query = split.path, parse_qs(split.query)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        mutation = self._is_mutation(method, path)
        fault: tuple | None = None
        with self.lock:
            self.requests.append({"method": method, "path": path, "query": query, "headers": headers, "body": body})
            if mutation and self.faults:
                fault = self.faults.pop(0)
            down = mutation and self._fail_after is not None and self.applied_mutations >= self._fail_after
        if down:
            return self._send(handler, Reply(503, self.error_body(503, "service unavailable (injected)")))
        if fault and fault[0] == "429":
            return self._send(
                handler, Reply(429, self.error_body(429, "rate limited (injected)"), {"Retry-After": str(fault[1])})
            )
        if fault and fault[0] == "500":
            return self._send(handler, Reply(500, self.error_body(500, "internal error (injected)")))
        if fault and fault[0] == "timeout":
            time.sleep(fault[1])
            return self._send(handler, Reply(504, self.error_body(504, "late (injected)")))
        try:
            with self.lock:
                reply = self.route(method, path, query, headers, body)
                if mutation and 200 <= reply.status < 300:
                    self.applied_mutations += 1
        except Violation as violation:
            with self.lock:
                self.violations.append(f"{method} {path}: {violation}")
            reply = Reply(400, self.error_body(400, str(violation)))
        if fault and fault[0] == "drop":
            handler.close_connection = True
            try:
                handler.connection.shutdown(2)
            except OSError:
                pass
            return
        self._send(handler, reply)

    def _send(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.raw is not None:
            payload = reply.raw
        else:
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", reply.content_type)
            handler.send_header("Content-Length", str(len(payload)))
            for key, value in reply.headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the client gave up (timeout test)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise Violation(message)


def require_bearer(headers: dict[str, str], token: str) -> None:
    require(headers.get("authorization") == f"Bearer {token}", "missing or wrong Authorization: Bearer token")


def is_hex64(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise Violation(f"body is not JSON: {error}") from error
