"""Shared HTTP helper for destinations: bounded retries, Retry-After, 4xx -> DestinationError, dry-run files.

Retry policy: 429 waits for Retry-After (seconds or HTTP date, capped) or the backoff; 5xx, connection errors
and timeouts back off exponentially (base * 2**attempt, capped); any other 4xx fails at once with the
destination's own message. Dry-run writes each request (method, url, headers without secrets, body) as a JSON
file and never opens a connection. Tokens are never logged or written: secret headers are redacted.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import requests

LOGGER = logging.getLogger(__name__)
SECRET_HEADERS = frozenset({"authorization", "developer-token", "x-api-key", "api-key", "x-goog-api-key"})
REDACTED = "<redacted>"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class DestinationError(RuntimeError):
    """A destination refused a request (4xx) or stayed unavailable after every retry; carries its message."""

    def __init__(self, destination: str, message: str, status: int | None = None, retryable: bool = False):
        super().__init__(f"{destination}: {message}" + (f" (HTTP {status})" if status else ""))
        self.destination = destination
        self.message = message
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts per request, exponential backoff (seconds) and the longest Retry-After honoured."""

    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    max_retry_after_s: float = 120.0
    timeout_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (0-based): base * 2**attempt, capped."""
        return min(self.backoff_cap_s, self.backoff_base_s * (2**attempt))


@dataclass
class HttpReply:
    """What came back: status, parsed JSON (or None), raw text and headers."""

    status: int
    json: Any
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)


def retry_after_seconds(header: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None when absent/garbled."""
    if not header:
        return None
    header = header.strip()
    if re.fullmatch(r"\d+(\.\d+)?", header):
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def error_message(body: Any, text: str) -> str:
    """The destination's own error message from common JSON error shapes, else the raw text (truncated)."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("error_user_msg") or error.get("message") or error)
        if isinstance(error, str):
            return error
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0]
            if isinstance(first, dict):
                return str(first.get("detail") or first.get("message") or first.get("title") or first)
            return str(first)
        if body.get("message"):
            return str(body["message"])
    if isinstance(body, list) and body and isinstance(body[0], dict) and body[0].get("message"):
        return str(body[0]["message"])  # Salesforce: [{"errorCode": ..., "message": ...}]
    return (text or "").strip()[:500] or "no message"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with secret values replaced by a marker (for logs and dry-run files)."""
    return {k: (REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


ERASED_MARKER = "[erased]"
# orjson writes what json.dumps(indent=2) writes except: non-ASCII and DEL unescaped (escaped afterwards, below),
# floats below 1e-4 (Python's repr switches to an exponent there: 1e-05, orjson 0.00001 or 1e-7), NaN and
# infinities (null) and types json.dumps hands to `default`. A number token of that kind, or a value that does not
# read back equal, sends the record to json.dumps itself.
_ORJSON_OPTIONS = (
    orjson.OPT_INDENT_2
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_PYTHON_FLOAT_FORM = re.compile(r'(?:": |^ *)-?(?:[0-9.]+e-[0-9]+|0\.0000[0-9]*)(?=,?$)', re.MULTILINE)
_NOT_PLAIN_ASCII = re.compile(r"[^\x00-\x7e]")


def _has_python_float_form(text: str) -> bool:
    """Whether a number token of orjson's text would read differently from Python's repr (_PYTHON_FLOAT_FORM).

    The pattern runs only over the lines holding "e-" or "0.0000" (found by str.find, in C): run over a whole
    request of a few MB it cost more than writing the request (a Klaviyo body holds "profile-bulk-import-job")."""
    for needle in ("e-", "0.0000"):
        found = text.find(needle)
        while found != -1:
            start = text.rfind("\n", 0, found) + 1
            end = text.find("\n", found)
            end = len(text) if end == -1 else end
            if _PYTHON_FLOAT_FORM.search(text, start, end):
                return True
            found = text.find(needle, end)
    return False


def _refuse(value: Any) -> Any:
    raise TypeError(f"not plain JSON: {type(value).__name__}")


def indented_json(value: Any) -> str:
    """`json.dumps(value, indent=2, default=str)`, byte for byte, in a fraction of its time (dry-run files).

    Python's json module has no C encoder for indented output; orjson has, and its text is made identical
    (ensure_ascii escapes) or, where it cannot be, json.dumps is used (see _ORJSON_OPTIONS above).
    """
    try:
        text = orjson.dumps(value, option=_ORJSON_OPTIONS, default=_refuse).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError is a TypeError: a type json.dumps gives to `default`, a huge int
        return json.dumps(value, indent=2, default=str)
    if _has_python_float_form(text) or orjson.loads(text) != value:
        return json.dumps(value, indent=2, default=str)
    if not text.isascii() or "\x7f" in text:
        text = _NOT_PLAIN_ASCII.sub(lambda match: json.dumps(match.group())[1:-1], text)
    return text


def _write_unless_same(path: Path, data: bytes) -> None:
    """Write `data` to `path`, leaving a file that already holds exactly these bytes untouched, and overwriting an
    existing one in place. A daily dry-run re-sends mostly the same requests: comparing costs a read from the page
    cache, while rewriting dirtied every page again and truncating freed every block first (this disk is mounted
    with online discard)."""
    try:
        handle = path.open("r+b")
    except FileNotFoundError:
        path.write_bytes(data)
        return
    with handle:
        if path.stat().st_size == len(data) and handle.read() == data:
            return
        handle.seek(0)
        handle.write(data)
        handle.truncate()


class HttpClient:
    """HTTP client of one destination: base URL, default headers (secrets redacted in files), retries, dry-run."""

    def __init__(
        self,
        destination: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        *,
        policy: RetryPolicy | None = None,
        dry_run_dir: str | Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ):
        self.destination = destination
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.policy = policy or RetryPolicy()
        self.dry_run_dir = Path(dry_run_dir) if dry_run_dir is not None else None
        self.sleep = sleep
        self.session = session or requests.Session()
        self.requests_sent = 0
        self._dry_run_seq = 0
        # Put before the sequence number in dry-run file names: another pass in the same run (the removal-only
        # privacy/owed_removals) must not overwrite the files of the sync that follows it.
        self.file_prefix = ""
        # Values replaced in dry-run files (erased persons' identifiers in the removals owed to them).
        self.masked: dict[str, str] = {}
        # The earlier pass's files this pass has not rewritten yet (start_dry_run_pass .. finish_dry_run_pass).
        self._stale: set[Path] = set()

    @property
    def dry_run(self) -> bool:
        """True when requests are written to files instead of sent."""
        return self.dry_run_dir is not None

    def _own_files(self, prefix: str) -> list[Path]:
        folder = None if self.dry_run_dir is None else self.dry_run_dir / self.destination
        if folder is None or not folder.is_dir():
            return []
        own = re.compile(re.escape(prefix) + r"\d{4}_.*\.json")
        return [path for path in folder.iterdir() if own.fullmatch(path.name)]

    def start_dry_run_pass(self, prefix: str = "") -> None:
        """Begin a pass that leaves only its own files with this prefix once finish_dry_run_pass() is called: the
        earlier pass's files are overwritten where this pass writes the same name and deleted at the end otherwise
        (every pass numbers its files from 0001, so a smaller or empty pass would otherwise leave the previous run's
        higher-numbered requests beside its own). Overwriting, not deleting and re-creating every file of a daily
        re-send: deleting ~1,700 request files took 6 s of a 1 M HubSpot sync's wall time here, overwriting 0.4 s."""
        self._stale = set(self._own_files(prefix))

    def finish_dry_run_pass(self) -> int:
        """Delete the earlier pass's files this pass did not rewrite (returns how many)."""
        stale, self._stale = self._stale, set()
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def url(self, path: str) -> str:
        """Absolute URL for a path (absolute URLs pass through)."""
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _write_dry_run(self, method: str, url: str, headers: Mapping[str, str], params: Any, body: Any) -> None:
        assert self.dry_run_dir is not None
        self._dry_run_seq += 1
        folder = self.dry_run_dir / self.destination
        folder.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9]+", "_", url.split("://", 1)[-1].split("/", 1)[-1])[:60].strip("_")
        record = {"method": method, "url": url, "params": params, "headers": redact_headers(headers), "body": body}
        path = folder / f"{self.file_prefix}{self._dry_run_seq:04d}_{method}_{slug}.json"
        text = indented_json(record)  # key order as sent
        for value, marker in self.masked.items():
            text = text.replace(json.dumps(value)[1:-1], marker)
        _write_unless_same(path, text.encode("utf-8"))
        self._stale.discard(path)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        content: str | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        dry_run_reply: Any = None,
    ) -> HttpReply:
        """Send one request with retries; 2xx returns the reply, 4xx raises DestinationError with its message."""
        url = self.url(path)
        all_headers = {**self.headers, **(headers or {})}
        if json_body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        if self.dry_run:
            body = json_body if json_body is not None else (dict(form) if form is not None else content)
            self._write_dry_run(method, url, all_headers, dict(params) if params else None, body)
            return HttpReply(200, dry_run_reply if dry_run_reply is not None else {}, "", {})
        if json_body is not None:
            data: Any = json.dumps(json_body, separators=(",", ":"))
        elif form is not None:
            data = dict(form)
        else:
            data = content
        last_problem = "no attempt made"
        for attempt in range(self.policy.max_attempts):
            try:
                response = self.session.request(
                    method, url, params=params, data=data, headers=all_headers, timeout=self.policy.timeout_s
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                last_problem = f"{type(error).__name__}"
                LOGGER.warning(
                    "%s %s %s failed (%s), attempt %d", self.destination, method, path, last_problem, attempt + 1
                )
                self._wait(attempt, None)
                continue
            self.requests_sent += 1
            try:
                body = response.json() if response.content else None
            except ValueError:
                body = None
            LOGGER.info("%s %s %s -> %d", self.destination, method, path, response.status_code)
            if 200 <= response.status_code < 300:
                return HttpReply(response.status_code, body, response.text, dict(response.headers))
            message = error_message(body, response.text)
            if response.status_code not in RETRYABLE_STATUS:
                raise DestinationError(self.destination, message, response.status_code, retryable=False)
            last_problem = f"HTTP {response.status_code}: {message}"
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            self._wait(attempt, retry_after if response.status_code == 429 else None)
        raise DestinationError(
            self.destination, f"gave up after {self.policy.max_attempts} attempts: {last_problem}", retryable=True
        )

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        if attempt + 1 >= self.policy.max_attempts:
            return  # no sleep after the last attempt
        delay = self.policy.backoff(attempt) if retry_after is None else min(retry_after, self.policy.max_retry_after_s)
        self.sleep(delay)
