"""`make run` on a shop's own exports (landing/formats/): the demo shop rewritten as a source format, end to end.

One whole-graph run (~2-5 min on 2 cores) for the cheapest format, Shopify (no events to stage); GA4 and Segment
run the same way with SEGMINT_TEST_ALL_SOURCE_FORMATS=1 (see landing/README.md, "Source formats"). Each export is
made harder the way real ones are: Shopify's customers export is the older one without `Customer ID`, with some
customers known by phone only; some GA4 / Segment purchases carry no transaction_id / order_id.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path

import duckdb
import pytest

from demo_shop import generate_shop
from demo_shop.source_formats import write_source_format
from tests.conftest import make_run

DEMO_CUSTOMERS = 1500
ALL_FORMATS = bool(os.environ.get("SEGMINT_TEST_ALL_SOURCE_FORMATS"))
slower = pytest.mark.skipif(not ALL_FORMATS, reason="set SEGMINT_TEST_ALL_SOURCE_FORMATS=1 to run every format")


def shopify_revenue(landing: Path) -> float:
    """sum(Total) - sum(Refunded Amount) over non-cancelled orders whose buyer is known, read from the export."""
    with (landing / "orders_export.csv").open(newline="") as handle:
        first_rows: dict[str, dict[str, str]] = {}
        for row in csv.DictReader(handle):
            first_rows.setdefault(row["Name"], row)
    return sum(
        float(row["Total"]) - float(row["Refunded Amount"] or 0)
        for row in first_rows.values()
        if not row["Cancelled at"] and (row["Email"] or row["Phone"])
    )


def shopify_tables_revenue(landing: Path) -> float:
    """sum(total_price) over non-cancelled orders minus their refunds' line refunds, read from the Fivetran tables."""
    return duckdb.sql(f"""
SELECT sum(total_price) - (SELECT coalesce(sum(l.subtotal + l.total_tax), 0)
                           FROM read_csv('{landing / "order_line_refund.csv"}') AS l
                           JOIN read_csv('{landing / "refund.csv"}') AS r ON r.id = l.refund_id
                           JOIN read_csv('{landing / "order.csv"}') AS o ON o.id = r.order_id
                           WHERE o.cancelled_at IS NULL)
FROM read_csv('{landing / "order.csv"}') WHERE cancelled_at IS NULL""").fetchall()[0][0]


# Every STRIP_EVERY-th customer (Shopify) or purchase (GA4, Segment) loses its id, as in real exports.
STRIP_EVERY = 7


def as_older_shopify_export(landing: Path) -> int:
    """Drop `Customer ID` from customers_export.csv (older exports have none) and make every STRIP_EVERY-th
    customer with a phone known by phone only, in both files (a customer who signed up by SMS); their count."""
    with (landing / "customers_export.csv").open(newline="") as handle:
        customers = list(csv.DictReader(handle))
    phone_only = {row["Email"] for i, row in enumerate(customers) if i % STRIP_EVERY == 0 and row["Phone"]}
    for row in customers:
        del row["Customer ID"]
        if row["Email"] in phone_only:
            row["Email"] = ""
    rewrite_csv(landing / "customers_export.csv", customers)
    with (landing / "orders_export.csv").open(newline="") as handle:
        lines = list(csv.DictReader(handle))
    for row in lines:
        if row["Email"] in phone_only:
            row["Email"] = ""
    rewrite_csv(landing / "orders_export.csv", lines)
    return len(phone_only)


def rewrite_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def strip_order_ids(landing: Path, source_format: str) -> int:
    """Remove the order id from every STRIP_EVERY-th purchase (GA4 transaction_id, Segment order_id); their count."""
    stripped = 0
    if source_format == "segment_warehouse":  # the Order Completed table: its order_id column
        with (landing / "order_completed.csv").open(newline="") as handle:
            orders = list(csv.DictReader(handle))
        for row in orders:
            stripped += 1
            if stripped % STRIP_EVERY == 0:
                row["order_id"] = ""
        rewrite_csv(landing / "order_completed.csv", orders)
        return stripped // STRIP_EVERY
    for path in sorted(landing.glob("*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        for record in records:
            if source_format == "ga4" and record.get("event_name") == "purchase":
                holder, key = record["ecommerce"], "transaction_id"
            elif source_format == "segment" and record.get("event") == "Order Completed":
                holder, key = record["properties"], "order_id"
            else:
                continue
            stripped += 1
            if stripped % STRIP_EVERY == 0:
                del holder[key]
        with opener(path, "wt") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records)
    return stripped // STRIP_EVERY


@pytest.mark.slow
@pytest.mark.parametrize(
    "source_format",
    [
        "shopify",
        pytest.param("ga4", marks=slower),
        pytest.param("segment", marks=slower),
        pytest.param("segment_warehouse", marks=slower),
        pytest.param("shopify_tables", marks=slower),
    ],
)
def test_make_run_on_a_source_format_exits_0_and_revenue_reconciles(tmp_path, source_format):
    generate_shop(tmp_path / "contract", tmp_path / "truth", n_customers=DEMO_CUSTOMERS, seed=42)
    landing = tmp_path / source_format
    write_source_format(tmp_path / "contract", landing, source_format)
    if source_format == "shopify":
        phone_only = as_older_shopify_export(landing)
        assert phone_only > 0
    elif source_format != "shopify_tables":  # Fivetran's tables name every order and customer by Shopify's ids
        without_ids = strip_order_ids(landing, source_format)
        assert without_ids > 0
    result = make_run(tmp_path, SEGMINT_LANDING_DIR=str(landing))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as conn:
        # Segment's warehouse tables are Segment calls: the same format (and event-mapping preset).
        # Fivetran's Shopify tables are Shopify: the same format.
        expected_format = {"segment_warehouse": "segment", "shopify_tables": "shopify"}.get(
            source_format, source_format
        )
        assert conn.execute("SELECT source_format FROM raw.run_context").fetchall() == [(expected_format,)]
        log = conn.execute("SELECT sum(rows_in), sum(rows_accepted + rows_quarantined) FROM raw.ingest_log").fetchall()
        assert log[0][0] == log[0][1]
        revenue = conn.execute(
            "SELECT sum(order_total) FROM raw.orders WHERE coalesce(status, '') NOT IN ('cancelled', 'voided')"
        ).fetchall()[0][0]
        customers = conn.execute("SELECT count(*) FROM marts.customer_features").fetchall()[0][0]
        generated = conn.execute(
            "SELECT coalesce(sum(ids_generated), 0) FROM raw.ingest_log WHERE table_name = 'orders'"
        ).fetchall()[0][0]
        # Customers and their orders join whatever identified them (Customer ID, email, phone).
        orphan_orders = conn.execute(
            "SELECT count(*) FROM raw.orders WHERE customer_id NOT IN (SELECT customer_id FROM raw.customers)"
        ).fetchall()[0][0]
        quarantined_customers = conn.execute(
            "SELECT count(*) FROM raw.quarantine WHERE reason LIKE 'missing_customer_id%' "
            "AND source_file = 'customers_export.csv'"
        ).fetchall()[0][0]
        contract_revenue = duckdb.sql(
            f"SELECT sum(order_total) FROM read_csv('{tmp_path / 'contract' / 'orders.csv'}') "
            "WHERE CAST(ordered_at AS DATE) <= (SELECT max(CAST(ordered_at AS DATE)) FROM "
            f"read_csv('{tmp_path / 'contract' / 'orders.csv'}'))"
        ).fetchall()[0][0]
    assert customers > 0.9 * DEMO_CUSTOMERS
    if source_format == "shopify_tables":
        assert revenue == pytest.approx(shopify_tables_revenue(landing))
        assert (orphan_orders, generated) == (0, 0)
    elif source_format == "shopify":
        assert revenue == pytest.approx(shopify_revenue(landing))
        # Only a customer with neither email nor phone (nor Customer ID, in this export) has no identity.
        with (landing / "customers_export.csv").open(newline="") as handle:
            unidentifiable = sum(1 for row in csv.DictReader(handle) if not (row["Email"] or row["Phone"]))
        assert (orphan_orders, quarantined_customers, generated) == (0, unidentifiable, 0)
    else:
        # Purchases without an order id keep their revenue (below), each one order, and are counted.
        assert generated == without_ids
        # GA4 purchases and Segment Order Completed calls carry every demo order and refund.
        assert revenue == pytest.approx(contract_revenue)
