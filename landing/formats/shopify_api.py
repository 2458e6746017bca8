"""Shopify orders and customers pulled from the Admin API -> segmint contract files, by shopify.py's rules.

Data engineers pull orders with a script, an ELT tool or a bulk operation rather than clicking Export. These
shapes are read, in any mix, each file `.json`/`.jsonl`/`.ndjson` (optionally `.gz`) unless said otherwise; which
files are read is detect.shopify_api_files' decision (landing/README.md, "Shopify Admin API pulls"):
- REST pages: the body of `GET /admin/api/<version>/orders.json` (`{"orders": [...]}`) or `customers.json`
  (`{"customers": [...]}`), a file per page (pretty-printed or on one line), several pages as JSON lines, or one
  REST order or customer per line (a script's JSON lines, Singer's target-jsonl). A page's records are numbered over
  the file's pages; a bare JSON array of records (`jq .orders`) is read as a page.
- GraphQL bulk operation output: one object per line, `id` a GraphQL id (`gid://shopify/Order/123`); objects of a
  nested connection (line items, a customer's orders) are lines of their own naming their parent in `__parentId`.
- Airbyte records as its file destinations write them: a line `{"_airbyte_raw_id", "_airbyte_extracted_at",
  "_airbyte_meta", "_airbyte_generation_id", "_airbyte_data": {...}}` (before destinations v2: `_airbyte_ab_id`,
  `_airbyte_emitted_at`); `_airbyte_data` (an object, or its JSON text) is the REST-shaped record. Airbyte's CSV
  files (`.csv`/`.csv.gz`, the same columns, or root-level flattened fields) become those lines first.
- Singer tap output (`tap-shopify > out.jsonl`): a RECORD message's `record` is the record, its `stream` says
  orders or customers; SCHEMA/STATE/ACTIVATE_VERSION messages and other streams' records are no rows (counted
  in the orders' notes).
A record is an order or a customer by its page or Singer stream (`orders`/`customers`), its GraphQL id type, else
the stream its file is named as (detect.stream_of_file_name: `orders-20251201T101010.jsonl`; another stream's file,
`draft_orders-...`, holds no orders), else its fields (an order has `financial_status`, `total_price`, `line_items`
or `order_number`; a customer `orders_count`, `total_spent`, `default_address`, `email_marketing_consent` or
`accepts_marketing`).

Mapping (REST snake_case or GraphQL camelCase, whichever is present): order_id = `name` (`#1001`, as the admin
CSV's Name, so a pull and an export of one shop give the same ids), else the numeric id; customer = `customer.id`
(numeric part), else the customer a bulk order line is nested under, else the admin CSV rule (customers file
by email, then phone, then the order's own email/phone: shopify.write_orders); ordered_at = `created_at`.
Money is the **shop currency** (the shop's books): `total_price_set.shop_money` / `totalPriceSet.shopMoney`, else
`total_price` + `currency` (REST documents both in the shop currency); the presentment currency (what the buyer saw)
is never read, so one order's amounts never mix currencies. Discount = `total_discounts(_set)`, first discount
code; channel = `source_name`; status and refunds as the admin CSV's (`cancelled_at`, financial status voided or
expired). Refunded amount, in shop money: GraphQL `totalRefundedSet.shopMoney`; REST the successful `refund`
transactions of `refunds[]` when they are in the shop currency, else (a presentment-currency refund, or refunds
listed without transactions as tap-shopify's REST-era orders stream writes them) `total_price - current_total_price`
(shop money sets first); dated at the last refund's `processed_at`/`created_at` (the admin CSV has no refund date).
Set aside, each with a quarantine row and its reason (counted in raw.ingest_log, never dropped in silence):
`test_order` (`test: true`: the bogus gateway, never money), `superseded_version` (an older copy of an order or
customer pulled again: an incremental sync appends each update; the newest `updated_at`, then Airbyte's or Singer's
extraction time, then the last in file order, wins), `orphan_child` (a bulk child line whose parent is in no
file), `unsupported_record` (anything else), and malformed lines. Bulk child lines of a known order or customer
(line items, ...) fold into it and are counted in the orders' notes.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import duckdb

from landing.formats.common import (
    REJECTS_TABLE,
    drop_lines,
    json_reason_sql,
    load_json_lines,
    raw_record_sql,
)
from landing.formats.detect import (
    AIRBYTE_DATA,
    GID_PREFIX,
    MAX_DOCUMENT_BYTES,
    REST_CUSTOMER_KEYS,
    REST_ORDER_KEYS,
    SINGER_MESSAGE_TYPES,
    is_csv_file,
    is_json_lines,
    json_file_shape,
    stream_of_file_name,
)
from landing.formats.shopify import create_buyer_lookups, write_customers, write_orders
from landing.sources import LandingError, load_csv, sql_string

# How the stop line names the files when no order names a customer (shopify.set_aside_anonymous_orders).
ORDERS_SOURCE, CUSTOMERS_SOURCE = "Shopify Admin API files", "Admin API customer"


def _text(expression: str) -> str:
    return f"nullif(trim({expression}), '')"


def _numeric_id(expression: str) -> str:
    # `gid://shopify/Customer/6001` and `6001` are one customer: the admin CSV's Customer ID is the number.
    return f"nullif(regexp_extract({expression}, '([0-9]+)$', 1), '')"


def _load_airbyte_csv(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    """An Airbyte CSV file's rows into `_fmt_rows` as the JSON lines Airbyte's JSON destinations write, numbered from
    1: each column a field, a cell holding a JSON object or array (`_airbyte_data`, a flattened nested field) as that
    JSON, any other cell as its text (the record's numbers and flags stay text: every rule reads text)."""
    source = load_csv(conn, path, "_fmt_sapi_csv")
    fields = []
    for position, name in enumerate(source.header):
        cell = f"nullif(c{position}, '')"
        value = (
            f"CASE WHEN json_valid({cell}) AND json_type({cell}) IN ('OBJECT', 'ARRAY') THEN {cell}::JSON "
            f"ELSE to_json({cell}) END"
        )
        fields.append(f"{sql_string(name)}, {value}")
    conn.execute(f"""
INSERT INTO _fmt_rows SELECT {sql_string(path.name)}, record_index + 1, json_object({", ".join(fields)})::VARCHAR
FROM {source.relation}""")
    conn.execute("DROP TABLE IF EXISTS temp._fmt_sapi_csv")


def _load_records(conn: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    """Every record of the files into temp `_fmt_sapi` (file_index, origin_file, origin_row, page, message, raw, bad,
    data, kind, target, source_id, record_number, gid_type, parent, is_test, version_at): pages and bare arrays
    unpacked, Airbyte's envelope and Singer's RECORD message opened, each record classified. Each value is read with
    one parse per record (list-of-paths extraction)."""
    shapes = {path: "csv" if is_csv_file(path) else json_file_shape(path) for path in files}
    # a file whose first line is no whole record is one pretty-printed document (detection parsed it)
    documents = [path for path in files if shapes[path] == "document"]
    csv_files = [path for path in files if shapes[path] == "csv"]
    load_json_lines(conn, [path for path in files if shapes[path] in ("lines", "singer")])
    if documents:
        listed = ", ".join(sql_string(str(path)) for path in documents)
        conn.execute(f"""
INSERT INTO _fmt_rows SELECT parse_filename(filename), 1, json::VARCHAR
FROM read_json_objects([{listed}], format='unstructured', filename=true, maximum_object_size={MAX_DOCUMENT_BYTES})""")
    for path in csv_files:
        _load_airbyte_csv(conn, path)
    # the stream a file is named as (stream_of_file_name), for records that name none themselves; whether its lines
    # are Singer messages (only those lines' `type` is read: one parse less per line of the other files)
    order = ", ".join(
        f"({index}, {sql_string(path.name)}, {sql_string(stream_of_file_name(path.name) or '')}, "
        f"{shapes[path] == 'singer'})"
        for index, path in enumerate(files)
    )
    singer_types = ", ".join(sql_string(kind) for kind in SINGER_MESSAGE_TYPES)
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_sapi_lines AS
WITH parsed AS (
    SELECT f.file_index, l.origin_file, f.name_stream, f.singer, l.origin_row, l.line,
           left(ltrim(left(l.line, 64)), 1) = '[' AS is_array,  -- a string test: no parse of a page line
           -- a bare array of objects (`jq .orders`) is a page of records; of anything else, one bad line
           CASE WHEN NOT is_array THEN {json_reason_sql("l.line")}
                WHEN json_valid(l.line) AND list_distinct(json_type(l.line, '$[*]')) IN ([]::VARCHAR[], ['OBJECT'])
                    THEN NULL
                ELSE {json_reason_sql("l.line")} END AS bad
    FROM _fmt_lines AS l JOIN (VALUES {order}) AS f(file_index, origin_file, name_stream, singer) USING (origin_file)),
paged AS (
    SELECT *, CASE WHEN bad IS NULL AND NOT is_array THEN json_type(line, ['$.orders', '$.customers']) END AS _pages,
           CASE WHEN singer AND bad IS NULL THEN json_extract_string(line, ['$.type', '$.stream']) END AS _message
    FROM parsed)
SELECT * EXCLUDE (_pages, _message, singer, is_array), CASE WHEN bad IS NULL THEN line::JSON END AS j,
       CASE WHEN bad IS NULL AND is_array THEN 'array' WHEN _pages[1] = 'ARRAY' THEN 'orders'
            WHEN _pages[2] = 'ARRAY' THEN 'customers' END AS page,
       CASE WHEN _message[1] IN ({singer_types}) THEN _message[1] END AS message,
       CASE WHEN _message[1] IN ({singer_types}) THEN _message[2] END AS stream
FROM paged""")
    drop_lines(conn)
    page_records = (
        "CASE page WHEN 'orders' THEN json_extract(j, '$.orders[*]') WHEN 'customers' THEN "
        "json_extract(j, '$.customers[*]') ELSE json_extract(j, '$[*]') END"
    )
    rest_order = f"list_has_any(_keys, {list(REST_ORDER_KEYS)})"
    rest_customer = f"list_has_any(_keys, {list(REST_CUSTOMER_KEYS)})"
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_sapi AS
WITH pages AS (
    SELECT file_index, origin_file, origin_row AS line_no, page, name_stream, unnest({page_records}) AS rec,
           generate_subscripts({page_records}, 1) AS position
    FROM _fmt_sapi_lines WHERE page IS NOT NULL),
records AS (  -- a page's records are numbered over the file's pages (a bare array names no stream)
    SELECT file_index, origin_file,
           row_number() OVER (PARTITION BY origin_file ORDER BY line_no, position) AS origin_row,
           nullif(page, 'array') AS stream, nullif(name_stream, '') AS name_stream, NULL AS message,
           rec::VARCHAR AS raw, NULL AS bad, rec::JSON AS rec, NULL AS extracted_at
    FROM pages
    UNION ALL  -- a Singer RECORD message carries its record, its stream and when it was extracted
    SELECT file_index, origin_file, origin_row, stream, nullif(name_stream, ''), message, line, bad,
           CASE WHEN message = 'RECORD' THEN j->'$.record' ELSE j END,
           CASE WHEN message = 'RECORD' THEN j->>'$.time_extracted' END
    FROM _fmt_sapi_lines WHERE page IS NULL),
enveloped AS (
    SELECT *, json_extract(rec, ['$.{AIRBYTE_DATA}', '$._airbyte_extracted_at', '$._airbyte_emitted_at']) AS _env
    FROM records),
opened AS (  -- Airbyte's record is an object, or (some destinations) its JSON text
    SELECT * EXCLUDE (rec, _env, extracted_at),
           CASE WHEN _env[1] IS NULL THEN rec
                WHEN json_type(_env[1]) = 'VARCHAR' AND json_valid(_env[1]->>'$') THEN (_env[1]->>'$')::JSON
                ELSE _env[1] END AS data,
           coalesce(_env[2]->>'$', _env[3]->>'$', extracted_at) AS extracted_at
    FROM enveloped),
fields AS (
    SELECT *, json_extract_string(data, ['$.id', '$.__parentId', '$.updated_at', '$.updatedAt', '$.test']) AS _f,
           json_keys(data) AS _keys
    FROM opened),
typed AS (
    SELECT *, _f[1] AS source_id, regexp_extract(_f[1], '^{GID_PREFIX}([A-Za-z]+)/', 1) AS gid_type,
           _f[2] AS parent
    FROM fields)
SELECT file_index, origin_file, origin_row, coalesce(stream, name_stream) AS page, message,
       {raw_record_sql("raw")} AS raw, bad, data, source_id,
       -- one order or customer however it was pulled: REST's 450789469, GraphQL's gid://shopify/Order/450789469
       {_numeric_id("source_id")} AS record_number, gid_type, parent, lower(_f[5]) = 'true' AS is_test,
       CASE WHEN bad IS NOT NULL THEN 'bad'
            -- Singer's SCHEMA, STATE, ... messages carry no record: not rows (counted in the notes)
            WHEN message IS NOT NULL AND message <> 'RECORD' THEN 'singer_message'
            WHEN coalesce(json_type(data), 'NULL') <> 'OBJECT' THEN 'not_an_object'
            -- the stream a record's page or Singer message names (a GraphQL id its type) decides
            WHEN stream = 'orders' OR gid_type = 'Order' THEN 'order'
            WHEN stream = 'customers' OR gid_type = 'Customer' THEN 'customer'
            WHEN stream IS NOT NULL THEN 'other_stream'
            WHEN parent IS NOT NULL THEN 'child'
            -- a REST record in a file named as a stream is that stream's; else its documented keys decide
            WHEN gid_type <> '' OR source_id IS NULL THEN 'unsupported'
            WHEN name_stream = 'orders' THEN 'order'
            WHEN name_stream = 'customers' THEN 'customer'
            WHEN name_stream IS NOT NULL THEN 'other_stream'
            WHEN {rest_order} THEN 'order'
            WHEN {rest_customer} THEN 'customer'
            ELSE 'unsupported' END AS kind,
       -- which copy of a record pulled twice is the newer one (an incremental sync appends each update)
       coalesce(try_cast(coalesce(_f[3], _f[4]) AS TIMESTAMPTZ), try_cast(extracted_at AS TIMESTAMPTZ),
                make_timestamptz(try_cast(extracted_at AS BIGINT) * 1000)) AS version_at
FROM typed""")
    # the contract table a rejected record is counted under
    conn.execute("ALTER TABLE _fmt_sapi ADD COLUMN target VARCHAR")
    conn.execute(
        "UPDATE _fmt_sapi SET target = CASE WHEN kind = 'customer' OR page = 'customers' THEN 'customers' ELSE 'orders' END"
    )
    conn.execute("DROP TABLE temp._fmt_sapi_lines")


def _skipped_records(conn: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """Take Singer's messages without a record and the records of other streams out of `_fmt_sapi`; the orders' note
    counting them per file. They are no orders or customers, so no rows of a contract table (not quarantined, as a
    blank line is not): a tap writes a SCHEMA per stream and a STATE now and then, and a pull of `transactions` or
    `order_refunds` next to the orders is a stream segmint does not read (the orders carry their refunds)."""
    counts = conn.execute("""
SELECT origin_file, CASE WHEN kind = 'singer_message' THEN 'Singer ' || message || ' message' ELSE '`' || page || '` record' END,
       count(*)
FROM _fmt_sapi WHERE kind IN ('singer_message', 'other_stream') GROUP BY ALL ORDER BY 1, 3 DESC, 2""").fetchall()
    conn.execute("DELETE FROM _fmt_sapi WHERE kind IN ('singer_message', 'other_stream')")
    if not counts:
        return ()
    by_file: dict[str, list[str]] = {}
    for file_name, what, count in counts:
        by_file.setdefault(file_name, []).append(f"{count} {what}{'s' if count > 1 else ''}")
    listed = "; ".join(f"{file_name}: {', '.join(parts)}" for file_name, parts in by_file.items())
    return (f"not orders or customers, so not read (no rows): {listed}",)


def _reject(conn: duckdb.DuckDBPyConnection, where: str, reason: str) -> None:
    conn.execute(f"""
INSERT INTO {REJECTS_TABLE}
SELECT origin_file, origin_row, target, {reason}, raw
FROM _fmt_sapi WHERE {where} ORDER BY file_index, origin_row""")
    conn.execute(f"DELETE FROM _fmt_sapi WHERE {where}")


def _set_aside_superseded(conn: duckdb.DuckDBPyConnection, kind: str, key: str) -> None:
    """Keep the newest copy of each order or customer (version_at, then file order); quarantine the others."""
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_sapi_versions AS
SELECT origin_file, origin_row, {key} AS record_key,
       row_number() OVER (PARTITION BY {key} ORDER BY version_at DESC NULLS LAST, file_index DESC, origin_row DESC) AS n,
       first_value(origin_file || ' record ' || origin_row) OVER (
           PARTITION BY {key} ORDER BY version_at DESC NULLS LAST, file_index DESC, origin_row DESC) AS newest
FROM _fmt_sapi WHERE kind = '{kind}' AND {key} IS NOT NULL""")
    conn.execute("""
UPDATE _fmt_sapi AS s SET kind = 'superseded:' || v.record_key || ':' || v.newest
FROM _fmt_sapi_versions AS v
WHERE v.n > 1 AND s.origin_file = v.origin_file AND s.origin_row = v.origin_row""")
    conn.execute("DROP TABLE temp._fmt_sapi_versions")
    _reject(
        conn,
        "kind LIKE 'superseded:%'",
        f"'superseded_version: an older copy of {kind} ' || split_part(kind, ':', 2) || "
        "' (the newer one is ' || split_part(kind, ':', 3) || ')'",
    )


ORDER_KEY, CUSTOMER_KEY = "coalesce(record_number, data->>'name')", "record_number"


def translate(
    conn: duckdb.DuckDBPyConnection, landing_dir: Path, work_dir: Path, files: list[Path]
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Write orders.parquet (and customers.parquet when customers were pulled) from `files` (shopify_api_files, found
    once by the caller: detection parses a pretty-printed page whole); fill the reject list.

    Returns the files written and the orders' notes."""
    _load_records(conn, files)
    skipped = _skipped_records(conn)
    # the known records first: a child line is folded into its parent, or is an orphan
    conn.execute("""
UPDATE _fmt_sapi SET kind = 'orphan' WHERE kind = 'child' AND parent NOT IN (
    SELECT source_id FROM _fmt_sapi WHERE kind IN ('order', 'customer') AND source_id IS NOT NULL)""")
    _reject(conn, "kind = 'bad'", "bad")
    _reject(conn, "kind = 'not_an_object'", "'not_a_json_object: a ' || lower(json_type(data))")
    _reject(
        conn,
        "kind = 'unsupported'",
        "'unsupported_record: neither a Shopify order nor a customer' || "
        "coalesce(' (' || nullif(gid_type, '') || ')', '')",
    )
    _reject(conn, "kind = 'orphan'", "'orphan_child: its __parentId ' || parent || ' is in no file'")
    _reject(
        conn,
        "kind = 'order' AND is_test",
        "'test_order: a test order (test: true) is never money'",
    )
    _set_aside_superseded(conn, "order", ORDER_KEY)
    _set_aside_superseded(conn, "customer", CUSTOMER_KEY)
    folded = conn.execute("SELECT count(*) FROM _fmt_sapi WHERE kind = 'child'").fetchall()[0][0]
    written = []
    create_buyer_lookups(conn)
    if conn.execute("SELECT count(*) FROM _fmt_sapi WHERE kind = 'customer'").fetchall()[0][0]:
        _customers(conn)
        write_customers(conn, work_dir)
        written.append("customers.parquet")
    if not conn.execute("SELECT count(*) FROM _fmt_sapi WHERE kind = 'order'").fetchall()[0][0]:
        conn.execute("DROP TABLE temp._fmt_sapi")
        raise LandingError(
            f"{', '.join(path.name for path in files)}: no Shopify order in these Admin API files (REST "
            "orders.json pages, GraphQL bulk Order lines or Airbyte `orders` records); pull the orders too"
        )
    notes = _orders(conn)
    conn.execute("DROP TABLE temp._fmt_sapi")
    notes = (
        write_orders(conn, work_dir, ORDERS_SOURCE, CUSTOMERS_SOURCE)
        + notes
        + skipped
        + _unread_json(landing_dir, files)
    )
    if folded:
        notes += (
            f"{folded} nested lines of the bulk export (line items and other objects under an order or customer, "
            "`__parentId`) are folded into their parent",
        )
    written.append("orders.parquet")
    return tuple(written), {"orders.parquet": notes} if notes else {}


# How a REST page opens (`{"orders": [` or `{"customers": [`), pretty-printed or not.
REST_PAGE_OPENING = re.compile(rb'\s*\{\s*"(orders|customers)"\s*:\s*\[')


def _is_cut_rest_page(path: Path) -> bool:
    """A file that opens as a REST page but is not whole JSON: a download cut short."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            if not REST_PAGE_OPENING.match(handle.read(4096)):
                return False
        with opener(path, "rb") as handle:
            json.load(handle)
    except (OSError, EOFError, ValueError):
        return True
    return False


def _unread_json(landing_dir: Path, files: list[Path]) -> tuple[str, ...]:
    """A note naming the folder's other JSON files (their first record is no Shopify record), so they are not read
    and said so rather than skipped in silence. A REST page cut short while downloading stops the run instead, as a
    cut gzip or Avro file does: read without it, the shop would miss its orders with only a note (and its as-of date
    could move months back)."""
    unread = sorted(path for path in landing_dir.iterdir() if is_json_lines(path) and path not in files)
    if cut := next((path for path in unread if _is_cut_rest_page(path)), None):
        raise LandingError(
            f"{cut.name}: a Shopify REST page that is not whole JSON (cut short while downloading?): download it "
            "again, or remove it to read the other files without its records"
        )
    if not unread:
        return ()
    return (
        f"warning: not read: {', '.join(path.name for path in unread)} (their first record is no Shopify order, "
        "customer or REST page)",
    )


class _Fields:
    """Text values of a record's `data` at JSON paths, all read by one json_extract_string over the list of paths
    (one parse of the record; a call per field parsed it once per field)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def first_of(self, *paths: str) -> str:
        """The first present, non-empty value at the paths (`$.a.b`), as text."""
        self.paths += [path for path in paths if path not in self.paths]
        return f"coalesce({', '.join(_text(f'_v[{self.paths.index(path) + 1}]') for path in paths)})"

    def values(self) -> str:
        return f"json_extract_string(data, [{', '.join(repr(path) for path in self.paths)}]) AS _v"


def _customers(conn: duckdb.DuckDBPyConnection) -> None:
    """The customer records as shopify.write_customers reads them (`_fmt_shop_customers`)."""
    field = _Fields()
    consent_state = field.first_of("$.email_marketing_consent.state", "$.emailMarketingConsent.marketingState")
    columns = {
        "customer_id": _numeric_id(field.first_of("$.id")),
        "email": field.first_of("$.email", "$.defaultEmailAddress.emailAddress"),
        "phone": field.first_of(
            "$.phone", "$.defaultPhoneNumber.phoneNumber", "$.default_address.phone", "$.defaultAddress.phone"
        ),
        "first_name": field.first_of("$.first_name", "$.firstName"),
        "last_name": field.first_of("$.last_name", "$.lastName"),
        "postal_code": field.first_of("$.default_address.zip", "$.defaultAddress.zip"),
        "country": field.first_of(
            "$.default_address.country_code", "$.defaultAddress.countryCodeV2", "$.defaultAddress.countryCode"
        ),
        # the consent state (SUBSCRIBED, NOT_SUBSCRIBED, UNSUBSCRIBED, PENDING, ...) when given, else the older flag
        "marketing_consent": f"CASE WHEN {consent_state} IS NOT NULL THEN CAST(lower({consent_state}) = 'subscribed' "
        f"AS VARCHAR) ELSE {field.first_of('$.accepts_marketing', '$.acceptsMarketing')} END",
        "signed_up_at": field.first_of("$.created_at", "$.createdAt"),
    }
    selected = ", ".join(f"{value} AS {alias}" for alias, value in columns.items())
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_shop_customers AS
SELECT file_index, origin_file, origin_row, {selected}
FROM (SELECT *, {field.values()} FROM _fmt_sapi WHERE kind = 'customer')""")


def _orders(conn: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The order records as shopify.write_orders reads them (`_fmt_shop_orders`), amounts in the shop currency;
    a warning when refunds could not be put in the shop's money."""
    field = _Fields()
    parent_customer = f"CASE WHEN {field.first_of('$.__parentId')} LIKE '{GID_PREFIX}Customer/%' THEN {field.first_of('$.__parentId')} END"
    columns = {
        "name": f"coalesce({field.first_of('$.name')}, {_numeric_id(field.first_of('$.id'))})",
        "customer_key": _numeric_id(f"coalesce({field.first_of('$.customer.id')}, {parent_customer})"),
        "email": field.first_of("$.email", "$.contact_email", "$.customer.email"),
        "phone": field.first_of("$.phone", "$.customer.phone"),
        "created_at": field.first_of("$.created_at", "$.createdAt"),
        "total": field.first_of(
            "$.total_price_set.shop_money.amount", "$.totalPriceSet.shopMoney.amount", "$.total_price", "$.totalPrice"
        ),
        "currency": field.first_of(
            "$.total_price_set.shop_money.currency_code",
            "$.totalPriceSet.shopMoney.currencyCode",
            "$.currency",
            "$.currencyCode",
        ),
        "current_total": field.first_of(
            "$.current_total_price_set.shop_money.amount",
            "$.currentTotalPriceSet.shopMoney.amount",
            "$.current_total_price",
        ),
        "financial_status": field.first_of("$.financial_status", "$.displayFinancialStatus"),
        "discount_code": field.first_of("$.discount_codes[0].code", "$.discountCode", "$.discountCodes[0]"),
        "discount_amount": field.first_of(
            "$.total_discounts_set.shop_money.amount", "$.totalDiscountsSet.shopMoney.amount", "$.total_discounts"
        ),
        "refunded_total": field.first_of("$.totalRefundedSet.shopMoney.amount"),
        "refunded_at": field.first_of(
            "$.refunds[#-1].processed_at", "$.refunds[#-1].created_at", "$.refunds[#-1].createdAt"
        ),
        "cancelled_at": field.first_of("$.cancelled_at", "$.cancelledAt"),
        "source": field.first_of("$.source_name", "$.sourceName"),
        # read with the other fields (one parse): a json_exists per flag parsed the order again each
        "has_refund_transactions": f"{field.first_of('$.refunds[0].transactions[0]')} IS NOT NULL",
        # tap-shopify's REST-era orders stream lists refunds without their transactions (its schema has none)
        "has_bare_refunds": f"{field.first_of('$.refunds[0]')} IS NOT NULL "
        f"AND {field.first_of('$.refunds[0].transactions')} IS NULL",
    }
    selected = ", ".join(f"{value} AS {alias}" for alias, value in columns.items())
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_sapi_orders AS
SELECT file_index, origin_file, origin_row, data, {selected}
FROM (SELECT *, {field.values()} FROM _fmt_sapi WHERE kind = 'order')""")
    # REST: the successful refund transactions, summed when each is in the shop currency (a presentment-currency
    # refund is not the shop's money, and refunds listed without transactions say no amount: then the drop of the
    # current total says what was refunded).
    conn.execute("""
CREATE OR REPLACE TEMP TABLE _fmt_sapi_refunds AS
SELECT origin_file, origin_row, sum(try_cast(t->>'amount' AS DOUBLE)) AS amount,
       bool_and(coalesce(upper(t->>'currency'), upper(currency)) = upper(currency)) AS in_shop_currency
FROM (SELECT origin_file, origin_row, currency, unnest(json_extract(data, '$.refunds[*].transactions[*]')) AS t
      FROM _fmt_sapi_orders WHERE has_refund_transactions)
WHERE lower(t->>'kind') = 'refund' AND lower(coalesce(t->>'status', 'success')) = 'success'
GROUP BY ALL""")
    conn.execute("""
CREATE OR REPLACE TEMP TABLE _fmt_shop_orders AS
SELECT o.name, o.customer_key, row(o.file_index, o.origin_row) AS first_line, o.origin_file, o.origin_row, o.email,
       o.phone, o.created_at, o.total, o.currency, o.financial_status, o.discount_code, o.discount_amount,
       coalesce(o.refunded_total, CASE WHEN r.in_shop_currency THEN CAST(r.amount AS VARCHAR) END,
                CASE WHEN r.amount IS NOT NULL OR o.has_bare_refunds
                     THEN CAST(try_cast(o.total AS DOUBLE) - try_cast(o.current_total AS DOUBLE) AS VARCHAR) END)
           AS refunded_amount,
       o.refunded_at, o.cancelled_at, o.source
FROM _fmt_sapi_orders AS o LEFT JOIN _fmt_sapi_refunds AS r USING (origin_file, origin_row)""")
    unknown = conn.execute("""
SELECT count(*) FROM _fmt_sapi_orders AS o LEFT JOIN _fmt_sapi_refunds AS r USING (origin_file, origin_row)
WHERE (NOT r.in_shop_currency OR o.has_bare_refunds) AND (o.origin_file, o.origin_row) IN
      (SELECT (origin_file, origin_row) FROM _fmt_shop_orders WHERE refunded_amount IS NULL)""").fetchall()[0][0]
    for table in ("_fmt_sapi_orders", "_fmt_sapi_refunds"):
        conn.execute(f"DROP TABLE temp.{table}")
    if not unknown:
        return ()
    return (
        f"warning: {unknown} orders were refunded in another currency than the shop's, or list refunds without their "
        "transactions (tap-shopify's REST-era orders stream), and give no current_total_price, so their refunds are "
        "not subtracted (pull the orders with current_total_price)",
    )
