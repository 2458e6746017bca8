"""Syncs send byte-identical requests to every fake server after the vectorization of audiences and syncs (issue 18).

The golden files under tests/fixtures/sync_golden/ were recorded with the per-member implementation (commit
0ac24b3, before member records and hashing were built column-wise in DuckDB): for a fixed, deliberately awkward
shop (non-ASCII and formula names, gmail dots and plus tags, national and international phones, unicode digits and
whitespace, US zip+4, missing contacts, unknown consent, float values at rounding edges), each destination's fake
server records every request of a full sync and of an incremental sync after members left, changed e-mail,
changed value and lost consent. The test replays the same story and compares method, path, query, the headers
that carry meaning and the exact body bytes; it also compares the ledger rows and the two upload files (exports).

Regenerate (only when a request is meant to change, and say why in the commit): SEGMINT_REGEN_GOLDEN=1 pytest this file.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from activation.audiences import Audience, DestinationConfig, select_members, with_contacts
from activation.exports import export_audience_csvs
from activation.ledger import LEDGER_COLUMNS
from activation.sync import sync_audience
from tests.servers.clients import client
from tests.servers.google_ads import FakeGoogleAds
from tests.servers.google_data_manager import FakeDataManager
from tests.servers.hubspot import FakeHubSpot
from tests.servers.klaviyo import FakeKlaviyo
from tests.servers.meta import FakeMeta
from tests.servers.salesforce import FakeSalesforce
from tests.servers.webhook import FakeWebhook

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "sync_golden"
REGENERATE = os.environ.get("SEGMINT_REGEN_GOLDEN") == "1"
N_CUSTOMERS = 160
BATCH = 25
# Headers that vary with the machine, the HTTP library or the clock, not with what segmint sends. The webhook's
# signature covers the timestamp; the fake receiver verifies it against the exact body bytes compared here.
# Content-Length follows from the body (compared byte for byte) and varies with Meta's random session ids.
IGNORED_HEADERS = {
    "host", "user-agent", "accept-encoding", "accept", "connection", "x-segmint-signature", "content-length"
}  # fmt: skip

EMAILS = [
    "Customer.{i}@Example.com",
    " Dana.M+shop{i}@GMAIL.com ",
    "first.last+{i}@googlemail.com",
    "zoë.{i}@exämple.de",
    "\u00a0nbsp{i}@example.org\u00a0",
    "tab\t{i}@example.org",
    "no-at-sign-{i}.example.com",
    "a{i}@b@c.com",
    "@nolocal{i}.com",
    "nodomain{i}@",
    None,
    "   ",
    "UPPER.{i}@EXAMPLE.COM",
    "+.{i}@gmail.com",
    "ascii\x1c{i}@example.org",
    "vt\x0b{i}@example.org",
]
PHONES = [
    "+1 (415) 555-{i:04d}",
    "0044 20 7946 {i:04d}",
    "020 7946 {i:04d}",
    "1-800-555-{i:04d}",
    "(030) 123{i:04d}",
    "12345",
    "+0 123 456 7890",
    "+1 415 CALL {i}",
    "+１４１５５５５{i:04d}",
    "٠٢٠٧٩٤٦{i:04d}",
    None,
    "",
    "555-{i:04d}",
    "+44 (0) 20 7946 {i:04d}",
]
FIRST_NAMES = [
    "First{i}",
    "O'Brien",
    "Anne-Marie",
    "José",
    "ZOË",
    "İlkay",
    "Straße",
    "  Mc   Donald  ",
    "$mith",
    "=cmd|' /C calc'!A0",
    "李",
    "Smile😀",
    "\tTab\x0bName",
    None,
    "...",
    "e\u0301lise",
    'Quote"d\\Back',
]
LAST_NAMES = ["O'Last-{i}", "Nguyễn", "van der Berg", "D'Angelo", None, "  ", "Smith{i}", "Ω-Omega", "Ab\x1fCd"]
POSTAL_CODES = ["94105-{i:04d}", "SW1A 1AA", " 10115 ", "75 008", None, "9{i:04d}", "k1a-0b1", "  "]
COUNTRIES = ["us", "US", "uk", "GB", " de ", "Deutschland", "", None, "fr", "DE", "ca"]
SEGMENTS = ["champions", "loyal", "at_risk", "nouveaux_clients", "hibernating"]
VALUES = [123.456789, 0.005, 1e-07, 2.675, 1.005, 10.0, 0.0, -3.2, 99999.995, 7.125, float("nan")]


def _pick(values: list, i: int, step: int = 1):
    """The value for customer i (periods co-prime with the list lengths), {i} filled in."""
    value = values[(i * step) % len(values)]
    return value.format(i=i) if isinstance(value, str) else value


def golden_customers(n: int = N_CUSTOMERS) -> pd.DataFrame:
    """The fixed shop: every field cycles through awkward values at co-prime periods, so combinations vary."""
    rows = []
    for i in range(n):
        rows.append(
            {
                "customer_id": f"g{i:04d}",
                "email": _pick(EMAILS, i),
                "phone": _pick(PHONES, i, 3),
                "first_name": _pick(FIRST_NAMES, i, 5),
                "last_name": _pick(LAST_NAMES, i, 2),
                "postal_code": _pick(POSTAL_CODES, i, 3),
                "country_raw": _pick(COUNTRIES, i, 7),
                "marketing_consent": None if i % 13 == 12 else (i % 5 != 3),
            }
        )
    return pd.DataFrame(rows)


def golden_scores(customers: pd.DataFrame) -> pd.DataFrame:
    n = len(customers)
    return pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "predicted_clv": [VALUES[i % len(VALUES)] + (i // len(VALUES)) * 3.3 for i in range(n)],
            "purchase_propensity": [((i * 37) % 101) / 101 for i in range(n)],
            "rfm_segment": [SEGMENTS[i % len(SEGMENTS)] for i in range(n)],
            "behavioral_segment": ["researcher" if i % 2 else None for i in range(n)],
            "top_drivers": [
                json.dumps([{"feature": "recency_days", "contribution": round(0.1 * (i % 9) - 0.3, 3)}] * (1 + i % 3))
                for i in range(n)
            ],
            "marketing_consent": [True] * n,  # the sync edge's consent must win
        }
    )


def build_golden_warehouse(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    customers = golden_customers()
    for schema in ("raw", "edge", "marts"):
        conn.execute(f"create schema if not exists {schema}")
    conn.register("_customers", customers)
    conn.register("_scores", golden_scores(customers))
    conn.execute("create or replace table raw.customers as select * from _customers")
    conn.execute(
        "create or replace view edge.customer_contacts as select customer_id, email, phone, first_name, last_name, "
        "postal_code, upper(nullif(trim(country_raw), '')) as country, marketing_consent from raw.customers"
    )
    conn.execute("create or replace table marts.customer_scores as select * from _scores")
    conn.unregister("_customers")
    conn.unregister("_scores")
    return conn


def golden_audience(value_column: str | None = "predicted_clv") -> Audience:
    return Audience(
        name="golden",
        description="golden requests",
        rule="predicted_clv >= 0 or predicted_clv is null",
        destinations=(DestinationConfig("x", "webhook"),),
        value_column=value_column,
        control_share=0.10,
        max_change_share=0.9,
    )


def change_the_shop(conn: duckdb.DuckDBPyConnection) -> None:
    """Between the two syncs: some leave, some change e-mail, some change value, some lose consent."""
    conn.execute("update marts.customer_scores set predicted_clv = -1 where customer_id in ('g0004', 'g0020', 'g0041')")
    conn.execute(
        "update raw.customers set email = 'Changed.' || customer_id || '@Example.com' "
        "where customer_id in ('g0000', 'g0012', 'g0033', 'g0045')"
    )
    conn.execute("update marts.customer_scores set predicted_clv = predicted_clv + 10.004 where customer_id in "
                 "('g0001', 'g0002', 'g0016', 'g0050')")  # fmt: skip
    conn.execute("update raw.customers set marketing_consent = false where customer_id in ('g0005', 'g0006', 'g0017')")
    conn.execute("update raw.customers set phone = '+1 212 555 0199' where customer_id = 'g0010'")


# name -> (fake server factory, destination factory(server), value-based audience?)
DESTINATIONS: dict[str, tuple[Any, Any, bool]] = {
    "meta": (FakeMeta, lambda s: client("meta", s, "golden", max_batch=BATCH), False),
    "meta_value_based": (FakeMeta, lambda s: client("meta", s, "golden", value_based=True, max_batch=BATCH), True),
    "google_data_manager": (
        FakeDataManager,
        lambda s: client("google_data_manager", s, "golden", max_batch=BATCH),
        False,
    ),
    "google_ads_offline": (FakeGoogleAds, lambda s: client("google_ads_offline", s, "golden", max_batch=BATCH), False),
    "hubspot": (FakeHubSpot, lambda s: client("hubspot", s, "golden", max_batch=BATCH), False),
    "klaviyo": (FakeKlaviyo, lambda s: client("klaviyo", s, "golden", max_batch=BATCH), False),
    "salesforce": (FakeSalesforce, lambda s: client("salesforce", s, "golden", max_batch=BATCH), True),
    "webhook": (FakeWebhook, lambda s: client("webhook", s, "golden", max_batch=BATCH), True),
}


def _body(body: bytes) -> dict[str, str]:
    try:
        return {"text": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(body).decode("ascii")}


def recorded_requests(server: Any) -> list[dict[str, Any]]:
    """Every request the fake server received, as comparable JSON (Meta's random session ids numbered)."""
    out = []
    for request in server.requests:
        out.append(
            {
                "method": request["method"],
                "path": request["path"],
                "query": {key: request["query"][key] for key in sorted(request["query"])},
                "headers": {k: v for k, v in sorted(request["headers"].items()) if k not in IGNORED_HEADERS},
                "body": _body(request["body"]),
            }
        )
    text = json.dumps(out, ensure_ascii=False)
    sessions: dict[str, str] = {}
    for match in re.finditer(r"session_id(?:%22%3A|\":|\": \[\")(\d+)", text):
        sessions.setdefault(match.group(1), f"SESSION{len(sessions) + 1}")
    for raw, label in sessions.items():
        text = text.replace(raw, label)
    return json.loads(text)


def ledger_rows(conn: duckdb.DuckDBPyConnection) -> list[list[Any]]:
    frame = conn.execute(
        f"select destination, audience, {', '.join(LEDGER_COLUMNS)} from sync.destination_members "
        "order by destination, audience, member_key"
    ).df()
    return json.loads(frame.to_json(orient="values", double_precision=15))


def run_story(name: str) -> dict[str, Any]:
    make_server, make_destination, value_based = DESTINATIONS[name]
    audience = golden_audience("predicted_clv" if value_based else None)
    server = make_server().start()
    try:
        conn = build_golden_warehouse(duckdb.connect(":memory:"))
        first = sync_audience(conn, audience, make_destination(server), "run-1", "model-1")
        change_the_shop(conn)
        second = sync_audience(conn, audience, make_destination(server), "run-2", "model-1")
        assert server.violations == []
        counts = [
            {key: getattr(report, key) for key in ("added", "removed", "unchanged", "failed", "batches", "members")}
            | {"skipped_no_consent": report.skipped_no_consent, "skipped_unmatchable": report.skipped_unmatchable}
            for report in (first, second)
        ]
        return {"requests": recorded_requests(server), "reports": counts, "ledger": ledger_rows(conn)}
    finally:
        server.stop()


def _check(path: Path, actual: Any) -> None:
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert actual.keys() == expected.keys()
    for key in actual:
        if key == "requests":
            assert len(actual[key]) == len(expected[key]), f"{path.name}: number of requests"
            for index, (got, want) in enumerate(zip(actual[key], expected[key], strict=True)):
                assert got == want, f"{path.name}: request {index} ({want['method']} {want['path']}) differs"
        else:
            assert actual[key] == expected[key], f"{path.name}: {key} differs"


@pytest.mark.parametrize("name", sorted(DESTINATIONS))
def test_sync_requests_are_byte_identical_to_the_golden_recording(name):
    _check(GOLDEN_DIR / f"{name}.json", run_story(name))


def test_export_files_are_byte_identical_to_the_golden_recording(tmp_path):
    conn = build_golden_warehouse(duckdb.connect(":memory:"))
    files = {}
    for value_column in (None, "predicted_clv"):
        audience = golden_audience(value_column)
        members = with_contacts(conn, select_members(conn, audience))
        paths = export_audience_csvs(members, audience.name, tmp_path, value_based=value_column is not None)
        for kind, path in paths.items():
            files[f"{kind}_{'value' if value_column else 'plain'}"] = path.read_text(encoding="utf-8")
    _check(GOLDEN_DIR / "exports.json", files)
