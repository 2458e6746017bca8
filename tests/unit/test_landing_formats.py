"""Source formats (landing/formats/): GA4, Segment/RudderStack and Shopify exports read through ingest_landing.

The fixtures under tests/fixtures/formats/<format>/ were written from each format's public reference; every
planted defect is labelled in the fixture builder or in the test that relies on it.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from landing import LandingError, LandingOptions, ingest_landing
from landing.formats import detect_format
from landing.formats.common import refund_order_total_sql

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "formats"
GA4_FILE = "events_20251201.jsonl"
LOG_SQL = "SELECT source_file, table_name, rows_in, rows_accepted, rows_quarantined FROM raw.ingest_log"
EVENTS_SQL = "SELECT event_id, customer_id, event_type, page_url FROM raw.events ORDER BY event_id"


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    yield connection
    connection.close()


def copy_fixture(name: str, tmp_path: Path) -> Path:
    landing = tmp_path / name
    shutil.copytree(FIXTURES / name, landing)
    return landing


def ingest(conn, landing: Path, **kwargs):
    return ingest_landing(conn, landing, as_of=None, horizon_days=365, is_demo=False, **kwargs)


def rows(conn, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def assert_ingest_log_reconciles(conn) -> None:
    for source_file, table, rows_in, accepted, quarantined in rows(
        conn, "SELECT source_file, table_name, rows_in, rows_accepted, rows_quarantined FROM raw.ingest_log"
    ):
        assert rows_in == accepted + quarantined, (source_file, table)


# --- GA4 BigQuery export --------------------------------------------------------------------------


def test_ga4_events_keep_their_names_and_read_nested_params_items_device_and_traffic(conn, tmp_path):
    report = ingest(conn, copy_fixture("ga4", tmp_path))
    assert report.source_format == "ga4"
    first = rows(
        conn,
        "SELECT event_type, occurred_at::VARCHAR, anonymous_id, page_url, device, utm_source, utm_campaign "
        "FROM raw.events WHERE origin_row = 1",
    )
    assert first == [
        (
            "page_view",
            "2025-12-01 10:00:00",
            "1001.1764",
            "https://shop.example/collections/shoes",
            "mobile",
            "newsletter",
            "winter_sale",
        )
    ]
    # items[0].item_id is the product; without collected_traffic_source the first-touch traffic_source is used.
    assert rows(conn, "SELECT product_id, utm_source FROM raw.events WHERE origin_row = 2") == [
        ("SKU-RUNNER", "(direct)")
    ]
    assert rows(conn, "SELECT source_format FROM raw.run_context") == [("ga4",)]


def test_ga4_user_id_claims_the_whole_pseudo_id_history_but_a_shared_device_is_not_guessed(conn, tmp_path):
    ingest(conn, copy_fixture("ga4", tmp_path))
    by_line = dict(rows(conn, "SELECT origin_row, customer_id FROM raw.events"))
    # Lines 1-2 were sent before the login on line 3: same pseudo id, so they are U1's.
    assert by_line[1] == by_line[2] == by_line[3] == "U1"
    # Pseudo id 3003.1764 logged in as U2 and as U3: only events carrying a user_id get one.
    assert (by_line[8], by_line[12], by_line[13]) == ("U2", "U3", None)
    # A guest buyer (no user_id ever) is its own customer, and its events are too.
    assert by_line[5] == "2002.1764"


def test_ga4_purchases_are_orders_refunds_are_negative_rows_and_a_resent_purchase_is_quarantined(conn, tmp_path):
    ingest(conn, copy_fixture("ga4", tmp_path))
    assert rows(
        conn,
        "SELECT order_id, customer_id, order_total, currency, discount_code, status FROM raw.orders "
        "ORDER BY origin_row",
    ) == [
        ("T1", "U1", 59.9, "EUR", "WINTER10", "completed"),
        ("T1-R", "U1", -10.0, "EUR", None, "refunded"),
    ]
    quarantine = dict(rows(conn, f"SELECT source_row, reason FROM raw.quarantine WHERE source_file = '{GA4_FILE}'"))
    assert quarantine[6] == f"duplicate_transaction: transaction_id='T1' was first seen at {GA4_FILE} line 4"
    # T2 is in USD, the other orders in EUR: without fx_rates.csv it is never summed with them.
    [(t2,)] = rows(conn, "SELECT raw_record FROM raw.quarantine WHERE reason LIKE 'mixed_currency%'")
    assert '"order_id":"T2"' in t2.replace(" ", "")


def test_ga4_malformed_lines_and_bad_values_are_quarantined_with_file_line_and_reason(conn, tmp_path):
    ingest(conn, copy_fixture("ga4", tmp_path))
    quarantine = dict(rows(conn, f"SELECT source_row, reason FROM raw.quarantine WHERE source_file = '{GA4_FILE}'"))
    # Line 9 is cut off mid-record; line 10's event_timestamp is not microseconds; line 11 is blank (no record).
    assert quarantine[9] == "malformed_json: not valid JSON"
    assert quarantine[10] == "invalid_timestamp: occurred_at='yesterday'"
    assert rows(conn, LOG_SQL) == [
        (GA4_FILE, "events", 12, 10, 2),
        (GA4_FILE, "orders", 4, 2, 2),  # the re-sent purchase and the USD order (mixed_currency)
    ]


def test_ga4_parquet_and_gzip_exports_give_the_same_rows_as_json_lines(conn, tmp_path):
    ingest(conn, copy_fixture("ga4", tmp_path))
    expected = rows(conn, EVENTS_SQL)
    gz_dir = tmp_path / "gz"
    gz_dir.mkdir()
    with gzip.open(gz_dir / f"{GA4_FILE}.gz", "wb") as handle:
        handle.write((FIXTURES / "ga4" / GA4_FILE).read_bytes())
    ingest(conn, gz_dir)
    assert rows(conn, EVENTS_SQL) == expected
    # Parquet as BigQuery writes it: typed nested records (int_value BIGINT, event_timestamp INT64).
    parquet_dir = tmp_path / "parquet"
    parquet_dir.mkdir()
    lines = (FIXTURES / "ga4" / GA4_FILE).read_text().splitlines()
    valid_lines = [line for i, line in enumerate(lines) if i not in (8, 10)]  # the cut-off line and the blank one
    (tmp_path / "valid.jsonl").write_text("\n".join(valid_lines) + "\n")
    conn.execute(
        f"COPY (SELECT * REPLACE (try_cast(event_timestamp AS BIGINT) AS event_timestamp) "
        f"FROM read_json('{tmp_path / 'valid.jsonl'}')) TO '{parquet_dir / 'events_20251201.parquet'}'"
    )
    ingest(conn, parquet_dir)
    # Same surrogate event ids: they hash the parsed fields, not the file's bytes.
    assert rows(conn, EVENTS_SQL) == expected


def test_ga4_without_purchases_or_orders_file_stops_with_one_line(conn, tmp_path):
    (tmp_path / GA4_FILE).write_text(
        '{"event_name":"page_view","event_timestamp":"1764583200000000","user_pseudo_id":"p1"}\n'
    )
    with pytest.raises(LandingError, match="no purchase events and no orders.csv"):
        ingest(conn, tmp_path)


def test_ga4_next_to_an_orders_file_takes_orders_from_the_file(conn, tmp_path):
    landing = copy_fixture("ga4", tmp_path)
    (landing / "orders.csv").write_text("order_id,customer_id,ordered_at,order_total\nX1,U1,2025-12-01,5\n")
    report = ingest(conn, landing)
    assert report.source_format == "ga4"
    assert rows(conn, "SELECT order_id, source_file, origin_file FROM raw.orders") == [("X1", "orders.csv", None)]
    assert rows(conn, "SELECT count(*) FROM raw.events WHERE event_type = 'purchase'") == [(3,)]


# --- Segment / RudderStack ------------------------------------------------------------------------


def test_segment_identify_stitches_the_anonymous_history_and_merges_traits(conn, tmp_path):
    report = ingest(conn, copy_fixture("segment", tmp_path))
    assert report.source_format == "segment"
    events = rows(
        conn,
        "SELECT origin_row, event_id, customer_id, event_type, page_url, product_id FROM raw.events "
        "ORDER BY origin_row",
    )
    assert events[0] == (1, "m-01", "U1", "page", "https://shop.example/", None)
    assert events[1] == (2, "m-02", "U1", "Product Viewed", "https://shop.example/products/runner", "507f1f77")
    assert rows(conn, "SELECT utm_source, utm_campaign FROM raw.events WHERE event_id = 'm-01'") == [
        ("newsletter", "winter_sale")
    ]
    # A RudderStack call (same spec; no `timestamp`, so `originalTimestamp`) stitches the same way.
    rudder = "SELECT customer_id, occurred_at::VARCHAR, event_type FROM raw.events WHERE event_id = 'm-13'"
    assert rows(conn, rudder) == [("U1", "2025-12-01 09:03:00", "Product Added")]
    # Two identify calls fold into one customer: latest e-mail, the first call's name and address.
    assert rows(
        conn, "SELECT customer_id, email, first_name, last_name, postal_code, country, origin_row FROM raw.customers"
    ) == [("U1", "ada@example.com", "Ada", "Lovelace", "75001", "FR", 11)]


def test_segment_order_completed_refunded_and_cancelled_reconcile_revenue(conn, tmp_path):
    ingest(conn, copy_fixture("segment", tmp_path))
    orders = "SELECT order_id, customer_id, order_total, discount_amount, discount_code, status FROM raw.orders"
    assert rows(conn, orders + " ORDER BY origin_row") == [
        ("O1", "U1", 100.0, 5.0, "WINTER5", "completed"),
        ("O2", "anon-2", 30.0, None, None, "completed"),  # a guest buyer: the anonymousId is the customer
        ("O1-R", "U1", -20.0, None, None, "refunded"),
        ("O3", "U1", 50.0, None, None, "cancelled"),  # an Order Cancelled call names O3
    ]
    revenue = rows(conn, "SELECT sum(order_total) FROM raw.orders WHERE status <> 'cancelled'")[0][0]
    assert revenue == 100 + 30 - 20


def test_segment_unsupported_calls_and_broken_lines_are_quarantined_and_counts_reconcile(conn, tmp_path):
    ingest(conn, copy_fixture("segment", tmp_path))
    assert dict(rows(conn, "SELECT source_row, split_part(reason, ':', 1) FROM raw.quarantine")) == {
        9: "unsupported_call_type",
        10: "malformed_json",
        12: "invalid_timestamp",
    }
    assert rows(conn, "SELECT table_name, rows_in, rows_accepted, rows_quarantined FROM raw.ingest_log") == [
        # Two identify calls fold into one customer row: counts are of the rows the calls became.
        ("customers", 1, 1, 0),
        ("events", 11, 8, 3),
        ("orders", 4, 4, 0),
    ]


# --- Shopify admin exports ------------------------------------------------------------------------


def shopify_file_revenue(landing: Path) -> float:
    """sum(Total) - sum(Refunded Amount) over non-cancelled orders with a numeric Total, from the file itself."""
    with (landing / "orders_export.csv").open(newline="") as handle:
        first_rows = {}
        for row in csv.DictReader(handle):
            if row["Name"] and row["Name"] not in first_rows:
                first_rows[row["Name"]] = row
    revenue = 0.0
    for row in first_rows.values():
        try:
            total = float(row["Total"])
        except ValueError:
            continue
        if not row["Cancelled at"]:
            revenue += total - float(row["Refunded Amount"] or 0)
    return revenue


def test_shopify_line_items_aggregate_to_orders_with_refund_rows_and_cancellations(conn, tmp_path):
    landing = copy_fixture("shopify", tmp_path)
    report = ingest(conn, landing)
    assert report.source_format == "shopify"
    orders = (
        "SELECT order_id, customer_id, ordered_at::VARCHAR, order_total, discount_code, channel, status FROM raw.orders"
    )
    assert rows(conn, orders + " ORDER BY origin_row, order_id") == [
        ("#1001", "7001", "2025-11-01 09:00:00", 60.0, "WELCOME", "web", "completed"),
        ("#1002", "7002", "2025-11-03 17:00:00", 40.0, None, "web", "completed"),
        ("#1002-R", "7002", "2025-11-03 17:00:00", -15.0, None, "web", "refunded"),
        ("#1003", "7001", "2025-11-05 08:00:00", 25.0, None, "web", "cancelled"),
        ("#1005", "carol@example.com", "2025-11-08 08:00:00", 10.0, None, "web", "completed"),
    ]
    revenue = rows(conn, "SELECT sum(order_total) FROM raw.orders WHERE status <> 'cancelled'")[0][0]
    assert revenue == pytest.approx(shopify_file_revenue(landing)) == pytest.approx(95.0)


def test_shopify_customers_and_bad_line_rows(conn, tmp_path):
    ingest(conn, copy_fixture("shopify", tmp_path))
    customers = "SELECT customer_id, email, first_name, postal_code, country, marketing_consent FROM raw.customers"
    assert rows(conn, customers) == [
        ("7001", "alice@example.com", "Alice", "75001", "FR", True),
        ("7002", "bob@example.com", "Bob", "02101", "US", False),
    ]
    assert dict(rows(conn, "SELECT source_row, split_part(reason, ':', 1) FROM raw.quarantine")) == {
        6: "missing_name",
        7: "invalid_number",
    }
    assert rows(conn, LOG_SQL) == [
        ("customers_export.csv", "customers", 2, 2, 0),
        # 8 line rows: 5 orders + 1 refund row (accepted: 5), the #1004 order and the nameless line (quarantined).
        ("orders_export.csv", "orders", 7, 5, 2),
    ]


# --- detection and the override -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ga4", "segment", "shopify"])
def test_each_fixture_folder_is_detected_and_reconciles(conn, tmp_path, name):
    landing = copy_fixture(name, tmp_path)
    assert detect_format(landing) == name
    ingest(conn, landing)
    assert_ingest_log_reconciles(conn)
    # The run's blocking check compares the log with the raw tables and the quarantine, per source file.
    from orchestration.defs.quality_checks import reconcile_ingest

    assert reconcile_ingest(conn)["reconciles"].all()
    # Every accepted row can be traced to its source file and record.
    for table in ("orders", "customers", "events"):
        assert rows(conn, f"SELECT count(*) FROM raw.{table} WHERE origin_file IS NULL OR origin_row IS NULL") == [(0,)]


def test_a_segmint_folder_falls_through_to_the_contract(conn, tmp_path):
    (tmp_path / "orders.csv").write_text("order_id,customer_id,ordered_at,order_total\no1,c1,2024-03-01,10\n")
    report = ingest(conn, tmp_path)
    assert report.source_format == "segmint"
    assert rows(conn, "SELECT source_format FROM raw.run_context") == [("segmint",)]


def test_the_override_names_the_format_and_a_wrong_one_fails_in_one_line(conn, tmp_path):
    landing = copy_fixture("segment", tmp_path)
    renamed = landing / "calls.ndjson"
    (landing / "events.jsonl").rename(renamed)
    assert ingest(conn, landing, source_format="segment").source_format == "segment"
    missing = r"^orders_export\.csv: file is missing from .*\(Shopify: Orders > Export\)$"
    with pytest.raises(LandingError, match=missing):
        ingest(conn, landing, source_format="shopify")
    with pytest.raises(LandingError, match=r"SEGMINT_SOURCE_FORMAT='sap' is not one of"):
        ingest(conn, landing, source_format="sap")


def test_a_folder_of_nothing_known_names_what_was_looked_for(conn, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LandingError) as error:
        ingest(conn, tmp_path)
    message = str(error.value)
    assert "no known landing format" in message and "orders_export.csv" in message and "\n" not in message


def test_translated_files_are_written_under_the_work_dir_when_given(conn, tmp_path):
    landing = copy_fixture("shopify", tmp_path)
    ingest(conn, landing, work_dir=tmp_path / "work")
    assert sorted(p.name for p in (tmp_path / "work" / "shopify").iterdir()) == ["customers.parquet", "orders.parquet"]


def test_the_source_format_setting_is_validated_in_one_line():
    from orchestration.lib.settings import SettingsError, load_settings

    assert load_settings({"SEGMINT_SOURCE_FORMAT": "GA4"}).source_format == "ga4"
    assert load_settings({}).source_format is None
    message = r"^SEGMINT_SOURCE_FORMAT='woo' is not one of segmint, ga4, segment, shopify$"
    with pytest.raises(SettingsError, match=message):
        load_settings({"SEGMINT_SOURCE_FORMAT": "woo"})


def test_the_landing_sensor_sees_json_lines_exports(tmp_path):
    from orchestration.defs.sensors import scan_landing

    for name in ("events_20251201.jsonl.gz", "tracks.ndjson", "orders_export.csv", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert sorted(scan_landing(tmp_path)) == ["events_20251201.jsonl.gz", "orders_export.csv", "tracks.ndjson"]


def test_a_failed_translation_leaves_no_temporary_folder(conn, tmp_path, monkeypatch):
    # Defect: a GA4 export without purchases and without orders.csv.
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / GA4_FILE).write_text('{"event_name":"page_view","event_timestamp":"1764583200000000"}\n')
    with pytest.raises(LandingError):
        ingest(conn, landing)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_mostly_unusable_translated_order_book_names_the_source_line_not_the_work_file_row(conn, tmp_path):
    # Found by the robustness sweep: the example was "row 2" of orders.parquet, a work file the user never wrote.
    landing = tmp_path / "segment"
    landing.mkdir()
    calls = [
        '{"type":"page","anonymousId":"a1","messageId":"m0","timestamp":"2025-12-01T08:00:00Z"}',
        '{"type":"track","event":"Order Completed","userId":"U1","messageId":"m1","timestamp":"2025-12-01T09:00:00Z",'
        '"properties":{"order_id":"O1","total":"19,99 EUR"}}',
    ]
    (landing / "export.ndjson").write_text("\n".join(calls) + "\n")
    with pytest.raises(LandingError) as error:
        ingest(conn, landing)
    assert "(e.g. export.ndjson line 2: invalid_number: order_total='19,99 EUR')" in str(error.value)


def ga4_purchase(i: int, transaction_id: str | None, pseudo_id: str | None = None, **extra) -> str:
    """One GA4 purchase record as BigQuery's JSON export writes it (no transaction_id when None)."""
    ecommerce = {"purchase_revenue": 10 + i} | (
        {"transaction_id": transaction_id} if transaction_id is not None else {}
    )
    record = {
        "event_date": "20251201",
        "event_timestamp": str(1764583200000000 + i * 1000000),
        "event_name": "purchase",
        "user_pseudo_id": pseudo_id or f"p{i}",
        "ecommerce": ecommerce,
    }
    return json.dumps(record | extra)


def test_ga4_purchases_without_a_transaction_id_keep_their_revenue_as_one_order_per_event(conn, tmp_path):
    # Regression: every such purchase was quarantined as missing_order_id, so a property that never sends
    # transaction_id stopped the run ("no order passed validation"). Before that, all `(not set)` purchases
    # became one order of the first buyer.
    landing = tmp_path / "ga4"
    landing.mkdir()
    lines = [
        ga4_purchase(0, "T1"),
        ga4_purchase(1, "(not set)"),  # GA4's placeholder when the tag sent none
        ga4_purchase(2, None, pseudo_id="p1"),  # the same visitor buys again: a second order, never merged
        ga4_purchase(3, ""),
    ]
    lines.append(lines[1])  # an exact copy of line 2 (the same event twice in the export): one order
    (landing / GA4_FILE).write_text("\n".join(lines) + "\n")
    report = ingest(conn, landing)
    orders = rows(conn, "SELECT order_id, customer_id, order_total, origin_row FROM raw.orders ORDER BY origin_row")
    assert [(customer, total, line) for _, customer, total, line in orders] == [
        ("p0", 10.0, 1),
        ("p1", 11.0, 2),
        ("p1", 12.0, 3),
        ("p3", 13.0, 4),
    ]
    order_ids = [order_id for order_id, *_ in orders]
    assert order_ids[0] == "T1"
    assert order_ids[1].startswith("ga4:p1:1764583201000000:") and order_ids[2].startswith("ga4:p1:1764583202000000:")
    assert len(set(order_ids)) == 4
    assert rows(conn, "SELECT source_row, split_part(reason, ':', 1) FROM raw.quarantine ORDER BY reason") == [
        (5, "duplicate_identical"),  # the copy's order
        (5, "duplicate_identical"),  # the copy's event
    ]
    # The copy names the source line it repeats, not a row of the translated work file.
    assert rows(conn, "SELECT reason FROM raw.quarantine WHERE reason LIKE '%order_id=%'") == [
        (f"duplicate_identical: order_id='{order_ids[1]}' first seen at {GA4_FILE} line 2",)
    ]
    # Counted and said: three accepted orders carry an id segmint generated.
    assert rows(conn, "SELECT table_name, rows_in, rows_accepted, ids_generated FROM raw.ingest_log") == [
        ("events", 5, 4, 0),
        ("orders", 5, 4, 3),
    ]
    [orders_report] = [f for f in report.files if f.table_name == "orders"]
    assert orders_report.ids_generated == 3
    assert any("without the source's order id" in note for note in orders_report.notes)
    assert_ingest_log_reconciles(conn)


def test_ga4_surrogate_order_ids_are_the_same_for_json_and_parquet_exports(conn, tmp_path):
    json_dir, parquet_dir = tmp_path / "json", tmp_path / "parquet"
    json_dir.mkdir()
    parquet_dir.mkdir()
    batch = {"stream_id": "42", "batch_event_index": "3", "batch_page_id": "1", "batch_ordering_id": "2"}
    (json_dir / GA4_FILE).write_text("\n".join([ga4_purchase(0, None, **batch), ga4_purchase(1, "T1")]) + "\n")
    ingest(conn, json_dir)
    expected = rows(conn, "SELECT order_id FROM raw.orders ORDER BY origin_row")
    conn.execute(
        f"COPY (SELECT * REPLACE (CAST(event_timestamp AS BIGINT) AS event_timestamp) "
        f"FROM read_json('{json_dir / GA4_FILE}')) TO '{parquet_dir / 'events_20251201.parquet'}'"
    )
    ingest(conn, parquet_dir)
    assert rows(conn, "SELECT order_id FROM raw.orders ORDER BY origin_row") == expected


def test_a_ga4_refund_without_a_transaction_id_still_lowers_revenue(conn, tmp_path):
    landing = tmp_path / "ga4"
    landing.mkdir()
    refund = json.loads(ga4_purchase(1, None, pseudo_id="p0"))
    refund["event_name"] = "refund"
    refund["ecommerce"] = {"refund_value": 4}
    (landing / GA4_FILE).write_text("\n".join([ga4_purchase(0, None), json.dumps(refund)]) + "\n")
    ingest(conn, landing)
    assert rows(conn, "SELECT order_total, status FROM raw.orders ORDER BY origin_row") == [
        (10.0, "completed"),
        (-4.0, "refunded"),
    ]
    assert rows(conn, "SELECT sum(ids_generated) FROM raw.ingest_log WHERE table_name = 'orders'") == [(2,)]


def test_segment_order_completed_without_order_id_is_an_order_per_message(conn, tmp_path):
    landing = tmp_path / "segment"
    landing.mkdir()
    calls = [
        {"event": "Order Completed", "messageId": "m1", "properties": {"order_id": "O1", "total": 20}},
        {"event": "Order Completed", "messageId": "m2", "properties": {"total": 30}},
        {"event": "Order Completed", "messageId": "m3", "properties": {"order_id": "", "revenue": 5}},
    ]
    lines = [
        json.dumps({"type": "track", "userId": "U1", "timestamp": f"2025-12-01T09:0{i}:00Z"} | call)
        for i, call in enumerate(calls)
    ]
    lines.append(lines[1])  # Segment delivered m2 twice (a retry): the same message, one order
    (landing / "export.ndjson").write_text("\n".join(lines) + "\n")
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, order_total FROM raw.orders ORDER BY origin_row") == [
        ("O1", 20.0),
        ("segment:m2", 30.0),
        ("segment:m3", 5.0),
    ]
    assert rows(conn, "SELECT source_row, split_part(reason, ':', 1) FROM raw.quarantine ORDER BY reason") == [
        (4, "duplicate_identical"),
        (4, "duplicate_identical"),
    ]
    assert rows(conn, "SELECT ids_generated FROM raw.ingest_log WHERE table_name = 'orders'") == [(2,)]
    assert_ingest_log_reconciles(conn)


def test_the_surrogate_order_id_rule_keeps_a_source_id_and_joins_the_event_identity_otherwise():
    from landing.formats.common import order_id_sql

    def value(order_id: str, identity: tuple[str, ...]) -> str:
        return duckdb.sql(f"SELECT {order_id_sql(order_id, 'ga4', identity)}").fetchall()[0][0]

    assert value("'T1'", ("'p1'", "1764583200000000")) == "T1"
    assert value("NULL", ("'p1'", "1764583200000000", "'c83b7245'")) == "ga4:p1:1764583200000000:c83b7245"
    # A missing part keeps its place: ids never shift into one another.
    assert value("NULL", ("NULL", "'1'")) == "ga4::1"


def test_the_orders_warning_check_counts_orders_under_generated_ids_and_never_blocks(conn, tmp_path):
    from orchestration.defs.quality_checks import check_orders_carry_source_ids
    from orchestration.defs.resources import Warehouse

    landing = tmp_path / "ga4"
    landing.mkdir()
    (landing / GA4_FILE).write_text("\n".join([ga4_purchase(0, "T1"), ga4_purchase(1, None)]) + "\n")
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as file_conn:
        ingest(file_conn, landing)
    result = check_orders_carry_source_ids(warehouse=Warehouse(path=str(warehouse)))
    assert (result.passed, result.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert result.metadata["orders_under_generated_ids"].value == 1
    assert result.description.startswith("1 orders (50.0% of 2) have no order id in the source")


# --- Shopify customers without Customer ID ---------------------------------------------------------


def test_shopify_customers_without_customer_id_join_their_orders_by_email_or_phone(conn, tmp_path):
    # Regression: a phone-only customer of an older customers export (no Customer ID column) was quarantined as
    # missing_customer_id while their orders were kept under the phone: customers and orders no longer joined.
    ingest(conn, copy_fixture("shopify_legacy", tmp_path))
    customers = dict(rows(conn, "SELECT first_name, customer_id FROM raw.customers"))
    assert customers == {"Alice": "alice@example.com", "Pat": "+35315550100"}
    orders = dict(rows(conn, "SELECT order_id, customer_id FROM raw.orders"))
    assert orders == {
        "#2001": "alice@example.com",
        "#2002": "+35315550100",  # the same phone written another way
        "#2003": "+35315550100",
        "#2004": "guest@example.com",  # guests: the order's own email, else its phone
        "#2005": "+33612345678",
    }
    # The one customer row with neither email nor phone has no identity at all.
    assert rows(conn, "SELECT source_file, source_row, split_part(reason, ':', 1) FROM raw.quarantine") == [
        ("customers_export.csv", 3, "missing_customer_id")
    ]
    joined = "SELECT count(*) FROM raw.orders JOIN raw.customers USING (customer_id)"
    assert rows(conn, joined) == [(3,)]
    assert_ingest_log_reconciles(conn)


# --- Real exports, round 2 (branch exports2) -------------------------------------------------------


def test_ga4_intraday_events_the_daily_table_also_holds_are_superseded_not_conflicting(conn, tmp_path):
    # Regression: a folder with events_20251201 and the streaming export events_intraday_20251201 (Google deletes
    # the intraday table only once the daily one is complete) quarantined every overlapping event as
    # duplicate_conflicting, both copies, because the intraday copy lacks the new users' traffic_source: the
    # visitors' behaviour and their purchase events were lost, and the intraday purchase was a duplicate_transaction.
    landing = tmp_path / "ga4"
    landing.mkdir()
    daily = [
        json.loads(ga4_purchase(0, "T1", traffic_source={"source": "google", "name": "(organic)"})),
        json.loads(ga4_purchase(1, None, event_name="view_item", traffic_source={"source": "google"})),
    ]
    intraday = [record | {"traffic_source": None} for record in daily]
    intraday.append(json.loads(ga4_purchase(2, "T2")))  # streamed after the daily table was cut: kept
    (landing / GA4_FILE).write_text("".join(json.dumps(r) + "\n" for r in daily))
    (landing / "events_intraday_20251201.jsonl").write_text("".join(json.dumps(r) + "\n" for r in intraday))
    ingest(conn, landing)
    assert rows(conn, "SELECT origin_file, origin_row, event_type, utm_source FROM raw.events ORDER BY 1, 2") == [
        (GA4_FILE, 1, "purchase", "google"),
        (GA4_FILE, 2, "view_item", "google"),
        ("events_intraday_20251201.jsonl", 3, "purchase", None),
    ]
    assert rows(conn, "SELECT order_id, order_total FROM raw.orders ORDER BY order_id") == [("T1", 10.0), ("T2", 12.0)]
    assert rows(conn, "SELECT source_file, source_row, reason FROM raw.quarantine ORDER BY source_row") == [
        (
            "events_intraday_20251201.jsonl",
            line,
            f"superseded_by_daily_table: the final copy of this event is {GA4_FILE} line {line}",
        )
        for line in (1, 2)
    ]
    assert rows(conn, LOG_SQL + " ORDER BY 1, 2") == [
        (GA4_FILE, "events", 2, 2, 0),
        (GA4_FILE, "orders", 1, 1, 0),
        ("events_intraday_20251201.jsonl", "events", 3, 1, 2),
        ("events_intraday_20251201.jsonl", "orders", 1, 1, 0),
    ]


def segment_call(call_type: str, message_id: str, minute: int, **fields) -> str:
    """One Segment call as its warehouse/S3 exports write it (analytics.js shape, UTC ISO timestamp)."""
    timestamp = f"2025-12-01T09:{minute:02d}:00.000Z"
    record = {"type": call_type, "messageId": message_id, "timestamp": timestamp, "receivedAt": timestamp}
    return json.dumps(record | fields)


def test_segment_alias_links_the_anonymous_history_to_the_user(conn, tmp_path):
    # Regression: an alias call (previousId -> userId, how Mixpanel-style setups and server-side sign-ups link
    # a visitor) was only quarantined, so the browsing before the sign-up never reached the buyer.
    landing = tmp_path / "segment"
    landing.mkdir()
    calls = [
        segment_call(
            "page", "m1", 0, anonymousId="anon-9", context={"page": {"url": "https://s.example/products/hat"}}
        ),
        segment_call("track", "m2", 1, anonymousId="anon-9", event="Product Viewed", properties={"product_id": "H"}),
        segment_call("alias", "m3", 2, previousId="anon-9", userId="U3"),
        segment_call(
            "track", "m4", 3, userId="U3", event="Order Completed", properties={"order_id": "O3", "total": 12}
        ),
    ]
    (landing / "calls.jsonl").write_text("\n".join(calls) + "\n")
    ingest(conn, landing)
    assert rows(conn, "SELECT event_id, customer_id FROM raw.events ORDER BY event_id") == [
        ("m1", "U3"),
        ("m2", "U3"),
        ("m4", "U3"),
    ]
    # The alias call is still no event, order or customer: counted as quarantined, with what it was used for.
    assert rows(conn, "SELECT source_row, reason FROM raw.quarantine") == [
        (
            3,
            "unsupported_call_type: type='alias' carries no event, order or customer "
            "(its previousId -> userId link is used for stitching)",
        )
    ]
    assert_ingest_log_reconciles(conn)


def test_segment_page_and_screen_names_are_the_page_type(conn, tmp_path):
    # Regression: a page/screen call's `name` was dropped, so a shop whose product URLs are not /products/...
    # (or an app, whose screens have no URL) showed no product page views at all.
    landing = tmp_path / "segment"
    landing.mkdir()
    calls = [
        segment_call("page", "m1", 0, userId="U1", name="Product", context={"page": {"url": "https://s.example/p/7"}}),
        segment_call("screen", "m2", 1, userId="U1", name="Product Detail", properties={"product_id": "7"}),
        segment_call("page", "m3", 2, userId="U1", properties={"name": "Home"}),
        segment_call("track", "m4", 3, userId="U1", event="Product Viewed", name="ignored"),
        segment_call("track", "m5", 4, userId="U1", event="Order Completed", properties={"order_id": "O1", "total": 5}),
    ]
    (landing / "calls.jsonl").write_text("\n".join(calls) + "\n")
    ingest(conn, landing)
    assert rows(conn, "SELECT event_id, event_type, page_type FROM raw.events ORDER BY event_id") == [
        ("m1", "page", "Product"),
        ("m2", "screen", "Product Detail"),
        ("m3", "page", "Home"),
        ("m4", "Product Viewed", None),
        ("m5", "Order Completed", None),
    ]


def test_shopify_zip_codes_and_phones_lose_the_apostrophe_shopify_writes_for_spreadsheets(conn, tmp_path):
    # Regression: Shopify writes `'02115` and `'+4915112345678` (so spreadsheets keep the zero and the plus);
    # the apostrophe was kept in raw.customers, so the postal code and phone hashed for the ad platforms were wrong.
    landing = tmp_path / "shop"
    landing.mkdir()
    (landing / "customers_export.csv").write_text(
        "First Name,Last Name,Email,Accepts Email Marketing,Default Address Country Code,Default Address Zip,"
        "Phone,Total Spent,Total Orders,Tax Exempt\n"
        "Ada,L,a@x.com,yes,DE,'01067,'+4915112345678,70.00,2,no\n"
        "Bob,M,b@x.com,no,US,'02115,,0.00,0,no\n"
    )
    (landing / "orders_export.csv").write_text(
        "Name,Email,Financial Status,Currency,Total,Created at,Lineitem quantity,Lineitem name,Billing Zip\n"
        "#1001,a@x.com,paid,EUR,55.00,2025-11-01 10:00:00 +0100,1,Runner,'01067\n"
    )
    ingest(conn, landing)
    assert rows(conn, "SELECT customer_id, phone, postal_code FROM raw.customers ORDER BY 1") == [
        ("a@x.com", "+4915112345678", "01067"),
        ("b@x.com", None, "02115"),
    ]


def test_segment_s3_logs_named_without_json_are_detected_and_read(conn, tmp_path):
    # Regression: Segment's S3 destination writes gzipped JSON lines named `<timestamp>.<id>.gz`; a folder of
    # them stopped with "no known landing format found".
    landing = tmp_path / "segment-logs"
    landing.mkdir()
    calls = [
        segment_call("track", "m1", 0, userId="U1", event="Product Viewed", properties={"product_id": "7"}),
        segment_call("track", "m2", 1, userId="U1", event="Order Completed", properties={"order_id": "O1", "total": 5}),
    ]
    (landing / "1764547200000.9f3a1c2e.gz").write_bytes(gzip.compress(("\n".join(calls) + "\n").encode()))
    (landing / "notes.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n"))  # not JSON lines: never read as calls
    assert detect_format(landing) == "segment"
    ingest(conn, landing)
    assert rows(conn, "SELECT origin_file, origin_row, event_id FROM raw.events ORDER BY 2") == [
        ("1764547200000.9f3a1c2e.gz", 1, "m1"),
        ("1764547200000.9f3a1c2e.gz", 2, "m2"),
    ]
    assert rows(conn, "SELECT order_id, order_total FROM raw.orders") == [("O1", 5.0)]


def test_segment_order_calls_match_their_names_case_insensitively_like_the_event_mapping(conn, tmp_path):
    # Regression: "order completed" (as some server-side libraries send it) mapped to purchase behaviour
    # (event_mapping.yaml compares names case-insensitively) but made no order, so the buyer had no revenue.
    landing = tmp_path / "segment"
    landing.mkdir()
    calls = [
        segment_call(
            "track", "m1", 0, userId="U1", event="order completed", properties={"order_id": "O1", "total": 40}
        ),
        segment_call("track", "m2", 1, userId="U1", event="Order Refunded", properties={"order_id": "O1", "total": 10}),
        segment_call("track", "m3", 2, userId="U1", event="order refunded", properties={"order_id": "O1", "total": 5}),
        segment_call("track", "m4", 3, userId="U2", event="ORDER COMPLETED", properties={"order_id": "O2", "total": 9}),
        segment_call("track", "m5", 4, userId="U2", event="Order Cancelled ", properties={"order_id": "O2"}),
    ]
    (landing / "calls.jsonl").write_text("\n".join(calls) + "\n")
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, order_total, status FROM raw.orders ORDER BY origin_row") == [
        ("O1", 40.0, "completed"),
        ("O1-R", -10.0, "refunded"),
        ("O1-R2", -5.0, "refunded"),
        ("O2", 9.0, "cancelled"),
    ]


def test_segment_a_resent_order_completed_is_one_order_and_a_twice_delivered_refund_one_refund(conn, tmp_path):
    # Regression: a reloaded thank-you page sends Order Completed again (same order_id, new messageId and time):
    # both copies were duplicate_conflicting, so the order and its revenue were lost. And a refund call delivered
    # twice (Segment delivers at least once: same messageId) became two refund rows, -R and -R2.
    landing = tmp_path / "segment"
    landing.mkdir()
    order = {"order_id": "O1", "total": 25, "currency": "EUR"}
    refund = segment_call(
        "track", "m3", 5, userId="U1", event="Order Refunded", properties={"order_id": "O1", "total": 10}
    )
    calls = [
        segment_call("track", "m1", 0, userId="U1", event="Order Completed", properties=order),
        segment_call("track", "m2", 1, userId="U1", event="Order Completed", properties=order),
        refund,
        refund,
    ]
    (landing / "calls.jsonl").write_text("\n".join(calls) + "\n")
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, order_total, status FROM raw.orders ORDER BY origin_row") == [
        ("O1", 25.0, "completed"),
        ("O1-R", -10.0, "refunded"),
    ]
    assert rows(
        conn, "SELECT source_row, reason FROM raw.quarantine WHERE reason NOT LIKE '%event_id=%' ORDER BY 1"
    ) == [
        (2, "duplicate_transaction: order_id='O1' was first seen at calls.jsonl line 1"),
        (4, "duplicate_identical: order_id='O1-R' first seen at calls.jsonl line 3"),
    ]
    assert_ingest_log_reconciles(conn)


def test_ga4_an_event_exported_twice_is_one_refund_not_two(conn, tmp_path):
    # Regression: a refund event present twice in the export (BigQuery's GA4 tables do hold duplicate rows) became
    # T1-R and T1-R2: the refund was subtracted twice.
    landing = tmp_path / "ga4"
    landing.mkdir()
    refund = json.loads(
        ga4_purchase(5, "T1", event_name="refund", ecommerce={"transaction_id": "T1", "refund_value": 4})
    )
    later = json.loads(
        ga4_purchase(9, "T1", event_name="refund", ecommerce={"transaction_id": "T1", "refund_value": 3})
    )
    records = [json.loads(ga4_purchase(0, "T1", pseudo_id="p5")), refund, refund, later]
    (landing / GA4_FILE).write_text("".join(json.dumps(r | {"user_pseudo_id": "p5"}) + "\n" for r in records))
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, order_total FROM raw.orders ORDER BY origin_row") == [
        ("T1", 10.0),
        ("T1-R", -4.0),
        ("T1-R2", -3.0),
    ]
    assert_ingest_log_reconciles(conn)


def test_ga4_app_screen_names_are_the_page_type(conn, tmp_path):
    # Regression: an app stream's events carry no page_location, only the screen (firebase_screen /
    # firebase_screen_class): its browsing had no page at all, so no rule could map it.
    landing = tmp_path / "ga4"
    landing.mkdir()
    screen = {"key": "firebase_screen", "value": {"string_value": "Product"}}
    screen_class = {"key": "firebase_screen_class", "value": {"string_value": "ProductDetailActivity"}}
    records = [
        json.loads(ga4_purchase(0, None, event_name="screen_view", event_params=[screen, screen_class])),
        json.loads(ga4_purchase(1, None, event_name="screen_view", event_params=[screen_class])),
        json.loads(
            ga4_purchase(2, "T1", event_params=[{"key": "firebase_screen", "value": {"string_value": "(not set)"}}])
        ),
    ]
    (landing / GA4_FILE).write_text("".join(json.dumps(r | {"platform": "ANDROID"}) + "\n" for r in records))
    ingest(conn, landing)
    assert rows(conn, "SELECT event_type, page_type FROM raw.events ORDER BY origin_row") == [
        ("screen_view", "Product"),
        ("screen_view", "ProductDetailActivity"),
        ("purchase", None),
    ]


def test_shopify_emailed_exports_in_numbered_parts_are_read_as_one_export(conn, tmp_path):
    # Regression: Shopify e-mails large exports as orders_export_1.csv (customers_export_1.csv); a folder of them
    # stopped with "no known landing format found". Parts are read in order, each line keeps its own file.
    landing = tmp_path / "shop"
    landing.mkdir()
    header = "Name,Email,Financial Status,Currency,Total,Refunded Amount,Created at,Lineitem name\n"
    (landing / "orders_export_1.csv").write_text(
        header + "#1001,a@x.com,paid,EUR,55.00,,2025-11-01 10:00:00 +0100,Runner\n"
        "#1001,a@x.com,,,,,2025-11-01 10:00:00 +0100,Socks\n"
    )
    (landing / "orders_export_2.csv").write_text(
        header + ",,,,,,2025-11-02 10:00:00 +0100,Mystery\n"  # planted: a line without its order Name
        "#1002,b@x.com,partially_refunded,EUR,40.00,15.00,2025-11-03 12:00:00 -0500,Cap\n"
    )
    (landing / "customers_export_1.csv").write_text("Customer ID,Email,First Name\n7001,a@x.com,Ada\n")
    assert detect_format(landing) == "shopify"
    ingest(conn, landing)
    assert rows(
        conn, "SELECT order_id, customer_id, order_total, origin_file, origin_row FROM raw.orders ORDER BY 1"
    ) == [
        ("#1001", "7001", 55.0, "orders_export_1.csv", 1),
        ("#1002", "b@x.com", 40.0, "orders_export_2.csv", 2),
        ("#1002-R", "b@x.com", -15.0, "orders_export_2.csv", 2),
    ]
    assert rows(conn, "SELECT source_file, source_row, split_part(reason, ':', 1) FROM raw.quarantine") == [
        ("orders_export_2.csv", 1, "missing_name")
    ]
    assert rows(conn, "SELECT origin_file FROM raw.customers") == [("customers_export_1.csv",)]
    assert_ingest_log_reconciles(conn)


def test_a_shopify_order_whose_payment_authorization_expired_never_counts_as_revenue(conn, tmp_path):
    # Regression: financial status `expired` (an authorization never captured) counted as a completed sale.
    landing = tmp_path / "shop"
    landing.mkdir()
    (landing / "orders_export.csv").write_text(
        "Name,Email,Financial Status,Currency,Total,Refunded Amount,Created at\n"
        "#1001,a@x.com,paid,EUR,55.00,,2025-11-01 10:00:00 +0100\n"
        "#1002,a@x.com,expired,EUR,40.00,,2025-11-02 10:00:00 +0100\n"
        "#1003,a@x.com,voided,EUR,30.00,30.00,2025-11-03 10:00:00 +0100\n"
    )
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, status FROM raw.orders ORDER BY 1") == [
        ("#1001", "completed"),
        ("#1002", "voided"),
        ("#1003", "voided"),
    ]


def test_a_ga4_item_id_of_not_set_is_no_product(conn, tmp_path):
    # Regression: `(not set)`, GA4's placeholder for an item sent without item_id, was kept as a product id that
    # every such event shared (one product for the whole shop in raw.events and stg_events).
    landing = tmp_path / "ga4"
    landing.mkdir()
    records = [
        json.loads(ga4_purchase(0, None, event_name="view_item", items=[{"item_id": "(not set)"}])),
        json.loads(ga4_purchase(1, "T1", items=[{"item_id": "SKU-1"}])),
    ]
    (landing / GA4_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    ingest(conn, landing)
    assert rows(conn, "SELECT event_type, product_id FROM raw.events ORDER BY origin_row") == [
        ("view_item", None),
        ("purchase", "SKU-1"),
    ]


# --- GA4 consent mode (branch consentmode) ----------------------------------------------------------


def cookieless_ping(i: int, transaction_id: str | None, **extra) -> dict:
    """A GA4 event sent while consent mode denies analytics storage: exported with no user_pseudo_id, no user_id."""
    record = json.loads(ga4_purchase(i, transaction_id, **extra))
    del record["user_pseudo_id"]
    return record | {"privacy_info": {"analytics_storage": "No", "ads_storage": "No"}}


def eu_shop_export(landing: Path, unreadable_revenue: int = 0) -> None:
    """10 EUR purchases, 7 of them (70 %) by visitors who denied analytics storage, and 2 page views (1 denied).

    The 7th denied purchase comes from an export without privacy_info: its missing ids alone tell. The first
    `unreadable_revenue` consented purchases give their revenue as text segmint does not read (`€ 17`)."""
    landing.mkdir()
    eur = {"event_params": [{"key": "currency", "value": {"string_value": "EUR"}}]}
    denied = [cookieless_ping(i, f"T{i}", **eur) for i in range(7)]
    denied[6]["privacy_info"] = None
    consented = [
        json.loads(ga4_purchase(i, f"T{i}", **eur)) | {"privacy_info": {"analytics_storage": "Yes"}} for i in (7, 8, 9)
    ]
    for record in consented[:unreadable_revenue]:
        record["ecommerce"]["purchase_revenue"] = f"€ {record['ecommerce']['purchase_revenue']}"
    pages = [
        cookieless_ping(20, None, event_name="page_view"),
        json.loads(ga4_purchase(21, None, "p7")) | {"event_name": "page_view"},
    ]
    (landing / GA4_FILE).write_text("".join(json.dumps(r) + "\n" for r in denied + consented + pages))


def test_a_ga4_export_where_most_buyers_denied_consent_runs_and_quarantines_them_as_consent_denied(conn, tmp_path):
    # Regression: cookieless pings (consent mode) were quarantined as missing_customer_id, so an EU shop where 70 %
    # of buyers deny analytics storage stopped as "more than half of the order rows quarantined": no run at all.
    landing = tmp_path / "ga4"
    eu_shop_export(landing)
    report = ingest(conn, landing)
    assert rows(conn, "SELECT order_id, customer_id FROM raw.orders ORDER BY order_id") == [
        ("T7", "p7"),
        ("T8", "p8"),
        ("T9", "p9"),
    ]
    quarantine = "SELECT source_row, split_part(reason, ':', 1), count(*) FROM raw.quarantine GROUP BY ALL ORDER BY 1"
    # once for events and once for orders (each contract table reconciles on its own); the page view once
    assert rows(conn, quarantine) == [(line, "consent_denied", 2) for line in range(1, 8)] + [(11, "consent_denied", 1)]
    reasons = rows(conn, "SELECT DISTINCT reason FROM raw.quarantine WHERE source_row IN (1, 7) ORDER BY reason")
    assert [reason for (reason,) in reasons] == [
        "consent_denied: analytics_storage='No' and no user_pseudo_id or user_id: analytics storage denied "
        "(GA4 consent mode), the event has no user to attribute it to",
        "consent_denied: no privacy_info and no user_pseudo_id or user_id: analytics storage denied "
        "(GA4 consent mode), the event has no user to attribute it to",
    ]
    assert rows(conn, LOG_SQL + " ORDER BY 2") == [(GA4_FILE, "events", 12, 4, 8), (GA4_FILE, "orders", 10, 3, 7)]
    assert_ingest_log_reconciles(conn)
    # and the run's blocking check agrees (raw tables and quarantine against raw.ingest_log)
    from orchestration.defs.quality_checks import reconcile_ingest

    assert reconcile_ingest(conn)["reconciles"].all()
    notes = {file.table_name: file.notes for file in report.files}
    assert notes["orders"] == (
        "warning: 7 of 10 purchase and refund events (70.0 %) were sent with analytics storage denied (GA4 consent "
        "mode, no user_pseudo_id or user_id) and are quarantined as consent_denied (7 purchases, revenue 91.00 EUR): no "
        "customer can be given them, so that revenue is missing from CLV, RFM and the segments; an orders.csv from "
        "the shop's own order book next to the export would keep it",
    )
    assert notes["events"][0].startswith("8 of 12 events (66.7 %) were sent with analytics storage denied")


def test_a_ga4_export_read_wrongly_still_stops_when_most_buyers_denied_consent(conn, tmp_path):
    # Defect: 2 of the 3 consented purchases give a revenue segmint cannot read: the export is read wrongly. The
    # 70 % consent-denied purchases must not hide it: they are not among the rows the stop judges (2 of 3, not 10).
    landing = tmp_path / "ga4"
    eu_shop_export(landing, unreadable_revenue=2)
    with pytest.raises(LandingError) as error:
        ingest(conn, landing)
    message = str(error.value)
    assert message.startswith("orders.parquet: 2 of 3 rows quarantined, more than half")
    assert "invalid_number x2 (e.g. events_20251201.jsonl line 8: invalid_number: order_total='€ 17')" in message
    assert "warning: 7 of 10 purchase and refund events (70.0 %)" in message


def test_a_ga4_event_that_says_analytics_storage_was_granted_but_has_no_ids_is_no_consent_case(conn, tmp_path):
    # Defect: ids missing although privacy_info says storage was granted (an export whose id fields segmint does not
    # find): not a cookieless ping, so the generic reasons, which count toward the stop.
    landing = tmp_path / "ga4"
    landing.mkdir()
    records = [
        json.loads(ga4_purchase(0, "T0")) | {"user_pseudo_id": None, "privacy_info": {"analytics_storage": "Yes"}}
    ]
    records.append(json.loads(ga4_purchase(1, "T1")))
    (landing / GA4_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    ingest(conn, landing)
    assert rows(conn, "SELECT split_part(reason, ':', 1) FROM raw.quarantine ORDER BY 1") == [
        ("missing_customer_id",),
        ("missing_customer_id_and_anonymous_id",),
    ]
    assert rows(conn, "SELECT order_id FROM raw.orders") == [("T1",)]


def test_a_ga4_export_whose_every_purchase_denied_consent_stops_with_a_line_that_says_so(conn, tmp_path):
    landing = tmp_path / "ga4"
    landing.mkdir()
    records = [cookieless_ping(0, "T0"), json.loads(ga4_purchase(1, None)) | {"event_name": "page_view"}]
    (landing / GA4_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(
        LandingError, match=r"^GA4 export: all 1 purchase events were sent with analytics storage denied"
    ):
        ingest(conn, landing)


def test_a_refund_without_a_currency_takes_its_purchases_in_a_multi_currency_export(conn, tmp_path):
    # Regression: since a blank currency is ambiguous_currency in a file of several currencies, a refund event that
    # names none (Segment's Order Refunded often carries only order_id and total) was quarantined while its purchase
    # counted in full. Its purchase says which currency it is in; a refund of an unknown order stays ambiguous.
    landing = tmp_path / "segment"
    landing.mkdir()
    calls = [
        segment_call(
            "track",
            "m1",
            0,
            userId="U1",
            event="Order Completed",
            properties={"order_id": "O1", "total": 100, "currency": "EUR"},
        ),
        segment_call(
            "track",
            "m2",
            1,
            userId="U1",
            event="Order Completed",
            properties={"order_id": "O2", "total": 30, "currency": "EUR"},
        ),
        segment_call(
            "track",
            "m3",
            2,
            userId="U2",
            event="Order Completed",
            properties={"order_id": "O3", "total": 50, "currency": "USD"},
        ),
        segment_call("track", "m4", 3, userId="U2", event="Order Refunded", properties={"order_id": "O3", "total": 20}),
        segment_call("track", "m5", 4, userId="U1", event="Order Refunded", properties={"order_id": "O9", "total": 5}),
    ]
    (landing / "calls.jsonl").write_text("\n".join(calls) + "\n")
    (landing / "fx_rates.csv").write_text("date,currency,rate\n2025-01-01,USD,0.5\n")
    ingest(conn, landing)
    orders = "SELECT order_id, order_total, currency, fx_rate FROM raw.orders ORDER BY origin_row"
    assert rows(conn, orders) == [
        ("O1", 100.0, "EUR", 1.0),
        ("O2", 30.0, "EUR", 1.0),
        ("O3", 50.0, "USD", 0.5),
        ("O3-R", -20.0, "USD", 0.5),  # its purchase's currency, converted as it is
    ]
    [(reason,)] = rows(conn, "SELECT reason FROM raw.quarantine WHERE reason NOT LIKE '%event_id=%'")
    assert reason.startswith("ambiguous_currency")  # O9's purchase is not in the export
    assert_ingest_log_reconciles(conn)


# --- refunds belong to their purchase's buyer (branch exports3) -------------------------------------------------


def test_a_ga4_refund_without_ids_or_from_another_client_id_belongs_to_its_purchases_buyer(conn, tmp_path):
    # Regression: a refund event sent with no user_pseudo_id (a consent-denied session, or the Measurement Protocol
    # without a client id) was quarantined as consent_denied, so its purchase counted in full; one sent server-side
    # under its own client id made a phantom customer with only negative revenue. Both name their transaction_id.
    landing = tmp_path / "ga4"
    landing.mkdir()
    eur = {"event_params": [{"key": "currency", "value": {"string_value": "EUR"}}]}
    records = [json.loads(ga4_purchase(i, f"T{i}", **eur)) for i in (1, 2)]
    no_ids = cookieless_ping(5, None, event_name="refund", ecommerce={"transaction_id": "T1", "refund_value": 4})
    server = json.loads(ga4_purchase(6, None, pseudo_id="server.1", event_name="refund"))
    server["ecommerce"] = {"transaction_id": "T2", "refund_value": 3}
    # a refund with no ids whose purchase is not in the export has nobody: it stays consent_denied
    unknown = cookieless_ping(7, None, event_name="refund", ecommerce={"transaction_id": "T9", "refund_value": 1})
    records += [no_ids, server, unknown]
    (landing / GA4_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    ingest(conn, landing)
    orders = "SELECT order_id, customer_id, order_total, currency FROM raw.orders ORDER BY origin_row"
    assert rows(conn, orders) == [
        ("T1", "p1", 11.0, "EUR"),
        ("T2", "p2", 12.0, "EUR"),
        ("T1-R", "p1", -4.0, "EUR"),
        ("T2-R", "p2", -3.0, "EUR"),
    ]
    # the refund events are the buyer's behaviour too; the server's client id stays its anonymous id
    refunds = "SELECT customer_id, anonymous_id FROM raw.events WHERE event_type = 'refund' ORDER BY origin_row"
    assert rows(conn, refunds) == [("p1", None), ("p2", "server.1")]
    assert rows(conn, "SELECT source_row, split_part(reason, ':', 1) FROM raw.quarantine ORDER BY 1") == [
        (5, "consent_denied"),
        (5, "consent_denied"),
    ]
    assert_ingest_log_reconciles(conn)


def test_a_segment_refund_sent_server_side_under_another_id_belongs_to_the_buyer(conn, tmp_path):
    # Regression: an Order Refunded call from a server library (its own anonymousId, no userId) was a phantom
    # guest customer with -20 while the buyer kept the full 100.
    landing = tmp_path / "segment"
    landing.mkdir()
    calls = [
        segment_call(
            "track", "m1", 0, anonymousId="a1", event="Order Completed", properties={"order_id": "O1", "total": 100}
        ),
        segment_call(
            "track", "m2", 1, anonymousId="srv-9", event="Order Refunded", properties={"order_id": "O1", "total": 20}
        ),
    ]
    (landing / "calls.jsonl").write_text("\n".join(calls) + "\n")
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, customer_id, order_total FROM raw.orders ORDER BY origin_row") == [
        ("O1", "a1", 100.0),
        ("O1-R", "a1", -20.0),
    ]
    assert_ingest_log_reconciles(conn)


def test_segment_http_api_batches_are_unpacked_with_their_context_and_counted_per_call(conn, tmp_path):
    # Regression: a capture of what a shop's Segment libraries POST to /v1/batch (one body per line) was not even
    # detected as Segment, and within a Segment folder a batch line had no `type`: every call in it was lost.
    # Segment's HTTP API docs: the batch's context and integrations apply to all its calls.
    landing = tmp_path / "segment"
    landing.mkdir()
    library = {"library": {"name": "analytics-python", "version": "2.3.2"}, "campaign": {"source": "newsletter"}}
    batch = {
        "batch": [
            json.loads(segment_call("identify", "m1", 0, userId="U1", anonymousId="a1", traits={"email": "ada@x.org"})),
            json.loads(
                segment_call("page", "m2", 1, anonymousId="a1", context={"page": {"url": "https://s.example/"}})
            ),
            # no timestamp of its own: the batch's sentAt
            {
                "type": "track",
                "event": "Order Completed",
                "userId": "U1",
                "messageId": "m3",
                "properties": {"order_id": "O1", "total": 50},
            },
            json.loads(segment_call("track", "m4", 3, userId="U1", event="Order Completed", properties={"total": 7})),
            42,  # defect: not a call
        ],
        "context": library,
        "sentAt": "2025-12-01T09:05:00.000Z",
    }
    arrays = [json.loads(segment_call("page", "m5", 6, anonymousId="a7"))]  # a JSON array of calls
    lines = [json.dumps(batch), json.dumps({"batch": [], "sentAt": "2025-12-01T09:06:00Z"}), json.dumps(arrays)]
    (landing / "capture.jsonl").write_text("\n".join(lines) + "\n")
    assert detect_format(landing) == "segment"
    ingest(conn, landing)
    events = "SELECT event_id, customer_id, occurred_at::VARCHAR, page_url, utm_source, origin_row FROM raw.events"
    assert rows(conn, events + " ORDER BY event_id") == [
        ("m2", "U1", "2025-12-01 09:01:00", "https://s.example/", "newsletter", 1),  # both contexts, merged
        ("m3", "U1", "2025-12-01 09:05:00", None, "newsletter", 1),
        ("m4", "U1", "2025-12-01 09:03:00", None, "newsletter", 1),
        ("m5", None, "2025-12-01 09:06:00", None, None, 3),
    ]
    assert rows(conn, "SELECT customer_id, email FROM raw.customers") == [("U1", "ada@x.org")]
    assert rows(conn, "SELECT order_id, order_total FROM raw.orders ORDER BY order_total") == [
        ("segment:m4", 7.0),
        ("O1", 50.0),
    ]
    assert rows(conn, "SELECT source_row, reason FROM raw.quarantine ORDER BY 1") == [
        (1, "not_a_json_object: batch item 5 is a ubigint"),
        (2, "empty_batch: a batch with no calls"),
    ]
    # every call is one record; one order of the line has a generated id, the other its own (counted apart)
    log = "SELECT table_name, rows_in, rows_accepted, rows_quarantined, ids_generated FROM raw.ingest_log ORDER BY 1"
    assert rows(conn, log) == [("customers", 1, 1, 0, 0), ("events", 6, 4, 2, 0), ("orders", 2, 2, 0, 1)]
    assert_ingest_log_reconciles(conn)


# --- Shopify: walk-in POS sales (branch exports3) ---------------------------------------------------------------

SHOPIFY_HEADER = (
    "Name,Email,Financial Status,Paid at,Currency,Total,Discount Code,Discount Amount,Created at,Lineitem quantity,"
    "Lineitem name,Cancelled at,Refunded Amount,Source,Phone"
)


def test_a_shopify_till_selling_mostly_to_walk_ins_runs_and_sets_their_orders_aside(conn, tmp_path):
    # Regression: a POS sale to a walk-in has no Email, Phone or customer; the contract quarantined it as
    # missing_customer_id, which counts toward the "mostly unusable" stop, so a shop whose till sells mostly to
    # anonymous walk-ins could not run at all (4 of 5 orders: stop).
    landing = tmp_path / "shopify"
    landing.mkdir()
    lines = [
        SHOPIFY_HEADER,
        "#1001,ann@example.com,paid,,EUR,20.00,,,2025-11-01 10:00:00 +0100,1,Cap,,,web,",
        "#1002,,paid,,EUR,5.00,,,2025-11-02 10:00:00 +0100,1,Coffee,,,pos,",
        "#1002,,,,,,,,2025-11-02 10:00:00 +0100,1,Cookie,,,,",  # a second line item of the same sale
        "#1003,,partially_refunded,,EUR,8.00,,,2025-11-03 10:00:00 +0100,1,Tea,,3.00,pos,",
        "#1004,,paid,,EUR,4.00,,,2025-11-04 10:00:00 +0100,1,Coffee,,,pos,+1 (278) 555-0479",  # a phone: a customer
    ]
    (landing / "orders_export.csv").write_text("\n".join(lines) + "\n")
    report = ingest(conn, landing)
    assert rows(conn, "SELECT order_id, customer_id FROM raw.orders ORDER BY order_id") == [
        ("#1001", "ann@example.com"),
        ("#1004", "+12785550479"),
    ]
    quarantine = "SELECT source_row, split_part(reason, ':', 1), raw_record::JSON->>'order_id' FROM raw.quarantine"
    assert rows(conn, quarantine + " ORDER BY 1, 3") == [
        (2, "anonymous_order", "#1002"),
        (4, "anonymous_order", "#1003"),
        (4, "anonymous_order", "#1003-R"),  # its refund row goes with it
    ]
    assert rows(conn, LOG_SQL) == [("orders_export.csv", "orders", 5, 2, 3)]
    [orders] = [file for file in report.files if file.table_name == "orders"]
    assert orders.notes == (
        "warning: 2 of 4 orders (50.0 %) name no customer (no Email, Phone or matching customer: walk-in POS sales, "
        "draft orders) and are quarantined as anonymous_order (net revenue 10.00 EUR): that revenue is missing from "
        "CLV, RFM and the segments",
    )
    assert_ingest_log_reconciles(conn)


def test_a_shopify_export_where_no_order_names_a_customer_stops_and_says_why(conn, tmp_path):
    landing = tmp_path / "shopify"
    landing.mkdir()
    header = "Name,Financial Status,Currency,Total,Created at,Lineitem name"  # exported without Email and Phone
    lines = [header, "#1001,paid,EUR,20.00,2025-11-01 10:00:00 +0100,Cap"]
    (landing / "orders_export.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(LandingError, match=r"^orders_export.csv: none of the 1 orders names a customer"):
        ingest(conn, landing)


def test_ga4_revenue_in_any_typed_value_field_and_in_the_exports_usd_conversion_only(conn, tmp_path):
    # The `value` param arrives as int_value, double_value or string_value (Google's schema: one typed field per
    # param); an export queried down to ecommerce.purchase_revenue_in_usd (or event_value_in_usd) lost its
    # purchases as missing_order_total. Such an amount is in USD whatever the event's currency param says.
    landing = tmp_path / "ga4"
    landing.mkdir()

    def purchase(i: int, value: dict | None, currency: str = "EUR", **ecommerce) -> dict:
        params = [{"key": "currency", "value": {"string_value": currency}}]
        params += [{"key": "value", "value": value}] if value else []
        record = json.loads(ga4_purchase(i, f"T{i}")) | {"event_params": params}
        record["ecommerce"] = {"transaction_id": f"T{i}"} | ecommerce
        return record

    records = [
        purchase(1, {"int_value": "42"}),  # BigQuery's JSON writes INT64 as a string
        purchase(2, {"double_value": 19.99}),
        purchase(3, {"string_value": "7.5"}),
        purchase(4, None, purchase_revenue_in_usd=30.0),
        purchase(5, None) | {"event_value_in_usd": 12.5},
    ]
    (landing / GA4_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    (landing / "fx_rates.csv").write_text("date,currency,rate\n2025-01-01,USD,0.5\n")
    ingest(conn, landing, options=LandingOptions(reporting_currency="EUR"))
    assert rows(conn, "SELECT order_id, order_total, currency, fx_rate FROM raw.orders ORDER BY order_id") == [
        ("T1", 42.0, "EUR", 1.0),
        ("T2", 19.99, "EUR", 1.0),
        ("T3", 7.5, "EUR", 1.0),
        ("T4", 30.0, "USD", 0.5),
        ("T5", 12.5, "USD", 0.5),
    ]
    assert rows(conn, "SELECT count(*) FROM raw.quarantine") == [(0,)]


def test_shopify_parts_are_read_once_and_a_renamed_copy_is_named_not_read(conn, tmp_path):
    # An order in two files is one order (its lines merge); a browser's renamed re-download is no part: it was
    # ignored without a word, now the orders' notes name it.
    landing = tmp_path / "shopify"
    landing.mkdir()
    first = "#1001,ann@example.com,paid,,EUR,20.00,,,2025-11-01 10:00:00 +0100,1,Cap,,,web,"
    (landing / "orders_export_1.csv").write_text(f"{SHOPIFY_HEADER}\n{first}\n")
    second = "#1002,bob@example.com,paid,,EUR,9.00,,,2025-11-02 10:00:00 +0100,1,Hat,,,web,"
    (landing / "orders_export_2.csv").write_text(f"{SHOPIFY_HEADER}\n{first}\n{second}\n")
    (landing / "orders_export (1).csv").write_text(f"{SHOPIFY_HEADER}\n{second.replace('#1002', '#1003')}\n")
    report = ingest(conn, landing)
    assert rows(conn, "SELECT order_id, order_total, origin_file FROM raw.orders ORDER BY 1") == [
        ("#1001", 20.0, "orders_export_1.csv"),
        ("#1002", 9.0, "orders_export_2.csv"),
    ]
    [orders] = [file for file in report.files if file.table_name == "orders"]
    assert orders.notes == (
        "warning: not read: orders_export (1).csv (not orders_export.csv / customers_export.csv or a numbered part "
        "_1, _2, ...; rename it if it is a part of this export, remove it if it is a copy)",
    )
    assert_ingest_log_reconciles(conn)


# --- refunds that give no total (branch refundtotals) -----------------------------------------------------------


def ga4_refund(i: int, transaction_id: str, items: list[dict] | None = None, **ecommerce) -> dict:
    """A GA4 refund as BigQuery exports what a server sent through the Measurement Protocol (its own client id):
    no `value` param, so no ecommerce.refund_value; `items` [] when the sender gave none (BigQuery's export)."""
    record = json.loads(ga4_purchase(i, transaction_id, pseudo_id="server.1", event_name="refund"))
    record["ecommerce"] = {"transaction_id": transaction_id} | ecommerce
    return record | {"items": items or []}


def test_a_ga4_refund_without_a_value_takes_its_purchases_total_or_its_items(conn, tmp_path):
    # Regression: a refund without value / ecommerce.refund_value was missing_order_total while its purchase counted
    # in full. Senders omit items for a full refund and list the refunded items for a partial one.
    landing = tmp_path / "ga4"
    landing.mkdir()
    eur = {"event_params": [{"key": "currency", "value": {"string_value": "EUR"}}]}
    items = [
        {"item_id": "SKU-A", "price": 19.95, "quantity": "2"},
        {"item_id": "SKU-B", "price": 20.0, "quantity": "1"},
    ]
    purchases = [json.loads(ga4_purchase(i, f"T{i}", **eur)) | {"items": items} for i in (1, 2, 4)]
    purchases[0]["ecommerce"]["purchase_revenue"] = 59.9
    purchases[1]["ecommerce"]["purchase_revenue"] = 100
    records = [
        *purchases,  # lines 1-3
        ga4_refund(5, "T1"),  # line 4: a full refund: T1's whole 59.90
        ga4_refund(6, "T1"),  # line 5: the same full refund sent again later: nothing left to refund
        ga4_refund(7, "T2", [{"item_id": "SKU-C", "price": 30, "quantity": "1"}]),  # line 6: partial, 30
        ga4_refund(8, "T2", refund_value=80),  # line 7: given, but only 70 of T2's 100 are left
        ga4_refund(9, "T3"),  # line 8: T3's purchase is not in the export: nothing to take
        ga4_refund(10, "T4", [{"item_id": "SKU-A", "quantity": "1"}]),  # line 9: an item without a price
    ]
    (landing / GA4_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    report = ingest(conn, landing)
    orders = "SELECT order_id, customer_id, order_total, currency FROM raw.orders WHERE order_total < 0 ORDER BY 1"
    assert rows(conn, orders) == [
        ("T1-R", "p1", -59.9, "EUR"),
        ("T2-R", "p2", -30.0, "EUR"),
        ("T2-R2", "p2", -70.0, "EUR"),
    ]
    quarantine = "SELECT source_row, reason FROM raw.quarantine WHERE source_file = ? ORDER BY 1"
    assert [(line, reason.split(":")[0]) for line, reason in conn.execute(quarantine, [GA4_FILE]).fetchall()] == [
        (5, "already_refunded"),
        (8, "missing_order_total"),
        (9, "missing_order_total"),
    ]
    assert conn.execute(quarantine, [GA4_FILE]).fetchall()[0][1] == (
        "already_refunded: T1 is refunded in full (its purchase total 59.9) by earlier refunds"
    )
    revenue = rows(conn, "SELECT sum(order_total) FROM raw.orders")[0][0]
    assert revenue == pytest.approx(14.0)  # T1 and T2 are refunded in full; T4 keeps its purchase
    assert rows(conn, LOG_SQL + " WHERE table_name = 'orders'") == [(GA4_FILE, "orders", 9, 6, 3)]
    assert_ingest_log_reconciles(conn)
    notes = {file.table_name: file.notes for file in report.files}
    assert notes["orders"] == (
        "warning: 2 refunds gave no total: 1 without items took their purchase's whole total (full refunds), 1 with "
        "items the sum of the items' price x quantity (no tax or shipping); 1 refunds were capped at what earlier "
        "refunds left of their purchase's total and 1 found it refunded in full (already_refunded)",
    )


def test_a_segment_order_refunded_without_a_total_takes_its_orders_total_or_its_products(conn, tmp_path):
    # Regression: Segment's spec documents only order_id for Order Refunded, and its Google Analytics destination
    # docs send a full refund as order_id alone and a partial one with products and quantities: both were
    # missing_order_total while the order counted in full.
    landing = tmp_path / "segment"
    landing.mkdir()
    products = [{"product_id": "P1", "price": 40, "quantity": 2}, {"product_id": "P2", "price": 12.5, "quantity": 2}]

    def completed(message_id, minute, order_id, total, currency):
        properties = {"order_id": order_id, "total": total, "currency": currency, "products": products}
        return segment_call("track", message_id, minute, userId="U1", event="Order Completed", properties=properties)

    def refunded(message_id, minute, **properties):
        return segment_call(
            "track", message_id, minute, anonymousId="srv", event="Order Refunded", properties=properties
        )

    calls = [
        completed("m1", 0, "O1", 105, "EUR"),  # line 1
        completed("m2", 1, "O2", 105, "EUR"),  # line 2
        completed("m3", 2, "O3", 40, "USD"),  # line 3
        refunded("m4", 3, order_id="O1"),  # line 4: full: -105 (the order's total, shipping included)
        refunded("m5", 4, order_id="O2", products=[{"product_id": "P2", "price": 12.5, "quantity": 2}]),  # -25
        refunded("m6", 5, order_id="O2", products=[{"product_id": "P2", "price": 12.5}]),  # line 6: quantity 1
        refunded("m7", 6, order_id="O3", currency="EUR"),  # line 7: names another currency than its order's
        refunded("m8", 7, order_id="O9"),  # line 8: its order is not in the export
        refunded("m9", 8, order_id="O1"),  # line 9: O1's full refund sent again
    ]
    (landing / "calls.jsonl").write_text("\n".join(calls) + "\n")
    (landing / "fx_rates.csv").write_text("date,currency,rate\n2025-01-01,USD,0.5\n")
    report = ingest(conn, landing)
    assert rows(conn, "SELECT order_id, customer_id, order_total, currency FROM raw.orders ORDER BY origin_row") == [
        ("O1", "U1", 105.0, "EUR"),
        ("O2", "U1", 105.0, "EUR"),
        ("O3", "U1", 40.0, "USD"),
        ("O1-R", "U1", -105.0, "EUR"),
        ("O2-R", "U1", -25.0, "EUR"),
        ("O2-R2", "U1", -12.5, "EUR"),
    ]
    assert rows(conn, "SELECT source_row, split_part(reason, ':', 1) FROM raw.quarantine ORDER BY 1") == [
        (7, "missing_order_total"),
        (8, "missing_order_total"),
        (9, "already_refunded"),
    ]
    assert rows(conn, LOG_SQL + " WHERE table_name = 'orders'") == [("calls.jsonl", "orders", 9, 6, 3)]
    assert_ingest_log_reconciles(conn)
    notes = {file.table_name: file.notes for file in report.files}
    assert notes["orders"][-1].startswith("warning: 3 refunds gave no total: 1 without items took their purchase's")
    # Regression: Segment's note was read after its already_refunded rows were deleted, so it said "0 found it".
    assert notes["orders"][-1].endswith("and 1 found it refunded in full (already_refunded)")


def test_a_full_refund_delivered_twice_is_one_refund_and_a_given_total_in_another_currency_is_not_capped(
    conn, tmp_path
):
    # An exact copy of a call (Segment delivers at least once: same messageId) is the same refund, counted once by
    # the cap: duplicate_identical, not already_refunded. Amounts are never compared across currencies.
    landing = tmp_path / "segment"
    landing.mkdir()
    order = {"order_id": "O1", "total": 40, "currency": "USD"}
    full = segment_call("track", "m2", 1, userId="U1", event="Order Refunded", properties={"order_id": "O1"})
    calls = [
        segment_call("track", "m1", 0, userId="U1", event="Order Completed", properties=order),
        full,
        full,
        segment_call(
            "track",
            "m3",
            2,
            userId="U1",
            event="Order Refunded",
            properties={"order_id": "O1", "total": 5, "currency": "EUR"},
        ),
    ]
    (landing / "calls.jsonl").write_text("\n".join(calls) + "\n")
    (landing / "fx_rates.csv").write_text("date,currency,rate\n2025-01-01,USD,0.5\n")
    ingest(conn, landing, options=LandingOptions(reporting_currency="EUR"))
    assert rows(conn, "SELECT order_id, order_total, currency FROM raw.orders ORDER BY origin_row") == [
        ("O1", 40.0, "USD"),
        ("O1-R", -40.0, "USD"),
        ("O1-R2", -5.0, "EUR"),  # given in EUR: not capped by what is left of the USD order
    ]
    assert rows(conn, "SELECT source_row, split_part(reason, ':', 1) FROM raw.quarantine ORDER BY 1") == [
        (3, "duplicate_identical"),
        (3, "duplicate_identical"),
    ]
    assert_ingest_log_reconciles(conn)


# --- Segment warehouse exports (one table per call type and per event) ----------------------------

SEGMENT_WAREHOUSE_COMMON = "id,anonymous_id,user_id,timestamp,original_timestamp,sent_at,received_at,uuid_ts"
SEGMENT_WAREHOUSE_TABLES = {
    # Segment writes every track call to `tracks` (common columns) and to its event's table (with its properties).
    "tracks.csv": [
        f"{SEGMENT_WAREHOUSE_COMMON},event,event_text,context_page_url,context_campaign_source,context_device_type",
        "t-1,anon-1,,2025-12-01 09:01:00.000000 UTC,2025-12-01 09:01:01.000000 UTC,2025-12-01 09:01:02.000000 UTC,"
        "2025-12-01 09:01:03.000000 UTC,2025-12-01 09:01:04.000000 UTC,product_viewed,Product Viewed,"
        "https://shop.example/products/runner,newsletter,mobile",
        "t-2,anon-1,U1,2025-12-01 09:05:00.000000 UTC,,,2025-12-01 09:05:03.000000 UTC,,order_completed,"
        "Order Completed,https://shop.example/checkout,,mobile",
        "t-3,,U1,2025-12-03 10:00:00.000000 UTC,,,2025-12-03 10:00:03.000000 UTC,,order_refunded,Order Refunded,,,",
        # Its event table was not exported: read from tracks (no properties).
        "t-4,anon-1,U1,2025-12-02 08:00:00.000000 UTC,,,2025-12-02 08:00:03.000000 UTC,,signed_up,Signed Up,,,",
    ],
    "product_viewed.csv": [
        f"{SEGMENT_WAREHOUSE_COMMON},event,event_text,context_page_url,context_campaign_source,context_device_type,"
        "product_id,price",
        "t-1,anon-1,,2025-12-01 09:01:00.000000 UTC,2025-12-01 09:01:01.000000 UTC,2025-12-01 09:01:02.000000 UTC,"
        "2025-12-01 09:01:03.000000 UTC,2025-12-01 09:01:04.000000 UTC,product_viewed,Product Viewed,"
        "https://shop.example/products/runner,newsletter,mobile,SKU-RUNNER,59.9",
    ],
    "order_completed.csv": [
        f"{SEGMENT_WAREHOUSE_COMMON},event,event_text,context_page_url,order_id,total,currency,coupon,discount,products",
        "t-2,anon-1,U1,2025-12-01 09:05:00.000000 UTC,,,2025-12-01 09:05:03.000000 UTC,,order_completed,"
        'Order Completed,https://shop.example/checkout,O1,100.0,EUR,WINTER5,5,"[{""product_id"":""SKU-RUNNER""}]"',
    ],
    "order_refunded.csv": [
        f"{SEGMENT_WAREHOUSE_COMMON},event,event_text,order_id,total,currency",
        "t-3,,U1,2025-12-03 10:00:00.000000 UTC,,,2025-12-03 10:00:03.000000 UTC,,order_refunded,Order Refunded,O1,20,EUR",
    ],
    "pages.csv": [
        f"{SEGMENT_WAREHOUSE_COMMON},name,url,path,context_page_url,context_campaign_source,context_campaign_name",
        "p-1,anon-1,,2025-12-01 09:00:00.000000 UTC,,,2025-12-01 09:00:03.000000 UTC,,Home,https://shop.example/,/,"
        "https://shop.example/,newsletter,winter_sale",
    ],
    "identifies.csv": [
        f"{SEGMENT_WAREHOUSE_COMMON},email,first_name,last_name,address_postal_code,address_country",
        "i-1,anon-1,U1,2025-12-01 09:02:00.000000 UTC,,,2025-12-01 09:02:03.000000 UTC,,ada@example.com,Ada,Lovelace,"
        "75001,FR",
    ],
    "aliases.csv": [
        f"{SEGMENT_WAREHOUSE_COMMON},previous_id",
        "a-1,,U2,2025-12-04 09:00:00.000000 UTC,,,2025-12-04 09:00:03.000000 UTC,,anon-9",
    ],
    "pages_2.csv": [  # a part of pages (a call table's name with a number), header only: no rows
        f"{SEGMENT_WAREHOUSE_COMMON},name,url",
    ],
    # The upserted latest state of identifies: derived, not read.
    "users.csv": ["id,email,received_at,uuid_ts", "U1,ada@example.com,2025-12-01 09:02:03.000000 UTC,"],
}


def write_segment_warehouse(landing: Path, as_parquet: bool = False) -> Path:
    """The fixture tables as CSV files, or as Parquet with typed columns (timestamps, numbers) as BigQuery writes."""
    landing.mkdir(parents=True)
    for name, lines in SEGMENT_WAREHOUSE_TABLES.items():
        (landing / name).write_text("\n".join(lines) + "\n")
        if as_parquet:
            path = landing / name
            duckdb.sql(
                f"COPY (SELECT * FROM read_csv('{path}', header=true)) TO '{path.with_suffix('.parquet')}' "
                "(FORMAT parquet)"
            )
            path.unlink()
    return landing


@pytest.mark.parametrize("as_parquet", [False, True], ids=["csv", "parquet"])
def test_segment_warehouse_tables_are_rebuilt_into_calls_and_read_by_the_segment_rules(conn, tmp_path, as_parquet):
    landing = write_segment_warehouse(tmp_path / "warehouse", as_parquet)
    assert detect_format(landing) == "segment"
    report = ingest(conn, landing)
    assert report.source_format == "segment"
    ext = "parquet" if as_parquet else "csv"
    # Every track call once: the event table's row (with properties); tracks only for Signed Up (no event table).
    assert rows(
        conn,
        "SELECT event_id, customer_id, event_type, page_type, page_url, product_id, device, utm_source, origin_file "
        "FROM raw.events ORDER BY event_id",
    ) == [
        ("p-1", "U1", "page", "Home", "https://shop.example/", None, None, "newsletter", f"pages.{ext}"),
        (
            "t-1",
            "U1",
            "Product Viewed",
            None,
            "https://shop.example/products/runner",
            "SKU-RUNNER",
            "mobile",
            "newsletter",
            f"product_viewed.{ext}",
        ),
        (
            "t-2",
            "U1",
            "Order Completed",
            None,
            "https://shop.example/checkout",
            "SKU-RUNNER",
            None,
            None,
            f"order_completed.{ext}",
        ),
        ("t-3", "U1", "Order Refunded", None, None, None, None, None, f"order_refunded.{ext}"),
        ("t-4", "U1", "Signed Up", None, None, None, None, None, f"tracks.{ext}"),
    ]
    assert rows(conn, "SELECT occurred_at::VARCHAR FROM raw.events WHERE event_id = 't-1'") == [
        ("2025-12-01 09:01:00",)
    ]
    assert rows(
        conn,
        "SELECT order_id, customer_id, order_total, currency, discount_amount, discount_code, status, origin_file "
        "FROM raw.orders ORDER BY order_id",
    ) == [
        ("O1", "U1", 100.0, "EUR", 5.0, "WINTER5", "completed", f"order_completed.{ext}"),
        ("O1-R", "U1", -20.0, "EUR", None, None, "refunded", f"order_refunded.{ext}"),
    ]
    assert rows(
        conn, "SELECT customer_id, email, first_name, last_name, postal_code, country, origin_file FROM raw.customers"
    ) == [("U1", "ada@example.com", "Ada", "Lovelace", "75001", "FR", f"identifies.{ext}")]
    # The tracks copies of event-table rows are not read (the events' notes count them); the alias is quarantined.
    assert rows(conn, "SELECT source_file, source_row, reason FROM raw.quarantine") == [
        (
            f"aliases.{ext}",
            1,
            "unsupported_call_type: type='alias' carries no event, order or customer "
            "(its previousId -> userId link is used for stitching)",
        )
    ]
    [events_report] = [f for f in report.files if f.table_name == "events"]
    assert any(note.startswith(f"tracks.{ext}: 3 rows not read: the same track calls") for note in events_report.notes)
    assert_ingest_log_reconciles(conn)
    assert rows(conn, LOG_SQL + f" WHERE source_file = 'tracks.{ext}'") == [(f"tracks.{ext}", "events", 1, 1, 0)]
    assert not rows(conn, "SELECT * FROM raw.ingest_log WHERE source_file LIKE 'users%' OR source_file LIKE 'pages_2%'")


def test_order_calls_read_from_tracks_without_their_event_table_are_warned_about(conn, tmp_path):
    # An export without order_refunded (a table forgotten, or a part of it lost): the call is read from tracks,
    # which has no order id or total, so it is quarantined as missing_order_total. The warning says why; alone,
    # the code pointed at tracks.csv and, when most orders were such calls, the stop read as a misread file.
    landing = write_segment_warehouse(tmp_path / "warehouse")
    (landing / "order_refunded.csv").unlink()
    report = ingest(conn, landing)
    quarantine = "SELECT source_file, source_row, split_part(reason, ':', 1) AS code FROM raw.quarantine"
    assert rows(conn, f"{quarantine} WHERE code <> 'after_as_of' ORDER BY 1") == [
        ("aliases.csv", 1, "unsupported_call_type"),
        ("tracks.csv", 3, "missing_order_total"),
    ]
    [orders_report] = [f for f in report.files if f.table_name == "orders"]
    assert any(
        note.startswith("warning: tracks.csv: 1 order calls (Order Completed, Refunded, Cancelled) are read from")
        for note in orders_report.notes
    )
    assert_ingest_log_reconciles(conn)


def test_refunds_written_with_a_decimal_comma_stay_refunds(conn, tmp_path):
    # Warehouse tables re-saved by a European spreadsheet (`;`, `20,5`): DuckDB reads no number in `20,5`, so the
    # refund's text was passed on as given and the contract, reading the file's decimal comma, took +20.5: a
    # refund adding revenue.
    landing = write_segment_warehouse(tmp_path / "warehouse")
    for name in ("order_completed.csv", "order_refunded.csv"):
        table = list(csv.reader((landing / name).read_text().splitlines()))
        total = table[0].index("total")
        for row in table[1:]:
            row[total] = {"100.0": "100,0", "20": "20,5"}[row[total]]
        with (landing / name).open("w", newline="") as handle:
            csv.writer(handle, delimiter=";").writerows(table)
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, order_total FROM raw.orders ORDER BY 1") == [("O1", 100.0), ("O1-R", -20.5)]
    assert_ingest_log_reconciles(conn)


@pytest.mark.parametrize(
    ("refund_total", "order_total"),
    [("20.5", "-20.5"), ("20,5", "-20,5"), ("+1,020.50", "-1,020.50"), ("-20,5", "-20,5"), ("abc", "abc")],
)
def test_a_refund_total_is_negated_as_a_number_or_as_number_text(refund_total, order_total):
    value = duckdb.sql(f"SELECT {refund_order_total_sql('t')} FROM (SELECT '{refund_total}' AS t)").fetchall()[0][0]
    assert value == order_total


def test_segment_warehouse_tables_exported_from_snowflake_with_upper_case_columns_are_read(conn, tmp_path):
    landing = tmp_path / "snowflake"
    landing.mkdir()
    header, *lines = SEGMENT_WAREHOUSE_TABLES["order_completed.csv"]
    (landing / "ORDER_COMPLETED.csv").write_text("\n".join([header.upper(), *lines]) + "\n")
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, customer_id, order_total FROM raw.orders") == [("O1", "U1", 100.0)]
    assert_ingest_log_reconciles(conn)


# How warehouse unloads name the parts of a table (landing/README.md "Segment Warehouses tables").
PART_NAMES = {
    "bigquery": lambda table, i: f"{table}-{i:012d}.csv.gz",  # export to gs://.../tracks-*.csv.gz, GZIP
    "snowflake": lambda table, i: f"{table.upper()}_0_0_{i}.csv.gz",  # COPY INTO @stage/TRACKS_ (gzip by default)
    "redshift": lambda table, i: f"{table}_{i:04d}_part_00" + (".gz" if i else ""),  # UNLOAD CSV HEADER [GZIP]
    "parquet_folder": lambda table, i: f"{table}/part-{i:05d}-8f1e.snappy.parquet",  # Spark / Hive-style folder
    # Spark / Databricks / Athena partitioned table: Hive-style `key=value/` folders, nested, zstd Parquet.
    "hive_partitions": lambda table, i: f"{table}/day=2025-12-0{i + 1}/hr={i:02d}/part-{i:05d}-8f1e-c000.zstd.parquet",
    "redshift_zstd": lambda table, i: f"{table}_{i:04d}_part_00.zst",  # UNLOAD CSV HEADER ZSTD
    # Spark `partitionBy("date")` of zstd CSV (the `.zstd` spelling is read as `.zst`).
    "spark_csv_zstd": lambda table, i: f"{table}/date=2025-12-0{i + 1}/part-{i:05d}-8f1e-c000.csv.zstd",
    # Split by hand: a call table's name with a number is its part; an event table's is read as its own table.
    "numbered": lambda table, i: f"{table}_{i + 1}.csv",
}


def split_into_parts(landing: Path, out: Path, layout: str, parts: int = 2) -> Path:
    """Rewrite every `<table>.csv` of `landing` into `out` as `parts` parts named as `layout`'s tool names them,
    rows dealt round-robin (a one-row table gets header-only parts; Parquet parts keep the types DuckDB infers)."""
    out.mkdir(parents=True)
    as_parquet = PART_NAMES[layout]("t", 0).endswith(".parquet")
    for path in sorted(landing.glob("*.csv")):
        relation = duckdb.sql(f"SELECT * FROM read_csv('{path}', header=true, all_varchar={not as_parquet})")
        relation = relation.select("*, row_number() OVER () AS _n")
        for i in range(parts):
            target = out / PART_NAMES[layout](path.stem, i)
            target.parent.mkdir(parents=True, exist_ok=True)
            part = relation.filter(f"_n % {parts} = {(i + 1) % parts}").select("* EXCLUDE (_n)")
            if as_parquet:
                part.write_parquet(str(target), compression="zstd" if ".zstd." in target.name else "snappy")
            else:
                compression = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}.get(target.suffix, "none")
                duckdb.sql(f"COPY ({part.sql_query()}) TO '{target}' (FORMAT csv, HEADER, COMPRESSION {compression})")
    if layout == "hive_partitions":
        write_lake_markers(out / "tracks", out / PART_NAMES[layout]("tracks", 0))
    if layout == "parquet_folder":
        (out / "tracks" / "_SUCCESS").write_text("")  # Spark's marker file: not data
        (out / "backup").mkdir()  # a folder of files named as tables is no table's folder: not read
        shutil.copy(landing / "order_completed.csv", out / "backup" / "order_completed.csv")
    return out


def write_lake_markers(table_folder: Path, data_file: Path) -> None:
    """What Spark and Databricks write next to a partitioned table's data: none of it is data. The copies of a real
    part under `_temporary/` and `old/` would count its rows twice if read."""
    partition = data_file.parent
    (table_folder / "_SUCCESS").write_text("")  # Spark's job-done marker
    (partition / f"_started_{4217}").write_text("")  # Databricks' transactional-commit markers
    (partition / f"_committed_{4217}").write_text('{"added":["' + data_file.name + '"],"removed":[]}')
    (partition / f".{data_file.name}.crc").write_bytes(b"crc\x00\x01")  # Hadoop's checksum file
    (partition / f"{data_file.name}.crc").write_bytes(b"crc\x00\x01")  # the same without its leading dot
    for unfinished in (table_folder / "_temporary" / "0", table_folder / "old"):  # an unfinished write; no partition
        unfinished.mkdir(parents=True)
        shutil.copy(data_file, unfinished / data_file.name)
    (table_folder / "_delta_log").mkdir()
    (table_folder / "_delta_log" / "00000000000000000000.json").write_text("{}")


@pytest.mark.parametrize("layout", list(PART_NAMES))
def test_segment_warehouse_tables_split_into_parts_read_as_the_same_tables_with_each_part_as_lineage(
    conn, tmp_path, layout
):
    whole = write_segment_warehouse(tmp_path / "whole")
    landing = split_into_parts(whole, tmp_path / layout, layout)
    assert detect_format(landing) == "segment"
    report = ingest(conn, landing)
    tables = {
        "events": "SELECT * EXCLUDE (origin_file, origin_row) FROM raw.events ORDER BY event_id",
        "orders": "SELECT * EXCLUDE (origin_file, origin_row) FROM raw.orders ORDER BY order_id",
        "customers": "SELECT * EXCLUDE (origin_file, origin_row) FROM raw.customers ORDER BY customer_id",
        "quarantine": "SELECT reason FROM raw.quarantine ORDER BY reason",
    }
    from_parts = {table: rows(conn, sql) for table, sql in tables.items()}
    with duckdb.connect() as whole_conn:
        ingest(whole_conn, whole)
        assert from_parts == {table: rows(whole_conn, sql) for table, sql in tables.items()}
    assert len(from_parts["events"]) == 5 and len(from_parts["orders"]) == 2
    # Lineage names the part (and its folder); every part's rows reconcile on their own.
    order_file = PART_NAMES[layout]("order_completed", 0)
    assert rows(conn, "SELECT origin_file FROM raw.orders WHERE order_id = 'O1'") == [(order_file,)]
    assert_ingest_log_reconciles(conn)
    tracks = [PART_NAMES[layout]("tracks", i) for i in range(2)]
    assert rows(conn, LOG_SQL + " WHERE table_name = 'events' AND source_file ILIKE '%tracks%' ORDER BY 1") == [
        (tracks[1], "events", 1, 1, 0)  # t-4 (its event table was not exported); t-2 is read from order_completed
    ]
    # The tracks dedupe holds across parts: each tracks part's copies of event-table rows are not read.
    [events_report] = [f for f in report.files if f.table_name == "events"]
    copies = sorted(note.split(": ")[0:2] for note in events_report.notes if "rows not read" in note)
    assert copies == [[tracks[0], "2 rows not read"], [tracks[1], "1 rows not read"]]


def test_a_part_without_the_segment_columns_its_other_parts_have_stops_the_ingest(conn, tmp_path):
    # A part exported without a header (Snowflake's HEADER = FALSE default, Redshift without HEADER) reads its
    # first row as column names: never dropped in silence, nor read as another table.
    landing = tmp_path / "warehouse"
    landing.mkdir()
    header, row = SEGMENT_WAREHOUSE_TABLES["pages.csv"]
    (landing / "pages_0_0_0.csv").write_text(f"{header}\n{row}\n")
    (landing / "pages_0_0_1.csv").write_text(row.replace("p-1", "p-2") + "\n")
    (landing / "order_completed.csv").write_text("\n".join(SEGMENT_WAREHOUSE_TABLES["order_completed.csv"]) + "\n")
    with pytest.raises(LandingError, match=r"pages_0_0_1.csv: a part of the Segment warehouse table pages without"):
        ingest(conn, landing)
    # A 0-byte part is an empty part (no columns, no rows), not a different schema.
    (landing / "pages_0_0_1.csv").write_bytes(b"")
    ingest(conn, landing)
    assert rows(conn, "SELECT event_id, origin_file FROM raw.events ORDER BY 1") == [
        ("p-1", "pages_0_0_0.csv"),
        ("t-2", "order_completed.csv"),
    ]
    assert_ingest_log_reconciles(conn)


def test_a_partition_folders_file_without_the_segment_columns_its_other_parts_have_stops_the_ingest(conn, tmp_path):
    landing = tmp_path / "lake"
    header, row = SEGMENT_WAREHOUSE_TABLES["pages.csv"]
    for day, text in (("2025-12-01", f"{header}\n{row}\n"), ("2025-12-02", row.replace("p-1", "p-2") + "\n")):
        (landing / "pages" / f"date={day}").mkdir(parents=True)
        (landing / "pages" / f"date={day}" / "part-00000-8f1e-c000.csv").write_text(text)  # the second: no header
    with pytest.raises(
        LandingError, match=r"^pages/date=2025-12-02/part-00000-8f1e-c000.csv: a part of the Segment warehouse table "
    ):
        ingest(conn, landing)


def test_a_table_partitioned_by_its_own_columns_reads_them_from_the_folder_names(conn, tmp_path):
    # Spark's partitionBy("event", "currency") writes those columns only in the folder names (`%XX`-escaped, nulls
    # as __HIVE_DEFAULT_PARTITION__): they are the rows' values, never a table dropped for lacking `event`.
    landing = tmp_path / "lake"
    header, row = SEGMENT_WAREHOUSE_TABLES["order_completed.csv"]
    second = row.replace("t-2", "t-5").replace(",O1,", ",O2,")
    whole = tmp_path / "order_completed.csv"
    whole.write_text(f"{header}\n{row}\n{second}\n")
    for id_, currency in (("t-2", "EUR"), ("t-5", "__HIVE_DEFAULT_PARTITION__")):
        folder = landing / "order_completed" / "event=order_completed" / f"currency={currency}"
        folder.mkdir(parents=True)
        duckdb.sql(
            f"COPY (SELECT * EXCLUDE (event, currency) FROM read_csv('{whole}') WHERE id = '{id_}') "
            f"TO '{folder / 'part-00000-8f1e-c000.snappy.parquet'}' (FORMAT parquet)"
        )
    (landing / "order_completed" / "event=order_completed" / "received_day=2025-12-01%3A09").mkdir()  # empty
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, order_total, currency, origin_file FROM raw.orders ORDER BY 1") == [
        ("O1", 100.0, "EUR", "order_completed/event=order_completed/currency=EUR/part-00000-8f1e-c000.snappy.parquet"),
        (
            "O2",
            100.0,
            None,  # Hive's null partition: no currency (then the file's one currency, landing/README.md "Money")
            "order_completed/event=order_completed/currency=__HIVE_DEFAULT_PARTITION__/part-00000-8f1e-c000.snappy.parquet",
        ),
    ]
    assert rows(conn, "SELECT DISTINCT event_type FROM raw.events") == [("Order Completed",)]
    assert_ingest_log_reconciles(conn)


def test_partition_folder_values_are_unescaped_and_read_as_text():
    from landing.formats.detect import partition_values

    path = Path("/l/tracks/received_at=2025-12-01 09%3A05%3A00/hr=09/k=__HIVE_DEFAULT_PARTITION__/part-0.parquet")
    assert partition_values(path, Path("/l")) == (
        ("received_at", "2025-12-01 09:05:00"),
        ("hr", "09"),
        ("k", None),
    )


def test_a_segment_data_lakes_folder_is_named_not_skipped_in_silence(conn, tmp_path):
    # Segment Data Lakes' documented layout: <source id>/segment_type=<event type>/day=<YYYY-MM-DD>/hr=<HH>/.
    landing = write_segment_warehouse(tmp_path / "warehouse")
    folder = landing / "ios_prod" / "segment_type=order_completed" / "day=2025-12-01" / "hr=09"
    folder.mkdir(parents=True)
    shutil.copy(landing / "order_completed.csv", folder / "part-00000-8f1e-c000.csv")
    with pytest.raises(LandingError, match=r"^ios_prod/segment_type=order_completed: a Segment Data Lakes folder"):
        ingest(conn, landing)


def test_a_landing_folder_whose_path_has_key_value_folders_reads_each_file_by_its_own_columns(conn, tmp_path):
    # Regression: DuckDB adds a column per `key=value` folder of a file's path (Hive partitioning, auto-detected),
    # so a Parquet part under `shop=acme/` had a `shop` column, and a property of every call rebuilt from it.
    from landing.formats.detect import table_columns

    landing = tmp_path / "shop=acme" / "currency=USD"
    landing.parent.mkdir()
    write_segment_warehouse(tmp_path / "plain", as_parquet=True).rename(landing)
    assert "currency" not in table_columns(landing / "tracks.parquet")
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, currency FROM raw.orders ORDER BY 1") == [("O1", "EUR"), ("O1-R", "EUR")]


def test_a_zstd_part_that_is_no_zstd_stops_with_one_line(conn, tmp_path):
    landing = tmp_path / "warehouse"
    landing.mkdir()
    (landing / "order_completed.csv").write_text("\n".join(SEGMENT_WAREHOUSE_TABLES["order_completed.csv"]) + "\n")
    (landing / "order_completed_0000_part_00.zst").write_bytes(b"id,received_at\nnot zstd at all\n")
    with pytest.raises(LandingError, match=r"^order_completed_0000_part_00.zst: cannot be read as zstd \(") as error:
        ingest(conn, landing)
    assert "\n" not in str(error.value)


def test_a_part_whose_columns_differ_from_its_other_parts_is_read_by_its_own_header(conn, tmp_path):
    # Segment adds a column when a property first arrives, so parts of one table may differ in columns and order.
    landing = tmp_path / "warehouse"
    landing.mkdir()
    header, row = SEGMENT_WAREHOUSE_TABLES["order_completed.csv"]
    values = dict(zip(header.split(","), next(csv.reader([row])), strict=True)) | {"id": "t-9", "order_id": "O2"}
    reordered = [name for name in reversed(values) if name != "products"]  # columns reversed, no products
    (landing / "order_completed_0000_part_00").write_text(f"{header}\n{row}\n")
    with gzip.open(landing / "order_completed_0001_part_00.gz", "wt") as handle:
        handle.write(",".join(reordered) + "\n" + ",".join(values[name] for name in reordered) + "\n")
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, order_total, origin_file FROM raw.orders ORDER BY 1") == [
        ("O1", 100.0, "order_completed_0000_part_00"),
        ("O2", 100.0, "order_completed_0001_part_00.gz"),
    ]
    assert_ingest_log_reconciles(conn)


def test_a_demo_segment_export_as_warehouse_tables_whole_or_in_parts_gives_the_same_raw_tables_as_its_json_calls(
    tmp_path,
):
    from demo_shop import generate_shop
    from demo_shop.source_formats import write_source_format

    generate_shop(tmp_path / "contract", tmp_path / "truth", n_customers=60, seed=7)
    tables = {
        "orders": "SELECT order_id, customer_id, ordered_at, order_total, currency, discount_code, status FROM raw.orders",
        "customers": "SELECT customer_id, email, phone, first_name, last_name, postal_code, country FROM raw.customers",
        "events": "SELECT event_id, customer_id, anonymous_id, occurred_at, event_type, page_type, product_id, device, "
        "page_url FROM raw.events",
    }
    found = {}
    write_source_format(tmp_path / "contract", tmp_path / "segment_warehouse", "segment_warehouse")
    # The same tables as warehouse unloads split them: gzip'd CSV parts, Parquet parts in table folders, and a
    # partitioned lake (Parquet in nested `day=/hr=` folders with Spark's and Databricks' marker files; zstd CSV).
    layouts = ("bigquery", "parquet_folder", "hive_partitions", "spark_csv_zstd")
    for parts in layouts:
        split_into_parts(tmp_path / "segment_warehouse", tmp_path / parts, parts, parts=3)
    for layout in ("segment", "segment_warehouse", *layouts):
        if layout == "segment":
            write_source_format(tmp_path / "contract", tmp_path / layout, layout)
        with duckdb.connect() as connection:
            ingest(connection, tmp_path / layout)
            assert_ingest_log_reconciles(connection)
            found[layout] = {table: sorted(rows(connection, sql)) for table, sql in tables.items()}
            found[layout]["quarantine"] = rows(
                connection, "SELECT split_part(reason, ':', 1), count(*) FROM raw.quarantine GROUP BY 1 ORDER BY 1"
            )
    assert found["segment_warehouse"] == found["segment"]
    for layout in layouts:
        assert found[layout] == found["segment"], layout
    assert len(found["segment"]["orders"]) > 60


def test_the_landing_sensor_sees_table_folders_and_compressed_parts_but_not_markers(tmp_path):
    # Defect: the sensor listed only the folder's own .csv/.parquet/.avro and JSON lines, so a new part of a table
    # exported as a folder, a .csv.gz/.csv.zst part or a Redshift part (no extension) started no run.
    from orchestration.defs.sensors import scan_landing

    files = (
        "order_completed_0000_part_00",
        "tracks-000000000000.csv.gz",
        "TRACKS_0_0_0.csv.zst",
        "order/part-00000-1a2b.snappy.parquet",
        "order/_SUCCESS",
        "order/.part-00000-1a2b.snappy.parquet.crc",
        "refund/created_on=2025-12-01/part-00000-3c4d.snappy.parquet",
        "_temporary/part-00001.parquet",
        ".DS_Store",
        "README.txt",
    )
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert sorted(scan_landing(tmp_path)) == [
        "TRACKS_0_0_0.csv.zst",
        "order/part-00000-1a2b.snappy.parquet",
        "order_completed_0000_part_00",
        "refund/created_on=2025-12-01/part-00000-3c4d.snappy.parquet",
        "tracks-000000000000.csv.gz",
    ]
