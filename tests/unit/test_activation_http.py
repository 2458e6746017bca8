"""The shared HTTP helper: retries, Retry-After, 4xx messages, dry-run files without secrets."""

import json
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from activation.http import DestinationError, HttpClient, indented_json, retry_after_seconds
from tests.servers.base import FakeApi, Reply, json_body
from tests.servers.harness import FAST_POLICY, SleepRecorder


class EchoApi(FakeApi):
    """Answers every POST /echo with what it got; POST /reject fails validation like a real API."""

    def route(self, method, path, query, headers, body):
        if path == "/reject":
            return Reply(422, {"error": {"message": "email is not valid"}})
        return Reply(200, {"got": json_body(body)})


@pytest.fixture
def api():
    server = EchoApi().start()
    yield server
    server.stop()


def client(api, sleep=None, **kwargs):
    return HttpClient(
        "echo",
        api.url,
        {"Authorization": "Bearer s3cret"},
        policy=FAST_POLICY,
        sleep=sleep or SleepRecorder(),
        **kwargs,
    )


def test_429_is_retried_after_the_delay_the_server_asks_for(api):
    sleep = SleepRecorder()
    api.inject(("429", 7))
    reply = HttpClient(
        "echo", api.url, policy=FAST_POLICY.__class__(max_attempts=3, max_retry_after_s=60), sleep=sleep
    ).request("POST", "/echo", json_body={"x": 1})
    assert reply.json == {"got": {"x": 1}}
    assert sleep.delays == [7.0]


def test_5xx_and_timeouts_back_off_exponentially_then_succeed(api):
    sleep = SleepRecorder()
    api.inject(("500",), ("timeout", 0.8))
    reply = client(api, sleep).request("POST", "/echo", json_body={"x": 2})
    assert reply.status == 200
    assert sleep.delays == [FAST_POLICY.backoff(0), FAST_POLICY.backoff(1)]


def test_a_destination_that_stays_down_fails_as_retryable_after_bounded_attempts(api):
    api.fail_after(0)
    with pytest.raises(DestinationError, match="gave up after 4 attempts") as error:
        client(api).request("POST", "/echo", json_body={})
    assert error.value.retryable
    assert len(api.requests) == FAST_POLICY.max_attempts


def test_a_4xx_validation_error_fails_at_once_with_the_destinations_message(api):
    with pytest.raises(DestinationError, match="email is not valid") as error:
        client(api).request("POST", "/reject", json_body={})
    assert error.value.status == 422 and not error.value.retryable
    assert len(api.requests) == 1


def test_dry_run_writes_the_request_to_a_file_with_the_token_redacted_and_sends_nothing(api, tmp_path):
    reply = client(api, dry_run_dir=tmp_path).request("POST", "/echo", json_body={"x": 3}, dry_run_reply={"ok": True})
    assert reply.json == {"ok": True}
    assert api.requests == []
    files = list((tmp_path / "echo").glob("*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert record["method"] == "POST" and record["body"] == {"x": 3} and record["url"].endswith("/echo")
    assert record["headers"]["Authorization"] == "<redacted>"
    assert "s3cret" not in files[0].read_text()


def test_a_smaller_dry_run_pass_leaves_none_of_the_previous_passes_files_but_keeps_other_prefixes(api, tmp_path):
    first = client(api, dry_run_dir=tmp_path)
    for n in range(3):
        first.request("POST", "/echo", json_body={"n": n})
    owed = client(api, dry_run_dir=tmp_path)
    owed.file_prefix = "owed_removal_"
    owed.request("POST", "/echo", json_body={"owed": True})
    assert len(list((tmp_path / "echo").glob("*.json"))) == 4

    second = client(api, dry_run_dir=tmp_path)
    second.start_dry_run_pass()
    second.request("POST", "/echo", json_body={"n": "today"})
    assert second.finish_dry_run_pass() == 2  # the previous pass's 0002-0003, not the owed removal's file
    names = sorted(path.name for path in (tmp_path / "echo").glob("*.json"))
    assert [name.split("_")[0] for name in names] == ["0001", "owed"]
    assert json.loads((tmp_path / "echo" / names[0]).read_text())["body"] == {"n": "today"}

    # An owed-removals pass that owes nothing (the privacy pass: start, nothing written, finish) leaves none of its
    # earlier files and keeps the sync's.
    empty = client(api, dry_run_dir=tmp_path)
    empty.start_dry_run_pass("owed_removal_")
    assert empty.finish_dry_run_pass() == 1
    assert [path.name.split("_")[0] for path in (tmp_path / "echo").glob("*.json")] == ["0001"]


def test_a_dry_run_pass_rewrites_the_files_it_shares_with_the_previous_pass_and_deletes_the_rest(api, tmp_path):
    first = client(api, dry_run_dir=tmp_path)
    for n in range(3):
        first.request("POST", "/echo", json_body={"n": n})
    owed = client(api, dry_run_dir=tmp_path)
    owed.file_prefix = "owed_removal_"
    owed.request("POST", "/echo", json_body={"owed": True})
    kept = sorted((tmp_path / "echo").glob("0001_*.json"))[0]
    inode = kept.stat().st_ino

    second = client(api, dry_run_dir=tmp_path)
    second.start_dry_run_pass()
    second.request("POST", "/echo", json_body={"n": "today"})
    second.request("DELETE", "/echo", json_body={"n": "removed"})  # same number, another name: a new file
    assert second.finish_dry_run_pass() == 2  # yesterday's DELETE-less 0002 and its 0003
    names = sorted(path.name for path in (tmp_path / "echo").glob("*.json"))
    assert [name.split("_")[0] for name in names] == ["0001", "0002", "owed"]
    assert names[1].startswith("0002_DELETE")
    assert kept.stat().st_ino == inode and json.loads(kept.read_text())["body"] == {"n": "today"}  # overwritten


def test_retry_after_accepts_seconds_and_http_dates():
    from datetime import datetime

    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("30") == 30.0
    assert retry_after_seconds("Sun, 22 Nov 2026 12:00:10 GMT", now) == 10.0
    assert retry_after_seconds("soon") is None


def _awkward_value(rng: random.Random, depth: int = 0):
    """A random JSON-ish value with everything json.dumps and orjson might write differently."""
    scalars = [
        lambda: rng.choice(
            [
                "",
                "plain",
                "zoë",
                "李",
                "Smile😀",
                "tab\tnew\nline",
                'quote"back\\slash',
                "\x00\x1f\x7f",
                "\u2028\ufeff",
                "é\u0301",
                "=cmd",
                "0.00001",
            ]
        ),  # fmt: skip
        lambda: rng.choice([0.0, -0.0, 1e-05, 1e-07, 0.0001, 0.00012, 2.675, 1e16, 1.5e300, 123456.789, -3.2]),
        lambda: rng.uniform(-1, 1) * 10 ** rng.randint(-9, 18),
        lambda: rng.choice([float("nan"), float("inf"), float("-inf")]),
        lambda: rng.choice([0, -1, 2**63 - 1, 2**64 + 5, True, False, None]),
        lambda: rng.choice([datetime(2026, 11, 26, 17, 0), (1, "a"), Decimal("1.10")]),
    ]
    if depth < 3 and rng.random() < 0.5:
        if rng.random() < 0.5:
            return [_awkward_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
        keys = ["a", "é", 'k"q', 1, None, 2.5] if rng.random() < 0.1 else ["a", "b", "é", "userIdentifiers", "x\ny"]
        return {rng.choice(keys): _awkward_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return rng.choice(scalars)()


def test_dry_run_files_are_written_exactly_as_json_dumps_indent_2_would():
    # indented_json takes orjson's C encoder where it is exact and json.dumps where it is not: same bytes.
    rng = random.Random(18)
    for _ in range(3000):
        value = {"method": "POST", "url": "https://x", "params": None, "body": _awkward_value(rng)}
        assert indented_json(value) == json.dumps(value, indent=2, default=str), value
    bulk = {
        "body": {"members": [{"email": f"{i:064x}", "value": round(i * 1.37, 2), "ok": i % 2 == 0} for i in range(500)]}
    }
    assert indented_json(bulk) == json.dumps(bulk, indent=2, default=str)


def test_a_small_float_is_found_beside_a_string_holding_e_minus():
    # Only the lines holding "e-" or "0.0000" are searched for Python's exponent form; each such line is.
    value = {"type": "profile-bulk-import-job", "values": [1e-05, 0.5], "name": "0.00001", "tiny": 2e-07}
    assert indented_json(value) == json.dumps(value, indent=2, default=str)


def test_a_dry_run_file_with_the_same_bytes_is_left_untouched_and_a_shorter_one_truncated(api, tmp_path):
    client = HttpClient("echo", api.url, dry_run_dir=tmp_path)
    client.request("POST", "/echo", json_body={"members": ["a" * 100]})
    (written,) = (tmp_path / "echo").iterdir()
    before = written.stat()
    again = HttpClient("echo", api.url, dry_run_dir=tmp_path)
    again.start_dry_run_pass()
    again.request("POST", "/echo", json_body={"members": ["a" * 100]})
    assert again.finish_dry_run_pass() == 0
    assert written.stat().st_mtime_ns == before.st_mtime_ns  # same request: not rewritten
    shorter = HttpClient("echo", api.url, dry_run_dir=tmp_path)
    shorter.request("POST", "/echo", json_body={"members": ["b"]})
    assert json.loads(written.read_text(encoding="utf-8"))["body"] == {"members": ["b"]}
