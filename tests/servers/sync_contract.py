"""The sync contract every destination must meet against its local fake API (imported by the test modules).

A full sync, an incremental sync that sends only the diff, a resume after an injected failure with ledger and
server agreeing exactly, a lost acknowledgement applied once, consent and hashing rules, 4xx messages, dry-run
files and the change guard. A test module defines SPECS and imports `*` from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from activation.audiences import is_control
from activation.http import DestinationError
from activation.ledger import load_ledger
from activation.sync import SyncGuardError, sync_audience
from tests.servers.harness import SleepRecorder, ledger_keys, new_warehouse, test_audience
from tests.servers.warehouse import customers_frame

N_CUSTOMERS = 60
BATCH = 12  # small batches so every sync spans several requests


@dataclass
class Spec:
    """How to build, inspect and compare one destination and its fake server."""

    name: str
    kind: str
    make_server: Callable[[], Any]
    make_destination: Callable[..., Any]
    server_identities: Callable[[Any], set]
    ledger_identity: Callable[[pd.Series], Any]
    identifiable: Callable[[dict], bool]
    mutations_per_batch: int = 1  # requests that change state per batch (HubSpot: upsert + membership)


def present(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


@pytest.fixture
def server(spec):  # noqa: F811 (spec comes from the test module)
    fake = spec.make_server().start()
    yield fake
    fake.stop()


def expected_keys(spec: Spec, audience_name: str, excluded: set[str] = frozenset()) -> set[str]:
    """Members the destination should hold, computed independently of the sync code."""
    keys = set()
    for customer in customers_frame(N_CUSTOMERS).to_dict("records"):
        cid = customer["customer_id"]
        if cid in excluded or is_control(cid, audience_name, 0.10):
            continue
        if spec.kind in ("ad", "email") and customer["marketing_consent"] is not True:
            continue
        if spec.identifiable(customer):
            keys.add(cid)
    return keys


def ledger_identities(spec: Spec, conn, audience: str) -> set:
    rows = load_ledger(conn, spec.name, audience)
    return {spec.ledger_identity(row) for _, row in rows[rows["state"] == "confirmed"].iterrows()}


def leave(conn, customer_ids):
    ids = ", ".join(f"'{c}'" for c in customer_ids)
    conn.execute(f"update marts.customer_scores set predicted_clv = -1 where customer_id in ({ids})")


def join(conn, customer_ids):
    ids = ", ".join(f"'{c}'" for c in customer_ids)
    conn.execute(f"update marts.customer_scores set predicted_clv = 1 where customer_id in ({ids})")


def test_full_sync_sends_every_eligible_member_once_in_batches(spec, server):
    conn, audience = new_warehouse(N_CUSTOMERS), test_audience()
    destination = spec.make_destination(server, audience.name)
    report = sync_audience(conn, audience, destination, "run-1", "model-1")
    wanted = expected_keys(spec, audience.name)
    assert server.violations == []
    assert report.added == len(wanted) and report.removed == 0 and report.failed == 0
    assert report.batches == math.ceil(len(wanted) / BATCH)
    assert ledger_keys(conn, spec.name, audience.name) == wanted
    assert spec.server_identities(server) == ledger_identities(spec, conn, audience.name)
    status = conn.execute("select status, added from sync.runs where run_id = 'run-1'").fetchone()
    assert status == ("succeeded", len(wanted))


def test_incremental_sync_sends_only_joiners_and_leavers(spec, server):
    conn, audience = new_warehouse(N_CUSTOMERS), test_audience()
    joiners = [f"c{i:04d}" for i in (12, 16, 20, 24, 28)]
    leavers = [f"c{i:04d}" for i in (32, 36, 40)]
    leave(conn, joiners)
    sync_audience(conn, audience, spec.make_destination(server, audience.name), "run-1", "model-1")
    before = len(server.requests)
    join(conn, joiners)
    leave(conn, leavers)
    report = sync_audience(conn, audience, spec.make_destination(server, audience.name), "run-2", "model-1")
    everyone = expected_keys(spec, audience.name)
    assert report.added == len(everyone & set(joiners))
    assert report.removed == len(everyone & set(leavers))
    assert report.unchanged == len(everyone - set(joiners) - set(leavers))
    assert report.batches == math.ceil(report.added / BATCH) + math.ceil(report.removed / BATCH)
    assert server.violations == []
    assert ledger_keys(conn, spec.name, audience.name) == everyone - set(leavers)
    assert spec.server_identities(server) == ledger_identities(spec, conn, audience.name)
    third = sync_audience(conn, audience, spec.make_destination(server, audience.name), "run-3", "model-1")
    assert (third.added, third.removed, third.batches) == (0, 0, 0)
    assert len(server.requests) > before


def test_a_sync_that_fails_half_way_resumes_without_losses_or_duplicates(spec, server):
    conn, audience = new_warehouse(N_CUSTOMERS), test_audience()
    server.fail_after(2 * spec.mutations_per_batch)  # the destination goes down after two applied batches
    with pytest.raises(DestinationError) as error:
        sync_audience(conn, audience, spec.make_destination(server, audience.name), "run-1", "model-1")
    assert error.value.retryable
    confirmed_before = ledger_keys(conn, spec.name, audience.name)
    assert 0 < len(confirmed_before) < len(expected_keys(spec, audience.name))
    assert spec.server_identities(server) == ledger_identities(spec, conn, audience.name)
    assert conn.execute("select status from sync.runs where run_id = 'run-1'").fetchone() == ("failed",)
    server.recover()
    report = sync_audience(conn, audience, spec.make_destination(server, audience.name), "run-2", "model-1")
    wanted = expected_keys(spec, audience.name)
    assert report.added == len(wanted - confirmed_before)
    assert ledger_keys(conn, spec.name, audience.name) == wanted
    assert ledger_keys(conn, spec.name, audience.name, "pending_add") == set()
    assert spec.server_identities(server) == ledger_identities(spec, conn, audience.name)
    assert server.violations == []


def test_a_lost_acknowledgement_is_retried_and_applied_exactly_once(spec, server):
    conn, audience = new_warehouse(N_CUSTOMERS), test_audience()
    server.inject(("drop",), ("429", 1), ("500",))  # applied-but-unanswered, then throttled, then a 500
    sleep = SleepRecorder()
    report = sync_audience(conn, audience, spec.make_destination(server, audience.name, sleep=sleep), "run-1", "m")
    wanted = expected_keys(spec, audience.name)
    assert report.added == len(wanted)
    assert spec.server_identities(server) == ledger_identities(spec, conn, audience.name)
    assert len(sleep.delays) == 3
    if spec.name == "webhook":
        assert server.duplicate_events == BATCH  # the re-sent batch was recognised by its event ids
        assert len(server.members) == len(wanted)


def test_consent_and_hashing_rules_hold_in_what_the_server_received(spec, server):
    conn, audience = new_warehouse(N_CUSTOMERS), test_audience()
    sync_audience(conn, audience, spec.make_destination(server, audience.name), "run-1", "model-1")
    sent = b"".join(r["body"] for r in server.requests).decode("utf-8", "replace").lower()
    no_consent = [
        c
        for c in customers_frame(N_CUSTOMERS).to_dict("records")
        if c["marketing_consent"] is not True
        and present(c["email"])
        and not is_control(c["customer_id"], audience.name, 0.10)
    ]
    assert no_consent
    if spec.kind == "ad":
        assert "example.com" not in sent and "gmail" not in sent  # only hashes leave for ad platforms
    if spec.kind in ("ad", "email"):
        assert all(c["customer_id"] not in ledger_keys(conn, spec.name, audience.name) for c in no_consent)
        assert all(c["email"].strip().lower() not in sent for c in no_consent)
    else:
        # CRM and webhook receive members without marketing consent too (documented in config/audiences.yaml)
        assert any(c["customer_id"] in ledger_keys(conn, spec.name, audience.name) for c in no_consent)
    controls = {c for c in customers_frame(N_CUSTOMERS)["customer_id"] if is_control(c, audience.name, 0.10)}
    assert controls and not (controls & ledger_keys(conn, spec.name, audience.name))
    held_out = set(
        conn.execute("select customer_id from sync.control_group where run_id = 'run-1'").df()["customer_id"]
    )
    assert held_out == controls
    assert server.violations == []


def secrets_of(server) -> list[str]:
    return [getattr(server, a) for a in ("token", "api_key", "secret", "developer_token") if hasattr(server, a)]


def test_a_validation_error_fails_the_run_with_the_destinations_message(spec, server):
    conn, audience = new_warehouse(N_CUSTOMERS), test_audience()
    destination = spec.make_destination(server, audience.name)
    for attribute in ("token", "api_key", "secret"):  # the server now expects other credentials
        if hasattr(server, attribute):
            setattr(server, attribute, "rotated-credential")
    with pytest.raises(DestinationError) as error:
        sync_audience(conn, audience, destination, "run-1", "model-1")
    assert error.value.status == 400 and not error.value.retryable
    message = conn.execute("select message from sync.runs where run_id = 'run-1'").fetchone()[0]
    assert message == error.value.message and message
    assert ledger_keys(conn, spec.name, audience.name) == set()


def test_dry_run_writes_request_files_and_changes_neither_server_nor_ledger(spec, server, tmp_path):
    conn, audience = new_warehouse(N_CUSTOMERS), test_audience()
    destination = spec.make_destination(server, audience.name, dry_run_dir=tmp_path)
    report = sync_audience(conn, audience, destination, "run-1", "model-1", dry_run=True)
    assert server.requests == []
    assert ledger_keys(conn, spec.name, audience.name) == set()
    files = sorted((tmp_path / spec.name).glob("*.json"))
    assert report.batches == math.ceil(len(expected_keys(spec, audience.name)) / BATCH)
    assert len(files) >= report.batches
    text = "".join(f.read_text() for f in files)
    assert all(secret not in text for secret in secrets_of(server))


def test_guard_stops_a_sync_that_would_empty_the_audience(spec, server):
    conn, audience = new_warehouse(N_CUSTOMERS), test_audience(max_change_share=0.5)
    sync_audience(conn, audience, spec.make_destination(server, audience.name), "run-1", "model-1")
    leave(conn, [f"c{i:04d}" for i in range(45)])
    requests_before = len(server.requests)
    with pytest.raises(SyncGuardError, match="allowed change is"):
        sync_audience(conn, audience, spec.make_destination(server, audience.name), "run-2", "model-1")
    assert len(server.requests) == requests_before
