"""GA4 BigQuery export (events_YYYYMMDD as newline-delimited JSON, Parquet or Avro) -> segmint contract files.

Field names follow Google's "[GA4] BigQuery Export schema": one record per event with `event_date`,
`event_timestamp` (microseconds since the epoch, UTC), `event_name`, `user_id`, `user_pseudo_id`, repeated
`event_params` {key, value {string_value, int_value, float_value, double_value}}, `device.category`,
`traffic_source` {name, medium, source} (the user's first touch), `collected_traffic_source`
{manual_source, manual_campaign_name, ...} (the event's own), `ecommerce` {transaction_id, purchase_revenue,
refund_value, ...} and repeated `items` {item_id, ...}. BigQuery's JSON export writes INT64 values as strings;
both spellings are read.

Mapping (the source's own event names are kept; config/event_mapping.yaml maps them):
- every event -> events: event_id `ga4-<md5 of the event's identity fields>`, anonymous_id = user_pseudo_id,
  customer_id = the stitched customer (below), event_type = event_name, page_url = param page_location,
  page_type = param firebase_screen, else firebase_screen_class (an app's screen; web events have none),
  product_id = items[0].item_id, device = device.category, utm_source/utm_campaign =
  collected_traffic_source.manual_source/manual_campaign_name, else traffic_source.source/name.
- without an orders file in the folder: `purchase` -> an order (transaction_id, purchase_revenue, currency
  param, coupon param); `refund` -> a refund row `<transaction_id>-R` (then -R2, -R3 ...) with -refund_value.
  A refund belongs to the buyer of the purchase it refunds when that purchase is in the export
  (common.refund_buyer_sql), even with no ids of its own (then it is no consent-denied ping) or another client id
  (a server-side refund). A refund giving no amount takes its purchase's total (no items: a full refund) or its
  items' price x quantity, and refunds of one purchase are capped at its total (common.refund_totals_sql).
  Amounts given only as the export's USD conversion (ecommerce.*_in_usd,
  event_value_in_usd) are read last, in USD.
  A purchase repeating an earlier transaction_id (GA4 re-sends purchases on page reloads) is not a second
  order: it is quarantined for orders as `duplicate_transaction` (the event itself stays an event).
  A purchase (or refund) without a transaction_id (only recommended by Google; `(not set)` is GA4's placeholder
  for none) keeps its revenue under the surrogate order id `ga4:<user_pseudo_id>:<event_timestamp>:<8 hex digits
  of the event id>` (common.order_id_sql): the event id hashes the event's identity (pseudo id, timestamp, name,
  stream_id, batch_event_index, batch_page_id, batch_ordering_id, params), so each purchase event is its own
  order, never merged with another, and an exact copy of the event is the same order. event_bundle_sequence_id
  is left out on purpose: a bundle uploaded twice holds the same events. A reload's re-sent purchase is a new
  event, so it cannot be de-duplicated: such orders are counted (ids_generated) and warned about.
Consent mode: with analytics storage denied (advanced consent mode), GA4 still sends "cookieless pings", exported
with no user_pseudo_id, no user_id and privacy_info.analytics_storage = 'No'. Such an event is read correctly but
belongs to nobody: this translator quarantines it as `consent_denied` (for events, and for orders when it is a
purchase or refund), so it never reaches the contract files and does not count toward the contract ingest's
"mostly unusable" stop. The rule (CONSENT_DENIED_SQL): both ids empty and privacy_info.analytics_storage not
'Yes'; without privacy_info (an export that omits it), both ids empty alone decide, since GA4 writes a pseudo id
on every event it may store. An event whose privacy_info says 'Yes' and has no ids is no consent case: it keeps the
contract's generic reasons (missing_customer_id...), which do count toward the stop. A note gives the count and
share (for orders also the revenue lost to CLV); an export whose every purchase was consent-denied stops.
Stitching: a pseudo id whose events carry exactly one user_id belongs to that customer, so all its events
(before and after the login) are that customer's. A pseudo id seen with several user_ids (a shared device)
is not guessed: only events that carry a user_id get it. Orders without any known user take the pseudo id as
customer id (a guest buyer), and so do the events of a pseudo id that never logged in but bought.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

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
from landing.sources import LandingError, sql_string

_TEXT = "VARCHAR"
_VALUE = {"string_value": _TEXT, "int_value": _TEXT, "float_value": _TEXT, "double_value": _TEXT}
# The part of the export schema segmint reads; json_transform ignores every other field.
GA4_STRUCTURE = json.dumps(
    {
        "event_date": _TEXT,
        "event_timestamp": _TEXT,
        "event_name": _TEXT,
        "event_params": [{"key": _TEXT, "value": _VALUE}],
        "user_id": _TEXT,
        "user_pseudo_id": _TEXT,
        "device": {"category": _TEXT},
        "traffic_source": {"name": _TEXT, "medium": _TEXT, "source": _TEXT},
        "collected_traffic_source": {"manual_source": _TEXT, "manual_campaign_name": _TEXT},
        "event_value_in_usd": _TEXT,
        "ecommerce": {
            "transaction_id": _TEXT,
            "purchase_revenue": _TEXT,
            "refund_value": _TEXT,
            "purchase_revenue_in_usd": _TEXT,
            "refund_value_in_usd": _TEXT,
        },
        "items": [{"item_id": _TEXT, "price": _TEXT, "quantity": _TEXT}],
        "stream_id": _TEXT,
        "batch_event_index": _TEXT,
        "batch_page_id": _TEXT,
        "batch_ordering_id": _TEXT,
        "privacy_info": {"analytics_storage": _TEXT},
    }
)
PURCHASE, REFUND = "purchase", "refund"
CONSENT_DENIED = "consent_denied"
# A cookieless ping of GA4 consent mode (module docstring), over the columns of _fmt_ga4_events: no user to
# attribute it to, and analytics storage not granted ('No', or no privacy_info at all).
# A refund of a purchase that has a user is no cookieless ping even without ids: its transaction_id names its buyer
# (refunds_known_purchase, refund_buyer_sql).
CONSENT_DENIED_SQL = (
    "user_id IS NULL AND user_pseudo_id IS NULL AND lower(analytics_storage) IS DISTINCT FROM 'yes' "
    "AND NOT refunds_known_purchase"
)
# BigQuery's streaming export table, as Google names it (events_intraday_YYYYMMDD); the daily one is events_YYYYMMDD.
INTRADAY_PREFIX = "events_intraday_"


def _set(value: str) -> str:
    # `(not set)` is GA4's placeholder for a value the tag did not send: no value.
    return f"nullif(nullif(trim({value}), ''), '(not set)')"


def _param(key: str) -> str:
    """The value of event param `key` as text, whichever typed value field holds it."""
    value = f"list_extract(list_filter(r.event_params, lambda p: p.key = '{key}'), 1).value"
    return f"coalesce({value}.string_value, {value}.int_value, {value}.double_value, {value}.float_value)"


def _refund_buyer(own: str) -> str:
    """A row's customer over `e` (events with `i`, the stitched ids): a refund's is its purchase's buyer
    (common.refund_buyer_sql), anything else's `own`."""
    purchase = f"e.event_type = '{PURCHASE}'"
    transaction = f"CASE WHEN e.event_type IN ('{PURCHASE}', '{REFUND}') THEN e.transaction_id END"
    return refund_buyer_sql("coalesce(e.user_id, i.customer_id, e.user_pseudo_id)", purchase, transaction, own)


def _timestamp_text(micros: str) -> str:
    # Microseconds since the epoch -> naive UTC text; anything else is passed on as it is, so the contract
    # ingest quarantines it with the value quoted (invalid_timestamp / implausible_timestamp).
    return (
        f"CASE WHEN try_cast({micros} AS BIGINT) IS NOT NULL "
        f"THEN CAST(make_timestamp(try_cast({micros} AS BIGINT)) AS VARCHAR) ELSE {micros} END"
    )


def translate(
    conn: duckdb.DuckDBPyConnection, files: list[Path], work_dir: Path, with_orders: bool
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Write events.parquet (and orders.parquet when `with_orders`) from GA4 export files; fill the ledger.

    Returns the files written and the notes of each (the consent-denied events set aside)."""
    load_json_lines(conn, files)
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE _fmt_ga4 AS SELECT origin_file, origin_row, reason, "
        f"CASE WHEN reason IS NULL THEN json_transform(line, '{GA4_STRUCTURE}') END AS r, "
        f"CASE WHEN reason IS NOT NULL THEN {raw_record_sql('line')} END AS raw_record "
        f"FROM (SELECT *, {json_reason_sql('line')} AS reason FROM {LINES_TABLE})"
    )
    drop_lines(conn)
    # A record that is not even a JSON object is no event: quarantined once, under events.
    conn.execute(
        f"INSERT INTO {REJECTS_TABLE} SELECT origin_file, origin_row, 'events', reason, raw_record "
        "FROM _fmt_ga4 WHERE reason IS NOT NULL"
    )
    identity = (
        "concat_ws('|', r.user_pseudo_id, r.event_timestamp, r.event_name, r.stream_id, r.batch_event_index, "
        "r.batch_page_id, r.batch_ordering_id, to_json(r.event_params))"
    )
    # The export's own USD conversions (Google's schema: ecommerce.*_in_usd, event_value_in_usd), read only when
    # the event gives its amount in no other field: a query that kept only them still gives the revenue.
    usd_purchase = "coalesce(r.ecommerce.purchase_revenue_in_usd, r.event_value_in_usd)"
    usd_refund = "coalesce(r.ecommerce.refund_value_in_usd, r.event_value_in_usd)"
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_ga4_events AS
SELECT origin_file, origin_row,
       'ga4-' || md5({identity}) AS event_id,
       nullif(r.user_id, '') AS user_id, nullif(r.user_pseudo_id, '') AS user_pseudo_id,
       r.event_timestamp AS event_timestamp,
       {_timestamp_text("r.event_timestamp")} AS occurred_at,
       try_cast(r.event_timestamp AS BIGINT) AS micros,
       r.event_name AS event_type,
       {_param("page_location")} AS page_url,
       -- an app's screen name (automatically collected on screen_view) is the shop's own page type
       coalesce({_set(_param("firebase_screen"))}, {_set(_param("firebase_screen_class"))}) AS page_type,
       {_set("r.items[1].item_id")} AS product_id,
       r.device.category AS device,
       coalesce(r.collected_traffic_source.manual_source, r.traffic_source.source) AS utm_source,
       coalesce(r.collected_traffic_source.manual_campaign_name, r.traffic_source.name) AS utm_campaign,
       coalesce({_set("r.ecommerce.transaction_id")}, {_set(_param("transaction_id"))}) AS transaction_id,
       coalesce(r.ecommerce.purchase_revenue, {_param("value")}, {usd_purchase}) AS purchase_revenue,
       coalesce(r.ecommerce.refund_value, {_param("value")}, {usd_refund}) AS refund_value,
       -- an amount only given converted to US dollars (the *_in_usd fields) is in USD, whatever the currency param
       CASE WHEN r.event_name = '{PURCHASE}' AND coalesce(r.ecommerce.purchase_revenue, {_param("value")}) IS NULL
                 AND {usd_purchase} IS NOT NULL THEN 'USD'
            WHEN r.event_name = '{REFUND}' AND coalesce(r.ecommerce.refund_value, {_param("value")}) IS NULL
                 AND {usd_refund} IS NOT NULL THEN 'USD'
            ELSE {_param("currency")} END AS currency,
       {_param("coupon")} AS coupon,
       -- a refund's items (a partial refund's): their count and sum of price x quantity (quantity 1 when not set,
       -- as Google's item reference says; NULL when an item has no price), read for refunds only
       CASE WHEN r.event_name = '{REFUND}' THEN coalesce(len(r.items), 0) END AS refund_item_count,
       CASE WHEN r.event_name = '{REFUND}' AND len(list_filter(r.items, lambda i: try_cast(i.price AS DOUBLE) IS NULL)) = 0
            THEN list_sum(list_transform(r.items, lambda i: try_cast(i.price AS DOUBLE)
                                                          * coalesce(try_cast(i.quantity AS DOUBLE), 1))) END
           AS refund_items_total,
       nullif(trim(r.privacy_info.analytics_storage), '') AS analytics_storage
FROM _fmt_ga4 WHERE reason IS NULL""")
    conn.execute("DROP TABLE temp._fmt_ga4")
    _drop_superseded_intraday_events(conn, files)
    # A refund whose transaction_id names a purchase sent with a user id or pseudo id belongs to that buyer, even
    # when the refund itself has no ids (sent from a consent-denied session, or server-side without a client id).
    conn.execute("ALTER TABLE _fmt_ga4_events ADD COLUMN refunds_known_purchase BOOLEAN DEFAULT false")
    conn.execute(f"""
UPDATE _fmt_ga4_events SET refunds_known_purchase = true
WHERE event_type = '{REFUND}' AND transaction_id IN (
    SELECT transaction_id FROM _fmt_ga4_events WHERE event_type = '{PURCHASE}' AND transaction_id IS NOT NULL
      AND (user_id IS NOT NULL OR user_pseudo_id IS NOT NULL))""")
    notes = _quarantine_consent_denied(conn, with_orders)
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_ga4_ids AS
SELECT user_pseudo_id,
       CASE WHEN count(DISTINCT user_id) = 1 THEN min(user_id)
            WHEN count(DISTINCT user_id) = 0 AND bool_or(event_type = '{PURCHASE}') THEN user_pseudo_id
       END AS customer_id
FROM _fmt_ga4_events WHERE user_pseudo_id IS NOT NULL GROUP BY user_pseudo_id""")
    written = ["events.parquet"]
    write_contract_file(
        conn,
        f"""
WITH refunds AS (  -- the refund rule's window over purchases and refunds only, not every event
    SELECT e.origin_file, e.origin_row, {_refund_buyer("coalesce(e.user_id, i.customer_id)")} AS customer_id
    FROM _fmt_ga4_events AS e LEFT JOIN _fmt_ga4_ids AS i USING (user_pseudo_id)
    WHERE e.event_type IN ('{PURCHASE}', '{REFUND}'))
SELECT e.event_id, CASE WHEN e.event_type = '{REFUND}' THEN r.customer_id ELSE coalesce(e.user_id, i.customer_id) END
           AS customer_id,
       e.user_pseudo_id AS anonymous_id,
       e.occurred_at, e.event_type, e.page_type, e.product_id, e.device, e.utm_source, e.utm_campaign,
       e.page_url, e.origin_file AS {ORIGIN_FILE}, e.origin_row AS {ORIGIN_ROW}
FROM _fmt_ga4_events AS e LEFT JOIN _fmt_ga4_ids AS i USING (user_pseudo_id)
LEFT JOIN refunds AS r ON e.event_type = '{REFUND}' AND r.origin_file = e.origin_file AND r.origin_row = e.origin_row
ORDER BY e.origin_file, e.origin_row""",
        work_dir / "events.parquet",
    )
    if with_orders:
        refund_note = _write_orders(conn, work_dir)
        written.append("orders.parquet")
        if refund_note:
            notes["orders.parquet"] = notes.get("orders.parquet", ()) + refund_note
    for table in ("_fmt_ga4_events", "_fmt_ga4_ids"):
        conn.execute(f"DROP TABLE temp.{table}")
    return tuple(written), notes


def _drop_superseded_intraday_events(conn: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    """Quarantine the events of an events_intraday_* file that a daily events_* file also holds.

    BigQuery's streaming export (events_intraday_YYYYMMDD) is provisional: Google completes the day in
    events_YYYYMMDD and then deletes the intraday table, and the daily copy of an event may carry fields the
    intraday one had not yet (traffic_source of new users). A folder holding both would otherwise see one event
    with two sets of values (`duplicate_conflicting`: every copy quarantined, the event lost) or a purchase twice.
    The daily table is the final word: its copy is kept, the intraday copy is `superseded_by_daily_table`
    (quarantined under events, so it makes no order either). Intraday events the daily tables lack are kept.
    """
    intraday = [path.name for path in files if path.name.lower().startswith(INTRADAY_PREFIX)]
    if not intraday or len(intraday) == len(files):
        return  # nothing to supersede (and no scan of the events for it)
    names = ", ".join(sql_string(name) for name in intraday)
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_ga4_superseded AS
WITH streamed AS (SELECT * FROM _fmt_ga4_events WHERE origin_file IN ({names})),
     final AS (SELECT event_id, min(row(origin_file, origin_row)) AS first_copy FROM _fmt_ga4_events
               WHERE origin_file NOT IN ({names}) AND event_id IN (SELECT event_id FROM streamed) GROUP BY event_id)
SELECT s.origin_file, s.origin_row, s.event_id, s.event_type, s.occurred_at, s.user_pseudo_id,
       f.first_copy[1] AS daily_file, f.first_copy[2] AS daily_row
FROM streamed AS s JOIN final AS f USING (event_id)""")
    conn.execute(f"""
INSERT INTO {REJECTS_TABLE}
SELECT origin_file, origin_row, 'events',
       'superseded_by_daily_table: the final copy of this event is ' || daily_file || ' line ' || daily_row,
       -- the event as translated (contract columns and origin, like a contract reject): nothing beyond what the
       -- daily copy keeps in raw.events, so it needs no special-category scrub of a source record
       json_object('event_id', event_id, 'event_type', event_type, 'occurred_at', occurred_at,
                   'anonymous_id', user_pseudo_id, '{ORIGIN_FILE}', origin_file, '{ORIGIN_ROW}', origin_row)::VARCHAR
FROM _fmt_ga4_superseded""")
    conn.execute("""
CREATE OR REPLACE TEMP TABLE _fmt_ga4_events AS
SELECT * FROM _fmt_ga4_events AS e
ANTI JOIN _fmt_ga4_superseded AS s ON e.origin_file = s.origin_file AND e.origin_row = s.origin_row
ORDER BY e.origin_file, e.origin_row""")
    conn.execute("DROP TABLE temp._fmt_ga4_superseded")


def _quarantine_consent_denied(conn: duckdb.DuckDBPyConnection, with_orders: bool) -> dict[str, tuple[str, ...]]:
    """Quarantine consent-denied events (CONSENT_DENIED_SQL) as `consent_denied`; the notes per work file.

    The translator sets them aside, as it does a re-sent purchase, because the record is not wrong: it is read
    correctly and has no user. So they never reach the contract files and do not count toward the "mostly
    unusable" stop, which is meant for files read wrongly. A purchase or refund among them is quarantined for
    orders too (each contract table reconciles on its own), and the revenue lost to CLV is said.
    """
    order_event = f"event_type IN ('{PURCHASE}', '{REFUND}')"
    denied_events, events, denied_orders, orders, denied_purchases, purchases = conn.execute(f"""
SELECT count(*) FILTER (WHERE {CONSENT_DENIED_SQL}), count(*),
       count(*) FILTER (WHERE {CONSENT_DENIED_SQL} AND {order_event}), count(*) FILTER (WHERE {order_event}),
       count(*) FILTER (WHERE {CONSENT_DENIED_SQL} AND event_type = '{PURCHASE}'),
       count(*) FILTER (WHERE event_type = '{PURCHASE}')
FROM _fmt_ga4_events""").fetchall()[0]
    if denied_events == 0:
        return {}
    reason = (
        f"'{CONSENT_DENIED}: ' || CASE WHEN analytics_storage IS NULL THEN 'no privacy_info' "
        "ELSE 'analytics_storage=''' || analytics_storage || '''' END || ' and no user_pseudo_id or user_id: "
        "analytics storage denied (GA4 consent mode), the event has no user to attribute it to'"
    )
    # The event as translated, without free text such as page_url: its visitor refused storage, keep the least.
    record = (
        "'event_id', event_id, 'event_type', event_type, 'occurred_at', occurred_at, 'analytics_storage', "
        f"analytics_storage, '{ORIGIN_FILE}', origin_file, '{ORIGIN_ROW}', origin_row"
    )
    amounts = "'transaction_id', transaction_id, 'purchase_revenue', purchase_revenue, 'refund_value', refund_value"
    tables = [("events", "true", record)]
    if with_orders:
        tables.append(("orders", order_event, f"{record}, {amounts}, 'currency', currency"))
    for table, which, fields in tables:
        conn.execute(f"""
INSERT INTO {REJECTS_TABLE}
SELECT origin_file, origin_row, '{table}', {reason}, json_object({fields})::VARCHAR
FROM _fmt_ga4_events WHERE {CONSENT_DENIED_SQL} AND {which} ORDER BY origin_file, origin_row""")
    revenue = conn.execute(f"""
SELECT upper(trim(currency)), sum(try_cast(purchase_revenue AS DOUBLE)) AS amount
FROM _fmt_ga4_events WHERE {CONSENT_DENIED_SQL} AND event_type = '{PURCHASE}'
GROUP BY 1 HAVING amount IS NOT NULL ORDER BY amount DESC, 1 NULLS FIRST""").fetchall()
    conn.execute(f"DELETE FROM _fmt_ga4_events WHERE {CONSENT_DENIED_SQL}")
    if with_orders and denied_purchases == purchases > 0:
        raise LandingError(
            f"GA4 export: all {purchases} purchase events were sent with analytics storage denied (GA4 consent "
            "mode: no user_pseudo_id or user_id), so no order belongs to a customer and there is nothing to model; "
            "an orders.csv from the shop's own order book next to the export would give the orders"
        )
    share = _consent_denied_share(denied_events, events, "events")
    notes = {"events.parquet": (f"{share}: they count in no customer's behaviour features",)}
    if with_orders and denied_orders:
        money = ", ".join(f"{amount:,.2f}" + (f" {currency}" if currency else "") for currency, amount in revenue)
        lost = f"{denied_purchases} purchases, revenue {money}" if money else f"{denied_purchases} purchases"
        notes["orders.parquet"] = (
            f"warning: {_consent_denied_share(denied_orders, orders, 'purchase and refund events')} ({lost}): no "
            "customer can be given them, so that revenue is missing from CLV, RFM and the segments; an orders.csv "
            "from the shop's own order book next to the export would keep it",
        )
    return notes


def _consent_denied_share(denied: int, total: int, what: str) -> str:
    """'N of M <what> (P %) ... consent_denied': how the consent notes open."""
    return (
        f"{denied} of {total} {what} ({100 * denied / total:.1f} %) were sent with analytics storage denied "
        f"(GA4 consent mode, no user_pseudo_id or user_id) and are quarantined as {CONSENT_DENIED}"
    )


def _write_orders(conn: duckdb.DuckDBPyConnection, work_dir: Path) -> tuple[str, ...]:
    """purchase events -> orders, refund events -> refund rows; repeated transaction ids are quarantined.

    Returns the orders' note on refunds whose amount was derived or capped (common.refund_totals_sql)."""
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_ga4_orders AS
SELECT * EXCLUDE (first_copy), first_copy = {{'origin_file': origin_file, 'origin_row': origin_row}} AS is_first_copy,
       -- the n-th distinct event (event id) of this kind for this transaction: an event exported twice is one
       -- event (its copies are duplicate_identical), so a refund copied twice is one refund, never -R and -R2
       dense_rank() OVER (PARTITION BY event_type, transaction_id ORDER BY micros, first_copy) AS nth,
       first_value(first_copy.origin_file || ' line ' || first_copy.origin_row) OVER (
           PARTITION BY event_type, transaction_id ORDER BY micros, first_copy) AS first_seen
FROM (SELECT *, min({{'origin_file': origin_file, 'origin_row': origin_row}}) OVER (PARTITION BY event_id) AS first_copy
      FROM _fmt_ga4_events WHERE event_type IN ('{PURCHASE}', '{REFUND}'))""")
    # A refund without a total takes its purchase's, or its items' (common.refund_totals_sql), capped with the others.
    note = apply_refund_totals(
        conn,
        "_fmt_ga4_orders",
        raw_record="json_object('transaction_id', transaction_id, 'event_name', event_type, 'refund_value', "
        "refund_value, 'currency', currency)::VARCHAR",
        record_order="origin_file, origin_row",
        total=f"CASE WHEN event_type = '{PURCHASE}' THEN purchase_revenue ELSE refund_value END",
        is_purchase=f"event_type = '{PURCHASE}'",
        order_id="transaction_id",
        currency="currency",
        item_count="refund_item_count",
        items_total="refund_items_total",
        nth="nth",
        first_copy="is_first_copy",
    )
    duplicate = "e.event_type = 'purchase' AND e.transaction_id IS NOT NULL AND e.nth > 1"
    conn.execute(f"""
INSERT INTO {REJECTS_TABLE}
SELECT origin_file, origin_row, 'orders',
       'duplicate_transaction: transaction_id=''' || e.transaction_id || ''' was first seen at ' || e.first_seen,
       json_object('transaction_id', e.transaction_id, 'event_name', e.event_type,
                   'purchase_revenue', e.purchase_revenue)::VARCHAR
FROM _fmt_ga4_orders AS e WHERE {duplicate}""")
    if conn.execute(f"SELECT count(*) FROM _fmt_ga4_orders WHERE event_type = '{PURCHASE}'").fetchall()[0][0] == 0:
        raise LandingError("GA4 export: no purchase events and no orders.csv, so there are no orders to model")
    event_identity = ("e.user_pseudo_id", "e.event_timestamp", "left(substr(e.event_id, 5), 8)")
    generated = order_id_sql("NULL", "ga4", event_identity)
    conn.execute(record_generated_ids_sql("orders", "e.transaction_id", "_fmt_ga4_orders AS e", generated))
    own_id = (
        f"CASE WHEN e.event_type = '{PURCHASE}' THEN e.transaction_id "
        "ELSE e.transaction_id || '-R' || CASE WHEN e.nth > 1 THEN CAST(e.nth AS VARCHAR) ELSE '' END END"
    )
    write_contract_file(
        conn,
        f"""
SELECT {order_id_sql(own_id, "ga4", event_identity)} AS order_id,
       {_refund_buyer("coalesce(e.user_id, i.customer_id, e.user_pseudo_id)")} AS customer_id,
       e.occurred_at AS ordered_at,
       CASE WHEN e.event_type = '{PURCHASE}' THEN e.purchase_revenue
            ELSE {refund_order_total_sql("e.refund_total")} END AS order_total,
       {refund_currency_sql("e.currency", f"e.event_type = '{PURCHASE}'", "e.transaction_id")} AS currency,
       NULL::VARCHAR AS discount_amount, e.coupon AS discount_code, NULL::VARCHAR AS channel,
       CASE WHEN e.event_type = '{PURCHASE}' THEN 'completed' ELSE 'refunded' END AS status,
       e.origin_file AS {ORIGIN_FILE}, e.origin_row AS {ORIGIN_ROW}
FROM _fmt_ga4_orders AS e LEFT JOIN _fmt_ga4_ids AS i USING (user_pseudo_id)
WHERE NOT (e.event_type = '{PURCHASE}' AND e.transaction_id IS NOT NULL AND e.nth > 1)
ORDER BY e.origin_file, e.origin_row""",
        work_dir / "orders.parquet",
    )
    conn.execute("DROP TABLE temp._fmt_ga4_orders")
    return note
