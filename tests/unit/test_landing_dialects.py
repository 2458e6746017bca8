"""Exports as shops really write them: European spreadsheets, day-first dates, epoch times, offsets, events without
ids, one row per line item, several currencies. Each test writes the file a user would have and asserts what they
would see (the typed value in raw.*, the quarantine reason, or the one-line error).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from landing import LandingError, LandingOptions, LandingReport, ingest_landing
from landing.ingest import CURRENCY_NOT_GIVEN, blank_currency_reason, choose_reporting_currency, currency_label
from landing.sources import detect_delimiter
from orchestration.lib.settings import SettingsError, load_settings


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    yield connection
    connection.close()


HEADER = "order_id,customer_id,ordered_at,order_total\n"


def write(landing: Path, name: str, content: str) -> None:
    (landing / name).write_text(content, encoding="utf-8")


def ingest(conn, landing: Path, as_of: date | None = None, **options) -> LandingReport:
    return ingest_landing(conn, landing, as_of, horizon_days=365, is_demo=False, options=LandingOptions(**options))


def report_of(report: LandingReport, table: str):
    return next(file for file in report.files if file.table_name == table)


def rows(conn, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def reasons(conn, source_file: str = "orders.csv") -> dict[int, str]:
    return dict(rows(conn, f"SELECT source_row, reason FROM raw.quarantine WHERE source_file = '{source_file}'"))


# --- European and spreadsheet CSVs -------------------------------------------------------------------------


def test_a_european_spreadsheet_export_is_read_whole(conn, tmp_path):
    # The issue's file: ';' delimiter, decimal commas (with a thousands point), day-first dates.
    write(
        tmp_path,
        "orders.csv",
        "order_id;customer_id;ordered_at;order_total;currency\n"
        "1;c1;31/12/2025;12,50;EUR\n"
        "2;c2;01/02/2025 14:30;1.234,50;EUR\n"
        "3;c1;15.03.2025;-3;EUR\n",
    )
    report = ingest(conn, tmp_path)
    assert rows(conn, "SELECT order_id, ordered_at, order_total FROM raw.orders ORDER BY source_row") == [
        ("1", datetime(2025, 12, 31), 12.5),
        ("2", datetime(2025, 2, 1, 14, 30), 1234.5),
        ("3", datetime(2025, 3, 15), -3.0),
    ]
    assert report_of(report, "orders").notes == (
        "delimiter ';' (detected)",
        "ordered_at: numeric dates read as DMY (detected)",
        "amounts read with a decimal comma (1.234,50)",
    )


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("a,b\n1,2\n", ","),
        ("a;b\n1;2,5\n", ";"),  # the decimal comma does not make it comma-separated
        ("a\tb\n1\t2\n", "\t"),
        ("a|b\n1|2\n", "|"),
        ('a;b\n"x;y";2\n', ";"),  # quotes honoured
        ("customer_id\nc1\n", ","),  # one column
        ("a,b;c\n1,2;3\n", ","),  # both split every line in 2: the first of , ; tab | wins
    ],
)
def test_the_delimiter_is_detected_from_the_header_and_first_records(text, delimiter):
    assert detect_delimiter(text, complete=True) == delimiter


def test_a_forced_delimiter_wins_over_detection(conn, tmp_path):
    write(tmp_path, "orders.csv", "order_id|customer_id|ordered_at|order_total\no1|c1|2024-03-01|10\n")
    ingest(conn, tmp_path, csv_delimiter="|")
    assert rows(conn, "SELECT order_id FROM raw.orders") == [("o1",)]
    with pytest.raises(LandingError, match="required column 'order_id' is missing"):
        ingest(conn, tmp_path, csv_delimiter=";")


def test_a_semicolon_file_with_a_stray_delimiter_names_the_line_and_the_delimiter(conn, tmp_path):
    write(tmp_path, "orders.csv", "order_id;customer_id;ordered_at;order_total\no1;c1;2024-03-01;10\no2;c1;x;y;5\n")
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path)
    assert str(error.value) == (
        "orders.csv: line 3 has 5 fields but the header has 4 "
        "(not valid CSV: quote values that contain the delimiter ';')"
    )


@pytest.mark.parametrize(
    ("totals", "expected", "quarantined"),
    [
        (['"1,234.50"', "12.5"], [1234.5, 12.5], {}),  # comma-separated: thousands comma, decimal point
        (['"12,50"', '"3,5"'], [12.5, 3.5], {}),  # consistently comma-decimal, quoted
        (
            ["12.50", "3.25", '"7,5"'],  # mixed: the majority (point) wins, the other is quarantined
            [12.5, 3.25],
            {3: "invalid_number: order_total='7,5'"},
        ),
        (["1234", '"1,234"'], [1234.0, 1234.0], {}),  # no proof either way in a comma file: a point, `1,234` thousands
    ],
)
def test_amount_decimal_marks_are_decided_per_file(conn, tmp_path, totals, expected, quarantined):
    lines = "".join(f"o{i},c1,2024-03-01,{total}\n" for i, total in enumerate(totals, start=1))
    write(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,order_total\n" + lines)
    ingest(conn, tmp_path)
    assert [total for (total,) in rows(conn, "SELECT order_total FROM raw.orders ORDER BY source_row")] == expected
    assert reasons(conn) == quarantined


def test_in_a_semicolon_file_without_proof_a_point_is_a_thousands_separator(conn, tmp_path):
    semicolons = HEADER.replace(",", ";")
    write(tmp_path, "orders.csv", semicolons + "o1;c1;2024-03-01;1.234\no2;c1;2024-03-01;7\n")
    ingest(conn, tmp_path)
    assert rows(conn, "SELECT order_total FROM raw.orders ORDER BY source_row") == [(1234.0,), (7.0,)]


# --- dates and times ---------------------------------------------------------------------------------------


def test_a_month_first_file_is_read_month_first(conn, tmp_path):
    write(tmp_path, "orders.csv", HEADER + "o1,c1,12/31/2025,1\no2,c1,01/02/2025,1\n")
    report = ingest(conn, tmp_path)
    assert rows(conn, "SELECT ordered_at FROM raw.orders ORDER BY source_row") == [
        (datetime(2025, 12, 31),),
        (datetime(2025, 1, 2),),
    ]
    assert "ordered_at: numeric dates read as MDY (detected)" in report_of(report, "orders").notes


def test_ambiguous_numeric_dates_are_refused_with_the_reason_and_the_error_names_it(conn, tmp_path):
    # Every date fits both orders: segmint will not guess.
    write(tmp_path, "orders.csv", HEADER + "o1,c1,01/02/2025,1\no2,c1,03/04/2025,1\n")
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path)
    assert str(error.value) == (
        "orders.csv: no order passed validation (2 rows, all quarantined), so the as-of date cannot be derived; "
        "top reasons: ambiguous_date x2 (e.g. row 1: ambiguous_date: ordered_at='01/02/2025' (no day above 12 "
        "tells day-first from month-first; set SEGMINT_DATE_FORMAT=DMY or MDY))"
    )
    ingest(conn, tmp_path, date_format="MDY")
    assert rows(conn, "SELECT ordered_at FROM raw.orders ORDER BY source_row") == [
        (datetime(2025, 1, 2),),
        (datetime(2025, 3, 4),),
    ]


def test_a_file_mixing_day_first_and_month_first_dates_quarantines_them(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        "order_id,customer_id,ordered_at,order_total\n"
        + "".join(f"o{i},c1,2024-03-0{i},1\n" for i in range(1, 5))
        + "o5,c1,31/12/2025,1\no6,c1,12/31/2025,1\n",
    )
    ingest(conn, tmp_path, as_of=date(2026, 1, 1))
    assert reasons(conn)[5].startswith("ambiguous_date: ordered_at='31/12/2025' (the file has both day-first and")


def test_a_strptime_date_format_setting_is_applied(conn, tmp_path):
    write(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,order_total\no1,c1,05.03.2025 10h15,1\n")
    ingest(conn, tmp_path, date_format="%d.%m.%Y %Hh%M")
    assert rows(conn, "SELECT ordered_at FROM raw.orders") == [(datetime(2025, 3, 5, 10, 15),)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1709287200", datetime(2024, 3, 1, 10, 0)),  # epoch seconds
        ("1709287200.5", datetime(2024, 3, 1, 10, 0, 0, 500000)),
        ("1709287200123", datetime(2024, 3, 1, 10, 0, 0, 123000)),  # milliseconds
        ("1709287200123456", datetime(2024, 3, 1, 10, 0, 0, 123456)),  # microseconds (GA4 event_timestamp)
        ("1709287200123456789", datetime(2024, 3, 1, 10, 0, 0, 123456)),  # nanoseconds
        ("20240301", datetime(2024, 3, 1)),  # YYYYMMDD (GA4 event_date)
        ("2024-03-01T12:00:00+0200", datetime(2024, 3, 1, 10, 0)),  # offsets, with or without colon
        ("2024-03-01T12:00:00+02", datetime(2024, 3, 1, 10, 0)),
        ("2024-03-01T04:30:00-05:30", datetime(2024, 3, 1, 10, 0)),
        ("2024-03-01T10:00:00.000Z", datetime(2024, 3, 1, 10, 0)),
        ("2024-03-01 11:00:00 Europe/Paris", datetime(2024, 3, 1, 10, 0)),
        # A space before the offset (Ruby's Time#to_s, Shopify's `Created at`): was invalid_timestamp.
        ("2024-03-01 12:00:00 +0200", datetime(2024, 3, 1, 10, 0)),
        ("2024-03-01 05:00:00 -05:00", datetime(2024, 3, 1, 10, 0)),
    ],
)
def test_epoch_numbers_and_iso_8601_with_offsets_are_timestamps(conn, tmp_path, value, expected):
    write(tmp_path, "orders.csv", f"order_id,customer_id,ordered_at,order_total\no1,c1,{value},1\n")
    ingest(conn, tmp_path)
    assert rows(conn, "SELECT ordered_at FROM raw.orders") == [(expected,)]


def test_epoch_numbers_outside_the_plausible_window_are_implausible(conn, tmp_path):
    write(tmp_path, "orders.csv", HEADER + "o1,c1,2024-03-01,1\no2,c1,0,1\no3,c1,2024-03-01,1\n")
    ingest(conn, tmp_path)
    assert reasons(conn) == {2: "implausible_timestamp: ordered_at='0'"}


# --- events without ids, exact duplicates ------------------------------------------------------------------

ORDERS = "order_id,customer_id,ordered_at,order_total\no1,c1,2024-03-01,10\n"
EVENTS_NO_ID = (
    "customer_id,occurred_at,event_type,page\n"
    "c1,2024-03-01T10:00:00Z,catalog,/a\n"
    "c1,2024-03-01T10:00:00Z,catalog,/a\n"  # exact duplicate of row 1
    "c1,2024-03-01T10:00:00Z,catalog,/b\n"  # same contract values, another page: a distinct event
    "c1,2024-03-01T10:05:00Z,cart,/cart\n"
)


def test_events_without_event_id_get_deterministic_surrogate_ids_and_exact_duplicates_are_kept_once(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS)
    write(tmp_path, "events.csv", EVENTS_NO_ID)
    report = ingest(conn, tmp_path)
    events = report_of(report, "events")
    first = rows(conn, "SELECT event_id, source_row FROM raw.events ORDER BY source_row")
    assert [row for _, row in first] == [1, 3, 4]
    assert len({event_id for event_id, _ in first}) == 3 and all(e.startswith("sg_") for e, _ in first)
    assert reasons(conn, "events.csv") == {2: "duplicate_identical: same values first seen at row 1"}
    assert (events.rows_in, events.rows_accepted, events.rows_quarantined, events.ids_generated) == (4, 3, 1, 3)
    assert events.reasons == {"duplicate_identical": 1}
    assert events.missing_columns == (
        "anonymous_id",
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
    assert any(note.startswith("no event_id column: ids generated") for note in events.notes)
    log = "SELECT rows_in, rows_accepted, ids_generated FROM raw.ingest_log WHERE table_name = 'events'"
    assert rows(conn, log) == [(4, 3, 3)]
    # The same file again, and a re-export with columns reordered and timestamps in another zone: the same ids.
    ingest(conn, tmp_path)
    assert rows(conn, "SELECT event_id, source_row FROM raw.events ORDER BY source_row") == first
    write(
        tmp_path,
        "events.csv",
        "event_type,occurred_at,customer_id,page\n"
        "catalog,2024-03-01T11:00:00+01:00,c1,/a\ncatalog,2024-03-01T11:00:00+01:00,c1,/a\n"
        "catalog,2024-03-01T11:00:00+01:00,c1,/b\ncart,2024-03-01T11:05:00+01:00,c1,/cart\n",
    )
    ingest(conn, tmp_path)
    assert rows(conn, "SELECT event_id, source_row FROM raw.events ORDER BY source_row") == first


def test_events_with_an_event_id_column_keep_the_id_rules(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS)
    write(tmp_path, "events.csv", "event_id,customer_id,occurred_at,event_type\n,c1,2024-03-01,x\ne2,c1,2024-03-01,x\n")
    report = ingest(conn, tmp_path)
    assert reasons(conn, "events.csv") == {1: "missing_event_id"}
    assert report_of(report, "events").ids_generated == 0


# --- one row per line item ---------------------------------------------------------------------------------

LINE_ITEMS = (
    "order_id,customer_id,ordered_at,order_total,currency,sku,quantity\n"
    "1001,c1,2024-03-01,60.00,EUR,A,1\n"  # order 1001: three line items repeating the order total
    "1001,c1,2024-03-01,60.00,EUR,B,2\n"
    "1001,c1,2024-03-01,60.00,EUR,C,1\n"
    "1001,c1,2024-03-01,60.00,EUR,C,1\n"  # an exact copy of the line above: counted, kept once
    "1002,c2,2024-03-02,15.00,EUR,A,1\n"
    "1003,c2,2024-03-02,20.00,EUR,A,1\n"  # conflicting: same order id, two totals
    "1003,c2,2024-03-02,25.00,EUR,B,1\n"
    "1004,c3,2024-03-03,5.00,EUR,A,1\n"
)


def test_line_item_orders_are_merged_into_one_order_and_counts_reconcile(conn, tmp_path):
    write(tmp_path, "orders.csv", LINE_ITEMS)
    report = ingest(conn, tmp_path)
    orders = report_of(report, "orders")
    assert rows(conn, "SELECT order_id, order_total, source_row FROM raw.orders ORDER BY source_row") == [
        ("1001", 60.0, 1),
        ("1002", 15.0, 5),
        ("1004", 5.0, 8),
    ]
    assert reasons(conn) == {
        4: "duplicate_identical: order_id='1001' first seen at row 3",
        6: "duplicate_conflicting: order_id='1003' has 2 copies with different values",
        7: "duplicate_conflicting: order_id='1003' has 2 copies with different values",
    }
    # rows in = accepted (orders + merged line rows) + quarantined
    assert (orders.rows_in, orders.rows_accepted, orders.rows_merged, orders.rows_quarantined) == (8, 5, 2, 3)
    assert rows(conn, "SELECT rows_in, rows_accepted, rows_quarantined, rows_merged FROM raw.ingest_log") == [
        (8, 5, 3, 2)
    ]


def test_line_totals_without_an_order_total_are_summed_and_a_bad_line_quarantines_its_order(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        "Order ID,Customer ID,Ordered At,Line Total,Product\n"  # spreadsheet-style names
        "2001,c1,2024-03-01,10.00,A\n2001,c1,2024-03-01,5.50,B\n2001,c1,2024-03-01,5.50,B\n"
        "2002,c1,2024-03-02,7,A\n2002,c1,2024-03-02,oops,B\n"
        "2003,c2,2024-03-02,8,A\n2003,c2,2024-03-02,8,B\n2004,c2,2024-03-03,1,A\n",
    )
    report = ingest(conn, tmp_path)
    assert rows(conn, "SELECT order_id, order_total FROM raw.orders ORDER BY source_row") == [
        ("2001", 15.5),
        ("2003", 16.0),
        ("2004", 1.0),
    ]
    assert reasons(conn) == {
        3: "duplicate_identical: order_id='2001' first seen at row 2",
        4: "incomplete_order: order_id='2002' has a quarantined line at row 5",
        5: "invalid_number: order_total='oops'",
    }
    orders = report_of(report, "orders")
    assert orders.rows_in == orders.rows_accepted + orders.rows_quarantined
    assert "order_total = sum of line_total over each order's line items" in orders.notes


# --- several currencies ------------------------------------------------------------------------------------

MIXED = (
    "order_id,customer_id,ordered_at,order_total,currency,discount_amount\n"
    "o1,c1,2024-03-01,100,EUR,10\n"
    "o2,c1,2024-03-05,100,USD,10\n"
    "o3,c2,2024-03-20,100,USD,\n"
    "o4,c2,2024-03-02,100,GBP,\n"
    "o5,c3,2024-03-02,50,EUR,\n"
    "o6,c3,2024-03-03,50,EUR,\n"
    "o7,c3,2024-03-04,50,EUR,\n"
)


def test_mixed_currencies_without_rates_are_quarantined_never_summed(conn, tmp_path):
    write(tmp_path, "orders.csv", MIXED)
    report = ingest(conn, tmp_path, reporting_currency="EUR")
    assert report.reporting_currency == "EUR"
    assert rows(conn, "SELECT reporting_currency FROM raw.run_context") == [("EUR",)]
    assert set(report_of(report, "orders").reasons) == {"mixed_currency"}
    assert reasons(conn)[4] == (
        "mixed_currency: currency='GBP' is not the reporting currency EUR (add fx_rates.csv to convert it)"
    )
    assert rows(conn, "SELECT DISTINCT currency, fx_rate FROM raw.orders") == [("EUR", 1.0)]


def test_mixed_currencies_are_converted_with_the_rate_at_or_before_the_order_date(conn, tmp_path):
    write(tmp_path, "orders.csv", MIXED)
    write(
        tmp_path, "fx_rates.csv", "date,currency,rate\n2024-03-01,USD,0.90\n2024-03-10,usd,0.80\n2024-03-03,GBP,1.15\n"
    )
    report = ingest(conn, tmp_path, reporting_currency="EUR")
    assert rows(conn, "SELECT order_id, order_total, currency, fx_rate FROM raw.orders ORDER BY source_row") == [
        ("o1", 100.0, "EUR", 1.0),
        ("o2", 100.0, "USD", 0.9),
        ("o3", 100.0, "USD", 0.8),
        ("o5", 50.0, "EUR", 1.0),
        ("o6", 50.0, "EUR", 1.0),
        ("o7", 50.0, "EUR", 1.0),
    ]
    # GBP's first rate is after the order: no guess.
    assert reasons(conn) == {
        4: "missing_fx_rate: currency='GBP' has no rate to EUR in fx_rates.csv on or before 2024-03-02"
    }
    assert rows(conn, "SELECT date, currency, rate FROM raw.fx_rates ORDER BY source_row") == [
        (date(2024, 3, 1), "USD", 0.9),
        (date(2024, 3, 10), "USD", 0.8),
        (date(2024, 3, 3), "GBP", 1.15),
    ]
    assert report_of(report, "fx_rates").rows_accepted == 3


def test_bad_fx_rates_are_quarantined_with_their_reason(conn, tmp_path):
    write(tmp_path, "orders.csv", MIXED.replace("GBP", "EUR"))
    write(
        tmp_path,
        "fx_rates.csv",
        "date,currency,rate\n2024-03-01,USD,0.9\n2024-03-01,USD,0.95\n2024-02-01,USD,0\n2024-02-02,USD,x\n",
    )
    ingest(conn, tmp_path, reporting_currency="EUR")
    assert reasons(conn, "fx_rates.csv") == {
        1: "duplicate_conflicting: date, currency='2024-03-01', 'USD' has 2 copies with different values",
        2: "duplicate_conflicting: date, currency='2024-03-01', 'USD' has 2 copies with different values",
        3: "non_positive_number: rate='0'",
        4: "invalid_number: rate='x'",
    }
    assert set(reasons(conn).values()) == {
        "missing_fx_rate: currency='USD' has no rate to EUR in fx_rates.csv on or before 2024-03-05",
        "missing_fx_rate: currency='USD' has no rate to EUR in fx_rates.csv on or before 2024-03-20",
    }


# --- orders with no currency -------------------------------------------------------------------------------

# Three orders name EUR or USD; o3 and o4 name none, so each could be in either.
BLANK_IN_MIXED = (
    "order_id,customer_id,ordered_at,order_total,currency\n"
    "o1,c1,2024-03-01,100,EUR\n"
    "o2,c1,2024-03-02,100,EUR\n"
    "o3,c2,2024-03-03,100,\n"
    "o4,c2,2024-03-04,100,\n"
    "o5,c3,2024-03-05,100,USD\n"
    "o6,c3,2024-03-06,100,EUR\n"
)
AMBIGUOUS_EUR_USD = (
    "ambiguous_currency: currency='' while other orders are in EUR, USD (reporting currency EUR): which one is unknown"
)


@pytest.mark.parametrize("with_rates", [False, True])
@pytest.mark.parametrize("setting", [None, "EUR"])
def test_an_order_without_currency_in_a_multi_currency_file_is_quarantined_never_taken_as_the_reporting_one(
    conn, tmp_path, with_rates, setting
):
    # SEGMINT_CURRENCY names the currency amounts are reported in, not the blank order's: still ambiguous.
    write(tmp_path, "orders.csv", BLANK_IN_MIXED)
    if with_rates:
        write(tmp_path, "fx_rates.csv", "date,currency,rate\n2024-01-01,USD,0.9\n")
    report = ingest(conn, tmp_path, reporting_currency=setting)
    assert report.reporting_currency == "EUR"
    assert reasons(conn)[3] == reasons(conn)[4] == AMBIGUOUS_EUR_USD
    orders = report_of(report, "orders")
    assert orders.rows_in == orders.rows_accepted + orders.rows_quarantined == 6
    assert orders.reasons == (
        {"ambiguous_currency": 2} if with_rates else {"ambiguous_currency": 2, "mixed_currency": 1}
    )
    assert rows(conn, "SELECT count(*) FROM raw.orders WHERE currency IS NULL") == [(0,)]


def test_an_order_without_currency_in_a_one_currency_file_is_in_that_currency(conn, tmp_path):
    write(tmp_path, "orders.csv", BLANK_IN_MIXED.replace("USD", "EUR"))
    report = ingest(conn, tmp_path)
    assert report.reporting_currency == "EUR" and reasons(conn) == {}
    assert report_of(report, "orders").currencies == {"(none)": 2, "EUR": 4}


def test_an_order_without_currency_is_ambiguous_when_the_one_order_currency_is_not_the_set_one(conn, tmp_path):
    # Every named order is USD but SEGMINT_CURRENCY=EUR: a blank is more likely USD than EUR; no guess either way.
    write(tmp_path, "orders.csv", BLANK_IN_MIXED.replace("EUR", "USD"))
    write(tmp_path, "fx_rates.csv", "date,currency,rate\n2024-01-01,USD,0.9\n")
    report = ingest(conn, tmp_path, reporting_currency="EUR")
    assert set(reasons(conn)) == {3, 4}
    assert reasons(conn)[3].startswith("ambiguous_currency: currency='' while other orders are in USD (reporting")
    assert report_of(report, "orders").currencies == {"USD": 4}


def test_mostly_blank_currencies_in_a_multi_currency_file_stop_the_run(conn, tmp_path):
    orders = "order_id,customer_id,ordered_at,order_total,currency\no1,c1,2024-03-01,1,EUR\no2,c1,2024-03-02,1,GBP\n"
    write(tmp_path, "orders.csv", orders + "".join(f"b{i},c2,2024-03-0{i},1,\n" for i in range(3, 6)))
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path, reporting_currency="EUR")
    assert str(error.value).startswith(
        "orders.csv: 4 of 5 rows quarantined, more than half, so the file is probably not read as intended; "
        "top reasons: ambiguous_currency x3 (e.g. row 3: ambiguous_currency: currency='' while other orders are "
        "in EUR, GBP (reporting currency EUR)"
    )


@pytest.mark.parametrize("header", ["order_id,customer_id,ordered_at,order_total,currency\n", HEADER])
def test_a_shop_whose_orders_name_no_currency_keeps_it_null_and_says_so(conn, tmp_path, header):
    # A GA4/Segment export without currency, or an empty currency column: the amounts are summed (they can only
    # be in one currency), the reporting currency is NULL and a note asks for SEGMINT_CURRENCY.
    body = "o1,c1,2024-03-01,100\no2,c2,2024-03-02,50\n"
    write(tmp_path, "orders.csv", header + (body.replace("\n", ",\n") if "currency" in header else body))
    report = ingest(conn, tmp_path)
    assert report.reporting_currency is None and reasons(conn) == {}
    assert rows(conn, "SELECT reporting_currency FROM raw.run_context") == [(None,)]
    assert rows(conn, "SELECT count(*), sum(fx_rate) FROM raw.orders") == [(2, 2.0)]
    assert any(note.startswith("no order names a currency and SEGMINT_CURRENCY is not set") for note in
               report_of(report, "orders").notes)  # fmt: skip
    assert currency_label(report.reporting_currency) == CURRENCY_NOT_GIVEN == "not given (set SEGMINT_CURRENCY)"
    # Set, it names the currency and nothing is said.
    report = ingest(conn, tmp_path, reporting_currency="eur")
    assert report.reporting_currency == "EUR" == currency_label("EUR")
    assert not any("currency" in note for note in report_of(report, "orders").notes)
    assert rows(conn, "SELECT reporting_currency FROM raw.run_context") == [("EUR",)]


@pytest.mark.parametrize(
    ("reporting", "order_currencies", "ambiguous"),
    [
        (None, {}, False),  # no currency anywhere: every order is in the one (unnamed) currency
        ("EUR", {}, False),  # SEGMINT_CURRENCY names the file's one currency
        ("EUR", {"EUR"}, False),  # a one-currency shop
        ("EUR", {"EUR", "USD"}, True),  # several: a blank could be any
        ("EUR", {"USD"}, True),  # the one named currency is not the reporting one
    ],
)
def test_blank_currency_reason(reporting, order_currencies, ambiguous):
    assert (blank_currency_reason(reporting, order_currencies) is not None) == ambiguous


# --- which currency the rates are quoted against ----------------------------------------------------------

# The case found in a real shop: as many CHF as EUR orders, SEGMINT_CURRENCY unset, rates quoted against EUR.
EUR_AND_CHF = (
    "order_id,customer_id,ordered_at,order_total,currency\n"
    "o1,c1,2024-03-01,100,EUR\n"
    "o2,c1,2024-03-02,100,CHF\n"
    "o3,c2,2024-03-03,100,EUR\n"
    "o4,c2,2024-03-04,100,CHF\n"
)
CHF_TO_EUR = "date,currency,rate\n2024-03-01,CHF,1.05\n2024-03-01,USD,0.92\n"


def assert_counts_reconcile(report: LandingReport) -> None:
    for file in report.files:
        assert file.rows_in == file.rows_accepted + file.rows_quarantined + file.rows_suppressed, file.source_file


def test_without_segmint_currency_the_one_order_currency_without_rates_is_the_reporting_currency(conn, tmp_path):
    write(tmp_path, "orders.csv", EUR_AND_CHF)
    write(tmp_path, "fx_rates.csv", CHF_TO_EUR)
    report = ingest(conn, tmp_path)
    assert report.reporting_currency == "EUR"  # not CHF, the alphabetical tie-break
    assert rows(conn, "SELECT reporting_currency FROM raw.run_context") == [("EUR",)]
    assert rows(conn, "SELECT order_id, currency, fx_rate FROM raw.orders ORDER BY source_row") == [
        ("o1", "EUR", 1.0),
        ("o2", "CHF", 1.05),
        ("o3", "EUR", 1.0),
        ("o4", "CHF", 1.05),
    ]
    assert reasons(conn) == {}
    assert (
        "reporting currency EUR: the one order currency fx_rates.csv gives no rate for (the rates' evident target)"
        in report_of(report, "orders").notes
    )
    assert_counts_reconcile(report)


@pytest.mark.parametrize(
    "fx_rates",
    [None, "date,currency,rate\n", "date,currency,rate\n2024-03-01,CHF,0\n"],
    ids=["no file", "no rows", "no valid rows"],
)
def test_a_tie_without_valid_rates_stays_alphabetical(conn, tmp_path, fx_rates):
    write(tmp_path, "orders.csv", EUR_AND_CHF)
    if fx_rates is not None:
        write(tmp_path, "fx_rates.csv", fx_rates)
    report = ingest(conn, tmp_path)
    assert report.reporting_currency == "CHF"
    assert set(report_of(report, "orders").reasons) == {"missing_fx_rate" if fx_rates else "mixed_currency"}
    assert not any("fx_rates" in note for note in report_of(report, "orders").notes)
    assert_counts_reconcile(report)


@pytest.mark.parametrize(
    ("fx_rates", "why"),
    [
        (
            "date,currency,rate\n2024-03-01,CHF,1.05\n2024-03-01,EUR,1.08\n",
            "it gives rates for every order currency (CHF, EUR)",
        ),
        ("date,currency,rate\n2024-03-01,USD,0.92\n", "several order currencies have no rate in it (CHF, EUR)"),
    ],
    ids=["every currency rated", "several unrated"],
)
def test_rates_with_an_ambiguous_target_keep_the_commonest_currency_and_warn(conn, tmp_path, fx_rates, why):
    write(tmp_path, "orders.csv", EUR_AND_CHF)
    write(tmp_path, "fx_rates.csv", fx_rates)
    report = ingest(conn, tmp_path)  # a warning, not a stop
    assert report.reporting_currency == "CHF"
    assert (
        f"warning: the target currency of fx_rates.csv is ambiguous ({why}); reporting currency CHF is the "
        "currency of most orders (ties: alphabetical). Set SEGMINT_CURRENCY to the currency its rates are quoted "
        "against"
    ) in report_of(report, "orders").notes
    assert_counts_reconcile(report)


def test_segmint_currency_wins_over_the_rates_evident_target_when_the_rates_are_to_it(conn, tmp_path):
    write(tmp_path, "orders.csv", EUR_AND_CHF)
    write(tmp_path, "fx_rates.csv", CHF_TO_EUR)
    report = ingest(conn, tmp_path, reporting_currency="eur")
    assert report.reporting_currency == "EUR" and reasons(conn) == {}
    assert not any("fx_rates" in note for note in report_of(report, "orders").notes)


def test_segmint_currency_the_rates_quote_stops_the_run_naming_both_fixes(conn, tmp_path):
    # Regression: the rates give CHF 1.05 (they are to EUR) while SEGMINT_CURRENCY=CHF; every EUR order was
    # quarantined as missing_fx_rate and the run went on without a word about the contradiction.
    write(tmp_path, "orders.csv", EUR_AND_CHF)
    write(tmp_path, "fx_rates.csv", CHF_TO_EUR)
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path, reporting_currency="chf")
    assert str(error.value) == (
        "fx_rates.csv: SEGMINT_CURRENCY=CHF contradicts the rates: they give CHF itself a rate other than 1, so "
        "they are quoted against another currency, evidently EUR (the one order currency it gives no rate for); "
        "orders in EUR would be converted with them and reported as CHF, or quarantined; set SEGMINT_CURRENCY=EUR, "
        "or give rates in units of CHF"
    )


def test_a_reporting_currency_quoted_at_one_is_the_rates_base_not_a_contradiction(conn, tmp_path):
    write(tmp_path, "orders.csv", EUR_AND_CHF)
    write(tmp_path, "fx_rates.csv", CHF_TO_EUR + "2024-03-01,EUR,1\n")
    assert ingest(conn, tmp_path, reporting_currency="EUR").reporting_currency == "EUR"
    # Unset, EUR at 1 is the rates' base written out: the evident target, not an ambiguous "every currency rated".
    report = ingest(conn, tmp_path)
    assert report.reporting_currency == "EUR" and reasons(conn) == {}
    assert any(
        note.startswith("reporting currency EUR: the one order currency") for note in report_of(report, "orders").notes
    )


def test_rates_that_look_quoted_against_an_order_currency_other_than_the_setting_warn(conn, tmp_path):
    # SEGMINT_CURRENCY=USD, no USD order, rates for CHF only: they look quoted against EUR, whose orders have none.
    write(tmp_path, "orders.csv", EUR_AND_CHF)
    write(tmp_path, "fx_rates.csv", "date,currency,rate\n2024-03-01,CHF,1.05\n")
    report = ingest(conn, tmp_path, reporting_currency="USD")
    assert report.reporting_currency == "USD"
    assert report_of(report, "orders").reasons == {"missing_fx_rate": 2}
    assert (
        "warning: SEGMINT_CURRENCY=USD, but fx_rates.csv looks quoted against EUR (the one order currency it gives "
        "no rate for, and no order is in USD): its 2 order rows are quarantined as missing_fx_rate and the others "
        "converted with these rates as if they were to USD. If they are to EUR, set SEGMINT_CURRENCY=EUR; if they "
        "are to USD, add EUR's rates"
    ) in report_of(report, "orders").notes
    assert_counts_reconcile(report)


def test_an_order_currency_without_any_rate_to_the_setting_is_named_with_its_count(conn, tmp_path):
    write(tmp_path, "orders.csv", MIXED)
    write(tmp_path, "fx_rates.csv", "date,currency,rate\n2024-03-01,USD,0.90\n")
    report = ingest(conn, tmp_path, reporting_currency="EUR")
    assert (
        "warning: fx_rates.csv gives no rate to SEGMINT_CURRENCY=EUR for GBP: their 1 order rows are quarantined "
        "as missing_fx_rate"
    ) in report_of(report, "orders").notes


def test_when_most_orders_are_quarantined_for_it_the_stop_line_carries_the_rates_warning(conn, tmp_path):
    write(tmp_path, "orders.csv", EUR_AND_CHF + "o5,c3,2024-03-05,100,EUR\n")
    write(tmp_path, "fx_rates.csv", "date,currency,rate\n2024-03-01,CHF,1.05\n")
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path, reporting_currency="USD")
    message = str(error.value)
    assert message.startswith("orders.csv: 3 of 5 rows quarantined, more than half")
    assert "; warning: SEGMINT_CURRENCY=USD, but fx_rates.csv looks quoted against EUR" in message


@pytest.mark.parametrize(
    ("setting", "order_rows", "rated", "expected", "noted"),
    [
        ("usd", {"USD": 3}, {"EUR"}, "USD", False),  # SEGMINT_CURRENCY wins
        ("usd", {"EUR": 3}, {"EUR"}, "USD", False),  # ... and its rates convert every order
        ("usd", {"EUR": 3, "GBP": 1}, {"EUR"}, "USD", True),  # ... GBP has none (a warning), or the rates are to GBP
        ("usd", {"USD": 3, "GBP": 1}, {"EUR"}, "USD", True),  # GBP has no rate to USD (a warning)
        (None, {}, {"EUR"}, None, True),  # no order names a currency: a note says it is not given
        (None, {"EUR": 1, "CHF": 1}, set(), "CHF", False),  # no rates: most rows, ties alphabetical
        (None, {"EUR": 1, "CHF": 3}, set(), "CHF", False),
        (None, {"EUR": 5}, {"EUR", "USD"}, "EUR", False),  # one order currency: nothing is converted
        (None, {"EUR": 1, "CHF": 3, "GBP": 2}, {"CHF", "GBP"}, "EUR", True),  # the evident target, though rarest
        (None, {"EUR": 1, "CHF": 3}, {"EUR", "CHF"}, "CHF", True),  # ambiguous: every currency rated
        (None, {"EUR": 1, "CHF": 3, "GBP": 2}, {"GBP"}, "CHF", True),  # ambiguous: several unrated
    ],
)
def test_choose_reporting_currency(setting, order_rows, rated, expected, noted):
    currency, note = choose_reporting_currency(setting, order_rows, rated, "fx_rates.csv")
    assert (currency, note is not None) == (expected, noted)


# --- the one-line error when most rows are quarantined --------------------------------------------------------


def test_a_mostly_quarantined_orders_file_stops_naming_the_top_reasons_with_counts_and_an_example(conn, tmp_path):
    write(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,order_total\no0,c1,2024-03-01,1\n")
    ingest(conn, tmp_path)
    bad = "".join(f"o{i},c1,2024-13-0{i},1\n" for i in range(1, 5)) + "o5,c1,2024-03-02,abc\no6,,2024-03-02,1\n"
    write(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,order_total\no0,c1,2024-03-01,1\n" + bad)
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path)
    assert str(error.value) == (
        "orders.csv: 6 of 7 rows quarantined, more than half, so the file is probably not read as intended; "
        "top reasons: invalid_timestamp x4 (e.g. row 2: invalid_timestamp: ordered_at='2024-13-01'); "
        "invalid_number x1 (e.g. row 6: invalid_number: order_total='abc'); "
        "missing_customer_id x1 (e.g. row 7: missing_customer_id)"
    )
    assert rows(conn, "SELECT count(*) FROM raw.orders") == [(1,)]  # the previous tables stay


def test_rows_after_as_of_and_exact_duplicates_do_not_make_a_file_mostly_quarantined(conn, tmp_path):
    write(
        tmp_path,
        "orders.csv",
        "order_id,customer_id,ordered_at,order_total\no1,c1,2024-03-01,1\no1,c1,2024-03-01,1\no1,c1,2024-03-01,1\n"
        "o2,c1,2024-05-01,1\no3,c1,2024-05-02,1\n",
    )
    report = ingest(conn, tmp_path, as_of=date(2024, 3, 31))
    assert report_of(report, "orders").reasons == {"after_as_of": 2, "duplicate_identical": 2}


def test_a_mostly_quarantined_optional_file_gets_a_note_not_an_error(conn, tmp_path):
    write(tmp_path, "orders.csv", ORDERS)
    write(tmp_path, "customers.csv", "customer_id,signed_up_at\nc1,never\nc2,never\nc3,2024-01-01\n")
    report = ingest(conn, tmp_path)
    assert report_of(report, "customers").notes == (
        "2 of 3 rows quarantined; top reasons: "
        "invalid_timestamp x2 (e.g. row 1: invalid_timestamp: signed_up_at='never')",
    )


# --- settings ----------------------------------------------------------------------------------------------


def test_landing_settings_are_read_and_checked():
    settings = load_settings({"SEGMINT_CURRENCY": "eur", "SEGMINT_DATE_FORMAT": "dmy", "SEGMINT_CSV_DELIMITER": "tab"})
    assert (settings.currency, settings.date_format, settings.csv_delimiter) == ("EUR", "DMY", "\t")
    assert load_settings({}).currency is None
    for name, value in [("SEGMINT_CURRENCY", "euro"), ("SEGMINT_DATE_FORMAT", "YDM"), ("SEGMINT_CSV_DELIMITER", ":")]:
        with pytest.raises(SettingsError, match=name):
            load_settings({name: value})


def test_parquet_events_without_ids_and_line_item_orders_follow_the_same_rules(conn, tmp_path):
    csv_dir, parquet_dir = tmp_path / "csv", tmp_path / "parquet"
    csv_dir.mkdir()
    parquet_dir.mkdir()
    write(csv_dir, "orders.csv", LINE_ITEMS)
    write(csv_dir, "events.csv", EVENTS_NO_ID)
    for name in ("orders", "events"):
        conn.execute(
            f"COPY (SELECT * FROM read_csv('{csv_dir / name}.csv', all_varchar=true)) TO '{parquet_dir / name}.parquet'"
        )
    ingest(conn, csv_dir)
    from_csv = {t: rows(conn, f"SELECT * EXCLUDE (source_file) FROM raw.{t}") for t in ("orders", "events")}
    report = ingest(conn, parquet_dir)
    assert {t: rows(conn, f"SELECT * EXCLUDE (source_file) FROM raw.{t}") for t in ("orders", "events")} == from_csv
    assert (report_of(report, "orders").rows_merged, report_of(report, "events").ids_generated) == (2, 3)


def test_generated_ids_keep_rows_in_source_row_order_on_a_big_file(conn, tmp_path):
    # The occurrence-number window reorders rows; the raw tables must still be in record order.
    conn.execute("SET threads = 2")
    write(tmp_path, "orders.csv", ORDERS)
    conn.execute(
        f"""COPY (SELECT 'c' || (i % 1000) AS customer_id, '2024-02-01' AS occurred_at, 'v' || (i % 3) AS event_type
                  FROM range(300000) t(i)) TO '{tmp_path / "events.csv"}' (HEADER)"""
    )
    report = ingest(conn, tmp_path)
    assert report_of(report, "events").reasons == {"duplicate_identical": 297_000}
    for table in ("events", "quarantine"):
        source_rows = [row for (row,) in rows(conn, f"SELECT source_row FROM raw.{table}")]
        assert source_rows == sorted(source_rows), table
