"""The append ingest (landing/append.py) gives the tables a full ingest at the new as-of date gives.

Each case ingests the same files twice into two databases: a full ingest at day A followed by an ingest at day
B (which appends), and a full ingest at day B alone; every raw table, the held records and the reports must be
equal. The planted files hold what could make an append differ: line items and duplicates across the old as-of
date, generated event ids whose occurrence numbers count records of both days, quarantined records after the
old as-of date, orders converted with a rate dated after it, summed line totals.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pytest

from landing import LandingOptions, ingest_landing
from landing import append as append_module
from landing.ingest import NO_DIGESTS, LandingReport, Suppression

DAY_A, DAY_B, DAY_C = date(2024, 3, 3), date(2024, 3, 6), date(2024, 3, 9)
OPTIONS = LandingOptions(reporting_currency="EUR")
# The sort key that identifies a row of each table (physical order is not part of the contract).
ORDER_BY = {
    "orders": "source_file, source_row",
    "customers": "source_file, source_row",
    "events": "source_file, source_row",
    "fx_rates": "source_file, source_row",
    "quarantine": "source_file, source_row, reason",
    "ingest_log": "source_file, table_name",
    "run_context": "as_of",
    "ingest_held": "table_name, source_file, source_row",
}

ORDERS = """order_id,customer_id,ordered_at,order_total,currency,sku
o1,c1,2024-03-01,10,EUR,a
o2,c1,2024-03-05,20,EUR,a
o2,c1,2024-03-05,20,EUR,b
o3,c2,2024-03-02,15,EUR,a
o3,c2,2024-03-02,15,EUR,a
o4,c2,2024-03-05,15,EUR,a
o4,c2,2024-03-05,15,EUR,a
o5,c3,2024-03-02,15,EUR,a
o5,c3,2024-03-05,15,EUR,a
o6,c3,2024-03-10,30,EUR,a
o7,c4,not a date,1,EUR,a
o8,c4,2024-03-05,abc,EUR,a
o9,c5,2024-03-05,12,USD,a
o10,c5,2024-03-04,5,,a
o11,c6,2024-03-08,7,EUR,a
o11,c6,2024-03-08,7,EUR,c
"""
FX_RATES = """date,currency,rate
2024-03-01,USD,0.9
2024-03-05,USD,0.95
2024-03-07,USD,0.97
"""
EVENTS = """occurred_at,event_type,customer_id,page_url,session
2024-03-01T10:00:00,page_view,c1,/a,s1
2024-03-05T10:00:00,page_view,c1,/a,s1
2024-03-05T10:00:00,page_view,c1,/a,s2
2024-03-05T10:00:00,page_view,c1,/a,s1
2024-03-02T10:00:00,page_view,c1,/a,s3
2024-03-08T00:00:00,view,c2,/b,s1
,page_view,c2,/b,s1
2024-03-04T23:59:59,add_to_cart,c1,/a,s9
"""
CUSTOMERS = """customer_id,email,signed_up_at
c1,a@example.com,2024-01-01
c2,b@example.com,2024-03-05
c3,c@example.com,2024-03-08
c4,d@example.com,
c2,b@example.com,2024-03-05
"""
LINE_ORDERS = """order_id,customer_id,ordered_at,line_total,sku
o1,c1,2024-03-01,10,a
o2,c1,2024-03-05,20,a
o2,c1,2024-03-05,5,b
o3,c2,2024-03-05,4,a
o3,c2,2024-03-05,x,b
o4,c2,2024-03-08,1,a
o4,c2,2024-03-08,2,b
"""
# The landing tables and the date column the as-of date applies to.
RAW = {"orders": "ordered_at", "customers": "signed_up_at", "events": "occurred_at", "fx_rates": "date"}


def write_shop(landing: Path, files: dict[str, str]) -> Path:
    landing.mkdir(exist_ok=True)
    for name, text in files.items():
        (landing / name).write_text(text)
    return landing


def inputs(landing: Path) -> dict:
    # What raw_tables passes (orchestration/lib/ingest_fingerprint.py), with the file digests that matter here.
    digests = {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(landing.iterdir())}
    return {"landing": digests, "code": "test", "suppression": []}


def ingest(conn: duckdb.DuckDBPyConnection, landing: Path, as_of: date | None, **kwargs) -> LandingReport:
    return ingest_landing(
        conn, landing, as_of, 365, False, OPTIONS, append_inputs=kwargs.pop("append_inputs", inputs(landing)), **kwargs
    )


def tables(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {name: conn.execute(f"SELECT * FROM raw.{name} ORDER BY {key}").fetchall() for name, key in ORDER_BY.items()}


def same_report(left: LandingReport, right: LandingReport) -> bool:
    strip = {"ingest_mode": "", "ingest_mode_reason": "", "appended_after": None, "rows_appended": {}}
    return replace(left, **strip) == replace(right, **strip)


def assert_append_equals_full(
    tmp_path: Path, files: dict[str, str], days: tuple[date | None, ...] = (DAY_A, DAY_B), **kwargs
):
    landing = write_shop(tmp_path / "landing", files)
    appended = duckdb.connect()
    for day in days[:-1]:
        before = ingest(appended, landing, day, **kwargs)
        assert before.ingest_mode == "full" or day != days[0]
    counts_before = {name: appended.execute(f"SELECT count(*) FROM raw.{name}").fetchall()[0][0] for name in RAW}
    report = ingest(appended, landing, days[-1], **kwargs)
    assert report.ingest_mode == "append", report.ingest_mode_reason
    # The report names the rows it added to each table, and they are the table's rows dated after the date it
    # continued from (what the raw GX checks validate, orchestration/defs/quality_checks.py).
    assert report.appended_after == before.as_of
    for name, column in RAW.items():
        added = appended.execute(f"SELECT count(*) FROM raw.{name}").fetchall()[0][0] - counts_before[name]
        after = appended.execute(
            f"SELECT count(*) FROM raw.{name} WHERE CAST({column} AS DATE) > ?", [before.as_of]
        ).fetchall()[0][0]
        assert report.rows_appended[name] == added == after, name
    full = duckdb.connect()
    expected = ingest(full, landing, days[-1], allow_append=False, **kwargs)
    assert expected.ingest_mode == "full"
    assert tables(appended) == tables(full)
    assert same_report(report, expected)
    state = "SELECT version, inputs, as_of, default_as_of FROM raw.ingest_state"
    assert appended.execute(state).fetchall() == full.execute(state).fetchall()
    return report, expected, appended


def test_append_equals_full_ingest_with_line_items_duplicates_generated_ids_and_fx(tmp_path):
    files = {"orders.csv": ORDERS, "fx_rates.csv": FX_RATES, "events.csv": EVENTS, "customers.csv": CUSTOMERS}
    report, _, conn = assert_append_equals_full(tmp_path, files)
    orders = next(f for f in report.files if f.table_name == "orders")
    # o2 (and its merged line), o9 (in USD, at the rate dated after day A) and o10 came in with the append.
    assert orders.rows_in == orders.rows_accepted + orders.rows_quarantined
    assert orders.rows_merged == 1
    assert conn.execute("SELECT fx_rate FROM raw.orders WHERE order_id = 'o9'").fetchall() == [(0.95,)]
    # The conflicting o5 (one copy each side of day A) stays quarantined, both copies.
    reasons = dict(
        conn.execute("SELECT source_row, reason FROM raw.quarantine WHERE source_file = 'orders.csv'").fetchall()
    )
    assert reasons[8].startswith("duplicate_conflicting") and reasons[9].startswith("duplicate_conflicting")
    assert reasons[10] == "after_as_of: ordered_at=2024-03-10 00:00:00 is after 2024-03-06"
    events = next(f for f in report.files if f.table_name == "events")
    assert events.ids_generated == conn.execute("SELECT count(*) FROM raw.events").fetchall()[0][0] == 5


def test_append_equals_full_ingest_with_summed_line_totals_and_incomplete_orders(tmp_path):
    report, _, conn = assert_append_equals_full(tmp_path, {"orders.csv": LINE_ORDERS})
    assert conn.execute("SELECT order_id, order_total FROM raw.orders ORDER BY source_row").fetchall() == [
        ("o1", 10.0),
        ("o2", 25.0),
    ]
    assert report.files[0].reasons == {"after_as_of": 2, "incomplete_order": 1, "invalid_number": 1}


def test_two_appends_in_a_row_equal_a_full_ingest(tmp_path):
    files = {"orders.csv": ORDERS, "fx_rates.csv": FX_RATES, "events.csv": EVENTS, "customers.csv": CUSTOMERS}
    assert_append_equals_full(tmp_path, files, (DAY_A, DAY_B, DAY_C))


def test_an_append_to_the_default_as_of_date_equals_a_full_ingest_without_one(tmp_path):
    # No as-of given: the last valid order date, which the full ingest at day A recorded (it is as-of independent).
    report, _, _ = assert_append_equals_full(tmp_path, {"orders.csv": ORDERS, "events.csv": EVENTS}, (DAY_A, None))
    assert report.as_of == date(2024, 3, 10)


def test_an_append_with_the_same_suppression_list_equals_a_full_ingest(tmp_path):
    # Rows of erased persons are dropped unread by both; the held records never contain them.
    suppression = Suppression(frozenset({"h-c1", "h-c6"}), lambda value: f"h-{value}")
    report, _, conn = assert_append_equals_full(
        tmp_path, {"orders.csv": ORDERS, "events.csv": EVENTS}, suppression=suppression
    )
    assert {f.table_name: f.rows_suppressed for f in report.files} == {"orders": 5, "events": 6}
    assert conn.execute("SELECT count(*) FROM raw.ingest_held WHERE orders__customer_id = 'c6'").fetchall() == [(0,)]


def test_an_append_to_the_same_as_of_date_moves_nothing(tmp_path):
    assert_append_equals_full(tmp_path, {"orders.csv": ORDERS}, (DAY_B, DAY_B))


def test_a_changed_file_runs_the_full_ingest_and_says_which(tmp_path):
    landing = write_shop(tmp_path / "landing", {"orders.csv": ORDERS, "events.csv": EVENTS})
    conn = duckdb.connect()
    ingest(conn, landing, DAY_A)
    (landing / "events.csv").write_text(EVENTS + "2024-03-05T11:00:00,page_view,c9,/z,s1\n")
    report = ingest(conn, landing, DAY_B)
    assert report.ingest_mode == "full"
    assert report.ingest_mode_reason == "inputs changed since the ingest at 2024-03-03: landing changed (events.csv)"
    full = duckdb.connect()
    ingest(full, landing, DAY_B, allow_append=False)
    assert tables(conn) == tables(full)


@pytest.mark.parametrize(
    ("first", "second", "change", "reason"),
    [
        (DAY_B, DAY_A, {}, "the as-of date moved backwards (2024-03-06 -> 2024-03-03)"),
        (DAY_A, DAY_B, {"allow_append": False}, "forced (SEGMINT_FORCE_INGEST=1)"),
        (DAY_A, DAY_B, {"append_inputs": None}, "no input digests given (an append needs them)"),
        (
            DAY_A,
            DAY_B,
            {"append_inputs": {"landing": {}, "code": "test", "suppression": ["x"]}},
            "inputs changed since the ingest at 2024-03-03: landing changed (orders.csv); suppression changed",
        ),
    ],
)
def test_full_ingest_when_an_append_could_differ(tmp_path, first, second, change, reason):
    landing = write_shop(tmp_path / "landing", {"orders.csv": ORDERS})
    conn = duckdb.connect()
    ingest(conn, landing, first)
    report = ingest(conn, landing, second, **change)
    assert (report.ingest_mode, report.ingest_mode_reason) == ("full", reason)


def test_a_warehouse_changed_behind_the_ingest_runs_the_full_ingest(tmp_path):
    landing = write_shop(tmp_path / "landing", {"orders.csv": ORDERS})
    conn = duckdb.connect()
    ingest(conn, landing, DAY_A)
    conn.execute("DELETE FROM raw.orders WHERE order_id = 'o1'")
    report = ingest(conn, landing, DAY_B)
    assert report.ingest_mode_reason == "the raw tables do not hold the rows the last ingest recorded"
    assert conn.execute("SELECT count(*) FROM raw.orders WHERE order_id = 'o1'").fetchall() == [(1,)]


def test_a_failed_append_leaves_the_previous_tables(tmp_path, monkeypatch):
    landing = write_shop(tmp_path / "landing", {"orders.csv": ORDERS, "events.csv": EVENTS})
    conn = duckdb.connect()
    ingest(conn, landing, DAY_A)
    before = tables(conn)

    def crash(*args):
        raise RuntimeError("killed mid-append")

    # After the records moved: the one transaction must roll every table back.
    monkeypatch.setattr(append_module, "reason_as_of_sql", crash)
    with pytest.raises(RuntimeError, match="killed mid-append"):
        ingest(conn, landing, DAY_B)
    assert tables(conn) == before
    monkeypatch.undo()
    assert ingest(conn, landing, DAY_B).ingest_mode == "append"


def test_append_equals_full_ingest_on_typed_parquet_files(tmp_path):
    # Parquet exports carry typed columns (timestamps, doubles), read on the typed fast path (landing/rules.py).
    csv = write_shop(tmp_path / "csv", {"orders.csv": LINE_ORDERS.replace(",x,", ",6,"), "events.csv": EVENTS})
    parquet = tmp_path / "parquet"
    parquet.mkdir()
    with duckdb.connect() as conn:
        for name in ("orders", "events"):
            conn.execute(f"COPY (SELECT * FROM read_csv('{csv / name}.csv')) TO '{parquet / name}.parquet'")
        assert "TIMESTAMP" in str(conn.execute(f"DESCRIBE SELECT * FROM '{parquet}/events.parquet'").fetchall())
    appended, full = duckdb.connect(), duckdb.connect()
    ingest(appended, parquet, DAY_A)
    report = ingest(appended, parquet, DAY_B)
    assert report.ingest_mode == "append", report.ingest_mode_reason
    expected = ingest(full, parquet, DAY_B, allow_append=False)
    assert tables(appended) == tables(full)
    assert same_report(report, expected)


def test_an_ingest_without_input_digests_holds_nothing_and_the_next_one_reads_every_file(tmp_path):
    landing = write_shop(tmp_path / "landing", {"orders.csv": ORDERS})
    conn = duckdb.connect()
    ingest(conn, landing, DAY_A, append_inputs=None)
    assert conn.execute("SELECT count(*) FROM raw.ingest_held").fetchall() == [(0,)]
    assert conn.execute("SELECT inputs FROM raw.ingest_state").fetchall() == [(None,)]
    report = ingest(conn, landing, DAY_B)
    assert (report.ingest_mode, report.ingest_mode_reason) == ("full", NO_DIGESTS)
    # o6 and o11 (an order and its merged line), after day B
    assert conn.execute("SELECT count(*) FROM raw.ingest_held").fetchall() == [(3,)]


def test_a_daily_file_dropped_next_to_the_contract_files_is_named_not_ignored(tmp_path):
    """A shop's tool that drops each day's orders as a new file (`orders_2024-03-06.csv`) or a browser's copy
    (`orders (1).csv`): the contract reads one file per table, so those rows are not read, and the ingest says so
    (branch dailyred: they were ignored silently), in every later append too."""
    landing = write_shop(tmp_path / "landing", {"orders.csv": ORDERS, "customers.csv": CUSTOMERS})
    (landing / "orders_2024-03-06.csv").write_text(ORDERS)
    (landing / "orders (1).csv").write_text(ORDERS)
    (landing / "notes.md").write_text("not data")
    conn = duckdb.connect()
    first = ingest(conn, landing, DAY_A)
    orders = next(file for file in first.files if file.table_name == "orders")
    unread = [note for note in orders.notes if note.startswith("warning: not read: ")]
    assert unread and "orders (1).csv, orders_2024-03-06.csv (" in unread[0] and "notes.md" not in unread[0]
    appended = ingest(conn, landing, DAY_B)
    assert appended.ingest_mode == "append"
    assert unread[0] in next(file for file in appended.files if file.table_name == "orders").notes
