"""Shopify admin exports (orders_export.csv, customers_export.csv) -> segmint contract files.

orders_export.csv has one row per line item; the order-level columns (`Financial Status`, `Paid at`,
`Currency`, `Subtotal`, `Total`, `Discount Code`, `Discount Amount`, `Refunded Amount`, `Cancelled at`, ...)
are filled on the order's first row only, while `Name` (the order name, e.g. `#1001`), `Email`, `Created at`
and the `Lineitem ...` columns repeat on every row. customers_export.csv has one row per customer
(`Customer ID` in current exports, `First Name`, `Last Name`, `Email`, `Accepts Email Marketing` (older:
`Accepts Marketing`), `Default Address Zip`/`Zip`, `Default Address Country Code`/`Country Code`, `Phone`).

Mapping:
- customer identity (`customer_key_sql`, the one owner of the rule for both files): `Customer ID`, else the
  lower-cased email, else the phone (digits and `+` only). Older customer exports have no `Customer ID` column
  and guest buyers have no customer record, so the fallbacks are what joins them.
- line rows -> one order per `Name` (its first non-empty value of each order-level column); the order's
  lineage is its first line row. customer_id = the identity of the customers_export.csv row with the same
  email (case-insensitive), else with the same phone, else the order's own identity (its email, else its
  `Phone`: the orders export has no customer id column), so a customer record and their orders always join.
  ordered_at = `Created at` (`2025-12-01 10:15:30 +0100` is read with its offset). channel = `Source`.
  status = `cancelled` when `Cancelled at` is set, `voided` when the financial status is voided or expired
  (an authorization never captured), else
  `completed`: cancelled and voided orders never count as revenue.
- `Refunded Amount` > 0 on an order that is not cancelled or voided -> a refund row `<Name>-R` with the negative amount,
  status `refunded`, dated at the order's `Created at` (the export has no refund date), sharing the order's
  lineage. So revenue = sum(Total) - sum(Refunded Amount) over non-cancelled orders, as in Shopify.
- a line row without a Name is quarantined as `missing_name` (it cannot be given to any order).
- an order with no email, phone or matching customer (a walk-in POS sale) is set aside as `anonymous_order`, with
  a warning, so it does not count toward the "mostly unusable" stop (set_aside_anonymous_orders).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from landing.formats.common import ORIGIN_FILE, ORIGIN_ROW, REJECTS_TABLE, write_contract_file
from landing.formats.detect import shopify_export_parts
from landing.sources import LandingError, load_csv, sql_string

ORDERS_EXPORT, CUSTOMERS_EXPORT = "orders_export.csv", "customers_export.csv"
REQUIRED_ORDER_COLUMNS = ("Name", "Created at", "Total")
# An order no customer can be given (a walk-in POS sale): set aside by the translator (set_aside_anonymous_orders).
ANONYMOUS_ORDER = "anonymous_order"
# Financial statuses of an order whose payment was never captured: a voided authorization, or one that expired
# (Shopify's `expired`): no money changed hands, so the order never counts as revenue (status `voided`).
NEVER_CAPTURED = ("voided", "void", "expired")
ORDER_LEVEL = {
    "email": ("Email",),
    "created_at": ("Created at",),
    "total": ("Total",),
    "currency": ("Currency",),
    "financial_status": ("Financial Status",),
    "discount_code": ("Discount Code",),
    "discount_amount": ("Discount Amount",),
    "refunded_amount": ("Refunded Amount",),
    "cancelled_at": ("Cancelled at",),
    "source": ("Source",),
    "phone": ("Phone",),
}
CUSTOMER_COLUMNS = {
    "customer_id": ("Customer ID",),
    "email": ("Email",),
    "phone": ("Phone", "Default Address Phone"),
    "first_name": ("First Name",),
    "last_name": ("Last Name",),
    "postal_code": ("Default Address Zip", "Zip"),
    "country": ("Default Address Country Code", "Country Code", "Country"),
    "marketing_consent": ("Accepts Email Marketing", "Accepts Marketing"),
}


def _columns(header: tuple[str, ...], wanted: dict[str, tuple[str, ...]]) -> str:
    """SELECT list: each wanted column as the cleaned text of the first header name present (else NULL)."""
    positions = {name.lower(): i for i, name in reversed(list(enumerate(header)))}
    selected = []
    for alias, names in wanted.items():
        found = [f"nullif(trim(c{positions[n.lower()]}), '')" for n in names if n.lower() in positions]
        value = f"coalesce({', '.join(found)})" if len(found) > 1 else (found or ["NULL"])[0]
        selected.append(f"{value} AS {alias}")
    return ", ".join(selected)


def _offset_timestamp(value: str) -> str:
    # Shopify writes `2025-12-01 10:15:30 +0100`; DuckDB reads the offset once it is written `+01:00`.
    return f"regexp_replace({value}, ' ?([+-][0-9]{{2}})([0-9]{{2}})$', '\\1:\\2')"


def _unquoted(value: str) -> str:
    # Shopify writes zip codes (and some phone numbers) as `'02115` / `'+4915112345678` so that spreadsheets keep
    # the leading zero and the plus: the apostrophe is not part of the value (it would break the contact hashes).
    return f"regexp_replace({value}, '^''', '')"


def _phone_key(value: str) -> str:
    # `+1 (278) 555-0479` and `+12785550479` are one phone number.
    return f"regexp_replace({value}, '[^0-9+]', '', 'g')"


def customer_key_sql(customer_id: str, email: str, phone: str) -> str:
    """A Shopify customer's identity: `Customer ID`, else the lower-cased email, else the phone's digits and `+`.

    The one rule for both exports: a customers_export row takes it from its own columns, an order from the
    customer row it matches (or from its own email and phone, with customer_id NULL: guests), so a customer
    without a Customer ID (older exports) and their orders get the same customer_id.
    """
    return f"coalesce({customer_id}, lower({email}), nullif({_phone_key(phone)}, ''))"


def order_status_sql(cancelled_at: str, financial_status: str) -> str:
    """An order's contract status: `cancelled` when it was cancelled, `voided` when its payment was never captured
    (NEVER_CAPTURED), else `completed`. The one rule for every Shopify reader; only a completed order's refunds
    count (a cancelled or voided order never counts as revenue, so neither do its refunds)."""
    return (
        f"CASE WHEN {cancelled_at} IS NOT NULL THEN 'cancelled' "
        f"WHEN lower({financial_status}) IN {NEVER_CAPTURED} THEN 'voided' ELSE 'completed' END"
    )


def _load_parts(
    conn: duckdb.DuckDBPyConnection, paths: list[Path], table: str, select: Callable[[tuple[str, ...], str], str]
) -> None:
    """Every part's rows into temp `table` (file_index, origin_file, origin_row, select(header, name) columns)."""
    for index, path in enumerate(paths):
        source = load_csv(conn, path, "_fmt_shop_src")
        rows = (
            f"SELECT {index} AS file_index, {sql_string(path.name)} AS origin_file, record_index + 1 AS origin_row, "
            f"{select(source.header, path.name)} FROM {source.relation}"
        )
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {rows}" if index == 0 else f"INSERT INTO {table} {rows}")
    conn.execute("DROP TABLE IF EXISTS temp._fmt_shop_src")


def _order_lines(header: tuple[str, ...], file_name: str) -> str:
    """SELECT list of an orders export part: Name, the order-level columns and the line as JSON (quarantine)."""
    lowered = {name.lower() for name in header}
    for required in REQUIRED_ORDER_COLUMNS:
        if required.lower() not in lowered:
            raise LandingError(f"{file_name}: required column '{required}' is missing (found: {', '.join(header)})")
    record = ", ".join(f"{sql_string(h)}, c{i}" for i, h in enumerate(header))
    return (
        f"{_columns(header, {'name': ('Name',)} | ORDER_LEVEL)}, CAST(json_object({record}) AS VARCHAR) AS raw_record"
    )


def translate(
    conn: duckdb.DuckDBPyConnection, landing_dir: Path, work_dir: Path
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Write orders.parquet (and customers.parquet when a customers export exists); fill the ledger.

    Returns the files written and the notes of each (the anonymous orders set aside)."""
    written = []
    create_buyer_lookups(conn)
    customer_parts = shopify_export_parts(landing_dir, CUSTOMERS_EXPORT)
    if customer_parts:
        _load_parts(
            conn,
            customer_parts,
            "_fmt_shop_customers",
            lambda header, _: _columns(header, CUSTOMER_COLUMNS) + ", NULL::VARCHAR AS signed_up_at",
        )
        write_customers(conn, work_dir)
        written.append("customers.parquet")
    order_parts = shopify_export_parts(landing_dir, ORDERS_EXPORT)
    if not order_parts:
        raise LandingError(f"{ORDERS_EXPORT}: file is missing from {landing_dir} (Shopify: Orders > Export)")
    _load_parts(conn, order_parts, "_fmt_shop_lines", _order_lines)
    # An order's lineage is its first line row (parts in order, then rows); its values the first non-empty ones.
    position = "row(file_index, origin_row)"
    first = ", ".join(
        f"arg_min({column}, {position}) FILTER (WHERE {column} IS NOT NULL) AS {column}" for column in ORDER_LEVEL
    )
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_shop_orders AS
SELECT name, NULL::VARCHAR AS customer_key, min({position}) AS first_line, arg_min(origin_file, {position}) AS origin_file,
       arg_min(origin_row, {position}) AS origin_row, {first}, NULL::VARCHAR AS refunded_at
FROM _fmt_shop_lines WHERE name IS NOT NULL GROUP BY name""")
    conn.execute(f"""
INSERT INTO {REJECTS_TABLE}
SELECT origin_file, origin_row, 'orders',
       'missing_name: a line row without the order Name belongs to no order', raw_record
FROM _fmt_shop_lines WHERE name IS NULL""")
    conn.execute("DROP TABLE temp._fmt_shop_lines")
    notes = write_orders(conn, work_dir) + _unread_lookalikes(landing_dir, order_parts + customer_parts)
    written.append("orders.parquet")
    return tuple(written), {"orders.parquet": notes} if notes else {}


def create_buyer_lookups(conn: duckdb.DuckDBPyConnection) -> None:
    """The empty email -> customer id and phone -> customer id lookups (write_customers fills them)."""
    conn.execute("CREATE OR REPLACE TEMP TABLE _fmt_shop_emails (email_key VARCHAR, customer_id VARCHAR)")
    conn.execute("CREATE OR REPLACE TEMP TABLE _fmt_shop_phones (phone_key VARCHAR, customer_id VARCHAR)")


def write_customers(conn: duckdb.DuckDBPyConnection, work_dir: Path) -> None:
    """customers.parquet from temp `_fmt_shop_customers` (file_index, origin_file, origin_row and the text columns
    of CUSTOMER_COLUMNS plus signed_up_at), and the email and phone lookups that give orders their customer
    (create_buyer_lookups). The one owner of the customer rules for every Shopify reader; drops the table."""
    identity = customer_key_sql("customer_id", "email", "phone")
    conn.execute(
        f"INSERT INTO _fmt_shop_emails SELECT lower(email), min({identity}) "
        "FROM _fmt_shop_customers WHERE email IS NOT NULL GROUP BY lower(email)"
    )
    conn.execute(
        f"INSERT INTO _fmt_shop_phones SELECT {_phone_key('phone')}, min({identity}) FROM _fmt_shop_customers "
        f"WHERE {_phone_key('phone')} <> '' GROUP BY ALL"
    )
    write_contract_file(
        conn,
        f"""
SELECT {identity} AS customer_id, email, {_unquoted("phone")} AS phone, first_name, last_name,
       {_unquoted("postal_code")} AS postal_code, country,
       signed_up_at, NULL::VARCHAR AS acquisition_channel, marketing_consent,
       origin_file AS {ORIGIN_FILE}, origin_row AS {ORIGIN_ROW}
FROM _fmt_shop_customers ORDER BY file_index, origin_row""",
        work_dir / "customers.parquet",
    )
    conn.execute("DROP TABLE temp._fmt_shop_customers")


def write_orders(
    conn: duckdb.DuckDBPyConnection,
    work_dir: Path,
    orders_file: str = ORDERS_EXPORT,
    customers_file: str = CUSTOMERS_EXPORT,
) -> tuple[str, ...]:
    """orders.parquet from temp `_fmt_shop_orders`, one row per order: name, customer_key (the shop's customer id
    when the source gives it, else NULL), email, phone, the ORDER_LEVEL columns as text, refunded_at (when the
    refund was made; NULL: the order's date), origin_file, origin_row and first_line (the sort key). The one owner
    of the order status, refund row and walk-in rules for every Shopify reader (module docstring); `orders_file` and
    `customers_file` name the files in the stop line. Returns the orders' notes; drops the tables it read."""
    status = order_status_sql("cancelled_at", "financial_status")
    refund = "refunded_amount IS NOT NULL AND coalesce(try_cast(refunded_amount AS DOUBLE), 1) <> 0"
    buyer = f"coalesce(o.customer_key, e.customer_id, p.customer_id, {customer_key_sql('NULL', 'o.email', 'o.phone')})"
    buyers = (
        "LEFT JOIN _fmt_shop_emails AS e ON e.email_key = lower(o.email) "
        f"LEFT JOIN _fmt_shop_phones AS p ON p.phone_key = {_phone_key('o.phone')}"
    )
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_shop_out AS
SELECT * FROM (
  SELECT o.name AS order_id, {buyer} AS customer_id, {_offset_timestamp("o.created_at")} AS ordered_at,
         o.total AS order_total, o.currency, o.discount_amount, o.discount_code,
         o.source AS channel, {status} AS status, o.origin_file AS {ORIGIN_FILE},
         o.origin_row AS {ORIGIN_ROW}, 0 AS part, o.first_line
  FROM _fmt_shop_orders AS o {buyers}
  UNION ALL
  SELECT o.name || '-R', {buyer}, {_offset_timestamp("coalesce(o.refunded_at, o.created_at)")},
         CASE WHEN try_cast(o.refunded_amount AS DOUBLE) IS NULL THEN o.refunded_amount
              ELSE CAST(-abs(try_cast(o.refunded_amount AS DOUBLE)) AS VARCHAR) END,
         o.currency, NULL, NULL, o.source, 'refunded', o.origin_file, o.origin_row, 1, o.first_line
  FROM _fmt_shop_orders AS o {buyers}
  WHERE {refund} AND {order_status_sql("o.cancelled_at", "o.financial_status")} = 'completed'
) ORDER BY first_line, part""")
    notes = set_aside_anonymous_orders(conn, orders_file, customers_file)
    write_contract_file(
        conn,
        "SELECT * EXCLUDE (part, first_line) FROM _fmt_shop_out ORDER BY first_line, part",
        work_dir / "orders.parquet",
    )
    for table in ("_fmt_shop_out", "_fmt_shop_orders", "_fmt_shop_emails", "_fmt_shop_phones"):
        conn.execute(f"DROP TABLE temp.{table}")
    return notes


def _unread_lookalikes(landing_dir: Path, parts: list[Path]) -> tuple[str, ...]:
    """A note naming the CSV files that look like a Shopify export but are no part of one (`orders_export (1).csv`,
    a browser's renamed re-download): not read, since they may repeat the export or be another day's, and said so
    rather than ignored silently."""
    read = {path.name for path in parts}
    unread = sorted(
        path.name
        for path in landing_dir.iterdir()
        if path.is_file()
        and path.name not in read
        and path.name.lower().endswith(".csv")
        and path.name.lower().startswith(tuple(name.removesuffix(".csv") for name in (ORDERS_EXPORT, CUSTOMERS_EXPORT)))
    )
    if not unread:
        return ()
    return (
        f"warning: not read: {', '.join(unread)} (not {ORDERS_EXPORT} / {CUSTOMERS_EXPORT} or a numbered part "
        "_1, _2, ...; rename it if it is a part of this export, remove it if it is a copy)",
    )


def set_aside_anonymous_orders(
    conn: duckdb.DuckDBPyConnection, orders_file: str = ORDERS_EXPORT, customers_file: str = CUSTOMERS_EXPORT
) -> tuple[str, ...]:
    """Quarantine the orders of `_fmt_shop_out` that name no customer as `anonymous_order`; the orders' notes.

    A Shopify order with no email, no phone and no matching customer record is a walk-in POS sale (or a draft order
    without a customer): read correctly, but nobody's, as a GA4 consent-denied purchase. Passed on, the contract
    would quarantine it as missing_customer_id, which counts toward the "mostly unusable" stop, so a shop whose
    till sells mostly to anonymous walk-ins could not run at all. Set aside here (with its refund row), it does not
    count toward that stop; a warning says how many and what revenue CLV misses. Every order anonymous (an export
    without Email and Phone columns, say) leaves nothing to model: the run stops and says why.
    """
    anonymous, orders = conn.execute(
        "SELECT count(*) FILTER (WHERE customer_id IS NULL), count(*) FROM _fmt_shop_out WHERE part = 0"
    ).fetchall()[0]
    if anonymous == 0:
        return ()
    if anonymous == orders:
        raise LandingError(
            f"{orders_file}: none of the {orders} orders names a customer (no Email, Phone or matching "
            f"{customers_file} row), so there is no customer to model; export the orders with their Email column"
        )
    conn.execute(f"""
INSERT INTO {REJECTS_TABLE}
SELECT {ORIGIN_FILE}, {ORIGIN_ROW}, 'orders',
       '{ANONYMOUS_ORDER}: no Email, Phone or matching customer (a walk-in POS sale or a draft order without a '
       || 'customer): the order belongs to nobody',
       json_object('order_id', order_id, 'order_total', order_total, 'currency', currency, 'status', status,
                   'channel', channel, 'ordered_at', ordered_at, '{ORIGIN_FILE}', {ORIGIN_FILE},
                   '{ORIGIN_ROW}', {ORIGIN_ROW})::VARCHAR
FROM _fmt_shop_out WHERE customer_id IS NULL ORDER BY first_line, part""")
    revenue = conn.execute("""
SELECT upper(currency), sum(try_cast(order_total AS DOUBLE)) AS amount FROM _fmt_shop_out
WHERE customer_id IS NULL AND status IN ('completed', 'refunded') GROUP BY 1 HAVING amount IS NOT NULL
ORDER BY amount DESC, 1 NULLS FIRST""").fetchall()
    conn.execute("DELETE FROM _fmt_shop_out WHERE customer_id IS NULL")
    money = ", ".join(f"{amount:,.2f}" + (f" {currency}" if currency else "") for currency, amount in revenue)
    return (
        f"warning: {anonymous} of {orders} orders ({100 * anonymous / orders:.1f} %) name no customer (no Email, "
        f"Phone or matching customer: walk-in POS sales, draft orders) and are quarantined as {ANONYMOUS_ORDER}"
        + (f" (net revenue {money})" if money else "")
        + ": that revenue is missing from CLV, RFM and the segments",
    )
