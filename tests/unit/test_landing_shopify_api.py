"""Shopify orders and customers pulled from the Admin API (landing/formats/shopify_api.py): REST pages, GraphQL
bulk JSONL and Airbyte records, read by the admin CSV's rules (shopify.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest

from demo_shop.source_formats import FORMATS
from landing import LandingError, ingest_landing
from landing.formats import detect_format

ORDERS_SQL = (
    "SELECT order_id, customer_id, ordered_at::VARCHAR, order_total, currency, discount_amount, discount_code, channel, "
    "status FROM raw.orders"
)
QUARANTINE_SQL = "SELECT source_file, source_row, split_part(reason, ':', 1) FROM raw.quarantine ORDER BY 1, 2"
LOG_SQL = "SELECT source_file, table_name, rows_in, rows_accepted, rows_quarantined FROM raw.ingest_log ORDER BY 1, 2"


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    yield connection
    connection.close()


def ingest(conn, landing: Path, **kwargs):
    return ingest_landing(conn, landing, as_of=None, horizon_days=365, is_demo=False, **kwargs)


def rows(conn, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def assert_reconciles(conn) -> None:
    for source_file, table, rows_in, accepted, quarantined in rows(conn, LOG_SQL):
        assert rows_in == accepted + quarantined, (source_file, table)


def rest_order(n: int, **fields) -> dict:
    """A REST Admin API Order as GET /admin/api/2025-10/orders.json returns it (the fields segmint reads)."""
    money = {"amount": fields.pop("total", "50.00"), "currency_code": "EUR"}
    return {
        "id": 450789000 + n,
        "name": f"#{1000 + n}",
        "email": f"buyer{n}@example.com",
        "phone": None,
        "created_at": f"2025-11-0{n}T10:00:00+01:00",
        "updated_at": f"2025-11-0{n}T10:00:00+01:00",
        "cancelled_at": None,
        "financial_status": "paid",
        "currency": "EUR",
        "presentment_currency": "EUR",
        "total_price": money["amount"],
        "total_price_set": {"shop_money": money, "presentment_money": money},
        "total_discounts": "0.00",
        "discount_codes": [],
        "source_name": "web",
        "test": False,
        "customer": {"id": 207119000 + n, "email": f"buyer{n}@example.com"},
        "line_items": [{"id": 1, "title": "Runner", "quantity": 1, "price": money["amount"]}],
        "refunds": [],
        **fields,
    }


def refund(amount: str, currency: str = "EUR", when: str = "2025-11-20T09:00:00+01:00") -> dict:
    transaction = {"kind": "refund", "status": "success", "amount": amount, "currency": currency}
    return {"id": 509562969, "created_at": when, "processed_at": when, "transactions": [transaction]}


def test_rest_pages_read_orders_refunds_cancellations_test_orders_and_customers(conn, tmp_path):
    landing = tmp_path / "rest"
    landing.mkdir()
    page_1 = [
        rest_order(1, discount_codes=[{"code": "WELCOME", "amount": "5.00"}], total_discounts="5.00"),
        rest_order(2, total="40.00", financial_status="partially_refunded", refunds=[refund("15.00")]),
    ]
    page_2 = [
        rest_order(3, cancelled_at="2025-11-03T11:00:00+01:00", financial_status="voided"),
        rest_order(4, financial_status="expired"),
        rest_order(5, test=True),
        rest_order(6, customer=None, email=None, phone=None, source_name="pos"),  # a walk-in
        rest_order(7, customer=None, email="Guest@Example.com"),  # a guest
    ]
    # pretty-printed as a script saves a response, and one page on a line
    (landing / "orders_page_1.json").write_text(json.dumps({"orders": page_1}, indent=2))
    (landing / "orders_page_2.json").write_text(json.dumps({"orders": page_2}))
    customers = [
        {
            "id": 207119001,
            "email": "buyer1@example.com",
            "phone": "+4915112345678",
            "first_name": "Alice",
            "last_name": "Doe",
            "created_at": "2025-10-01T08:00:00+02:00",
            "email_marketing_consent": {"state": "subscribed"},
            "default_address": {"zip": "10115", "country_code": "DE"},
        },
        {"id": 207119002, "email": "buyer2@example.com", "accepts_marketing": False, "orders_count": 1},
    ]
    (landing / "customers.json").write_text(json.dumps({"customers": customers}, indent=2))
    assert detect_format(landing) == "shopify"
    report = ingest(conn, landing)
    assert report.source_format == "shopify"
    assert rows(conn, ORDERS_SQL + " ORDER BY origin_file, origin_row, order_id") == [
        ("#1001", "207119001", "2025-11-01 09:00:00", 50.0, "EUR", 5.0, "WELCOME", "web", "completed"),
        ("#1002", "207119002", "2025-11-02 09:00:00", 40.0, "EUR", 0.0, None, "web", "completed"),
        # the refund is dated when it was made, in the shop's money
        ("#1002-R", "207119002", "2025-11-20 08:00:00", -15.0, "EUR", None, None, "web", "refunded"),
        ("#1003", "207119003", "2025-11-03 09:00:00", 50.0, "EUR", 0.0, None, "web", "cancelled"),
        ("#1004", "207119004", "2025-11-04 09:00:00", 50.0, "EUR", 0.0, None, "web", "voided"),
        ("#1007", "guest@example.com", "2025-11-07 09:00:00", 50.0, "EUR", 0.0, None, "web", "completed"),
    ]
    # a page's records are numbered by their place in the page
    assert rows(conn, QUARANTINE_SQL) == [
        ("orders_page_2.json", 3, "test_order"),
        ("orders_page_2.json", 4, "anonymous_order"),
    ]
    assert rows(
        conn,
        "SELECT customer_id, email, phone, first_name, postal_code, country, marketing_consent, "
        "signed_up_at::VARCHAR FROM raw.customers ORDER BY 1",
    ) == [
        ("207119001", "buyer1@example.com", "+4915112345678", "Alice", "10115", "DE", True, "2025-10-01 06:00:00"),
        ("207119002", "buyer2@example.com", None, None, None, None, False, None),
    ]
    assert rows(conn, LOG_SQL) == [
        ("customers.json", "customers", 2, 2, 0),
        ("orders_page_1.json", "orders", 3, 3, 0),
        ("orders_page_2.json", "orders", 5, 3, 2),
    ]
    notes = {f.source_file: f.notes for f in report.files}
    assert any("anonymous_order" in note for note in notes["orders.parquet"])


def test_pages_as_json_lines_and_one_order_per_line_number_records_across_the_file(conn, tmp_path):
    landing = tmp_path / "lines"
    landing.mkdir()
    pages = [{"orders": [rest_order(1), rest_order(2)]}, {"orders": [rest_order(3)]}, {"orders": []}]
    (landing / "pages.jsonl").write_text("".join(json.dumps(page) + "\n" for page in pages))
    (landing / "orders.ndjson").write_text(
        json.dumps(rest_order(4)) + "\n" + "{not json\n" + "\n" + json.dumps(rest_order(5, total="abc")) + "\n"
    )
    # SEGMINT_SOURCE_FORMAT=shopify names these files too (no new setting value)
    assert ingest(conn, landing, source_format="shopify").source_format == "shopify"
    assert rows(conn, "SELECT order_id, origin_file, origin_row FROM raw.orders ORDER BY 2, 3") == [
        ("#1004", "orders.ndjson", 1),
        ("#1001", "pages.jsonl", 1),
        ("#1002", "pages.jsonl", 2),
        ("#1003", "pages.jsonl", 3),
    ]
    assert rows(conn, QUARANTINE_SQL) == [
        ("orders.ndjson", 2, "malformed_json"),
        ("orders.ndjson", 4, "invalid_number"),
    ]
    assert_reconciles(conn)


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def bulk_order(n: int, **fields) -> dict:
    """An Order line of a GraphQL bulk operation's JSONL (MoneyBag amounts, GraphQL ids)."""

    def bag(shop: str, presentment: str | None = None) -> dict:
        return {
            "shopMoney": {"amount": shop, "currencyCode": "EUR"},
            "presentmentMoney": {"amount": presentment or shop, "currencyCode": "EUR" if not presentment else "USD"},
        }

    return {
        "id": gid("Order", 100 + n),
        "name": f"#{1000 + n}",
        "email": f"buyer{n}@example.com",
        "createdAt": f"2025-11-0{n}T09:00:00Z",
        "cancelledAt": None,
        "displayFinancialStatus": "PAID",
        "currencyCode": "EUR",
        "presentmentCurrencyCode": "USD",
        "totalPriceSet": bag(fields.pop("total", "50.00"), fields.pop("presentment", None)),
        "totalDiscountsSet": bag("0.00"),
        "totalRefundedSet": bag(fields.pop("refunded", "0.00")),
        "refunds": [],
        "sourceName": "web",
        "test": False,
        "customer": {"id": gid("Customer", 200 + n)},
        **fields,
    }


def test_bulk_jsonl_folds_child_lines_reads_money_bags_and_quarantines_orphans_and_other_objects(conn, tmp_path):
    landing = tmp_path / "bulk"
    landing.mkdir()
    lines = [
        bulk_order(1, presentment="54.30"),  # a shop in EUR selling in USD: the books are in EUR
        {"id": gid("LineItem", 1), "title": "Runner", "quantity": 1, "__parentId": gid("Order", 101)},
        {"id": gid("LineItem", 2), "title": "Socks", "quantity": 2, "__parentId": gid("Order", 101)},
        bulk_order(
            2,
            refunded="20.00",
            displayFinancialStatus="PARTIALLY_REFUNDED",
            refunds=[{"createdAt": "2025-11-12T10:00:00Z"}],
        ),
        {"id": gid("LineItem", 3), "title": "Cap", "quantity": 1, "__parentId": gid("Order", 102)},
        {"id": gid("LineItem", 4), "title": "Lost", "quantity": 1, "__parentId": gid("Order", 999)},
        {"id": gid("Product", 5), "title": "A product"},
        bulk_order(3, displayFinancialStatus="VOIDED", cancelledAt="2025-11-03T10:00:00Z"),
    ]
    (landing / "bulk-orders.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines) + "[1, 2]\n")
    # a customers query with their orders as a nested connection: the orders name their customer by __parentId
    customers = [
        {
            "id": gid("Customer", 204),
            "email": "d@example.com",
            "firstName": "Dana",
            "emailMarketingConsent": {"marketingState": "NOT_SUBSCRIBED"},
            "defaultAddress": {"countryCodeV2": "FR"},
        },
        {**bulk_order(4, customer=None, email=None), "__parentId": gid("Customer", 204)},
    ]
    (landing / "bulk-customers.jsonl.gz").write_bytes(
        gzip.compress("".join(json.dumps(line) + "\n" for line in customers).encode())
    )
    report = ingest(conn, landing)
    assert rows(conn, ORDERS_SQL + " ORDER BY order_id") == [
        ("#1001", "201", "2025-11-01 09:00:00", 50.0, "EUR", 0.0, None, "web", "completed"),
        ("#1002", "202", "2025-11-02 09:00:00", 50.0, "EUR", 0.0, None, "web", "completed"),
        ("#1002-R", "202", "2025-11-12 10:00:00", -20.0, "EUR", None, None, "web", "refunded"),
        ("#1003", "203", "2025-11-03 09:00:00", 50.0, "EUR", 0.0, None, "web", "cancelled"),
        ("#1004", "204", "2025-11-04 09:00:00", 50.0, "EUR", 0.0, None, "web", "completed"),
    ]
    assert rows(conn, "SELECT customer_id, email, first_name, country, marketing_consent FROM raw.customers") == [
        ("204", "d@example.com", "Dana", "FR", False)
    ]
    assert rows(conn, QUARANTINE_SQL) == [
        ("bulk-orders.jsonl", 6, "orphan_child"),
        ("bulk-orders.jsonl", 7, "unsupported_record"),
        ("bulk-orders.jsonl", 9, "not_a_json_object"),
    ]
    assert_reconciles(conn)
    notes = {f.source_file: f.notes for f in report.files}["orders.parquet"]
    assert any(note.startswith("3 nested lines") for note in notes)


def airbyte(record: dict, n: int, v2: bool = True, as_text: bool = False) -> str:
    data = json.dumps(record) if as_text else record
    if v2:
        envelope = {
            "_airbyte_raw_id": f"id-{n}",
            "_airbyte_extracted_at": 1764547200000 + n,
            "_airbyte_meta": {"sync_id": 1, "changes": []},
            "_airbyte_generation_id": 0,
            "_airbyte_data": data,
        }
    else:
        envelope = {"_airbyte_ab_id": f"id-{n}", "_airbyte_emitted_at": 1764547200000 + n, "_airbyte_data": data}
    return json.dumps(envelope) + "\n"


def test_airbyte_records_old_and_new_envelopes_keep_the_newest_copy_of_an_order_synced_twice(conn, tmp_path):
    landing = tmp_path / "airbyte"
    landing.mkdir()
    first = rest_order(1, financial_status="paid", updated_at="2025-11-01T10:00:00+01:00")
    later = rest_order(
        1, financial_status="partially_refunded", refunds=[refund("10.00")], updated_at="2025-11-20T09:00:00+01:00"
    )
    # an incremental sync appends the order again when it changes; the older copy is in the later file here
    with gzip.open(landing / "2025_11_21_1764547200000_0.jsonl.gz", "wt") as handle:
        handle.write(airbyte(later, 1) + airbyte(rest_order(2), 2, as_text=True))
    # the S3 destination's "root level flattening": the record's fields next to Airbyte's, no _airbyte_data
    flattened = {"_airbyte_ab_id": "id-5", "_airbyte_emitted_at": 1764547200005, **rest_order(3)}
    (landing / "_airbyte_raw_orders.jsonl").write_text(airbyte(first, 3, v2=False) + json.dumps(flattened) + "\n")
    # the same order pulled by a bulk operation before it changed: its GraphQL id names the same order
    (landing / "bulk.jsonl").write_text(
        json.dumps(bulk_order(1, id=gid("Order", 450789001), updatedAt="2025-11-01T09:00:00Z")) + "\n"
    )
    (landing / "_airbyte_raw_customers.jsonl").write_text(
        airbyte({"id": 207119001, "email": "buyer1@example.com", "orders_count": 2, "first_name": "Al"}, 4, v2=False)
    )
    assert detect_format(landing) == "shopify"
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, customer_id, order_total, status FROM raw.orders ORDER BY 1") == [
        ("#1001", "207119001", 50.0, "completed"),
        ("#1001-R", "207119001", -10.0, "refunded"),
        ("#1002", "207119002", 50.0, "completed"),
        ("#1003", "207119003", 50.0, "completed"),
    ]
    newer = "superseded_version: an older copy of order 450789001 (the newer one is 2025_11_21_1764547200000_0.jsonl.gz record 1)"
    assert rows(conn, "SELECT source_file, source_row, reason FROM raw.quarantine ORDER BY 1") == [
        ("_airbyte_raw_orders.jsonl", 1, newer),
        ("bulk.jsonl", 1, newer),
    ]
    assert rows(conn, "SELECT customer_id, first_name FROM raw.customers") == [("207119001", "Al")]
    assert_reconciles(conn)


def test_a_multi_currency_shop_books_the_shop_money_and_a_presentment_refund_by_the_current_total(conn, tmp_path):
    landing = tmp_path / "multi"
    landing.mkdir()
    usd_buyer = rest_order(
        1,
        total="100.00",
        presentment_currency="USD",
        total_price_set={
            "shop_money": {"amount": "100.00", "currency_code": "EUR"},
            "presentment_money": {"amount": "108.00", "currency_code": "USD"},
        },
        # the refund was paid in the buyer's currency: the current total says what it took from the shop's books
        refunds=[refund("27.00", currency="USD")],
        current_total_price="75.00",
    )
    # without the current total the refund's shop money is unknown: not subtracted, and said so
    unknown = rest_order(3, refunds=[refund("5.00", currency="USD")])
    (landing / "orders.json").write_text(json.dumps({"orders": [usd_buyer, rest_order(2, total="20.00"), unknown]}))
    report = ingest(conn, landing)
    assert rows(conn, "SELECT order_id, order_total, currency FROM raw.orders ORDER BY 1") == [
        ("#1001", 100.0, "EUR"),
        ("#1001-R", -25.0, "EUR"),
        ("#1002", 20.0, "EUR"),
        ("#1003", 50.0, "EUR"),
    ]
    notes = {f.source_file: f.notes for f in report.files}["orders.parquet"]
    assert any(note.startswith("warning: 1 orders were refunded in another currency") for note in notes)


def test_a_rest_page_cut_short_while_downloading_stops_the_run_with_its_name(conn, tmp_path):
    # Read without it, the shop would miss the page's orders with only a note (a second sweep found 109 of 209
    # orders read and the as-of date a year back); a cut gzip or Avro file stops the same way.
    landing = tmp_path / "cut"
    landing.mkdir()
    (landing / "orders.json").write_text(json.dumps({"orders": [rest_order(1)]}))
    (landing / "orders_page_2.json").write_text(json.dumps({"orders": [rest_order(4)]}, indent=2)[:-40])
    with pytest.raises(LandingError, match=r"orders_page_2.json: a Shopify REST page that is not whole JSON"):
        ingest(conn, landing)
    # another JSON file that is no Shopify record is still only named in the notes
    (landing / "orders_page_2.json").write_text(json.dumps({"note": "not an order"}) + "\n")
    notes = {f.source_file: f.notes for f in ingest(conn, landing).files}["orders.parquet"]
    assert any(note.startswith("warning: not read: orders_page_2.json") for note in notes)


def test_an_admin_export_next_to_api_files_stops_and_api_files_without_orders_stop(conn, tmp_path):
    landing = tmp_path / "both"
    landing.mkdir()
    (landing / "orders.json").write_text(json.dumps({"orders": [rest_order(1)]}))
    (landing / "orders_export.csv").write_text("Name,Email,Created at,Total\n#1,a@example.com,2025-11-01,1\n")
    with pytest.raises(LandingError, match="both a Shopify admin export"):
        ingest(conn, landing)
    (landing / "orders_export.csv").unlink()
    (landing / "order.csv").write_text("id,name,_fivetran_synced\n1,#1,2025-11-01 00:00:00\n")  # Fivetran's table
    with pytest.raises(LandingError, match="both a Shopify Fivetran tables export"):
        ingest(conn, landing)
    (landing / "order.csv").unlink()
    (landing / "orders.json").write_text(json.dumps({"customers": [{"id": 1, "email": "a@example.com"}]}))
    assert detect_format(landing, "shopify") == "shopify"
    with pytest.raises(LandingError, match="no Shopify order in these Admin API files"):
        ingest(conn, landing)


def test_other_json_exports_are_not_taken_for_shopify(tmp_path):
    landing = tmp_path / "segment"
    landing.mkdir()
    (landing / "calls.jsonl").write_text(
        json.dumps({"type": "track", "event": "Order Completed", "userId": "u"}) + "\n"
    )
    assert detect_format(landing) == "segment"


# The admin CSV first: every other layout of the demo shop's Shopify export must read into its raw tables (Fivetran's
# tables are compared in test_landing_shopify_tables.py: they link walk-ins the CSV cannot).
LAYOUTS = tuple(name for name in FORMATS if name.startswith("shopify") and name != "shopify_tables")


def test_the_demo_shops_admin_export_in_every_api_layout_gives_the_same_raw_tables(tmp_path):
    from demo_shop import generate_shop
    from demo_shop.source_formats import write_source_format

    generate_shop(tmp_path / "contract", tmp_path / "truth", n_customers=120, seed=7)
    tables = {
        "orders": "SELECT order_id, customer_id, ordered_at, order_total, currency, discount_amount, discount_code, "
        "channel, status FROM raw.orders",
        "customers": "SELECT customer_id, email, phone, first_name, last_name, postal_code, country, marketing_consent, "
        "signed_up_at FROM raw.customers",
        "quarantine": "SELECT split_part(reason, ':', 1), count(*) FROM raw.quarantine GROUP BY 1",
    }
    found = {}
    for layout in LAYOUTS:
        write_source_format(tmp_path / "contract", tmp_path / layout, layout)
        with duckdb.connect() as connection:
            assert ingest(connection, tmp_path / layout).source_format == "shopify"
            assert_reconciles(connection)
            found[layout] = {table: sorted(rows(connection, sql)) for table, sql in tables.items()}
    statuses = {row[-1] for row in found["shopify"]["orders"]}
    assert {"completed", "refunded", "cancelled"} <= statuses
    for layout in LAYOUTS[1:]:
        assert found[layout] == found["shopify"], layout


def gzip_text(path: Path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode()))


def notes_of(report) -> tuple[str, ...]:
    return {f.source_file: f.notes for f in report.files}["orders.parquet"]


def test_bare_json_arrays_pretty_printed_or_on_one_line_and_gzipped_read_as_their_records(conn, tmp_path):
    landing = tmp_path / "arrays"
    landing.mkdir()
    # `curl .../orders.json | jq .orders > orders.json`: pretty-printed; `jq -c` writes it on one line
    (landing / "orders.json").write_text(json.dumps([rest_order(1), rest_order(2, test=True)], indent=2))
    gzip_text(landing / "more_orders.json.gz", json.dumps([rest_order(3), rest_order(4)]) + "\n")
    customers = [{"id": 207119001, "email": "buyer1@example.com", "orders_count": 1, "first_name": "Al"}]
    (landing / "customers.json").write_text(json.dumps(customers, indent=2))
    assert detect_format(landing) == "shopify"
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, customer_id, origin_file, origin_row FROM raw.orders ORDER BY 3, 4") == [
        ("#1003", "207119003", "more_orders.json.gz", 1),
        ("#1004", "207119004", "more_orders.json.gz", 2),
        ("#1001", "207119001", "orders.json", 1),
    ]
    # an array's records are numbered by their place in it
    assert rows(conn, QUARANTINE_SQL) == [("orders.json", 2, "test_order")]
    assert rows(conn, "SELECT customer_id, first_name FROM raw.customers") == [("207119001", "Al")]
    assert_reconciles(conn)


def test_one_record_per_line_files_take_their_stream_from_the_file_name(conn, tmp_path):
    landing = tmp_path / "target_jsonl"
    landing.mkdir()
    # Singer's target-jsonl names a stream's file `<stream>-<timestamp>.jsonl`
    lines = [
        rest_order(1),
        rest_order(2),
        rest_order(1, financial_status="refunded", updated_at="2025-11-09T10:00:00Z"),
    ]
    (landing / "orders-20251201T101010.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    # a slim customer (no orders_count, total_spent, ...) is a customer because its file says so
    gzip_text(landing / "customers-20251201T101010.jsonl.gz", json.dumps({"id": 207119002, "email": "b@x.com"}) + "\n")
    # draft orders and abandoned checkouts look like orders (line_items, total_price) but are other streams
    (landing / "draft_orders-20251201T101010.jsonl").write_text(json.dumps(rest_order(8)) + "\n")
    (landing / "abandoned_checkouts.jsonl").write_text(json.dumps(rest_order(9)) + "\n")
    report = ingest(conn, landing)
    assert rows(conn, "SELECT order_id, status FROM raw.orders ORDER BY 1") == [
        ("#1001", "completed"),
        ("#1002", "completed"),
    ]
    assert rows(conn, "SELECT customer_id, email FROM raw.customers") == [("207119002", "b@x.com")]
    assert rows(conn, QUARANTINE_SQL) == [("orders-20251201T101010.jsonl", 1, "superseded_version")]
    assert (
        "not orders or customers, so not read (no rows): abandoned_checkouts.jsonl: 1 `abandoned_checkouts` record; "
        "draft_orders-20251201T101010.jsonl: 1 `draft_orders` record"
    ) in notes_of(report)
    assert rows(conn, LOG_SQL) == [
        ("customers-20251201T101010.jsonl.gz", "customers", 1, 1, 0),
        ("orders-20251201T101010.jsonl", "orders", 3, 2, 1),
    ]


def singer(kind: str, stream: str | None = None, **fields) -> str:
    message = {"type": kind, **({"stream": stream} if stream else {}), **fields}
    return json.dumps(message) + "\n"


def test_singer_tap_output_reads_the_orders_and_customers_streams_and_counts_the_rest_in_the_notes(conn, tmp_path):
    landing = tmp_path / "singer"
    landing.mkdir()
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "financial_status": {"type": "string"}}}
    extracted = "2025-12-01T10:00:00.000000Z"
    # the REST-era tap's orders list their refunds without transactions: the current total says what was refunded
    refunded = rest_order(
        2, refunds=[{"id": 1, "processed_at": "2025-11-20T09:00:00+01:00"}], current_total_price="35.00"
    )
    text = (
        singer("SCHEMA", "customers", schema={"type": "object", "properties": {"id": {}}}, key_properties=["id"])
        + singer("SCHEMA", "orders", schema=schema, key_properties=["id"])
        + singer("SCHEMA", "transactions", schema={"type": "object", "properties": {"id": {}}}, key_properties=["id"])
        + singer("STATE", value={"bookmarks": {}})
        + singer("RECORD", "customers", record={"id": 207119001, "email": "buyer1@example.com"})
        + singer("ACTIVATE_VERSION", "orders", version=1)
        + singer("RECORD", "orders", record=rest_order(1), time_extracted=extracted)
        + '{"type": "RECORD", "stream": "orders", "record": {"id": 4\n'  # cut short: malformed
        + singer("RECORD", "orders", record=refunded, time_extracted=extracted)
        + singer("RECORD", "orders", record="not an object", time_extracted=extracted)
        + singer("RECORD", "transactions", record={"id": 1, "order_id": 450789001, "kind": "sale", "amount": "50.00"})
        + singer("RECORD", "transactions", record={"id": 2, "order_id": 450789002, "kind": "sale", "amount": "40.00"})
        + singer("STATE", value={"bookmarks": {"orders": {"updated_at": extracted}}})
    )
    (landing / "tap-shopify.jsonl").write_text(text)
    # tap-shopify since its GraphQL migration: camelCase records with GraphQL ids, gzipped
    graphql = bulk_order(3, refunded="10.00", displayFinancialStatus="PARTIALLY_REFUNDED")
    gzip_text(
        landing / "tap-shopify-graphql.jsonl.gz",
        singer(
            "SCHEMA", "orders", schema={"type": "object", "properties": {"totalPriceSet": {}}}, key_properties=["id"]
        )
        + singer("RECORD", "orders", record=graphql, time_extracted=extracted),
    )
    assert detect_format(landing) == "shopify"
    report = ingest(conn, landing, source_format="shopify")
    assert rows(
        conn, "SELECT order_id, customer_id, order_total, status, origin_file, origin_row FROM raw.orders ORDER BY 1"
    ) == [
        ("#1001", "207119001", 50.0, "completed", "tap-shopify.jsonl", 7),
        ("#1002", "207119002", 50.0, "completed", "tap-shopify.jsonl", 9),
        ("#1002-R", "207119002", -15.0, "refunded", "tap-shopify.jsonl", 9),
        ("#1003", "203", 50.0, "completed", "tap-shopify-graphql.jsonl.gz", 2),
        ("#1003-R", "203", -10.0, "refunded", "tap-shopify-graphql.jsonl.gz", 2),
    ]
    assert rows(conn, "SELECT customer_id FROM raw.customers") == [("207119001",)]
    # a broken line is quarantined with its reason and line; SCHEMA/STATE lines and other streams are not rows
    assert rows(conn, QUARANTINE_SQL) == [
        ("tap-shopify.jsonl", 8, "malformed_json"),
        ("tap-shopify.jsonl", 10, "not_a_json_object"),
    ]
    assert rows(conn, LOG_SQL) == [
        ("tap-shopify-graphql.jsonl.gz", "orders", 2, 2, 0),
        ("tap-shopify.jsonl", "customers", 1, 1, 0),
        ("tap-shopify.jsonl", "orders", 5, 3, 2),
    ]
    assert (
        "not orders or customers, so not read (no rows): tap-shopify-graphql.jsonl.gz: 1 Singer SCHEMA message; "
        "tap-shopify.jsonl: 3 Singer SCHEMA messages, 2 Singer STATE messages, 2 `transactions` records, "
        "1 Singer ACTIVATE_VERSION message"
    ) in notes_of(report)


def test_airbyte_csv_files_old_new_and_flattened_read_as_airbyte_records(conn, tmp_path):
    import csv

    landing = tmp_path / "airbyte_csv"
    landing.mkdir()

    def write(path: Path, header: list[str], records: list[list]) -> None:
        with gzip.open(path, "wt", newline="") if path.suffix == ".gz" else path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(records)

    # the local CSV destination (and S3 CSV before destinations v2): the record as JSON text in `_airbyte_data`
    old = ["_airbyte_ab_id", "_airbyte_emitted_at", "_airbyte_data"]
    write(
        landing / "_airbyte_raw_orders.csv", old, [["a", 1764547200000, json.dumps(rest_order(1))], ["b", 1, "{oops"]]
    )
    new = ["_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "_airbyte_generation_id", "_airbyte_data"]
    meta = json.dumps({"changes": []})
    write(
        landing / "orders_2025_12_01_1764547200000_0.csv.gz",
        new,
        [["c", "2025-12-01T00:00:00Z", meta, 0, json.dumps(rest_order(2, refunds=[refund("5.00")]))]],
    )
    # root-level flattening: the record's top-level fields as columns, nested ones as JSON text
    flat = rest_order(3)
    header = ["_airbyte_ab_id", "_airbyte_emitted_at", *flat]
    cells = [json.dumps(v) if isinstance(v, dict | list) else ("" if v is None else str(v)) for v in flat.values()]
    write(landing / "customers_orders_flat.csv", header, [["d", 1764547200000, *cells]])
    assert detect_format(landing) == "shopify"
    ingest(conn, landing)
    assert rows(
        conn, "SELECT order_id, customer_id, order_total, currency, origin_file FROM raw.orders ORDER BY 1"
    ) == [
        ("#1001", "207119001", 50.0, "EUR", "_airbyte_raw_orders.csv"),
        ("#1002", "207119002", 50.0, "EUR", "orders_2025_12_01_1764547200000_0.csv.gz"),
        ("#1002-R", "207119002", -5.0, "EUR", "orders_2025_12_01_1764547200000_0.csv.gz"),
        ("#1003", "207119003", 50.0, "EUR", "customers_orders_flat.csv"),
    ]
    # a record's broken JSON text is quarantined with its row number
    assert rows(conn, QUARANTINE_SQL) == [("_airbyte_raw_orders.csv", 2, "not_a_json_object")]
    assert_reconciles(conn)


def test_segment_ga4_and_other_singer_taps_json_lines_are_not_taken_for_shopify_pulls(tmp_path):
    segment = tmp_path / "segment"
    segment.mkdir()
    # a Segment call with an `orders`-looking payload
    call = {"type": "track", "event": "Order Completed", "userId": "u", "properties": {"total_price": 5, "id": 1}}
    (segment / "orders-20251201.jsonl").write_text(json.dumps(call) + "\n")
    assert detect_format(segment) == "segment"
    ga4 = tmp_path / "ga4"
    ga4.mkdir()
    event = {"event_name": "purchase", "event_timestamp": "1764547200000000", "id": 1, "total_price": 5}
    (ga4 / "orders.jsonl").write_text(json.dumps(event) + "\n")
    assert detect_format(ga4) == "ga4"
    # another tap's Singer output, even with an `orders` stream, is no Shopify pull
    other = tmp_path / "other_tap"
    other.mkdir()
    (other / "out.jsonl").write_text(
        singer("SCHEMA", "orders", schema={"properties": {"id": {}, "amount": {}}}, key_properties=["id"])
        + singer("RECORD", "orders", record={"id": 1, "amount": 5})
    )
    (other / "events.jsonl").write_text(json.dumps(call) + "\n")
    assert detect_format(other) == "segment"
