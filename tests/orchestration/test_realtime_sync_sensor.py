"""Event-triggered syncs: the segment service's transitions log -> sensor -> cart_abandoners synced to Klaviyo.

The sensor is driven with Dagster's sensor testing API (build_sensor_context and its cursor); the run it requests
is executed in-process with the real audience and sync assets of the code location, against the fake Klaviyo
server of tests/servers (which refuses every request the real API documents as invalid).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from activation.audiences import is_control
from activation.identifiers import normalize_email
from orchestration.definitions import defs
from orchestration.defs.audiences import AUDIENCES, audience_checks
from orchestration.defs.resources import resources
from orchestration.defs.sensors import read_new_lines, realtime_audience_sync_sensor
from tests.servers.klaviyo import FakeKlaviyo
from tests.servers.warehouse import build_warehouse

AUDIENCE = next(a for a in AUDIENCES if a.name == "cart_abandoners")
LIST_ID = AUDIENCE.destinations[0].settings["list_id"]
LOG = "transitions-20261126T040000-4242.jsonl"


def transition(customer: str, segment: str, change: str, known: bool = True) -> str:
    return json.dumps(
        {
            "id": customer,
            "known_customer": known,
            "segment": segment,
            "change": change,
            "event_id": f"rt_{customer}",
            "occurred_at": "2026-11-26T04:00:00+00:00",
            "received_at": "2026-11-26T04:00:00.002+00:00",
            "source": "realtime",
        }
    )


def append(log_dir: Path, *lines: str) -> None:
    with (log_dir / LOG).open("a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))


@pytest.fixture
def env(tmp_path, monkeypatch, request):
    """A warehouse with scores and customers, an empty real-time log folder, and a live fake Klaviyo."""
    data = tmp_path / "data"
    log_dir = data / "realtime" / "log"
    log_dir.mkdir(parents=True)
    warehouse = data / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        build_warehouse(conn, 40)
        conn.execute("create schema ml; create table ml.clv_predictions as select 'model-1' as model_version")
    server = FakeKlaviyo(list_id=LIST_ID).start()
    request.addfinalizer(server.stop)
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(data))
    monkeypatch.setenv("SEGMINT_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("SEGMINT_KLAVIYO_API_KEY", server.api_key)
    monkeypatch.setenv("SEGMINT_KLAVIYO_BASE_URL", server.url)
    return log_dir, warehouse, server


def tick(cursor: str | None):
    return realtime_audience_sync_sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, definitions=defs))


def run(request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Execute the requested selection the way the daemon would (the real assets and their blocking checks)."""
    assets = [defs.get_assets_def(key) for key in request.asset_selection]
    checks = [check for check in audience_checks if AUDIENCE.name in str(check.check_keys)]
    return dg.materialize([*assets, *checks], resources=resources(), tags=request.tags)


def expected_list(warehouse: Path, customers: list[str]) -> set[str]:
    """Treated, consenting members with an e-mail: what Klaviyo must hold (a Klaviyo profile is keyed by e-mail)."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute(
            "select customer_id, email, marketing_consent from raw.customers where customer_id in "
            f"({', '.join(repr(c) for c in customers)})"
        ).fetchall()
    return {
        normalize_email(email)
        for cid, email, consent in rows
        if consent and email and not is_control(cid, AUDIENCE.name, AUDIENCE.control_share)
    }


def klaviyo_list(server: FakeKlaviyo) -> set[str]:
    by_id = {profile_id: email for email, profile_id in server.profiles.items()}
    return {by_id[profile_id] for profile_id in server.list_members}


def test_cart_abandoners_reach_klaviyo_within_a_minute_and_leave_it_when_they_exit(env):
    log_dir, warehouse, server = env
    assert tick(None).skip_message  # an empty log: nothing to sync

    abandoners = [f"c{i:04d}" for i in range(12)]
    started = time.monotonic()
    append(
        log_dir,
        *(transition(c, "cart_abandoner", "entered") for c in abandoners),
        transition("c0020", "high_intent:shoes", "entered"),  # another segment: not this audience
        transition("anon-7", "cart_abandoner", "entered", known=False),
    )  # anonymous: no contact to sync
    first = tick(None)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert {key.to_user_string() for key in request.asset_selection} == {
        "edge_forms/customer_match_forms",
        "audiences/cart_abandoners",
        "sync/cart_abandoners/klaviyo",
    }
    assert run(request).success
    elapsed = time.monotonic() - started
    expected = expected_list(warehouse, abandoners)
    assert expected and klaviyo_list(server) == expected
    assert elapsed < 60, f"segment change to Klaviyo took {elapsed:.1f} s"
    assert not server.violations

    # Nothing new: no run, the cursor stays. A line still being written is not consumed.
    (log_dir / LOG).open("a").write('{"id": "c0030", "segm')
    assert tick(first.cursor).run_requests == []
    # Two abandoners buy (exit the segment): the next tick removes them from the list through the ledger.
    leaving = sorted(expected_list(warehouse, abandoners))[:2]
    leaving_ids = [c for c in abandoners if expected_list(warehouse, [c]) & set(leaving)]
    (log_dir / LOG).open("a").write(
        'ent": "x", "change": "entered"}\n' + transition(leaving_ids[0], "cart_abandoner", "exited") + "\n"
    )
    append(log_dir, transition(leaving_ids[1], "cart_abandoner", "exited"))
    second = tick(first.cursor)
    assert len(second.run_requests) == 1 and second.run_requests[0].run_key != request.run_key
    assert run(second.run_requests[0]).success
    assert klaviyo_list(server) == expected - set(leaving)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        statuses = conn.execute("select status from sync.runs where audience = 'cart_abandoners' order by 1").fetchall()
    assert statuses == [("succeeded",), ("succeeded",)]


def test_the_sensor_reads_only_complete_new_lines(tmp_path):
    path = tmp_path / LOG
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c"')
    lines, offset = read_new_lines(path, 0)
    assert lines == [b'{"a": 1}', b'{"b": 2}'] and offset == 18
    path.write_bytes(path.read_bytes() + b": 3}\n")
    assert read_new_lines(path, offset) == ([b'{"c": 3}'], 27)
    path.write_bytes(b'{"new": 1}\n')  # a replaced (shorter) file is read from the start
    assert read_new_lines(path, 27) == ([b'{"new": 1}'], 11)
