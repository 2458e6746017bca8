"""A multi-thousand-member sync sends byte for byte what the per-member code sent, and leaves the same ledger.

The reference is today's per-member path, kept in the code and driven from here: the same destination with its
column-wise `build_records` and `MATCHABLE_SQL` hidden, so every record comes from `build_record` (one Python
call per member, the identifiers.py reference functions), every fingerprint is computed, and the diff is checked
against `ledger.plan_diff` (the Python diff). Both run the same story against their own fake server: a full sync
of an awkward 3,000-customer shop (tests/unit/test_sync_golden_requests.py's generator), then a sync after a
few members left, changed e-mail, value, consent or phone. Every request (method, path, query, meaningful
headers, exact body bytes) and the ledger (EXCEPT ALL both ways) must be the same. Unlike the 160-customer
golden recordings, nothing here is a stored fixture: the reference runs each time, so the test fails as soon as
the two paths drift apart.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from activation import ledger
from activation import member_records as mr
from activation.audiences import select_members
from activation.http import RetryPolicy
from activation.sync import _allowed, plan_sync, sync_audience
from tests.servers.clients import client
from tests.unit.test_sync_golden_requests import (
    DESTINATIONS,
    change_the_shop,
    golden_audience,
    golden_customers,
    golden_scores,
    recorded_requests,
)

N_CUSTOMERS = 3000
BATCH = 400
# A retry re-sends a request (a second, identical entry in the server's log): on a loaded machine the fast test
# policy's short timeout would make one path retry and the other not.
PATIENT = RetryPolicy(max_attempts=2, backoff_base_s=0.01, timeout_s=300)


class PerMember:
    """The destination without its column-wise builders: records_frame falls back to build_record per member."""

    def __init__(self, inner: Any):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("build_records", "MATCHABLE_SQL"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def shop(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    customers = golden_customers(N_CUSTOMERS)
    for schema in ("raw", "edge", "marts"):
        conn.execute(f"create schema {schema}")
    conn.register("_customers", customers)
    conn.register("_scores", golden_scores(customers))
    conn.execute("create table raw.customers as select * from _customers")
    conn.execute(
        "create view edge.customer_contacts as select customer_id, email, phone, first_name, last_name, "
        "postal_code, upper(nullif(trim(country_raw), '')) as country, marketing_consent from raw.customers"
    )
    conn.execute("create table marts.customer_scores as select * from _scores")
    ledger.ensure_schema(conn)
    return conn


def reference_diff(conn: duckdb.DuckDBPyConnection, audience: Any, destination: Any) -> ledger.Diff:
    """plan_diff (Python) of every member's per-member record, fingerprint included, against the ledger."""
    _, allowed = _allowed(select_members(conn, audience), destination)
    records = mr.records_frame(conn, PerMember(destination), allowed)
    return ledger.plan_diff(records, ledger.load_ledger(conn, destination.name, audience.name))


def run(name: str, per_member: bool) -> tuple[list[dict[str, Any]], duckdb.DuckDBPyConnection, list[ledger.Diff]]:
    make_server, _, value_based = DESTINATIONS[name]
    audience = golden_audience("predicted_clv" if value_based else None)
    server = make_server().start()
    diffs = []
    try:
        conn = shop(duckdb.connect(":memory:"))
        for run_id in ("run-1", "run-2"):
            kind, options = ("meta", {"value_based": True}) if name == "meta_value_based" else (name, {})
            destination = client(kind, server, "golden", max_batch=BATCH, policy=PATIENT, **options)
            if run_id == "run-2":
                change_the_shop(conn)
            if not per_member:  # the SQL diff on lazily fingerprinted records equals the Python diff of all
                expected = reference_diff(conn, audience, destination)
                diffs.append(plan_sync(conn, audience, destination).diff)
                assert diffs[-1] == expected, run_id
            sync_audience(conn, audience, PerMember(destination) if per_member else destination, run_id, "model-1")
        assert server.violations == []
        return recorded_requests(server), conn, diffs
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DESTINATIONS))
def test_a_3000_member_sync_and_its_next_day_send_what_the_per_member_code_sent(name):
    fast_requests, fast, diffs = run(name, per_member=False)
    reference_requests, reference, _ = run(name, per_member=True)
    assert len(diffs[0].add) > 1000 and 0 < len(diffs[1].add) + len(diffs[1].remove) < 60  # a quiet second day
    assert len(fast_requests) == len(reference_requests)
    for index, (got, want) in enumerate(zip(fast_requests, reference_requests, strict=True)):
        assert got == want, f"request {index} ({want['method']} {want['path']}) differs"
    columns = ", ".join(c for c in ["destination", "audience", *ledger.LEDGER_COLUMNS])
    rows = {
        label: conn.execute(f"select {columns} from sync.destination_members").df()
        for label, conn in (("fast", fast), ("reference", reference))
    }
    check = duckdb.connect(":memory:")
    for label, frame in rows.items():
        check.register(label, frame)
    for a, b in (("fast", "reference"), ("reference", "fast")):
        assert check.execute(f"select count(*) from (select * from {a} except all select * from {b})").fetchone() == (
            0,
        )
    assert len(rows["fast"]) > 1000
