"""Fivetran's Shopify tables (landing/formats/shopify_tables.py) read through ingest_landing.

The tables are written here with the columns `fivetran/dbt_shopify_source` lists (macros/get_*_columns.sql); every
planted case is labelled where it is written.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from demo_shop import generate_shop
from demo_shop.source_formats import write_source_format
from landing import LandingError, LandingOptions, ingest_landing
from landing.formats import detect_format
from orchestration.defs.quality_checks import reconcile_ingest

LOG_SQL = "SELECT source_file, table_name, rows_in, rows_accepted, rows_quarantined FROM raw.ingest_log ORDER BY 1, 2"
ORDERS_SQL = (
    "SELECT order_id, customer_id, ordered_at::VARCHAR, order_total, currency, discount_code, status FROM raw.orders"
)
QUARANTINE_SQL = "SELECT source_file, source_row, split_part(reason, ':', 1) FROM raw.quarantine ORDER BY 1, 2"
SYNCED = "2025-12-01 00:00:00.000 +0000"

ORDER = ["id", "name", "email", "customer_id", "created_at", "cancelled_at", "financial_status", "currency",
         "presentment_currency", "total_price", "total_discounts", "source_name", "test", "_fivetran_deleted",
         "_fivetran_synced"]  # fmt: skip
ORDERS = [
    ["11", "#1001", "ann@example.com", "701", "2025-11-01 09:00:00+00", "", "paid", "EUR", "EUR", "60.00", "5.00",
     "web", "false", "false", SYNCED],
    # refunded twice: one line refund with tax, one shipping refund (a negative adjustment)
    ["12", "#1002", "bob@example.com", "702", "2025-11-03 17:00:00+00", "", "partially_refunded", "EUR", "USD",
     "40.00", "0", "web", "false", "false", SYNCED],
    # cancelled, and refunded in full: neither counts
    ["13", "#1003", "ann@example.com", "701", "2025-11-05 08:00:00+00", "2025-11-05 09:00:00+00", "refunded", "EUR",
     "EUR", "25.00", "0", "web", "false", "false", SYNCED],
    ["14", "#1004", "ann@example.com", "701", "2025-11-06 08:00:00+00", "", "paid", "EUR", "EUR", "99.00", "0", "web",
     "true", "false", SYNCED],  # a test order
    ["15", "#1005", "ann@example.com", "701", "2025-11-07 08:00:00+00", "", "paid", "EUR", "EUR", "12.00", "0", "web",
     "false", "true", SYNCED],  # deleted in Shopify (a soft delete)
    ["16", "#1006", "CAROL@example.com", "", "2025-11-08 08:00:00+00", "", "paid", "EUR", "EUR", "10.00", "0", "web",
     "false", "false", SYNCED],  # a guest checkout: matched to her customer row by email
    ["17", "#1007", "", "", "2025-11-09 08:00:00+00", "", "paid", "EUR", "EUR", "4.00", "0", "pos", "false", "false",
     SYNCED],  # a walk-in POS sale: nobody's
]  # fmt: skip
CUSTOMER = ["id", "email", "phone", "first_name", "last_name", "created_at", "email_marketing_consent_state",
            "accepts_marketing", "_fivetran_deleted", "_fivetran_synced"]  # fmt: skip
CUSTOMERS = [
    ["701", "ann@example.com", "", "Ann", "A", "2025-01-02 10:00:00+00", "SUBSCRIBED", "", "false", SYNCED],
    ["702", "bob@example.com", "", "Bob", "B", "2025-02-02 10:00:00+00", "", "false", "false", SYNCED],
    ["703", "carol@example.com", "+1 555 0100", "Carol", "C", "", "NOT_SUBSCRIBED", "true", "false", SYNCED],
    ["704", "gone@example.com", "", "Gone", "G", "", "", "", "true", SYNCED],  # deleted
]
REFUND = ["id", "order_id", "created_at", "processed_at", "_fivetran_deleted", "_fivetran_synced"]
REFUNDS = [
    ["21", "12", "2025-11-10 10:00:00+00", "", "false", SYNCED],
    ["22", "12", "2025-11-12 10:00:00+00", "", "false", SYNCED],
    ["23", "13", "2025-11-05 09:00:00+00", "", "false", SYNCED],  # of the cancelled order
    ["24", "11", "2025-11-13 10:00:00+00", "", "false", SYNCED],  # a restock only: no money back
    ["25", "99", "2025-11-13 10:00:00+00", "", "false", SYNCED],  # of an order not in the table
]
LINE_REFUND = ["id", "refund_id", "order_line_id", "quantity", "subtotal", "total_tax", "_fivetran_synced"]
LINE_REFUNDS = [
    ["31", "21", "1", "1", "10.00", "2.00", SYNCED],
    ["32", "23", "2", "1", "25.00", "0", SYNCED],
    ["33", "24", "3", "1", "0", "0", SYNCED],
    ["34", "98", "4", "1", "5.00", "0", SYNCED],  # of a refund not in the table
]
ADJUSTMENT = ["id", "order_id", "refund_id", "amount", "tax_amount", "kind", "reason", "_fivetran_synced"]
ADJUSTMENTS = [["41", "12", "22", "-4.50", "-0.50", "shipping_refund", "Shipping refund", SYNCED]]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def fivetran_folder(landing: Path, *, skip: tuple[str, ...] = ()) -> Path:
    landing.mkdir(parents=True, exist_ok=True)
    tables = {
        "order": (ORDER, ORDERS),
        "customer": (CUSTOMER, CUSTOMERS),
        "refund": (REFUND, REFUNDS),
        "order_line_refund": (LINE_REFUND, LINE_REFUNDS),
        "order_adjustment": (ADJUSTMENT, ADJUSTMENTS),
        "transaction": (
            ["id", "order_id", "amount", "currency", "_fivetran_synced"],
            [["51", "11", "60", "EUR", SYNCED]],
        ),
    }
    for table, (header, rows) in tables.items():
        if table not in skip:
            write_csv(landing / f"{table}.csv", header, rows)
    return landing


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
    assert reconcile_ingest(conn)["reconciles"].all()


def test_fivetran_tables_become_orders_with_refunds_netted_and_every_row_accounted_for(conn, tmp_path):
    landing = fivetran_folder(tmp_path / "shopify")
    assert detect_format(landing) == "shopify"
    report = ingest(conn, landing)
    assert report.source_format == "shopify"
    assert rows(conn, ORDERS_SQL + " ORDER BY order_id") == [
        ("#1001", "701", "2025-11-01 09:00:00", 60.0, "EUR", None, "completed"),
        ("#1002", "702", "2025-11-03 17:00:00", 40.0, "EUR", None, "completed"),
        # refund 21: subtotal 10 + tax 2; refund 22: a shipping refund (adjustment -4.50, tax -0.50) refunds 5
        ("#1002-R", "702", "2025-11-10 10:00:00", -12.0, "EUR", None, "refunded"),
        ("#1002-R2", "702", "2025-11-12 10:00:00", -5.0, "EUR", None, "refunded"),
        ("#1003", "701", "2025-11-05 08:00:00", 25.0, "EUR", None, "cancelled"),
        ("#1006", "703", "2025-11-08 08:00:00", 10.0, "EUR", None, "completed"),
    ]
    assert rows(conn, QUARANTINE_SQL) == [
        ("customer.csv", 4, "deleted_in_shopify"),
        ("order.csv", 4, "test_order"),
        ("order.csv", 5, "deleted_in_shopify"),
        ("order.csv", 7, "anonymous_order"),
        ("order_line_refund.csv", 4, "unknown_refund"),
        ("refund.csv", 3, "refund_of_cancelled_order"),
        ("refund.csv", 4, "no_money_refunded"),
        ("refund.csv", 5, "unknown_order"),
    ]
    assert rows(conn, LOG_SQL) == [
        ("customer.csv", "customers", 4, 3, 1),
        ("order.csv", "orders", 7, 4, 3),
        ("order_line_refund.csv", "orders", 1, 0, 1),
        ("refund.csv", "orders", 5, 2, 3),
    ]
    assert_reconciles(conn)
    customers = "SELECT customer_id, signed_up_at::VARCHAR, marketing_consent FROM raw.customers ORDER BY 1"
    assert rows(conn, customers) == [
        ("701", "2025-01-02 10:00:00", True),
        ("702", "2025-02-02 10:00:00", False),
        ("703", None, False),  # email_marketing_consent_state wins over the deprecated accepts_marketing
    ]
    [orders] = [file for file in report.files if file.table_name == "orders"]
    assert any(note.startswith("warning: 1 of 5 orders") for note in orders.notes)
    assert any(note.startswith("not read: transaction.csv") for note in orders.notes)
    # The raw record of a quarantined row is the source row, keyed by its columns.
    test_order = "SELECT raw_record::JSON->>'name' FROM raw.quarantine WHERE reason LIKE 'test_order%'"
    assert rows(conn, test_order) == [("#1004",)]


def test_snowflake_parquet_parts_with_upper_case_names_and_shop_money_from_the_set_columns(conn, tmp_path):
    # Snowflake unloads upper-case names in parts (ORDER_0_0_0.snappy.parquet); GraphQL-era Fivetran columns give the
    # shop money flattened (TOTAL_PRICE_SET_SHOP_AMOUNT) next to the presentment money, which is never read.
    landing = tmp_path / "snowflake"
    landing.mkdir()
    (landing / "ORDER").mkdir()
    part = """
SELECT * FROM (VALUES
  ({n}, '#{n}', 'ann@example.com', 701, TIMESTAMPTZ '2025-11-0{n} 09:00:00+00', NULL::TIMESTAMPTZ, 'PAID', 'EUR',
   {shop}, 'EUR', {pres}, 'USD', false, false, TIMESTAMPTZ '2025-12-01 00:00:00+00'))
AS t(ID, NAME, EMAIL, CUSTOMER_ID, CREATED_AT, CANCELLED_AT, DISPLAY_FINANCIAL_STATUS, CURRENCY_CODE,
     TOTAL_PRICE_SET_SHOP_AMOUNT, TOTAL_PRICE_SET_SHOP_CURRENCY_CODE, TOTAL_PRICE_SET_PRES_AMOUNT,
     TOTAL_PRICE_SET_PRES_CURRENCY_CODE, TEST, _FIVETRAN_DELETED, _FIVETRAN_SYNCED)"""
    for n, (shop, pres) in enumerate([(10.0, 11.5), (20.0, 23.0)], start=1):
        target = landing / "ORDER" / f"data_0_0_{n}.snappy.parquet"
        duckdb.sql(f"COPY ({part.format(n=n, shop=shop, pres=pres)}) TO '{target}' (FORMAT parquet)")
    duckdb.sql(
        "COPY (SELECT 8 AS ID, 1 AS ORDER_ID, TIMESTAMPTZ '2025-11-05 10:00:00+00' AS CREATED_AT, "
        f"TIMESTAMPTZ '2025-12-01 00:00:00+00' AS _FIVETRAN_SYNCED) TO '{landing / 'REFUND_0_0_0.snappy.parquet'}' "
        "(FORMAT parquet)"
    )
    duckdb.sql(
        "COPY (SELECT 9 AS ID, 8 AS REFUND_ID, 3.25 AS SUBTOTAL_SET_SHOP_AMOUNT, 4.0 AS SUBTOTAL_SET_PRES_AMOUNT, "
        "0.75 AS TOTAL_TAX_SET_SHOP_AMOUNT, TIMESTAMPTZ '2025-12-01 00:00:00+00' AS _FIVETRAN_SYNCED) "
        f"TO '{landing / 'ORDER_LINE_REFUND_0_0_0.snappy.parquet'}' (FORMAT parquet)"
    )
    assert detect_format(landing) == "shopify"
    ingest(conn, landing)
    assert rows(conn, ORDERS_SQL + " ORDER BY order_id") == [
        ("#1", "701", "2025-11-01 09:00:00", 10.0, "EUR", None, "completed"),
        ("#1-R", "701", "2025-11-05 10:00:00", -4.0, "EUR", None, "refunded"),
        ("#2", "701", "2025-11-02 09:00:00", 20.0, "EUR", None, "completed"),
    ]
    assert rows(conn, "SELECT DISTINCT origin_file FROM raw.orders ORDER BY 1") == [
        ("ORDER/data_0_0_1.snappy.parquet",),
        ("ORDER/data_0_0_2.snappy.parquet",),
        ("REFUND_0_0_0.snappy.parquet",),
    ]
    assert_reconciles(conn)


def test_a_quoted_order_table_in_parts_with_the_rest_json_money_sets(conn, tmp_path):
    # `order` is a reserved word: an export may keep the quotes ("order".csv). The REST schema keeps the shop and
    # presentment money in a JSON `_set` column; a part without total_price takes the shop money from it.
    landing = fivetran_folder(tmp_path / "quoted", skip=("order", "refund", "order_line_refund", "order_adjustment"))
    header = ["id", "name", "email", "customer_id", "created_at", "currency", "total_price_set", "_fivetran_synced"]
    money = '{"shop_money": {"amount": "30.00", "currency_code": "EUR"}, "presentment_money": {"amount": "33.00"}}'
    write_csv(
        landing / '"order"_000.csv',
        header,
        [["11", "#1001", "", "701", "2025-11-01 09:00:00+00", "EUR", money, SYNCED]],
    )
    write_csv(
        landing / '"order"_001.csv',
        header,
        [["12", "#1002", "", "702", "2025-11-02 09:00:00+00", "EUR", money, SYNCED]],
    )
    ingest(conn, landing)
    assert rows(conn, "SELECT order_id, customer_id, order_total FROM raw.orders ORDER BY 1") == [
        ("#1001", "701", 30.0),
        ("#1002", "702", 30.0),
    ]
    assert_reconciles(conn)


def test_several_shop_currencies_are_never_summed(conn, tmp_path):
    # The shop changed its currency: each order keeps the shop currency it was booked in (never the presentment
    # currency the buyer saw), and the contract's money rule applies: converted with fx_rates.csv, else
    # mixed_currency, never added up as they are.
    landing = fivetran_folder(tmp_path / "currencies", skip=("refund", "order_line_refund", "order_adjustment"))
    orders = [row.copy() for row in ORDERS[:2]]
    orders[1][7] = "CHF"
    write_csv(landing / "order.csv", ORDER, orders)
    (landing / "fx_rates.csv").write_text("date,currency,rate\n2025-01-01,CHF,1.05\n")
    ingest(conn, landing, options=LandingOptions(reporting_currency="EUR"))
    assert rows(conn, "SELECT order_id, order_total, currency, fx_rate FROM raw.orders ORDER BY 1") == [
        ("#1001", 60.0, "EUR", 1.0),
        ("#1002", 40.0, "CHF", 1.05),
    ]
    assert_reconciles(conn)


@pytest.mark.parametrize(
    ("skip", "message"),
    [
        (("order",), r"but no `order` table: export it too"),
        (("order_line_refund",), r"a Shopify `refund` table without `order_line_refund`"),
        (("refund",), r"Shopify `order_line_refund` without the `refund` table"),
    ],
)
def test_a_missing_table_stops_with_one_line(conn, tmp_path, skip, message):
    landing = fivetran_folder(tmp_path / "missing", skip=skip)
    with pytest.raises(LandingError, match=message) as error:
        ingest(conn, landing)
    assert "\n" not in str(error.value)


def test_tables_without_fivetran_columns_are_read_when_the_format_is_set(conn, tmp_path):
    # Exported without Fivetran's own columns, the tables are not recognised, but SEGMINT_SOURCE_FORMAT=shopify
    # reads them by name.
    landing = tmp_path / "bare"
    landing.mkdir()
    write_csv(landing / "ORDER.csv", ["ID", "NAME", "EMAIL", "CREATED_AT", "CURRENCY", "TOTAL_PRICE"], [["1", "#1", "a@example.com", "2025-11-01 09:00:00+00", "EUR", "5"]])  # fmt: skip
    with pytest.raises(LandingError, match="no known landing format"):
        detect_format(landing)
    ingest(conn, landing, source_format="shopify")
    assert rows(conn, "SELECT order_id, customer_id, order_total FROM raw.orders") == [("#1", "a@example.com", 5.0)]


def test_the_demo_shops_admin_export_as_fivetran_tables_gives_the_same_orders_and_customers(tmp_path):
    generate_shop(tmp_path / "contract", tmp_path / "truth", n_customers=300, seed=7)
    results = {}
    for source_format in ("shopify", "shopify_tables"):
        write_source_format(tmp_path / "contract", tmp_path / source_format, source_format)
        with duckdb.connect() as connection:
            ingest(connection, tmp_path / source_format)
            assert_reconciles(connection)
            results[source_format] = [
                set(
                    rows(
                        connection,
                        f"SELECT * EXCLUDE (origin_file, origin_row, source_file, source_row) FROM raw.{table}",
                    )
                )
                for table in ("orders", "customers")
            ]
            anonymous = rows(
                connection,
                "SELECT raw_record::JSON->>'order_id' FROM raw.quarantine WHERE reason LIKE 'anonymous_order%'",
            )
            results[source_format].append({order_id for (order_id,) in anonymous})
    (admin_orders, admin_customers, admin_anonymous), (orders, customers, anonymous) = results.values()
    assert customers == admin_customers
    assert admin_orders <= orders
    # The admin export's orders carry no customer id: a customer known by neither email nor phone loses their
    # orders (anonymous_order). Fivetran's order.customer_id keeps them.
    assert {row[0] for row in orders - admin_orders} == admin_anonymous
    assert anonymous == set()


def test_a_spark_partitioned_order_folder_and_gzipped_csv_parts(conn, tmp_path):
    # Spark's partitionBy("currency") takes the column out of the files into the folder names; a Redshift-style
    # gzip'd CSV part of the customer table sits next to it.
    landing = tmp_path / "lake"
    for currency, (order_id, total) in {"EUR": (1, 10.0), "CHF": (2, 20.0)}.items():
        folder = landing / "order" / f"currency={currency}"
        folder.mkdir(parents=True)
        duckdb.sql(
            f"COPY (SELECT {order_id} AS id, '#{order_id}' AS name, 701 AS customer_id, "
            f"TIMESTAMP '2025-11-0{order_id} 09:00:00' AS created_at, {total} AS total_price, "
            f"TIMESTAMP '2025-12-01 00:00:00' AS _fivetran_synced) TO '{folder / 'part-00000.snappy.parquet'}' "
            "(FORMAT parquet)"
        )
    (landing / "order" / "_SUCCESS").write_text("")
    duckdb.sql(
        f"COPY (SELECT 701 AS id, 'ann@example.com' AS email, '{SYNCED}' AS _fivetran_synced) "
        f"TO '{landing / 'customer_0000_part_00.gz'}' (FORMAT csv, HEADER, COMPRESSION gzip)"
    )
    assert detect_format(landing) == "shopify"
    ingest(conn, landing, options=LandingOptions(reporting_currency="EUR"))
    assert rows(conn, "SELECT order_id, customer_id, currency FROM raw.orders ORDER BY 1") == [("#1", "701", "EUR")]
    assert rows(conn, QUARANTINE_SQL) == [("order/currency=CHF/part-00000.snappy.parquet", 1, "mixed_currency")]
    assert rows(conn, "SELECT customer_id, origin_file FROM raw.customers") == [("701", "customer_0000_part_00.gz")]
    assert_reconciles(conn)


def test_history_mode_past_versions_are_set_aside_and_the_active_rows_read(conn, tmp_path):
    # Fivetran's history mode ("System Columns and Tables": `_fivetran_active`, `_fivetran_start`, `_fivetran_end`)
    # keeps every version of a row. Read as records, an order edited or cancelled after it was placed was
    # duplicate_conflicting (every copy quarantined: the order lost), a customer whose consent changed too.
    landing = fivetran_folder(tmp_path / "history")
    reference = tmp_path / "reference"
    fivetran_folder(reference)
    history = ["_fivetran_active", "_fivetran_start", "_fivetran_end"]
    active = ["true", "2025-11-20 00:00:00+00", "9999-12-31 23:59:59+00"]
    past = ["false", "2025-11-01 00:00:00+00", "2025-11-20 00:00:00+00"]
    orders = [row + active for row in ORDERS]
    # #1001 before an edit
    orders.insert(0, [*ORDERS[0][:6], "pending", *ORDERS[0][7:9], "55.00", *ORDERS[0][10:], *past])
    orders.insert(3, [*ORDERS[2][:5], "", "paid", *ORDERS[2][7:], *past])  # #1003 before it was cancelled
    write_csv(landing / "order.csv", ORDER + history, orders)
    customers = [row + active for row in CUSTOMERS] + [[*CUSTOMERS[0][:6], "NOT_SUBSCRIBED", *CUSTOMERS[0][7:], *past]]
    write_csv(landing / "customer.csv", CUSTOMER + history, customers)
    refunds = [row + active for row in REFUNDS] + [[*REFUNDS[0][:4], "true", SYNCED, *past]]
    write_csv(landing / "refund.csv", REFUND + history, refunds)
    ingest(conn, landing)
    with duckdb.connect() as expected:
        ingest(expected, reference)
        assert rows(conn, ORDERS_SQL + " ORDER BY order_id") == rows(expected, ORDERS_SQL + " ORDER BY order_id")
        customers_sql = "SELECT * EXCLUDE (origin_row, source_row) FROM raw.customers ORDER BY customer_id"
        assert rows(conn, customers_sql) == rows(expected, customers_sql)
    superseded = (
        "SELECT source_file, source_row FROM raw.quarantine WHERE reason LIKE 'superseded_version%' ORDER BY 1, 2"
    )
    assert rows(conn, superseded) == [("customer.csv", 5), ("order.csv", 1), ("order.csv", 4), ("refund.csv", 6)]
    assert_reconciles(conn)


def test_integer_ids_written_as_floats_by_pandas_still_join(conn, tmp_path):
    # pandas turns an integer column holding a null (a guest order's customer_id) into floats, in Parquet and in
    # CSV: 701 -> 701.0. Read as written, the orders named customers `701.0` that the customer table does not hold,
    # and the refunds `12.0` of no order.
    landing = fivetran_folder(tmp_path / "pandas", skip=("order", "refund"))
    duckdb.sql(
        f"COPY (SELECT * REPLACE (CAST(nullif(customer_id, '') AS DOUBLE) AS customer_id, CAST(id AS DOUBLE) AS id) "
        f"FROM read_csv('{fivetran_folder(tmp_path / 'plain')}/order.csv', all_varchar = true)) "
        f"TO '{landing / 'order.parquet'}' (FORMAT parquet)"
    )
    write_csv(landing / "refund.csv", REFUND, [[f"{row[0]}.0", f"{row[1]}.0", *row[2:]] for row in REFUNDS])
    ingest(conn, landing)
    with duckdb.connect() as expected:
        ingest(expected, tmp_path / "plain")
        assert rows(conn, ORDERS_SQL + " ORDER BY order_id") == rows(expected, ORDERS_SQL + " ORDER BY order_id")
    assert_reconciles(conn)


def test_tables_resaved_by_a_spreadsheet_with_decimal_commas_give_the_same_orders(conn, tmp_path):
    # A European spreadsheet re-saves a CSV with `;` and decimal commas (`10,00`). The order totals are read by the
    # contract's dialect detection; the refunds are summed here, and `112,9` was invalid_refund_amount (revenue
    # overstated by every refund).
    landing = fivetran_folder(tmp_path / "resaved")
    for name, header, table in (
        ("order.csv", ORDER, ORDERS),
        ("order_line_refund.csv", LINE_REFUND, LINE_REFUNDS),
        ("order_adjustment.csv", ADJUSTMENT, ADJUSTMENTS),
    ):
        amounts = [
            i
            for i, column in enumerate(header)
            if column in ("total_price", "total_discounts", "subtotal", "total_tax", "amount", "tax_amount")
        ]
        resaved = [[value.replace(".", ",") if i in amounts else value for i, value in enumerate(row)] for row in table]
        with (landing / name).open("w", newline="", encoding="utf-8-sig") as handle:
            csv.writer(handle, delimiter=";").writerows([header, *resaved])
    ingest(conn, landing)
    with duckdb.connect() as expected:
        ingest(expected, fivetran_folder(tmp_path / "plain"))
        assert rows(conn, ORDERS_SQL + " ORDER BY order_id") == rows(expected, ORDERS_SQL + " ORDER BY order_id")
        assert rows(conn, QUARANTINE_SQL) == rows(expected, QUARANTINE_SQL)
    assert_reconciles(conn)


def test_an_incremental_unload_of_updated_rows_supersedes_the_earlier_sync(conn, tmp_path):
    # A daily unload of the rows synced since the last one (`order/part-00001.csv`) repeats every updated order:
    # an order voided the day after it landed. The later `_fivetran_synced` copy is the record; both copies were
    # duplicate_conflicting (the order lost) before (branch dailyred). Equal sync times still conflict.
    landing = fivetran_folder(tmp_path / "daily", skip=("order",))
    (landing / "order").mkdir()
    write_csv(landing / "order" / "part-00000.csv", ORDER, ORDERS)
    later = "2025-12-02 06:00:00.000 +0000"
    voided = [*ORDERS[0][:5], "2025-12-01 10:00:00+00", "voided", *ORDERS[0][7:14], later]
    same_time = [*ORDERS[5][:9], "11.00", *ORDERS[5][10:]]  # #1006's total differs, synced at the same time
    write_csv(landing / "order" / "part-00001.csv", ORDER, [voided, same_time])
    ingest(conn, landing)
    assert rows(conn, "SELECT status FROM raw.orders WHERE order_id = '#1001'") == [("cancelled",)]
    reasons = (
        "SELECT source_file, source_row, split_part(reason, ':', 1) FROM raw.quarantine "
        "WHERE source_file LIKE 'order/%' AND (reason LIKE 'superseded%' OR reason LIKE 'duplicate%') ORDER BY 1, 2"
    )
    assert rows(conn, reasons) == [
        ("order/part-00000.csv", 1, "superseded_version"),
        ("order/part-00000.csv", 6, "duplicate_conflicting"),
        ("order/part-00001.csv", 2, "duplicate_conflicting"),
    ]
    # the voided order's refund no longer counts either
    assert ("refund.csv", 4, "refund_of_cancelled_order") in rows(conn, QUARANTINE_SQL)
    assert_reconciles(conn)
