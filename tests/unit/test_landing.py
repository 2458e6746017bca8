"""The landing-zone ingest, driven through `ingest_landing` on real files written to tmp_path.

Each test plants one defect (labelled in a comment) and asserts what a user would see: the error
line, the quarantine reason, or the typed value in raw.*.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from landing import LandingError, LandingReport, ingest_landing, quarantine_summary

ORDERS_HEADER = "order_id,customer_id,ordered_at,order_total,currency,discount_amount,discount_code,channel,status\n"
GOOD_ORDER = "o1,c1,2024-03-01,10.00,EUR,,,web,completed\n"


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    yield connection
    connection.close()


def write(landing: Path, name: str, content: str | bytes) -> Path:
    path = landing / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def ingest(conn: duckdb.DuckDBPyConnection, landing: Path, as_of: date | None = None) -> LandingReport:
    return ingest_landing(conn, landing, as_of=as_of, horizon_days=365, is_demo=False)


def reasons_by_row(conn: duckdb.DuckDBPyConnection, source_file: str = "orders.csv") -> dict[int, str]:
    rows = conn.execute(
        "SELECT source_row, reason FROM raw.quarantine WHERE source_file = ? ORDER BY source_row", [source_file]
    ).fetchall()
    return dict(rows)


def accepted_ids(conn: duckdb.DuckDBPyConnection, table: str = "orders", key: str = "order_id") -> list[str]:
    return [row[0] for row in conn.execute(f"SELECT {key} FROM raw.{table} ORDER BY source_row").fetchall()]


def orders_report(report: LandingReport):
    return next(file for file in report.files if file.table_name == "orders")


# --- files that cannot be read at all ------------------------------------------------------------


def test_missing_required_column_raises_one_line_naming_file_column_and_header(conn, tmp_path):
    # Defect: ordered_at/order_total are called date/total.
    write(tmp_path, "orders.csv", "order_id,customer_id,date,total\no1,c1,2024-03-01,10\n")
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path)
    assert str(error.value) == (
        "orders.csv: required column 'ordered_at' is missing (found: order_id, customer_id, date, total)"
    )


def test_header_names_match_case_insensitively_with_surrounding_spaces_trimmed(conn, tmp_path):
    write(tmp_path, "orders.csv", " Order_ID ,CUSTOMER_ID,  Ordered_At,Order_Total \no1,c1,2024-03-01,10\n")
    report = ingest(conn, tmp_path)
    assert orders_report(report).rows_accepted == 1
    assert conn.execute("SELECT order_id, customer_id, order_total FROM raw.orders").fetchall() == [("o1", "c1", 10.0)]


def test_a_semicolon_separated_file_is_detected_and_read(conn, tmp_path):
    # A European spreadsheet export with ';' separators (dialect tests: tests/unit/test_landing_dialects.py).
    write(tmp_path, "orders.csv", "order_id;customer_id;ordered_at;order_total\no1;c1;2024-03-01;10\n")
    report = ingest(conn, tmp_path)
    assert conn.execute("SELECT order_id, order_total FROM raw.orders").fetchall() == [("o1", 10.0)]
    assert "delimiter ';' (detected)" in orders_report(report).notes


def test_missing_orders_file_raises(conn, tmp_path):
    write(tmp_path, "customers.csv", "customer_id\nc1\n")
    with pytest.raises(LandingError, match=r"^orders\.csv: file is missing from "):
        ingest(conn, tmp_path)


def test_csv_and_parquet_of_the_same_table_raise(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER)
    conn.execute(f"COPY (SELECT * FROM read_csv('{tmp_path / 'orders.csv'}')) TO '{tmp_path / 'orders.parquet'}'")
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path)
    assert str(error.value).startswith("orders: both orders.csv and orders.parquet exist in ")


@pytest.mark.parametrize("content", ["", ORDERS_HEADER], ids=["zero_bytes", "header_only"])
def test_orders_without_data_rows_raise_no_data_rows(conn, tmp_path, content):
    write(tmp_path, "orders.csv", content)
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path)
    assert str(error.value) == "orders.csv: no data rows"


def test_a_line_with_too_many_fields_raises_one_line_naming_the_line(conn, tmp_path):
    # Defect: an unquoted comma inside the status on physical line 3.
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + "o2,c1,2024-03-01,5,EUR,,,web,done, really\n")
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path)
    assert str(error.value) == (
        "orders.csv: line 3 has 10 fields but the header has 9 (not valid CSV: quote values that contain commas)"
    )


def test_a_line_with_too_few_fields_raises_one_line_naming_the_line(conn, tmp_path):
    # Defect: a truncated last line.
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + "o2,c1\n")
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path)
    assert str(error.value) == (
        "orders.csv: line 3 has 2 fields but the header has 9 (not valid CSV: every line needs one value per column)"
    )


def test_an_unterminated_quote_raises_one_line_naming_the_line(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + 'o2,c1,2024-03-01,"5\n')
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path)
    assert str(error.value) == "orders.csv: line 3 has a value with an unterminated quote (not valid CSV)"


def test_events_without_customer_id_and_anonymous_id_columns_raise(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER)
    write(tmp_path, "events.csv", "event_id,occurred_at,event_type\ne1,2024-03-01,page_view\n")
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path)
    assert str(error.value) == (
        "events.csv: required column 'customer_id' or 'anonymous_id' is missing "
        "(found: event_id, occurred_at, event_type)"
    )


def test_no_valid_order_at_all_raises_because_as_of_cannot_be_derived(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + "o1,c1,not a date,10,EUR,,,web,completed\n")
    with pytest.raises(LandingError, match=r"^orders\.csv: no order passed validation \(1 rows, all quarantined\)"):
        ingest(conn, tmp_path)


def test_an_as_of_before_the_first_order_raises_one_line_and_keeps_the_previous_tables(conn, tmp_path):
    # Found by the robustness sweep: the ingest accepted no order, then the raw GX check failed the run (exit 1).
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + "o2,c2,2024-03-05,5,EUR,,,web,completed\n")
    ingest(conn, tmp_path)
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path, as_of=date(2024, 1, 31))
    assert str(error.value) == (
        "orders.csv: no order on or before the as-of date 2024-01-31 (2 rows, 2 after it, the first valid one on "
        "2024-03-01), so there is no customer to score; set SEGMINT_AS_OF to a later date"
    )
    assert accepted_ids(conn) == ["o1", "o2"]


# --- record-level rules -> quarantine -------------------------------------------------------------


def test_non_numeric_total_is_quarantined_as_invalid_number(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + "o2,c1,2024-03-01,abc,EUR,,,web,completed\n")
    ingest(conn, tmp_path)
    assert reasons_by_row(conn) == {2: "invalid_number: order_total='abc'"}
    assert accepted_ids(conn) == ["o1"]


def test_invalid_discount_amount_is_quarantined_too(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + "o2,c1,2024-03-01,5,EUR,five,X,web,completed\n")
    ingest(conn, tmp_path)
    assert reasons_by_row(conn) == {2: "invalid_number: discount_amount='five'"}


@pytest.mark.parametrize(
    ("bad_date", "reason"),
    [
        ("2024-02-30", "invalid_timestamp: ordered_at='2024-02-30'"),  # impossible day
        ("31/31/2024", "invalid_timestamp: ordered_at='31/31/2024'"),  # impossible month, non-ISO
        ("2024-13-45", "invalid_timestamp: ordered_at='2024-13-45'"),
        ("1900-01-01", "implausible_timestamp: ordered_at='1900-01-01'"),  # spreadsheet placeholder
        ("infinity", "implausible_timestamp: ordered_at='infinity'"),
    ],
)
def test_unparseable_impossible_and_placeholder_dates_are_quarantined(conn, tmp_path, bad_date, reason):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + f"o2,c1,{bad_date},5,EUR,,,web,completed\n")
    ingest(conn, tmp_path)
    assert reasons_by_row(conn) == {2: reason}


def test_orders_after_as_of_are_quarantined_and_counts_reconcile(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        ORDERS_HEADER
        + GOOD_ORDER
        + "o2,c1,2024-03-31T23:59:59Z,5,EUR,,,web,completed\n"  # on the as-of day: kept
        + "o3,c1,2024-04-01T00:00:00Z,7,EUR,,,web,completed\n"  # the day after: quarantined
        + "o4,c1,bad,7,EUR,,,web,completed\n",
    )
    report = ingest(conn, tmp_path, as_of=date(2024, 3, 31))
    orders = orders_report(report)
    assert reasons_by_row(conn) == {
        3: "after_as_of: ordered_at=2024-04-01 00:00:00 is after 2024-03-31",
        4: "invalid_timestamp: ordered_at='bad'",
    }
    assert (orders.rows_in, orders.rows_accepted, orders.rows_quarantined, orders.rows_after_as_of) == (4, 2, 2, 1)
    assert orders.reasons == {"after_as_of": 1, "invalid_timestamp": 1}
    assert conn.execute("SELECT * FROM raw.ingest_log").fetchall() == [("orders.csv", "orders", 4, 2, 2, 1, 0, 0, 0)]


def test_default_as_of_is_the_last_accepted_order_date(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        ORDERS_HEADER
        + "o1,c1,2024-03-05T22:00:00,10,EUR,,,web,completed\n"
        + "o2,c1,2024-03-09,abc,EUR,,,web,completed\n",  # later but invalid: must not move as_of
    )
    report = ingest(conn, tmp_path)
    assert report.as_of == date(2024, 3, 5)
    assert conn.execute("SELECT as_of, horizon_days, is_demo FROM raw.run_context").fetchall() == [
        (date(2024, 3, 5), 365, False)
    ]


def test_negative_totals_are_accepted_as_refunds(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + "o2,c1,2024-03-02,-10.00,EUR,,,web,refunded\n")
    ingest(conn, tmp_path)
    assert conn.execute("SELECT order_total FROM raw.orders WHERE order_id = 'o2'").fetchall() == [(-10.0,)]
    assert reasons_by_row(conn) == {}


@pytest.mark.parametrize(
    ("total", "reason"),
    [
        ("inf", "non_finite_number: order_total='inf'"),
        ("NaN", "non_finite_number: order_total='NaN'"),
        ("1e400", "non_finite_number: order_total='1e400'"),  # overflows to infinity
        ("1e12", "absurd_amount: order_total='1e12'"),
        ("-5000000000", "absurd_amount: order_total='-5000000000'"),
    ],
)
def test_non_finite_and_absurd_totals_are_quarantined(conn, tmp_path, total, reason):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + f"o2,c1,2024-03-01,{total},EUR,,,web,completed\n")
    ingest(conn, tmp_path)
    assert reasons_by_row(conn) == {2: reason}


def test_identical_duplicate_orders_keep_the_first_and_quarantine_later_copies(conn, tmp_path):
    # Defect: o1 exported three times; "10" and "10.00" are the same amount.
    write(
        tmp_path,
        "orders.csv",
        ORDERS_HEADER + GOOD_ORDER + "o1,c1,2024-03-01,10,EUR,,,web,completed\n" + GOOD_ORDER,
    )
    report = ingest(conn, tmp_path)
    assert accepted_ids(conn) == ["o1"]
    assert conn.execute("SELECT source_row FROM raw.orders").fetchall() == [(1,)]
    assert reasons_by_row(conn) == {
        2: "duplicate_identical: order_id='o1' first seen at row 1",
        3: "duplicate_identical: order_id='o1' first seen at row 1",
    }
    assert orders_report(report).reasons == {"duplicate_identical": 2}


def test_conflicting_duplicate_orders_are_all_quarantined(conn, tmp_path):
    # Defect: o2 appears with two different totals; neither copy can be trusted.
    write(
        tmp_path,
        "orders.csv",
        ORDERS_HEADER
        + GOOD_ORDER
        + "o2,c1,2024-03-01,5,EUR,,,web,completed\no2,c1,2024-03-01,6,EUR,,,web,completed\n"
        + "o3,c1,2024-03-01,7,EUR,,,web,completed\n",
    )
    ingest(conn, tmp_path)
    assert accepted_ids(conn) == ["o1", "o3"]
    assert reasons_by_row(conn) == {
        2: "duplicate_conflicting: order_id='o2' has 2 copies with different values",
        3: "duplicate_conflicting: order_id='o2' has 2 copies with different values",
    }


def test_missing_customer_id_on_an_order_is_quarantined(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + 'o2,"  ",2024-03-01,5,EUR,,,web,completed\n')
    ingest(conn, tmp_path)
    assert reasons_by_row(conn) == {2: "missing_customer_id"}


def test_events_need_a_customer_id_or_an_anonymous_id(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER)
    write(
        tmp_path,
        "events.csv",
        "event_id,customer_id,anonymous_id,occurred_at,event_type\n"
        "e1,c1,,2024-03-01T10:00:00Z,page_view\n"
        "e2,,a9,2024-03-01T10:00:00Z,page_view\n"
        "e3,,,2024-03-01T10:00:00Z,page_view\n"  # Defect: nobody to attribute it to.
        "e4,c1,,2024-03-01T10:00:00Z,\n",  # Defect: no event type.
    )
    report = ingest(conn, tmp_path)
    assert accepted_ids(conn, "events", "event_id") == ["e1", "e2"]
    assert reasons_by_row(conn, "events.csv") == {3: "missing_customer_id_and_anonymous_id", 4: "missing_event_type"}
    events = next(file for file in report.files if file.table_name == "events")
    assert events.missing_columns == (
        "page_type",
        "product_id",
        "device",
        "utm_source",
        "utm_campaign",
        "page_url",
        "category",
        "utm_medium",
        "utm_content",
        "value",
    )


def test_events_after_as_of_are_quarantined(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER)
    write(
        tmp_path,
        "events.csv",
        "event_id,anonymous_id,occurred_at,event_type\ne1,a1,2024-03-01T23:00:00Z,page_view\n"
        "e2,a1,2024-03-02T00:00:01Z,page_view\n",
    )
    report = ingest(conn, tmp_path)
    assert reasons_by_row(conn, "events.csv") == {2: "after_as_of: occurred_at=2024-03-02 00:00:01 is after 2024-03-01"}
    assert next(file for file in report.files if file.table_name == "events").rows_after_as_of == 1


def test_mixed_timezones_are_converted_to_utc_and_plain_dates_are_midnight(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        ORDERS_HEADER
        + "o1,c1,2024-03-01T10:00:00+02:00,1,EUR,,,web,completed\n"
        + "o2,c1,2024-03-01T10:00:00Z,1,EUR,,,web,completed\n"
        + "o3,c1,2024-03-01 10:00:00,1,EUR,,,web,completed\n"  # naive: taken as UTC
        + "o4,c1,2024-03-01,1,EUR,,,web,completed\n"
        + "o5,c1,2024-03-01T10:00:00.5-05:30,1,EUR,,,web,completed\n",
    )
    ingest(conn, tmp_path)
    assert conn.execute("SELECT ordered_at FROM raw.orders ORDER BY source_row").fetchall() == [
        (datetime(2024, 3, 1, 8, 0),),
        (datetime(2024, 3, 1, 10, 0),),
        (datetime(2024, 3, 1, 10, 0),),
        (datetime(2024, 3, 1, 0, 0),),
        (datetime(2024, 3, 1, 15, 30, 0, 500000),),
    ]


def test_the_connection_time_zone_is_restored_and_does_not_change_results(conn, tmp_path):
    conn.execute("SET TimeZone = 'America/New_York'")
    write(tmp_path, "orders.csv", ORDERS_HEADER + "o1,c1,2024-03-01 10:00:00,1,EUR,,,web,completed\n")
    ingest(conn, tmp_path)
    assert conn.execute("SELECT ordered_at FROM raw.orders").fetchall() == [(datetime(2024, 3, 1, 10, 0),)]
    assert conn.execute("SELECT current_setting('TimeZone')").fetchall() == [("America/New_York",)]


def test_mixed_currencies_without_rates_keep_the_commonest_and_quarantine_the_rest(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        ORDERS_HEADER
        + GOOD_ORDER
        + "o2,c1,2024-03-01,5,usd,,,web,completed\n"
        + "o3,c1,2024-03-01,5,USD,,,web,completed\n"
        + "o4,c1,2024-03-01,5,,,,web,completed\n",  # no currency in a EUR and USD file: either, so quarantined
    )
    report = ingest(conn, tmp_path)
    assert report.reporting_currency == "USD"  # the currency of most order rows
    assert orders_report(report).currencies == {"USD": 2}
    assert reasons_by_row(conn) == {
        1: "mixed_currency: currency='EUR' is not the reporting currency USD (add fx_rates.csv to convert it)",
        4: "ambiguous_currency: currency='' while other orders are in EUR, USD (reporting currency USD): which one "
        "is unknown",
    }
    assert [row[0] for row in conn.execute("SELECT currency FROM raw.orders ORDER BY source_row").fetchall()] == [
        "USD",
        "USD",
    ]


def test_formula_injection_strings_survive_ingestion_byte_exact(conn, tmp_path):
    # Kept as data: they are only dangerous in CSV exports, which escape them (activation/).
    formulas = ["=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", '=HYPERLINK("http://x","é")']
    rows = "".join(
        f'o{i},c{i},2024-03-01,1,EUR,,"{value.replace(chr(34), chr(34) * 2)}",web,completed\n'
        for i, value in enumerate(formulas)
    )
    write(tmp_path, "orders.csv", ORDERS_HEADER + rows + "o9,c9,2024-03-01,oops,EUR,,\"=cmd|' /C calc'!A0\",web,x\n")
    ingest(conn, tmp_path)
    stored = [row[0] for row in conn.execute("SELECT discount_code FROM raw.orders ORDER BY source_row").fetchall()]
    assert [value.encode("utf-8") for value in stored] == [value.encode("utf-8") for value in formulas]
    raw_record = conn.execute("SELECT raw_record FROM raw.quarantine").fetchall()[0][0]
    assert json.loads(raw_record)["discount_code"] == formulas[0]


def test_customer_ids_are_kept_as_text_with_only_surrounding_spaces_stripped(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        ORDERS_HEADER + "o1,0042,2024-03-01,1,EUR,,,web,completed\no2,  A 7  ,2024-03-01,1,EUR,,,web,completed\n",
    )
    ingest(conn, tmp_path)
    assert [row[0] for row in conn.execute("SELECT customer_id FROM raw.orders ORDER BY source_row").fetchall()] == [
        "0042",
        "A 7",
    ]


# --- encodings, CSV dialect, empty and optional inputs ----------------------------------------------


def test_utf8_bom_is_ignored(conn, tmp_path):
    write(tmp_path, "orders.csv", b"\xef\xbb\xbf" + (ORDERS_HEADER + GOOD_ORDER).encode("utf-8"))
    report = ingest(conn, tmp_path)
    assert orders_report(report).rows_accepted == 1
    assert orders_report(report).missing_columns == ()


def test_latin1_file_is_decoded_with_a_note_instead_of_failing(conn, tmp_path):
    # Defect: a Windows export in latin-1, 'é' is the single byte 0xE9.
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER)
    write(tmp_path, "customers.csv", "customer_id,first_name\nc1,Ren\xe9\n".encode("latin-1"))
    report = ingest(conn, tmp_path)
    customers = next(file for file in report.files if file.table_name == "customers")
    assert customers.notes == ("not valid UTF-8; decoded as latin-1",)
    assert conn.execute("SELECT first_name FROM raw.customers").fetchall() == [("René",)]


def test_quoted_newlines_stay_inside_the_field_and_source_row_counts_records(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        ORDERS_HEADER + 'o1,c1,2024-03-01,1,EUR,,,web,"line one\nline two"\n' + "o2,c1,2024-03-01,abc,EUR,,,web,x\n",
    )
    ingest(conn, tmp_path)
    assert conn.execute("SELECT status FROM raw.orders").fetchall() == [("line one\nline two",)]
    assert reasons_by_row(conn) == {2: "invalid_number: order_total='abc'"}  # record 2 although physical line 4


@pytest.mark.parametrize("content", ["", "customer_id,email\n"], ids=["zero_bytes", "header_only"])
def test_empty_optional_files_give_empty_tables(conn, tmp_path, content):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER)
    write(tmp_path, "customers.csv", content)
    report = ingest(conn, tmp_path)
    customers = next(file for file in report.files if file.table_name == "customers")
    assert (customers.rows_in, customers.rows_accepted, customers.rows_quarantined) == (0, 0, 0)
    assert conn.execute("SELECT count(*) FROM raw.customers").fetchall() == [(0,)]


def test_missing_optional_files_still_give_every_table_and_column(conn, tmp_path):
    write(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,order_total\no1,c1,2024-03-01,1\n")
    report = ingest(conn, tmp_path)
    assert report.missing_files == ("customers", "events", "fx_rates")
    assert orders_report(report).missing_columns == (
        "currency",
        "discount_amount",
        "discount_code",
        "channel",
        "status",
    )
    columns = {
        table: [row[0] for row in conn.execute(f"DESCRIBE raw.{table}").fetchall()]
        for table in ("orders", "customers", "events", "quarantine", "ingest_log", "run_context")
    }
    assert columns["customers"][-5:] == ["marketing_consent", "origin_file", "origin_row", "source_file", "source_row"]
    assert columns["events"][:4] == ["event_id", "customer_id", "anonymous_id", "occurred_at"]
    assert columns["quarantine"] == ["source_file", "source_row", "raw_record", "reason"]
    assert conn.execute("SELECT currency, status FROM raw.orders").fetchall() == [(None, None)]


@pytest.mark.parametrize(
    ("raw_consent", "consent"),
    [
        ("true", True),
        ("YES", True),
        ("1", True),
        ("y", True),
        ("False", False),
        ("no", False),
        ("0", False),
        ("N", False),
        ("maybe", None),
        ("", None),
    ],
)
def test_marketing_consent_words_are_read_and_anything_else_is_unknown(conn, tmp_path, raw_consent, consent):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER)
    write(tmp_path, "customers.csv", f"customer_id,marketing_consent\nc1,{raw_consent}\n")
    ingest(conn, tmp_path)
    assert conn.execute("SELECT marketing_consent FROM raw.customers").fetchall() == [(consent,)]


def test_customers_with_an_invalid_signup_date_are_quarantined(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER)
    write(tmp_path, "customers.csv", "customer_id,signed_up_at\nc1,2024-01-01\nc2,yesterday\n")
    ingest(conn, tmp_path)
    assert accepted_ids(conn, "customers", "customer_id") == ["c1"]
    assert reasons_by_row(conn, "customers.csv") == {2: "invalid_timestamp: signed_up_at='yesterday'"}


def test_parquet_files_follow_the_same_rules_as_csv(conn, tmp_path):
    conn.execute(
        f"""COPY (SELECT * FROM (VALUES ('o1', '0042', TIMESTAMPTZ '2024-03-01 10:00:00+02', 10.5),
                                       ('o2', '7', NULL, 3.0)) t(Order_ID, customer_id, ordered_at, order_total))
            TO '{tmp_path / "orders.parquet"}'"""
    )
    report = ingest(conn, tmp_path)
    assert orders_report(report).source_file == "orders.parquet"
    assert conn.execute("SELECT order_id, customer_id, ordered_at, order_total FROM raw.orders").fetchall() == [
        ("o1", "0042", datetime(2024, 3, 1, 8, 0), 10.5)
    ]
    assert reasons_by_row(conn, "orders.parquet") == {2: "missing_ordered_at"}


# The same messy records, each column typed as a Parquet writer might type it; the CSV twin holds each value's
# text (its VARCHAR cast). Planted defects, by file: implausible timestamps (before 1990 once converted to UTC,
# placeholders, infinity), non-finite and absurd amounts, a missing value, identical and conflicting duplicates,
# rows after the as-of date, surrounding spaces, lower-case currency, an id typed as a number.
MESSY_ORDERS = """('o1', '42', '2024-03-01 10:00:00.5+02', '10.5', 'eur', '0.1'),
    (' o2 ', '7', '2024-03-02', '0.30000000000000004', 'EUR', NULL),
    ('o3', '7', '1900-01-01', '5', 'EUR', NULL),
    ('o4', '7', 'infinity', '5', 'EUR', NULL),
    ('o5', '7', '1990-01-01 00:30:00+01', '5', 'EUR', NULL),
    ('o6', '7', '2024-03-03', 'nan', 'EUR', NULL),
    ('o7', '7', '2024-03-03', '-inf', 'EUR', NULL),
    ('o8', '7', '2024-03-03', '1e9', 'EUR', NULL),
    ('o9', '7', '2024-03-03', '-999999999.5', 'EUR', '-0.0'),
    ('o1', '42', '2024-03-01 10:00:00.5+02', '10.5', 'eur', '0.1'),
    ('o10', '7', '2024-03-04', '3', 'EUR', NULL),
    ('o10', '7', '2024-03-04', '4', 'EUR', NULL),
    ('o11', '7', '2024-05-01', '3', 'EUR', NULL),
    ('o12', NULL, '2024-03-05', '3', 'EUR', '9999999999'),
    ('o13', '8', '2024-03-06', '3', 'EUR', NULL), ('o14', '8', '2024-03-06', '4', 'EUR', NULL),
    ('o15', '8', '2024-03-07', '5', 'EUR', NULL), ('o16', '8', '2024-03-07', '6', 'EUR', NULL),
    ('o17', '8', '2024-03-08', '7', 'EUR', NULL)"""
MESSY_CUSTOMERS = """('c1', '2023-01-01 12:00:00', 'true'), ('c2', '1000-01-01', 'false'), ('c3', 'infinity', NULL),
    ('c4', '2024-05-01', 'true'), ('c1', '2023-01-01 12:00:00', 'false'), ('c5', NULL, NULL)"""
MESSY_EVENTS = """('e1', 'a1', '2024-03-01 10:00:00.123', 'page_view'), ('e1', 'a1', '2024-03-01 10:00:00.123', 'page_view'),
    ('e2', 'a1', '2024-04-02', 'page_view'), ('e3', NULL, '2024-03-01', 'page_view'),
    ('e4', 'a2', '1989-12-31 23:59:59', 'page_view'), ('e5', 'a2', '-infinity', 'page_view')"""


def write_messy_parquet(conn, landing: Path, types: dict[str, str]) -> None:
    """Write the messy records as Parquet files, each column cast to its type in `types` (default VARCHAR)."""
    tables = {
        "orders": (
            MESSY_ORDERS,
            ("order_id", "customer_id", "ordered_at", "order_total", "currency", "discount_amount"),
        ),
        "customers": (MESSY_CUSTOMERS, ("customer_id", "signed_up_at", "marketing_consent")),
        "events": (MESSY_EVENTS, ("event_id", "anonymous_id", "occurred_at", "event_type")),
    }
    for name, (values, columns) in tables.items():
        typed = ", ".join(f"try_cast({column} AS {types.get(column, 'VARCHAR')}) AS {column}" for column in columns)
        conn.execute(
            f"COPY (SELECT {typed} FROM (VALUES {values}) t({', '.join(columns)})) TO '{landing / name}.parquet'"
        )


def write_csv_twins(conn, parquet_landing: Path, csv_landing: Path) -> None:
    """Write each Parquet file as CSV holding every value's text, cast in UTC as the ingest casts typed values."""
    conn.execute("SET TimeZone = 'UTC'")
    for parquet in parquet_landing.glob("*.parquet"):
        csv = csv_landing / f"{parquet.stem}.csv"
        conn.execute(f"COPY (SELECT CAST(COLUMNS(*) AS VARCHAR) FROM read_parquet('{parquet}')) TO '{csv}' (HEADER)")


def raw_tables_without_file_names(conn) -> dict[str, list[tuple]]:
    tables = {
        name: conn.execute(f"SELECT * EXCLUDE (source_file) FROM raw.{name}").fetchall()
        for name in ("orders", "customers", "events")
    }
    tables["quarantine"] = conn.execute(
        "SELECT split_part(source_file, '.', 1), source_row, raw_record, reason FROM raw.quarantine"
    ).fetchall()
    return tables


@pytest.mark.parametrize(
    "types",
    [
        {
            "ordered_at": "TIMESTAMPTZ",
            "order_total": "DOUBLE",
            "discount_amount": "DECIMAL(12,2)",
            "customer_id": "INTEGER",
            "signed_up_at": "TIMESTAMP",
            "marketing_consent": "BOOLEAN",
            "occurred_at": "TIMESTAMP_MS",
        },
        {
            "ordered_at": "DATE",
            "order_total": "BIGINT",
            "discount_amount": "FLOAT",
            "signed_up_at": "TIMESTAMP_NS",
            "occurred_at": "TIMESTAMPTZ",
        },
        {
            "ordered_at": "TIMESTAMP",
            "order_total": "DECIMAL(18,8)",
            "discount_amount": "UBIGINT",
            "signed_up_at": "DATE",
            "occurred_at": "TIMESTAMP",
        },
        {},  # every column text
    ],
    ids=["tz-double-decimal-bool", "date-bigint-float-ns", "naive-decimal8-ubigint", "text"],
)
def test_typed_parquet_gives_the_same_tables_and_quarantine_as_csv_of_its_text(conn, tmp_path, types):
    parquet_dir, csv_dir = tmp_path / "parquet", tmp_path / "csv"
    parquet_dir.mkdir()
    csv_dir.mkdir()
    write_messy_parquet(conn, parquet_dir, types)
    write_csv_twins(conn, parquet_dir, csv_dir)
    conn.execute("SET TimeZone = 'America/New_York'")  # the ingest must not depend on the caller's zone
    from_csv_report = ingest(conn, csv_dir, as_of=date(2024, 4, 1))
    from_csv = raw_tables_without_file_names(conn)
    from_parquet_report = ingest(conn, parquet_dir, as_of=date(2024, 4, 1))
    assert raw_tables_without_file_names(conn) == from_csv
    assert [file.reasons for file in from_parquet_report.files] == [file.reasons for file in from_csv_report.files]
    # The records exercise the rules that typed values can break (how many depends on what the types can hold).
    codes = {code for file in from_csv_report.files for code in file.reasons}
    assert {"implausible_timestamp", "duplicate_identical", "duplicate_conflicting", "after_as_of"} <= codes


def test_typed_parquet_values_are_quoted_in_reasons_and_raw_record_as_their_text(conn, tmp_path):
    write_messy_parquet(conn, tmp_path, {"ordered_at": "TIMESTAMPTZ", "order_total": "DOUBLE"})
    ingest(conn, tmp_path, as_of=date(2024, 4, 1))
    reasons = reasons_by_row(conn, "orders.parquet")
    assert reasons[5] == "implausible_timestamp: ordered_at='1989-12-31 23:30:00+00'"
    assert reasons[6] == "non_finite_number: order_total='nan'"
    assert reasons[8] == "absurd_amount: order_total='1000000000.0'"
    raw_record = conn.execute("SELECT raw_record FROM raw.quarantine WHERE source_row = 6").fetchall()[0][0]
    assert json.loads(raw_record)["order_total"] == "nan"
    assert conn.execute("SELECT order_id, ordered_at FROM raw.orders WHERE order_id = 'o1'").fetchall() == [
        ("o1", datetime(2024, 3, 1, 8, 0, 0, 500000))
    ]


def test_a_parquet_column_named_file_row_number_is_data_and_rows_keep_their_numbers(conn, tmp_path):
    conn.execute(
        f"""COPY (SELECT * FROM (VALUES ('o1', 'c1', TIMESTAMP '2024-03-01', 10.0, 7), ('o2', 'c1', NULL, 3.0, 8))
                  t(order_id, customer_id, ordered_at, order_total, file_row_number))
            TO '{tmp_path / "orders.parquet"}'"""
    )
    ingest(conn, tmp_path)
    assert accepted_ids(conn) == ["o1"]
    raw_record = conn.execute("SELECT source_row, raw_record FROM raw.quarantine").fetchall()
    assert [(row, json.loads(record)["file_row_number"]) for row, record in raw_record] == [(2, "8")]


def test_a_parquet_file_with_a_damaged_data_page_raises_one_line_and_keeps_the_previous_tables(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER)
    ingest(conn, tmp_path)
    (tmp_path / "orders.csv").unlink()
    orders = tmp_path / "orders.parquet"
    conn.execute(
        f"""COPY (SELECT 'o' || i AS order_id, 'c1' AS customer_id, TIMESTAMP '2024-03-01' AS ordered_at,
                  i * 1.5 AS order_total FROM range(20000) t(i)) TO '{orders}'"""
    )
    # Defect: bytes inside the data pages are overwritten; the footer (names, types, row count) is intact.
    damaged = bytearray(orders.read_bytes())
    damaged[2000:6000] = b"Z" * 4000
    orders.write_bytes(bytes(damaged))
    with pytest.raises(LandingError, match=r"^orders\.parquet: cannot be read as Parquet \(") as error:
        ingest(conn, tmp_path)
    assert "\n" not in str(error.value)
    assert accepted_ids(conn) == ["o1"]


# --- the quarantine record, the summary, idempotence and crash safety -------------------------------------


def test_quarantine_raw_record_is_the_json_of_the_raw_text_values(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        "Order_ID,customer_id,ordered_at,order_total,note\n o1 ,c1,2024-02-30,10,\no2,c1,2024-02-28,10,\n",
    )
    write(tmp_path, "customers.csv", "customer_id\nc1\n")  # keeps the run alive with an explicit as_of
    ingest(conn, tmp_path, as_of=date(2024, 3, 1))
    raw_record = conn.execute("SELECT raw_record FROM raw.quarantine").fetchall()[0][0]
    assert json.loads(raw_record) == {
        "Order_ID": " o1 ",
        "customer_id": "c1",
        "ordered_at": "2024-02-30",
        "order_total": "10",
        "note": None,
    }


def test_quarantine_summary_counts_rows_per_file_and_reason(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        ORDERS_HEADER
        + GOOD_ORDER
        + "o2,c1,x,1,EUR,,,web,c\no3,c1,y,1,EUR,,,web,c\no4,,2024-03-01,1,EUR,,,web,c\n"
        + "o5,c1,2024-03-01,1,EUR,,,web,c\no6,c1,2024-03-01,1,EUR,,,web,c\n",
    )
    ingest(conn, tmp_path)
    summary = quarantine_summary(conn)
    assert summary.to_dict("records") == [
        {"source_file": "orders.csv", "reason": "invalid_timestamp", "rows": 2},
        {"source_file": "orders.csv", "reason": "missing_customer_id", "rows": 1},
    ]


def test_the_same_input_twice_gives_identical_tables(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + "o2,c2,bad,1,EUR,,,web,c\n" + GOOD_ORDER)
    write(tmp_path, "events.csv", "event_id,anonymous_id,occurred_at,event_type\ne1,a1,2024-03-01,page_view\n")
    tables = ("orders", "customers", "events", "quarantine", "ingest_log", "run_context")

    def snapshot() -> dict[str, list[tuple]]:
        return {table: conn.execute(f"SELECT * FROM raw.{table}").fetchall() for table in tables}

    first_report = ingest(conn, tmp_path)
    first = snapshot()
    second_report = ingest(conn, tmp_path)
    assert snapshot() == first
    assert second_report == first_report


def test_rows_are_stored_in_source_row_order_when_a_big_parquet_file_is_read_in_parallel(conn, tmp_path):
    conn.execute("SET threads = 2")
    conn.execute(
        f"""COPY (SELECT 'o' || (i - (i % 997 = 0)::INT) AS order_id, 'c1' AS customer_id,
                  TIMESTAMP '2024-03-01' AS ordered_at,
                  CASE WHEN i % 1009 = 0 THEN 'nan'::DOUBLE ELSE 1.0 END AS order_total  -- planted defects
                FROM range(200000) t(i)) TO '{tmp_path / "orders.parquet"}' (ROW_GROUP_SIZE 5000)"""
    )
    report = ingest(conn, tmp_path)
    assert set(orders_report(report).reasons) == {"duplicate_identical", "non_finite_number"}
    for table in ("orders", "quarantine"):
        rows = [row for (row,) in conn.execute(f"SELECT source_row FROM raw.{table}").fetchall()]
        assert rows == sorted(rows), table


def test_a_run_that_fails_leaves_the_previous_raw_tables_readable(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER)
    ingest(conn, tmp_path)
    # Defect on the next run: orders read fine, then events are unusable (after orders were staged).
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER + "o2,c1,2024-03-02,5,EUR,,,web,completed\n")
    write(tmp_path, "events.csv", "event_id,occurred_at\ne1,2024-03-01\n")
    with pytest.raises(LandingError, match=r"^events\.csv: required column 'event_type' is missing"):
        ingest(conn, tmp_path)
    assert accepted_ids(conn) == ["o1"]
    leftover = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_name LIKE '\\_stage\\_%' ESCAPE '\\' "
        "OR table_name LIKE '\\_landing\\_%' ESCAPE '\\'"
    ).fetchall()
    assert leftover == []


def test_reconciliation_holds_for_every_file_of_a_messy_landing_zone(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        ORDERS_HEADER + GOOD_ORDER + GOOD_ORDER + "o2,c1,2024-03-09,5,EUR,,,web,c\no3,,x,abc,EUR,,,web,c\n",
    )
    write(tmp_path, "customers.csv", "customer_id,email\nc1,a@b.c\nc1,other@b.c\n,\n")
    events = "e1,a1,2024-03-01,v\n"  # Defect: the same event twice.
    write(tmp_path, "events.csv", "event_id,anonymous_id,occurred_at,event_type\n" + events + events)
    report = ingest(conn, tmp_path, as_of=date(2024, 3, 5))
    for file in report.files:
        assert file.rows_in == file.rows_accepted + file.rows_quarantined, file
        assert file.rows_quarantined == sum(file.reasons.values()), file
    log = conn.execute("SELECT source_file, rows_in, rows_accepted, rows_quarantined FROM raw.ingest_log").fetchall()
    assert log == [("orders.csv", 4, 1, 3), ("customers.csv", 3, 0, 3), ("events.csv", 2, 1, 1)]


def test_horizon_days_must_be_positive(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS_HEADER + GOOD_ORDER)
    with pytest.raises(ValueError, match="horizon_days"):
        ingest_landing(conn, tmp_path, as_of=None, horizon_days=0, is_demo=False)


# --- scale ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_million_orders_ingest_without_pandas(tmp_path, monkeypatch):
    import pandas as pd

    def no_pandas(*args, **kwargs):
        raise AssertionError("the ingest must not round-trip a table through pandas")

    monkeypatch.setattr(pd, "DataFrame", no_pandas)
    conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    landing = tmp_path / "landing"
    landing.mkdir()
    conn.execute(
        f"""COPY (SELECT 'o' || i AS order_id, lpad(CAST(i % 500000 AS VARCHAR), 7, '0') AS customer_id,
                  strftime(TIMESTAMP '2022-01-01' + to_seconds(i * 30), '%Y-%m-%dT%H:%M:%SZ') AS ordered_at,
                  CASE WHEN i = 7 THEN 'abc'  -- the one planted defect
                       ELSE CAST(round((i % 20000) / 100.0 - 10, 2) AS VARCHAR) END AS order_total,
                  'EUR' AS currency
                FROM range(2000000) t(i)) TO '{landing / "orders.csv"}' (HEADER)"""
    )
    report = ingest_landing(conn, landing, as_of=None, horizon_days=365, is_demo=False)
    orders = report.files[0]
    assert (orders.rows_in, orders.rows_accepted, orders.reasons) == (2_000_000, 1_999_999, {"invalid_number": 1})
    assert conn.execute("SELECT customer_id FROM raw.orders WHERE order_id = 'o1'").fetchall() == [("0000001",)]
    conn.close()
