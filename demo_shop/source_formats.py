"""The demo shop's landing files rewritten as a GA4 BigQuery export, Segment calls or Shopify admin exports.

For trying and testing landing/formats/ on a shop with realistic volume and repeat buyers; the layouts follow
the same public references as the translators (see landing/README.md, "Source formats"). Deterministic: the
same contract files give byte-identical exports.

    python -m demo_shop.source_formats --format ga4 --out DIR [--customers 400] [--seed 42]

`shopify_rest`, `shopify_bulk`, `shopify_airbyte`, `shopify_array`, `shopify_jsonl`, `shopify_singer` and
`shopify_airbyte_csv` write the Shopify admin export re-expressed as the Admin API gives it and as tools save it
(landing/formats/shopify_api.py): REST `orders.json`/`customers.json` pages (pretty-printed, 250 a page), GraphQL
bulk operation JSONL (line items as `__parentId` lines), Airbyte S3 records (gzip'd JSON lines), one bare JSON
array per resource (`jq .orders`), one REST record per line (Singer's target-jsonl), tap-shopify's Singer messages,
and Airbyte's S3 CSV; the same orders and customers as `shopify`, so each reads into the same raw tables.

`segment_warehouse` writes the Segment calls as Segment Warehouses tables exported one CSV file per table
(`tracks`, `pages`, `identifies` and one per event, `order_completed.csv`, ...; landing/formats/segment_warehouse.py).
`shopify_tables` writes the Shopify export's shop as Fivetran syncs it into a warehouse, one CSV per table (`order`,
`customer`, `customer_address`, `refund`, `order_line_refund`, ...; landing/formats/shopify_tables.py).

Choices that make the export look like the real thing: a customer's `user_id`/`userId` appears only from their
first order on (they log in at checkout), so the pre-login history must be stitched through the anonymous id;
purchases come from the orders (demo `purchase` events are dropped, GA4 and Segment send one per order);
event names are each tool's own (GA4 recommended events, Segment E-commerce Spec names); Shopify orders are
split into 1-3 line rows, refunds fold into the order's `Refunded Amount`, and every 50th order is cancelled.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb

from demo_shop.generator import generate_shop

FORMATS = (
    "ga4",
    "segment",
    "segment_warehouse",
    "shopify",
    "shopify_tables",
    "shopify_rest",
    "shopify_bulk",
    "shopify_airbyte",
    "shopify_array",
    "shopify_jsonl",
    "shopify_singer",
    "shopify_airbyte_csv",
)
SITE = "https://demo.segmint.shop"
# The demo vocabulary in each tool's own names (a name missing here is sent as a custom event, unchanged).
GA4_NAMES = {
    "product_view": "view_item",
    "add_to_cart": "add_to_cart",
    "begin_checkout": "begin_checkout",
    "shipping_info_viewed": "add_shipping_info",
    "search": "search",
    "video_play": "video_start",
    "discount_code_applied": "coupon_applied",
    "page_view": "page_view",
}
SEGMENT_NAMES = {
    "product_view": "Product Viewed",
    "add_to_cart": "Product Added",
    "begin_checkout": "Checkout Started",
    "shipping_info_viewed": "Checkout Step Viewed",
    "search": "Products Searched",
    "discount_code_applied": "Coupon Applied",
    "review_read": "Product Reviews Viewed",
    "compare_used": "Products Compared",
    "gallery_view": "Product Gallery Viewed",
    "video_play": "Video Playback Started",
    "countdown_view": "Promotion Viewed",
    "low_stock_view": "Low Stock Viewed",
}
CANCEL_EVERY = 50


def _case(column: str, names: dict[str, str]) -> str:
    whens = " ".join(f"WHEN '{source}' THEN '{target}'" for source, target in names.items())
    return f"CASE {column} {whens} ELSE {column} END"


def _stage(conn: duckdb.DuckDBPyConnection, contract_dir: Path) -> None:
    for table in ("orders", "customers", "events"):
        path = contract_dir / f"{table}.csv"
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_csv('{path}', all_varchar=true)")
    # When each customer logged in first: their first order (the user id is unknown before).
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE first_login AS SELECT customer_id, min(ordered_at) AS ts FROM orders "
        "GROUP BY customer_id"
    )
    conn.execute("""
CREATE OR REPLACE TEMP TABLE pseudo AS
SELECT customer_id, min(anonymous_id) AS anonymous_id FROM events WHERE customer_id IS NOT NULL GROUP BY customer_id""")
    conn.execute("""
CREATE OR REPLACE TEMP TABLE timeline AS
SELECT 'event' AS kind, e.event_id AS id, e.occurred_at AS ts, e.event_type, e.page_type, e.product_id, e.device,
       e.utm_source, e.utm_campaign, e.anonymous_id,
       CASE WHEN e.occurred_at >= f.ts THEN e.customer_id END AS user_id,
       NULL AS order_id, NULL AS total, NULL AS currency, NULL AS discount_code, NULL AS discount_amount
FROM events AS e LEFT JOIN first_login AS f USING (customer_id) WHERE e.event_type <> 'purchase'
UNION ALL
SELECT CASE WHEN CAST(o.order_total AS DOUBLE) < 0 THEN 'refund' ELSE 'purchase' END, o.order_id, o.ordered_at,
       NULL, 'checkout', NULL, NULL, NULL, NULL, coalesce(p.anonymous_id, 'p' || o.customer_id), o.customer_id,
       regexp_replace(o.order_id, '-R$', ''), o.order_total, o.currency, o.discount_code, o.discount_amount
FROM orders AS o LEFT JOIN pseudo AS p USING (customer_id)""")


def _write_ga4(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    page_url = f"'{SITE}/' || coalesce(page_type, '') || coalesce('/' || product_id, '')"
    micros = "CAST(epoch_us(CAST(ts AS TIMESTAMP)) AS VARCHAR)"
    param = "{'key': '%s', 'value': {'string_value': %s, 'int_value': NULL::VARCHAR, 'double_value': NULL::DOUBLE}}"
    select = f"""
SELECT strftime(CAST(ts AS TIMESTAMP), '%Y%m%d') AS event_date, {micros} AS event_timestamp,
       CASE kind WHEN 'event' THEN {_case("event_type", GA4_NAMES)} ELSE kind END AS event_name,
       [{param % ("page_location", page_url)}, {param % ("currency", "currency")},
        {param % ("coupon", "discount_code")}] AS event_params,
       user_id, anonymous_id AS user_pseudo_id,
       {{'category': device}} AS device,
       {{'name': utm_campaign, 'medium': NULL::VARCHAR, 'source': utm_source}} AS traffic_source,
       {{'manual_source': utm_source, 'manual_campaign_name': utm_campaign}} AS collected_traffic_source,
       {{'transaction_id': order_id,
         'purchase_revenue': CASE WHEN kind = 'purchase' THEN CAST(total AS DOUBLE) END,
         'refund_value': CASE WHEN kind = 'refund' THEN -CAST(total AS DOUBLE) END}} AS ecommerce,
       CASE WHEN product_id IS NOT NULL THEN [{{'item_id': product_id}}] ELSE [] END AS items,
       '1' AS stream_id
FROM timeline"""
    months = [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT strftime(CAST(ts AS TIMESTAMP), '%Y%m') FROM timeline ORDER BY 1"
        ).fetchall()
    ]
    for month in months:
        # One file per month named like BigQuery's daily tables (events_YYYYMMDD), gzip-compressed.
        conn.execute(
            f"COPY ({select} WHERE strftime(CAST(ts AS TIMESTAMP), '%Y%m') = '{month}' ORDER BY ts, id) "
            f"TO '{out_dir / f'events_{month}01.jsonl.gz'}' (FORMAT json, COMPRESSION gzip)"
        )


def _write_segment(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    calls = f"""
SELECT ts, id, CASE WHEN kind = 'event' AND event_type = 'page_view' THEN 'page' ELSE 'track' END AS type,
       CASE WHEN kind = 'event' AND event_type = 'page_view' THEN NULL  -- a page call names no event
            WHEN kind = 'purchase' THEN 'Order Completed' WHEN kind = 'refund' THEN 'Order Refunded'
            ELSE {_case("event_type", SEGMENT_NAMES)} END AS event,
       user_id AS userId, anonymous_id AS anonymousId, 'msg-' || id AS messageId,
       strftime(CAST(ts AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.000Z') AS timestamp,
       {{'page': {{'url': '{SITE}/' || coalesce(page_type, '') || coalesce('/' || product_id, '')}},
         'campaign': {{'source': utm_source, 'name': utm_campaign}}, 'device': {{'type': device}}}} AS context,
       {{'order_id': order_id, 'total': abs(CAST(total AS DOUBLE)), 'currency': currency, 'coupon': discount_code,
         'discount': CAST(discount_amount AS DOUBLE), 'product_id': product_id}} AS properties,
       NULL AS traits
FROM timeline
UNION ALL
SELECT CAST(c.signed_up_at AS TIMESTAMP), 'id-' || c.customer_id, 'identify', NULL, c.customer_id, p.anonymous_id,
       'msg-id-' || c.customer_id, strftime(CAST(f.ts AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.000Z'), NULL, NULL,
       {{'email': c.email, 'phone': c.phone, 'firstName': c.first_name, 'lastName': c.last_name,
         'createdAt': c.signed_up_at, 'address': {{'postalCode': c.postal_code, 'country': c.country}}}}
FROM customers AS c JOIN first_login AS f USING (customer_id) LEFT JOIN pseudo AS p USING (customer_id)"""
    conn.execute(
        f"COPY (SELECT * EXCLUDE (ts, id) FROM ({calls}) ORDER BY ts, id) TO '{out_dir / 'tracks.jsonl'}' (FORMAT json)"
    )


def _write_segment_warehouse(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    """The Segment calls as Segment Warehouses store them (docs "Warehouse Schemas"): a track call in `tracks` and
    in its event's table (named by its snake_case slug, with its properties as columns), page calls in `pages`,
    identify calls in `identifies` (traits as columns, `address` flattened); context flattened to `context_*`."""
    with tempfile.TemporaryDirectory() as work:
        _write_segment(conn, Path(work))
        conn.execute(f"CREATE TEMP TABLE calls AS SELECT * FROM read_json('{Path(work) / 'tracks.jsonl'}')")
    common = (
        "messageId AS id, anonymousId AS anonymous_id, userId AS user_id, timestamp, timestamp AS sent_at, "
        "timestamp AS received_at, timestamp AS uuid_ts"
    )
    context = (
        "context.page.url AS context_page_url, context.campaign.source AS context_campaign_source, "
        "context.campaign.name AS context_campaign_name, context.device.type AS context_device_type"
    )
    slug = "lower(regexp_replace(trim(event), '[^A-Za-z0-9]+', '_', 'g'))"
    tables = {
        "tracks": f"SELECT {common}, {slug} AS event, event AS event_text, {context} FROM calls WHERE type = 'track'",
        "pages": f"SELECT {common}, {context}, properties.* FROM calls WHERE type = 'page'",
        "identifies": f"SELECT {common}, traits.email, traits.phone, traits.firstName AS first_name, "
        "traits.lastName AS last_name, traits.createdAt AS created_at, traits.address.postalCode AS "
        "address_postal_code, traits.address.country AS address_country FROM calls WHERE type = 'identify'",
    }
    events = conn.execute(f"SELECT DISTINCT {slug} FROM calls WHERE type = 'track' ORDER BY 1").fetchall()
    for (event,) in events:
        tables[event] = (
            f"SELECT {common}, {slug} AS event, event AS event_text, {context}, properties.* FROM calls "
            f"WHERE type = 'track' AND {slug} = '{event}'"
        )
    for table, select in tables.items():
        conn.execute(f"COPY ({select}) TO '{out_dir / (table + '.csv')}' (FORMAT csv, HEADER)")


def _stage_shopify(conn: duckdb.DuckDBPyConnection) -> None:
    """The shop's customers with Shopify customer ids and its orders numbered, refunds folded in (both writers)."""
    conn.execute("""
CREATE OR REPLACE TEMP TABLE shop_customers AS
SELECT 6000000000 + row_number() OVER (ORDER BY customer_id) AS shopify_id, * FROM customers""")
    conn.execute("""
CREATE OR REPLACE TEMP TABLE shop_orders AS
SELECT p.*, coalesce(-r.refunded, 0) AS refunded, c.email, c.phone, c.shopify_id,
       row_number() OVER (ORDER BY p.ordered_at, p.order_id) AS n,
       1 + hash(p.order_id) % 3 AS lines
FROM (SELECT * FROM orders WHERE order_id NOT LIKE '%-R') AS p
LEFT JOIN (SELECT regexp_replace(order_id, '-R$', '') AS order_id, sum(CAST(order_total AS DOUBLE)) AS refunded
           FROM orders WHERE order_id LIKE '%-R' GROUP BY 1) AS r USING (order_id)
LEFT JOIN shop_customers AS c USING (customer_id)""")


def _write_shopify(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    _stage_shopify(conn)
    conn.execute(f"""
COPY (SELECT shopify_id AS "Customer ID", first_name AS "First Name", last_name AS "Last Name", email AS "Email",
             CASE WHEN marketing_consent = 'true' THEN 'yes' ELSE 'no' END AS "Accepts Email Marketing",
             country AS "Default Address Country Code", postal_code AS "Default Address Zip", phone AS "Phone",
             'no' AS "Accepts SMS Marketing"
      FROM shop_customers ORDER BY shopify_id) TO '{out_dir / "customers_export.csv"}' (HEADER, DELIMITER ',')""")
    created = "strftime(CAST(o.ordered_at AS TIMESTAMP), '%Y-%m-%d %H:%M:%S') || ' +0000'"
    first = "l.line = 1"
    conn.execute(f"""
COPY (SELECT '#' || (1000 + o.n) AS "Name", o.email AS "Email",
             CASE WHEN {first} THEN CASE WHEN o.n % {CANCEL_EVERY} = 0 THEN 'voided'
                  WHEN o.refunded > 0 THEN 'partially_refunded' ELSE 'paid' END END AS "Financial Status",
             CASE WHEN {first} THEN {created} END AS "Paid at",
             CASE WHEN {first} THEN o.currency END AS "Currency",
             CASE WHEN {first} THEN o.order_total END AS "Total",
             CASE WHEN {first} THEN o.discount_code END AS "Discount Code",
             CASE WHEN {first} THEN o.discount_amount END AS "Discount Amount",
             {created} AS "Created at", 1 AS "Lineitem quantity", 'Item ' || l.line AS "Lineitem name",
             round(CAST(o.order_total AS DOUBLE) / o.lines, 2) AS "Lineitem price",
             CASE WHEN {first} AND o.n % {CANCEL_EVERY} = 0
                  THEN strftime(CAST(o.ordered_at AS TIMESTAMP) + INTERVAL 1 HOUR, '%Y-%m-%d %H:%M:%S') || ' +0000'
                  END AS "Cancelled at",
             CASE WHEN {first} AND o.refunded > 0 THEN round(o.refunded, 2) END AS "Refunded Amount",
             CASE WHEN {first} THEN o.channel END AS "Source",
             CASE WHEN {first} THEN o.phone END AS "Phone"
      FROM shop_orders AS o, (SELECT unnest(range(1, 4)) AS line) AS l
      WHERE l.line <= o.lines ORDER BY o.n, l.line) TO '{out_dir / "orders_export.csv"}' (HEADER, DELIMITER ',')""")


REST_PAGE_SIZE = 250  # the REST Admin API's largest page (`limit=250`)
SHOPIFY_ORDER_ID_BASE = 5_000_000_000


def _iso(created: str) -> str | None:
    """`2025-12-01 10:15:30 +0100` (the admin export) -> `2025-12-01T10:15:30+01:00` (the API's ISO 8601)."""
    if not created:
        return None
    day, time, offset = created.split(" ")
    return f"{day}T{time}{offset[:3]}:{offset[3:]}"


def _admin_export(conn: duckdb.DuckDBPyConnection) -> tuple[list[dict], list[dict]]:
    """The demo's Shopify admin export (the `shopify` format) as (orders with their line rows, customer rows)."""
    with tempfile.TemporaryDirectory() as work:
        _write_shopify(conn, Path(work))
        with (Path(work) / "customers_export.csv").open(newline="") as handle:
            customers = list(csv.DictReader(handle))
        with (Path(work) / "orders_export.csv").open(newline="") as handle:
            orders: dict[str, dict] = {}
            for row in csv.DictReader(handle):
                orders.setdefault(row["Name"], {**row, "lines": []})["lines"].append(row)
    return list(orders.values()), customers


def _rest_orders(orders: list[dict], customers: list[dict]) -> tuple[list[dict], list[dict]]:
    """The admin export's orders and customers as REST Admin API `Order` and `Customer` resources."""
    # The buyer the admin export's orders are joined to (shopify.py: the lowest Customer ID with the order's email,
    # else phone): two demo customers may share an email, and the API names one customer per order.
    by_email: dict[str, dict] = {}
    by_phone: dict[str, dict] = {}
    for row in sorted(customers, key=lambda row: row["Customer ID"]):
        if row["Email"].strip():
            by_email.setdefault(row["Email"].strip().lower(), row)
        if row["Phone"]:
            by_phone.setdefault(re.sub(r"[^0-9+]", "", row["Phone"]), row)
    rest_orders = []
    for n, order in enumerate(orders, start=1):
        email, phone, currency = order["Email"].strip() or None, order["Phone"] or None, order["Currency"]
        buyer = by_email.get((email or "").lower()) or by_phone.get(re.sub(r"[^0-9+]", "", phone or ""))
        money = {"amount": order["Total"], "currency_code": currency}
        created = _iso(order["Created at"])
        refunds = []
        if order["Refunded Amount"]:
            # the admin export gives no refund date: the order's own, so both read the same
            transaction = {
                "kind": "refund",
                "status": "success",
                "amount": order["Refunded Amount"],
                "currency": currency,
            }
            refunds.append(
                {"id": 9_000_000 + n, "created_at": created, "processed_at": created, "transactions": [transaction]}
            )
        rest_orders.append(
            {
                "id": SHOPIFY_ORDER_ID_BASE + n,
                "name": order["Name"],
                "email": email,
                "phone": phone,
                "created_at": created,
                "updated_at": created,
                "cancelled_at": _iso(order["Cancelled at"]),
                "financial_status": order["Financial Status"],
                "currency": currency,
                "presentment_currency": currency,
                "total_price": order["Total"],
                # what is left after refunds (Shopify's current_total_price, shop currency)
                "current_total_price": f"{float(order['Total'] or 0) - float(order['Refunded Amount'] or 0):.2f}"
                if order["Total"]
                else None,
                "total_price_set": {"shop_money": money, "presentment_money": money},
                "total_discounts": order["Discount Amount"] or None,
                "discount_codes": [{"code": order["Discount Code"], "type": "fixed_amount"}]
                if order["Discount Code"]
                else [],
                "source_name": order["Source"],
                "test": False,
                "customer": {"id": int(buyer["Customer ID"]), "email": buyer["Email"]} if buyer else None,
                "line_items": [
                    {
                        "title": line["Lineitem name"],
                        "quantity": int(line["Lineitem quantity"]),
                        "price": line["Lineitem price"],
                    }
                    for line in order["lines"]
                ],
                "refunds": refunds,
            }
        )
    rest_customers = [
        {
            "id": int(row["Customer ID"]),
            "email": row["Email"] or None,
            "phone": row["Phone"] or None,
            "first_name": row["First Name"],
            "last_name": row["Last Name"],
            "email_marketing_consent": {
                "state": "subscribed" if row["Accepts Email Marketing"] == "yes" else "not_subscribed"
            },
            "default_address": {"zip": row["Default Address Zip"], "country_code": row["Default Address Country Code"]},
        }
        for row in customers
    ]
    return rest_orders, rest_customers


def _write_shopify_rest(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    """REST pages as a script saves them: `orders_page_001.json`, ... (pretty-printed) and `customers_page_001.json`."""
    orders, customers = _rest_orders(*_admin_export(conn))
    for resource, records in (("orders", orders), ("customers", customers)):
        for page, start in enumerate(range(0, len(records), REST_PAGE_SIZE), start=1):
            text = json.dumps({resource: records[start : start + REST_PAGE_SIZE]}, indent=2)
            (out_dir / f"{resource}_page_{page:03d}.json").write_text(text + "\n")


def _gid(kind: str, number: int | str) -> str:
    return f"gid://shopify/{kind}/{number}"


def _write_shopify_bulk(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    """GraphQL bulk operation results: `bulk_orders.jsonl` (an Order line, then its LineItem lines with
    `__parentId`) and `bulk_customers.jsonl`, amounts as MoneyBags."""
    orders, customers = _rest_orders(*_admin_export(conn))
    lines = []
    for order in orders:
        currency = order["currency"]

        def bag(amount: str | None, currency: str = currency) -> dict:
            money = {"amount": amount, "currencyCode": currency}
            return {"shopMoney": money, "presentmentMoney": money}

        refunded = sum(float(t["amount"]) for r in order["refunds"] for t in r["transactions"])
        gid = _gid("Order", order["id"])
        lines.append(
            {
                "id": gid,
                "name": order["name"],
                "email": order["email"],
                "phone": order["phone"],
                "createdAt": order["created_at"],
                "updatedAt": order["updated_at"],
                "cancelledAt": order["cancelled_at"],
                "displayFinancialStatus": order["financial_status"].upper() if order["financial_status"] else None,
                "currencyCode": currency,
                "totalPriceSet": bag(order["total_price"]),
                "totalDiscountsSet": bag(order["total_discounts"]),
                "totalRefundedSet": bag(f"{refunded:.2f}"),
                "refunds": [{"createdAt": r["created_at"]} for r in order["refunds"]],
                "discountCode": order["discount_codes"][0]["code"] if order["discount_codes"] else None,
                "sourceName": order["source_name"],
                "test": False,
                "customer": {"id": _gid("Customer", order["customer"]["id"])} if order["customer"] else None,
            }
        )
        for i, item in enumerate(order["line_items"], start=1):
            lines.append(
                {
                    "id": _gid("LineItem", order["id"] * 10 + i),
                    "title": item["title"],
                    "quantity": item["quantity"],
                    "__parentId": gid,
                }
            )
    customer_lines = [
        {
            "id": _gid("Customer", row["id"]),
            "email": row["email"],
            "phone": row["phone"],
            "firstName": row["first_name"],
            "lastName": row["last_name"],
            "emailMarketingConsent": {"marketingState": row["email_marketing_consent"]["state"].upper()},
            "defaultAddress": {
                "zip": row["default_address"]["zip"],
                "countryCodeV2": row["default_address"]["country_code"],
            },
        }
        for row in customers
    ]
    for name, records in (("bulk_orders.jsonl", lines), ("bulk_customers.jsonl", customer_lines)):
        (out_dir / name).write_text("".join(json.dumps(record) + "\n" for record in records))


def _write_shopify_airbyte(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    """Airbyte's Shopify source through its S3 destination (JSON lines, gzip): a record per line in the
    destinations-v2 envelope, named as the destination names a stream's part (`<date>_<epoch ms>_<part>`)."""
    orders, customers = _rest_orders(*_admin_export(conn))
    extracted = AIRBYTE_EXTRACTED_MS
    for stream, records in (("orders", orders), ("customers", customers)):
        with gzip.open(out_dir / f"{stream}_2025_12_01_{extracted}_0.jsonl.gz", "wt") as handle:
            for n, record in enumerate(records):
                envelope = {
                    "_airbyte_raw_id": f"00000000-0000-4000-8000-{n:012d}",
                    "_airbyte_extracted_at": extracted,
                    "_airbyte_generation_id": 0,
                    "_airbyte_meta": {"sync_id": 1, "changes": []},
                    "_airbyte_data": record,
                }
                handle.write(json.dumps(envelope) + "\n")


AIRBYTE_EXTRACTED_MS = 1_764_547_200_000  # 2025-12-01 00:00 UTC in epoch milliseconds, as Airbyte writes it


def _write_shopify_array(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    """The REST resources as one bare JSON array per file, as `curl .../orders.json | jq .orders > orders.json` saves
    them (pretty-printed, two-space indent)."""
    orders, customers = _rest_orders(*_admin_export(conn))
    for name, records in (("orders.json", orders), ("customers.json", customers)):
        (out_dir / name).write_text(json.dumps(records, indent=2) + "\n")


def _write_shopify_jsonl(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    """One REST resource per line with no wrapper, as Singer's target-jsonl (Meltano) writes a stream:
    `orders-20251201T000000.jsonl`, `customers-20251201T000000.jsonl`."""
    orders, customers = _rest_orders(*_admin_export(conn))
    for stream, records in (("orders", orders), ("customers", customers)):
        text = "".join(json.dumps(record) + "\n" for record in records)
        (out_dir / f"{stream}-20251201T000000.jsonl").write_text(text)


def _write_shopify_singer(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    """tap-shopify's stdout saved to a file (`tap-shopify --config ... > tap-shopify.jsonl`): a SCHEMA message per
    selected stream first, then each stream's RECORD messages and STATE bookmarks. The REST-era tap's `orders` list
    their refunds without transactions (its schema has none), so the refund is what current_total_price lost; a
    `transactions` stream is synced too (not read by segmint)."""
    orders, customers = _rest_orders(*_admin_export(conn))
    extracted = "2025-12-01T00:00:00.000000Z"
    streams = {
        "customers": (customers, ("id", "email", "phone", "first_name", "last_name", "email_marketing_consent")),
        "orders": (
            [
                {**o, "refunds": [{k: v for k, v in r.items() if k != "transactions"} for r in o["refunds"]]}
                for o in orders
            ],
            ("id", "name", "email", "created_at", "financial_status", "total_price", "line_items", "refunds"),
        ),
        "transactions": (
            [
                {
                    "id": 4_000_000 + n,
                    "order_id": o["id"],
                    "kind": "sale",
                    "status": "success",
                    "amount": o["total_price"],
                }
                for n, o in enumerate(orders[:20], start=1)
            ],
            ("id", "order_id", "kind", "status", "amount"),
        ),
    }
    lines = [
        {
            "type": "SCHEMA",
            "stream": stream,
            "key_properties": ["id"],
            "schema": {"type": "object", "properties": {key: {} for key in keys}},
            "bookmark_properties": ["updated_at"],
        }
        for stream, (_, keys) in streams.items()
    ]
    lines.append({"type": "STATE", "value": {"bookmarks": {}}})
    for stream, (records, _) in streams.items():
        lines += [{"type": "RECORD", "stream": stream, "record": r, "time_extracted": extracted} for r in records]
        lines.append({"type": "STATE", "value": {"bookmarks": {stream: {"updated_at": extracted}}}})
    (out_dir / "tap-shopify.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def _write_shopify_airbyte_csv(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    """Airbyte's Shopify source through its S3 destination in CSV (gzip, no flattening): the destinations-v2 columns
    `_airbyte_raw_id`, `_airbyte_extracted_at`, `_airbyte_meta`, `_airbyte_generation_id` and the record as JSON text
    in `_airbyte_data`, a file per stream named as the destination names a part."""
    orders, customers = _rest_orders(*_admin_export(conn))
    columns = ("_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "_airbyte_generation_id", "_airbyte_data")
    for stream, records in (("orders", orders), ("customers", customers)):
        with gzip.open(out_dir / f"{stream}_2025_12_01_{AIRBYTE_EXTRACTED_MS}_0.csv.gz", "wt", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for n, record in enumerate(records):
                meta = json.dumps({"sync_id": 1, "changes": []})
                writer.writerow(
                    [f"00000000-0000-4000-8000-{n:012d}", AIRBYTE_EXTRACTED_MS, meta, 0, json.dumps(record)]
                )


def _write_shopify_tables(conn: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    """The same shop as _write_shopify, as Fivetran syncs Shopify into a warehouse (landing/formats/shopify_tables.py):
    one CSV per table, lower-case columns, `_fivetran_synced`/`_fivetran_deleted`, UTC timestamps, the shop's money
    in the plain columns and shop/presentment money in the `_set` JSON. The admin export has no refund date, no
    customer creation date and a single refunded amount per order, so neither has this: a refund is dated at its
    order, customers have no created_at, and each refunded order has one refund with one line refund."""
    _stage_shopify(conn)
    synced = "'2026-01-01 00:00:00+00'"
    created = "strftime(CAST(o.ordered_at AS TIMESTAMP), '%Y-%m-%d %H:%M:%S') || '+00'"
    money = "json_object('shop_money', json_object('amount', {0}, 'currency_code', o.currency), 'presentment_money', "
    money += "json_object('amount', {0}, 'currency_code', o.currency))"
    tables = {
        "customer": """
SELECT shopify_id AS id, email, phone, first_name, last_name, NULL AS created_at,
       CASE WHEN marketing_consent = 'true' THEN 'SUBSCRIBED' ELSE 'NOT_SUBSCRIBED' END AS email_marketing_consent_state,
       CASE WHEN marketing_consent = 'true' THEN true ELSE false END AS accepts_marketing, 'enabled' AS state,
       false AS _fivetran_deleted, {synced} AS _fivetran_synced
FROM shop_customers ORDER BY shopify_id""",
        "customer_address": """
SELECT 6500000000 + shopify_id - 6000000000 AS id, shopify_id AS customer_id, postal_code AS zip,
       country AS country_code, true AS is_default, {synced} AS _fivetran_synced
FROM shop_customers WHERE postal_code IS NOT NULL OR country IS NOT NULL ORDER BY shopify_id""",
        "order": f"""
SELECT 5000000000 + o.n AS id, '#' || (1000 + o.n) AS name, 1000 + o.n AS order_number, o.email, o.phone,
       o.shopify_id AS customer_id, {created} AS created_at, {created} AS processed_at,
       CASE WHEN o.n % {CANCEL_EVERY} = 0
            THEN strftime(CAST(o.ordered_at AS TIMESTAMP) + INTERVAL 1 HOUR, '%Y-%m-%d %H:%M:%S') || '+00' END
           AS cancelled_at,
       CASE WHEN o.n % {CANCEL_EVERY} = 0 THEN 'voided' WHEN o.refunded > 0 THEN 'partially_refunded' ELSE 'paid' END
           AS financial_status,
       o.currency, o.currency AS presentment_currency, o.order_total AS total_price,
       {money.format("o.order_total")} AS total_price_set, o.discount_amount AS total_discounts,
       o.channel AS source_name, false AS test, false AS _fivetran_deleted, {{synced}} AS _fivetran_synced
FROM shop_orders AS o ORDER BY o.n""",
        "order_line": """
SELECT 7000000000 + 3 * o.n + l.line AS id, 5000000000 + o.n AS order_id, l.line AS index, 'Item ' || l.line AS name,
       1 AS quantity, round(CAST(o.order_total AS DOUBLE) / o.lines, 2) AS price, {synced} AS _fivetran_synced
FROM shop_orders AS o, (SELECT unnest(range(1, 4)) AS line) AS l WHERE l.line <= o.lines ORDER BY o.n, l.line""",
        "order_discount_code": """
SELECT 5000000000 + o.n AS order_id, 0 AS index, o.discount_code AS code, o.discount_amount AS amount,
       'fixed_amount' AS type, {synced} AS _fivetran_synced
FROM shop_orders AS o WHERE o.discount_code IS NOT NULL ORDER BY o.n""",
        "refund": f"""
SELECT 8000000000 + o.n AS id, 5000000000 + o.n AS order_id, {created} AS created_at, {created} AS processed_at,
       false AS restock, {{synced}} AS _fivetran_synced
FROM shop_orders AS o WHERE o.refunded > 0 ORDER BY o.n""",
        "order_line_refund": f"""
SELECT 9000000000 + o.n AS id, 8000000000 + o.n AS refund_id, 7000000000 + 3 * o.n + 1 AS order_line_id, 1 AS quantity,
       round(o.refunded, 2) AS subtotal, {money.format("round(o.refunded, 2)")} AS subtotal_set, 0 AS total_tax,
       'no_restock' AS restock_type, {{synced}} AS _fivetran_synced
FROM shop_orders AS o WHERE o.refunded > 0 ORDER BY o.n""",
        "order_adjustment": """
SELECT NULL::BIGINT AS id, NULL::BIGINT AS order_id, NULL::BIGINT AS refund_id, NULL::DOUBLE AS amount,
       NULL::DOUBLE AS tax_amount, NULL AS kind, NULL AS reason, {synced} AS _fivetran_synced WHERE false""",
        "transaction": f"""
SELECT 4000000000 + o.n AS id, 5000000000 + o.n AS order_id, 'sale' AS kind, 'success' AS status,
       o.order_total AS amount, o.currency, {created} AS created_at, false AS test, {{synced}} AS _fivetran_synced
FROM shop_orders AS o ORDER BY o.n""",
    }
    for table, select in tables.items():
        conn.execute(f"COPY ({select.format(synced=synced)}) TO '{out_dir / (table + '.csv')}' (FORMAT csv, HEADER)")


WRITERS = {
    "ga4": _write_ga4,
    "segment": _write_segment,
    "segment_warehouse": _write_segment_warehouse,
    "shopify": _write_shopify,
    "shopify_rest": _write_shopify_rest,
    "shopify_bulk": _write_shopify_bulk,
    "shopify_airbyte": _write_shopify_airbyte,
    "shopify_array": _write_shopify_array,
    "shopify_jsonl": _write_shopify_jsonl,
    "shopify_singer": _write_shopify_singer,
    "shopify_airbyte_csv": _write_shopify_airbyte_csv,
    "shopify_tables": _write_shopify_tables,
}


def write_source_format(contract_dir: Path, out_dir: Path, source_format: str) -> None:
    """Rewrite the demo shop's contract CSVs in `contract_dir` as `source_format` files in `out_dir`."""
    if source_format not in WRITERS:
        raise ValueError(f"source_format must be one of {FORMATS}, got {source_format!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        _stage(conn, contract_dir)
        WRITERS[source_format](conn, out_dir)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo_shop.source_formats", description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        generate_shop(Path(work) / "landing", Path(work) / "truth", n_customers=args.customers, seed=args.seed)
        write_source_format(Path(work) / "landing", args.out, args.format)
    print(f"wrote {args.format} files to {args.out}")


if __name__ == "__main__":
    main()
