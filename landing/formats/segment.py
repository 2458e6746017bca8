"""Segment / RudderStack calls as JSON lines -> segmint contract files.

Field names follow the Segment Spec (common fields: `type`, `anonymousId`, `userId`, `messageId`,
`timestamp`, `originalTimestamp`, `receivedAt`, `context` {page {url}, campaign {source, name}, device {type}},
`properties`, `traits`) and its V2 E-commerce Events (`Product Viewed`, `Product Added`, `Checkout Started`,
`Order Completed`, `Order Refunded`, `Order Cancelled`, ...; properties `order_id`, `total`, `revenue`,
`currency`, `coupon`, `discount`, `product_id`, `products[]`). RudderStack's event spec uses the same names.

Mapping (the source's own event names are kept; config/event_mapping.yaml maps them):
- track / page / screen -> events: event_id = messageId (else `seg-<md5 of the line>`), event_type = the track
  `event` name, or `page` / `screen` for those calls; page_type = a page/screen call's `name` (else
  properties.name), the shop's own page type, which config/event_mapping.yaml maps; occurred_at = timestamp (else originalTimestamp, then
  receivedAt); page_url = context.page.url, else properties.url; product_id = properties.product_id, else
  products[0].product_id; device = context.device.type; utm_source/utm_campaign = context.campaign.source/name.
- `Order Completed` -> an order (order_id, total else revenue, currency, discount, coupon), status `cancelled`
  when an `Order Cancelled` call names the same order_id; `Order Refunded` -> a refund row `<order_id>-R`
  (then -R2 ... for later distinct calls) with -total (else -revenue), the buyer of the order's Order Completed call
  when it is in the export (common.refund_buyer_sql); with no total or revenue, the order's total (no products:
  a full refund) or the products' price x quantity, capped with the order's other refunds at its total
  (common.refund_totals_sql); status `cancelled` when the order was cancelled (it never
  counts). An Order Completed repeating an earlier call's order_id is a re-send: quarantined
  for orders as `duplicate_transaction` (the first call is the order), as GA4's re-sent purchases.
  An order call without `order_id` (optional in the spec) keeps its revenue under the surrogate order id
  `segment:<event_id>` (common.order_id_sql; the event id is the messageId, unique per call): each call is its
  own order, a call delivered twice (same messageId) is one. A purchase the site sent twice under two messageIds
  cannot be de-duplicated: such orders are counted (ids_generated) and warned about.
  With an orders file in the folder these are only events.
- identify -> customers: one row per resolved customer; each trait (email, phone, firstName/first_name,
  lastName/last_name, address.postalCode, address.country, createdAt) is its latest non-empty value over the
  customer's identify calls; the row's lineage is the latest identify call, into which the others fold.
- group and alias calls carry no event, order or customer: quarantined as `unsupported_call_type`.
Batches: a line holding an HTTP Tracking API /v1/batch body ({"batch": [calls], "context", "sentAt"}) or a JSON
array of calls is unpacked into its calls, the batch's context merged into each (_unpack_batches).
Stitching: an anonymousId seen with exactly one userId (on identify or on any call carrying both, or linked to
one by an alias call's previousId -> userId) belongs to
that customer, so its whole anonymous history is that customer's; seen with several userIds, only calls that
carry a userId get one. Orders with no known user take the anonymousId as customer id (a guest buyer).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from landing.formats import segment_warehouse
from landing.formats.common import (
    LINES_TABLE,
    ORIGIN_FILE,
    ORIGIN_ROW,
    REJECTS_TABLE,
    apply_refund_totals,
    drop_lines,
    json_reason_sql,
    load_json_lines,
    order_id_sql,
    raw_record_sql,
    record_generated_ids_sql,
    refund_buyer_sql,
    refund_currency_sql,
    refund_order_total_sql,
    write_contract_file,
)
from landing.formats.detect import WarehouseFile

_TEXT = "VARCHAR"
SEGMENT_STRUCTURE = json.dumps(
    {
        "type": _TEXT,
        "event": _TEXT,
        "name": _TEXT,
        "userId": _TEXT,
        "anonymousId": _TEXT,
        "previousId": _TEXT,
        "messageId": _TEXT,
        "timestamp": _TEXT,
        "originalTimestamp": _TEXT,
        "receivedAt": _TEXT,
        "sentAt": _TEXT,
        "properties": {
            "name": _TEXT,
            "url": _TEXT,
            "order_id": _TEXT,
            "total": _TEXT,
            "revenue": _TEXT,
            "currency": _TEXT,
            "coupon": _TEXT,
            "discount": _TEXT,
            "product_id": _TEXT,
            "products": [{"product_id": _TEXT, "price": _TEXT, "quantity": _TEXT}],
        },
        "context": {
            "page": {"url": _TEXT},
            "campaign": {"source": _TEXT, "name": _TEXT},
            "device": {"type": _TEXT},
        },
        "traits": {
            "email": _TEXT,
            "phone": _TEXT,
            "firstName": _TEXT,
            "first_name": _TEXT,
            "lastName": _TEXT,
            "last_name": _TEXT,
            "createdAt": _TEXT,
            "created_at": _TEXT,
            "address": {"postalCode": _TEXT, "postal_code": _TEXT, "country": _TEXT},
        },
    }
)
EVENT_CALLS = ("track", "page", "screen")
KEPT_CALLS = (*EVENT_CALLS, "identify")
# Compared with the track call's name lower-cased and trimmed, as config/event_mapping.yaml compares names
# ("order completed" and "Order Completed " are the spec's Order Completed).
ORDER_COMPLETED, ORDER_REFUNDED, ORDER_CANCELLED = "order completed", "order refunded", "order cancelled"
ALIAS = "alias"


def translate(
    conn: duckdb.DuckDBPyConnection,
    files: list[Path],
    work_dir: Path,
    with_orders: bool,
    warehouse_tables: list[WarehouseFile] | None = None,
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Write events/customers (and orders when `with_orders`) Parquet files from Segment calls; fill the ledger.

    `files` hold JSON lines; `warehouse_tables` are the files (whole or parts) of Segment warehouse tables, whose
    rows are rebuilt into calls (segment_warehouse.py) and read with the lines. Returns the files written and the
    notes of each."""
    load_json_lines(conn, files)
    copies_notes, tracks_order_notes = (
        segment_warehouse.load_calls(conn, warehouse_tables, (ORDER_COMPLETED, ORDER_REFUNDED, ORDER_CANCELLED))
        if warehouse_tables
        else ((), ())
    )
    batched = _unpack_batches(conn)
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_seg AS
SELECT origin_file, origin_row, origin_item, md5(line) AS line_hash,
       CASE WHEN reason IS NULL THEN json_transform(line, '{SEGMENT_STRUCTURE}') END AS r,
       -- the line is kept for quarantine when it is broken or not a supported call (the type read only from JSON)
       reason, CASE WHEN reason IS NOT NULL
           OR coalesce(json_extract_string(CASE WHEN reason IS NULL THEN line END, '$.type'), '') NOT IN {KEPT_CALLS}
           THEN {raw_record_sql("line")} END AS raw_record
FROM _fmt_seg_lines""")
    conn.execute(f"DROP {'TABLE' if batched else 'VIEW'} temp._fmt_seg_lines")
    drop_lines(conn)
    conn.execute(f"""
UPDATE _fmt_seg SET reason = CASE WHEN r.type IS NULL THEN 'missing_type: a Segment call needs a type'
    ELSE 'unsupported_call_type: type=''' || left(r.type, 40) || ''' carries no event, order or customer'
         || CASE WHEN r.type = '{ALIAS}' THEN ' (its previousId -> userId link is used for stitching)' ELSE '' END END
WHERE reason IS NULL AND (r.type IS NULL OR r.type NOT IN {KEPT_CALLS})""")
    # An alias call says previousId (the anonymous id before sign-up) is now userId: a stitching link like an
    # identify call carrying both ids, so the anonymous history reaches the customer.
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_seg_links AS
SELECT nullif(r.previousId, '') AS anonymous_id, nullif(r.userId, '') AS user_id
FROM _fmt_seg WHERE r.type = '{ALIAS}' AND nullif(r.previousId, '') IS NOT NULL AND nullif(r.userId, '') IS NOT NULL""")
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_seg_calls AS
SELECT origin_file, origin_row, origin_item, r.type AS call_type,
       coalesce(r.messageId, 'seg-' || line_hash) AS event_id,
       nullif(r.userId, '') AS user_id, nullif(r.anonymousId, '') AS anonymous_id,
       coalesce(r.timestamp, r.originalTimestamp, r.receivedAt, r.sentAt) AS occurred_at,
       try_cast(coalesce(r.timestamp, r.originalTimestamp, r.receivedAt, r.sentAt) AS TIMESTAMPTZ) AS at_utc,
       CASE WHEN r.type = 'track' THEN r.event ELSE r.type END AS event_type,
       CASE WHEN r.type = 'track' THEN lower(trim(r.event)) END AS track_name,
       -- a page/screen call's name ("Product", "Checkout") is the shop's page type (config/event_mapping.yaml)
       CASE WHEN r.type IN ('page', 'screen') THEN nullif(trim(coalesce(r.name, r.properties.name)), '') END
           AS page_type,
       coalesce(r.context.page.url, r.properties.url) AS page_url,
       coalesce(r.properties.product_id, r.properties.products[1].product_id) AS product_id,
       r.context.device.type AS device,
       r.context.campaign.source AS utm_source, r.context.campaign.name AS utm_campaign,
       nullif(trim(r.properties.order_id), '') AS order_id, coalesce(r.properties.total, r.properties.revenue) AS total,
       r.properties.currency AS currency, r.properties.coupon AS coupon, r.properties.discount AS discount,
       r.traits AS traits,
       -- an Order Refunded call's products (a partial refund's): their count and sum of price x quantity (quantity
       -- 1 when not given; NULL when a product has no price), read for that call only
       CASE WHEN lower(trim(r.event)) = '{ORDER_REFUNDED}' THEN coalesce(len(r.properties.products), 0) END
           AS refund_item_count,
       CASE WHEN lower(trim(r.event)) = '{ORDER_REFUNDED}'
                 AND len(list_filter(r.properties.products, lambda p: try_cast(p.price AS DOUBLE) IS NULL)) = 0
            THEN list_sum(list_transform(r.properties.products, lambda p: try_cast(p.price AS DOUBLE)
                                                                   * coalesce(try_cast(p.quantity AS DOUBLE), 1)))
       END AS refund_items_total
FROM _fmt_seg WHERE reason IS NULL""")
    conn.execute(f"""
INSERT INTO {REJECTS_TABLE} SELECT origin_file, origin_row, 'events', reason, raw_record
FROM _fmt_seg WHERE reason IS NOT NULL""")
    conn.execute("DROP TABLE temp._fmt_seg")
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_seg_ids AS
SELECT anonymous_id,
       CASE WHEN count(DISTINCT user_id) = 1 THEN min(user_id)
            WHEN count(DISTINCT user_id) = 0 AND bool_or(track_name = '{ORDER_COMPLETED}') THEN anonymous_id
       END AS customer_id
FROM (SELECT anonymous_id, user_id, track_name FROM _fmt_seg_calls
      UNION ALL SELECT anonymous_id, user_id, NULL FROM _fmt_seg_links)
WHERE anonymous_id IS NOT NULL GROUP BY anonymous_id""")
    conn.execute("""
CREATE OR REPLACE TEMP TABLE _fmt_seg_resolved AS
SELECT c.*, coalesce(c.user_id, i.customer_id) AS customer_id
FROM _fmt_seg_calls AS c LEFT JOIN _fmt_seg_ids AS i USING (anonymous_id)""")
    write_contract_file(
        conn,
        f"""
SELECT event_id, customer_id, anonymous_id, occurred_at, event_type, page_type, product_id,
       device, utm_source, utm_campaign, page_url, origin_file AS {ORIGIN_FILE}, origin_row AS {ORIGIN_ROW}
FROM _fmt_seg_resolved WHERE call_type IN {EVENT_CALLS} ORDER BY origin_file, origin_row, origin_item""",
        work_dir / "events.parquet",
    )
    _write_customers(conn, work_dir)
    written = ["events.parquet", "customers.parquet"]
    notes: dict[str, tuple[str, ...]] = {}
    if with_orders:
        orders_notes = _write_orders(conn, work_dir) + tracks_order_notes
        written.append("orders.parquet")
        if orders_notes:
            notes["orders.parquet"] = orders_notes
    for table in ("_fmt_seg_calls", "_fmt_seg_links", "_fmt_seg_ids", "_fmt_seg_resolved"):
        conn.execute(f"DROP TABLE temp.{table}")
    if copies_notes:
        notes["events.parquet"] = copies_notes
    return tuple(written), notes


def _unpack_batches(conn: duckdb.DuckDBPyConnection) -> bool:
    """The JSON lines as one row per call in temp `_fmt_seg_lines(origin_file, origin_row, origin_item, line,
    reason)`: a plain call is item 0 of its line; a batch is unpacked into its calls, numbered from 1. True when
    some line may be a batch (`_fmt_seg_lines` is then a table, else a view over the lines).

    A batch is the body of Segment's HTTP Tracking API `/v1/batch` (`{"batch": [calls], "context": ...,
    "integrations": ..., "sentAt": ...}`), as a shop's own endpoint or proxy captures what its libraries send;
    Segment's docs: the batch's context and integrations apply to every call in it, so they are merged into each
    call (the call's own values win, nested objects merge), and `sentAt` is the call's time only when it has no
    timestamp of its own. A line that is a JSON array of calls (a captured batched webhook body) is unpacked the
    same way. An empty batch is quarantined (`empty_batch`), an item that is no object is `not_a_json_object`.
    """
    maybe_batch = "(strpos(line, '\"batch\"') > 0 OR starts_with(ltrim(line), '['))"
    if not conn.execute(f"SELECT bool_or({maybe_batch}) FROM {LINES_TABLE}").fetchall()[0][0]:
        # no line can be a batch (the usual export): the lines as they are, no copy
        conn.execute(
            "CREATE OR REPLACE TEMP VIEW _fmt_seg_lines AS SELECT origin_file, origin_row, 0 AS origin_item, line, "
            f"{json_reason_sql('line')} AS reason FROM {LINES_TABLE}"
        )
        return False
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_seg_lines AS
WITH lines AS (
    SELECT origin_file, origin_row, line, {json_reason_sql("line")} AS reason,
           CASE WHEN {maybe_batch} AND json_valid(line) THEN
               CASE WHEN json_type(line) = 'ARRAY' THEN json_extract(line, '$[*]')
                    WHEN json_type(line) = 'OBJECT' AND json_type(line, '$.batch') = 'ARRAY'
                         AND json_extract(line, '$.type') IS NULL THEN json_extract(line, '$.batch[*]') END
           END AS calls
    FROM {LINES_TABLE}),
batches AS (
    SELECT origin_file, origin_row, line, calls,
           json_object('context', json_extract(line, '$.context'), 'integrations', json_extract(line, '$.integrations'),
                       'sentAt', json_extract(line, '$.sentAt')) AS envelope
    FROM lines WHERE calls IS NOT NULL),
items AS (
    SELECT origin_file, origin_row, envelope, unnest(calls) AS call, generate_subscripts(calls, 1) AS item
    FROM batches)
SELECT origin_file, origin_row, 0 AS origin_item, line, reason FROM lines WHERE calls IS NULL
UNION ALL
SELECT origin_file, origin_row, 0, {raw_record_sql("line")}, 'empty_batch: a batch with no calls'
FROM batches WHERE len(calls) = 0
UNION ALL
SELECT origin_file, origin_row, item,
       CASE WHEN json_type(call) = 'OBJECT' THEN json_merge_patch(envelope, call) ELSE call END::VARCHAR,
       CASE WHEN json_type(call) <> 'OBJECT' THEN 'not_a_json_object: batch item ' || item || ' is a '
            || lower(json_type(call)) END
FROM items""")
    return True


def _write_customers(conn: duckdb.DuckDBPyConnection, work_dir: Path) -> None:
    """identify calls -> one customer per resolved id, from its latest identify call (earlier ones fold into it)."""
    conn.execute("""
CREATE OR REPLACE TEMP TABLE _fmt_seg_identify AS
SELECT *, first_value(origin_file) OVER latest AS target_file, first_value(origin_row) OVER latest AS target_row
FROM (SELECT *, coalesce(customer_id, anonymous_id) AS resolved FROM _fmt_seg_resolved WHERE call_type = 'identify')
WINDOW latest AS (PARTITION BY resolved ORDER BY at_utc DESC NULLS LAST, origin_file DESC, origin_row DESC,
                  origin_item DESC)""")
    # An identify call folds into its customer's row; a call with no id at all becomes its own row (quarantined
    # by the contract ingest as missing_customer_id), so it is never lost.
    traits = {
        "email": "traits.email",
        "phone": "traits.phone",
        "first_name": "coalesce(traits.firstName, traits.first_name)",
        "last_name": "coalesce(traits.lastName, traits.last_name)",
        "postal_code": "coalesce(traits.address.postalCode, traits.address.postal_code)",
        "country": "traits.address.country",
        "signed_up_at": "coalesce(traits.createdAt, traits.created_at)",
    }
    # Traits merge as Segment's profiles do: each trait is its latest non-empty value over the identify calls.
    latest = ", ".join(
        f"arg_max({value}, at_order) FILTER (WHERE {value} IS NOT NULL) AS {name}" for name, value in traits.items()
    )
    write_contract_file(
        conn,
        f"""
SELECT resolved AS customer_id, {latest}, NULL::VARCHAR AS acquisition_channel,
       NULL::VARCHAR AS marketing_consent, min(target_file) AS {ORIGIN_FILE}, min(target_row) AS {ORIGIN_ROW}
FROM (SELECT *, row_number() OVER (ORDER BY at_utc NULLS FIRST, origin_file, origin_row, origin_item) AS at_order
      FROM _fmt_seg_identify)
GROUP BY resolved, CASE WHEN resolved IS NULL THEN (origin_row, origin_item) END
ORDER BY {ORIGIN_FILE}, {ORIGIN_ROW}""",
        work_dir / "customers.parquet",
    )
    conn.execute("DROP TABLE temp._fmt_seg_identify")


def _write_orders(conn: duckdb.DuckDBPyConnection, work_dir: Path) -> tuple[str, ...]:
    """Order Completed -> orders, Order Refunded -> refund rows; an Order Cancelled order never counts.

    Returns the orders' note on refunds whose amount was derived or capped (common.refund_totals_sql)."""
    # A call is one call however often it was delivered (its messageId): numbering counts distinct calls, so a
    # refund delivered twice is one refund row (kept once as duplicate_identical), never -R and -R2.
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_seg_orders AS
SELECT o.*, coalesce(o.customer_id, o.anonymous_id) AS buyer,
       o.first_seen = {{'origin_file': o.origin_file, 'origin_row': o.origin_row, 'origin_item': o.origin_item}}
           AS is_first_copy,
       o.order_id IN (SELECT order_id FROM _fmt_seg_resolved WHERE track_name = '{ORDER_CANCELLED}'
                      AND order_id IS NOT NULL) AS is_cancelled,
       dense_rank() OVER (PARTITION BY o.track_name, o.order_id ORDER BY o.at_utc, o.first_seen) AS nth,
       first_value(o.first_seen.origin_file || ' line ' || o.first_seen.origin_row) OVER (
           PARTITION BY o.track_name, o.order_id ORDER BY o.at_utc, o.first_seen) AS first_call
FROM (SELECT *, min({{'origin_file': origin_file, 'origin_row': origin_row, 'origin_item': origin_item}})
             OVER (PARTITION BY event_id) AS first_seen
      FROM _fmt_seg_resolved WHERE track_name IN ('{ORDER_COMPLETED}', '{ORDER_REFUNDED}')) AS o""")
    # An Order Completed repeating an earlier call's order_id is the same order sent again (a reloaded thank-you
    # page), as GA4's re-sent purchases: the first call is the order, the others are duplicate_transaction.
    resent = f"track_name = '{ORDER_COMPLETED}' AND order_id IS NOT NULL AND nth > 1"
    conn.execute(f"""
INSERT INTO {REJECTS_TABLE}
SELECT origin_file, origin_row, 'orders',
       'duplicate_transaction: order_id=''' || order_id || ''' was first seen at ' || first_call,
       json_object('order_id', order_id, 'event', event_type, 'total', total, 'messageId', event_id)::VARCHAR
FROM _fmt_seg_orders WHERE {resent}""")
    conn.execute(f"DELETE FROM _fmt_seg_orders WHERE {resent}")
    # A refund without a total takes its order's, or its products' (common.refund_totals_sql), capped with the others.
    note = apply_refund_totals(
        conn,
        "_fmt_seg_orders",
        raw_record="json_object('order_id', order_id, 'event', event_type, 'total', total, 'messageId', event_id)::VARCHAR",
        record_order="origin_file, origin_row, origin_item",
        total="total",
        is_purchase=f"track_name = '{ORDER_COMPLETED}'",
        order_id="order_id",
        currency="currency",
        item_count="refund_item_count",
        items_total="refund_items_total",
        nth="nth",
        first_copy="is_first_copy",
    )
    conn.execute(
        record_generated_ids_sql(
            "orders", "order_id", "_fmt_seg_orders", order_id_sql("NULL", "segment", ("event_id",))
        )
    )
    own_id = (
        f"CASE WHEN track_name = '{ORDER_COMPLETED}' THEN order_id "
        "ELSE order_id || '-R' || CASE WHEN nth > 1 THEN CAST(nth AS VARCHAR) ELSE '' END END"
    )
    write_contract_file(
        conn,
        f"""
SELECT {order_id_sql(own_id, "segment", ("event_id",))} AS order_id,
       {refund_buyer_sql("buyer", f"track_name = '{ORDER_COMPLETED}'", "order_id")} AS customer_id,
       occurred_at AS ordered_at,
       CASE WHEN track_name = '{ORDER_COMPLETED}' THEN total ELSE {refund_order_total_sql("refund_total")} END AS order_total,
       {refund_currency_sql("currency", f"track_name = '{ORDER_COMPLETED}'", "order_id")} AS currency,
       discount AS discount_amount, coupon AS discount_code, NULL::VARCHAR AS channel,
       CASE WHEN is_cancelled THEN 'cancelled' WHEN track_name = '{ORDER_COMPLETED}' THEN 'completed'
            ELSE 'refunded' END AS status,
       origin_file AS {ORIGIN_FILE}, origin_row AS {ORIGIN_ROW}
FROM _fmt_seg_orders ORDER BY origin_file, origin_row, origin_item""",
        work_dir / "orders.parquet",
    )
    conn.execute("DROP TABLE temp._fmt_seg_orders")
    return note
