"""Shopify as an ELT connector lands it (Fivetran's Shopify tables, exported from the warehouse) -> contract files.

A dbt shop usually gets Shopify into its warehouse with Fivetran (modelled by the `fivetran/dbt_shopify_source`
package) and hands over its tables, each exported as one CSV (optionally gzip'd or zstd'd) or Parquet file, as parts
(`order_0_0_0.csv.gz`, `order-000000000000.csv`) or as a folder of parts (`order/part-00000.parquet`, Hive
partition folders included), found by detect.shopify_table_files as a Segment warehouse table is. Column names are
matched lower-cased (Snowflake upper-cases them), table names too (`ORDER.csv`, `"order".csv`: `order` is a
reserved word). Every Fivetran table has `_fivetran_synced`; tables whose deletes Fivetran captures (ORDER,
CUSTOMER, ...) keep a deleted row with `_fivetran_deleted` true (a soft delete).

Read (columns as `fivetran/dbt_shopify_source` lists them, macros/get_*_columns.sql; the GraphQL-era flattened
`<money>_set_shop_amount` columns and the REST `<money>_set` JSON are read where the plain column is missing):
- `order` (required): one contract order per row. order_id = `name` (`#1001`, the admin export's Name; else `id`),
  ordered_at = `created_at`, order_total = `total_price` (shop currency), currency = `currency` (the shop's
  currency; `presentment_currency`, what the buyer saw, is never read), discount_amount = `total_discounts`,
  channel = `source_name`, status = shopify.order_status_sql (`cancelled_at`, `financial_status`).
  customer_id = `customer_id` (Shopify's customer id, the admin export's Customer ID), else the customer row with
  the same email, else with the same phone, else the order's own `email`/`phone` (shopify.customer_key_sql: a guest).
- `customer` (optional): customer_id = shopify.customer_key_sql(`id`, `email`, `phone`), names, signed_up_at =
  `created_at`, marketing_consent = `email_marketing_consent_state` (`subscribed` or not), else `accepts_marketing`.
  The table has no address (that is CUSTOMER_ADDRESS, not read): postal_code and country stay empty.
- `refund` + `order_line_refund` + `order_adjustment`: one refund row per refund (`<name>-R`, then `-R2`, ... in
  `created_at` order), dated at the refund's `created_at`, of amount -(sum of its line refunds' `subtotal` +
  `total_tax` - sum of its adjustments' `amount` + `tax_amount`): dbt_shopify's `order_adjusted_total` rule
  (shopify__orders: total_price + adjustments - refund subtotal - refund tax), in shop currency. A refund's line
  refunds and adjustments fold into its row (they are not rows of their own, as line items fold into an order).
- `order_discount_code` (optional): discount_code = the order's first code (`index`).
- `order_line` and `transaction` are not read: the order's total and the refunds carry the money in shop currency
  (a transaction's amount is in the presentment currency); a note says so.

Quarantined by the translator (never dropped; raw_record is the source row): a past version of a row in a table
synced in Fivetran's history mode (`_fivetran_active` false: `superseded_version`, as the API pulls' older copies),
a copy of a row whose id has a copy synced later (incremental unloads of updated rows: `superseded_version`),
a row with `_fivetran_deleted` true (`deleted_in_shopify`), a `test` order (`test_order`) and the refunds of either, a refund of a cancelled or voided
order (`refund_of_cancelled_order`: the order never counts, so neither does its refund), a refund without money
(`no_money_refunded`: a restock), a refund whose order is not in the table (`unknown_order`), a line refund or
adjustment of a refund not in the table (`unknown_refund`), a refund amount that is not a number
(`invalid_refund_amount`), and orders naming no customer (shopify.set_aside_anonymous_orders: walk-in POS sales).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from landing.formats.common import (
    ORIGIN_FILE,
    ORIGIN_ROW,
    REJECTS_TABLE,
    part_columns,
    raw_record_sql,
    write_contract_file,
)
from landing.formats.detect import WarehouseFile, shopify_table_files
from landing.formats.shopify import customer_key_sql, order_status_sql, set_aside_anonymous_orders
from landing.rules import COMMA_DECIMAL_EVIDENCE, POINT_DECIMAL_EVIDENCE, parsed_amount_sql, parsed_timestamp_sql
from landing.sources import RECORD_INDEX, LandingError, load_source, parquet_read_errors, sql_string

ORDER, CUSTOMER, REFUND = "order", "customer", "refund"
LINE_REFUND, ADJUSTMENT = "order_line_refund", "order_adjustment"
DISCOUNT_CODE, ADDRESS = "order_discount_code", "customer_address"
NOT_READ = ("order_line", "transaction")
# Columns a table's every part must have (a money column: the plain one or one of its `_set` forms).
REQUIRED = {
    ORDER: ("id", "created_at", "total_price"),
    CUSTOMER: ("id",),
    REFUND: ("id", "order_id"),
    LINE_REFUND: ("refund_id", "subtotal"),
    ADJUSTMENT: ("refund_id", "amount"),
    DISCOUNT_CODE: ("order_id", "code"),
    ADDRESS: ("customer_id",),
}
TRUE_TEXT = ("true", "t", "1", "yes", "y")
FALSE_TEXT = ("false", "f", "0", "no", "n")
# The contract table a source table's rows count toward (None: folded into other rows, never counted on its own).
COUNTED_AS = {ORDER: "orders", CUSTOMER: "customers", REFUND: "orders", LINE_REFUND: "orders", ADJUSTMENT: "orders"}
# Fivetran's history mode keeps every version of a row: `_fivetran_active` false marks the past ones (and the last
# one of a record deleted in Shopify). Only the active row is the record; the others would conflict with it.
PAST_VERSION = (
    "'superseded_version: _fivetran_active is false (a past version of the row, kept by Fivetran''s history mode; "
    "the active row is the record)'"
)
# Without history mode a table holds one row per id, updated in place; a folder of daily incremental unloads
# (`order/part-00000.csv`, then the rows updated since in `part-00001.csv`) holds each updated row twice, the
# later `_fivetran_synced` being the record's current state. Judged as a duplicate key, both copies were lost as
# `duplicate_conflicting` (branch dailyred: an order voided the next day vanished from the raw tables).
RESYNCED = (
    "'superseded_version: a copy of this row with a later _fivetran_synced is in the export (the row was "
    "updated in Shopify and synced again; the latest sync is the record)'"
)
DECIMAL = "DECIMAL(38, 6)"  # money summed exactly (a refund's line refunds and adjustments)


def _text(columns: dict[str, str], name: str) -> str:
    """A column's value as trimmed text (NULL when the part lacks it or the value is empty)."""
    return f"nullif(trim(CAST({columns[name]} AS VARCHAR)), '')" if name in columns else "NULL::VARCHAR"


def _id(columns: dict[str, str], name: str) -> str:
    """A Shopify id (an integer) as text: `6000000001.0` -> `6000000001`. An export that went through pandas writes an
    integer column holding nulls (a guest order's customer_id) as floats, in Parquet and CSV alike; read as written,
    no order would join its customer or refund."""
    return f"regexp_replace({_text(columns, name)}, '^([0-9]+)\\.0+$', '\\1')"


def _shop_money(columns: dict[str, str], name: str, field: str = "amount") -> str:
    """A money column in shop currency: `name`, else Fivetran's flattened `<name>_set_shop_amount` (GraphQL schema),
    else the `shop_money` of the `<name>_set` JSON (REST schema). Never the presentment money. `field` =
    `currency_code` gives the shop currency the same way."""
    as_set = _text(columns, f"{name}_set")
    from_json = f"CASE WHEN json_valid({as_set}) THEN json_extract_string({as_set}, '$.shop_money.{field}') END"
    plain = _text(columns, name) if field == "amount" else "NULL"
    flat = "shop_amount" if field == "amount" else "shop_currency_code"
    return f"coalesce({plain}, {_text(columns, f'{name}_set_{flat}')}, nullif(trim({from_json}), ''))"


def _has(names: set[str], column: str) -> bool:
    return column in names or f"{column}_set" in names or f"{column}_set_shop_amount" in names


def _order_values(c: dict[str, str]) -> dict[str, str]:
    return {
        "id": _id(c, "id"),
        "name": _text(c, "name"),
        "email": _text(c, "email"),
        "phone": _text(c, "phone"),
        "customer_id": _id(c, "customer_id"),
        "created_at": _text(c, "created_at"),
        "cancelled_at": _text(c, "cancelled_at"),
        "financial_status": f"coalesce({_text(c, 'financial_status')}, {_text(c, 'display_financial_status')})",
        "total": _shop_money(c, "total_price"),
        "discount_amount": _shop_money(c, "total_discounts"),
        "currency": f"coalesce({_text(c, 'currency')}, {_text(c, 'currency_code')}, "
        f"{_shop_money(c, 'total_price', 'currency_code')})",
        "source_name": _text(c, "source_name"),
        "test": _text(c, "test"),
        "deleted": _text(c, "_fivetran_deleted"),
    }


def _customer_values(c: dict[str, str]) -> dict[str, str]:
    consent = _text(c, "email_marketing_consent_state")
    return {
        "id": _id(c, "id"),
        "email": _text(c, "email"),
        "phone": _text(c, "phone"),
        "first_name": _text(c, "first_name"),
        "last_name": _text(c, "last_name"),
        "created_at": _text(c, "created_at"),
        "marketing_consent": f"CASE WHEN {consent} IS NULL THEN {_text(c, 'accepts_marketing')} "
        f"ELSE CAST(lower({consent}) = 'subscribed' AS VARCHAR) END",
        "default_address_id": _id(c, "default_address_id"),
        "deleted": _text(c, "_fivetran_deleted"),
    }


VALUES = {
    ORDER: _order_values,
    CUSTOMER: _customer_values,
    REFUND: lambda c: {
        "id": _id(c, "id"),
        "order_id": _id(c, "order_id"),
        # created_at, as dbt_shopify dates a refund; processed_at only when a table lacks it
        "created_at": f"coalesce({_text(c, 'created_at')}, {_text(c, 'processed_at')})",
        "deleted": _text(c, "_fivetran_deleted"),
    },
    LINE_REFUND: lambda c: {
        "refund_id": _id(c, "refund_id"),
        "subtotal": _shop_money(c, "subtotal"),
        "total_tax": _shop_money(c, "total_tax"),
        "deleted": _text(c, "_fivetran_deleted"),
    },
    ADJUSTMENT: lambda c: {
        "refund_id": _id(c, "refund_id"),
        "amount": _shop_money(c, "amount"),
        "tax_amount": _shop_money(c, "tax_amount"),
        "deleted": _text(c, "_fivetran_deleted"),
    },
    DISCOUNT_CODE: lambda c: {
        "order_id": _id(c, "order_id"),
        "code": _text(c, "code"),
        "position": f"try_cast({_text(c, 'index')} AS BIGINT)",
        "deleted": _text(c, "_fivetran_deleted"),
    },
    ADDRESS: lambda c: {
        "id": _id(c, "id"),
        "customer_id": _id(c, "customer_id"),
        "zip": _text(c, "zip"),
        "country_code": f"coalesce({_text(c, 'country_code')}, {_text(c, 'country')})",
        "is_default": f"coalesce({_text(c, 'is_default')}, {_text(c, 'default')})",
        "deleted": _text(c, "_fivetran_deleted"),
    },
}


def _is_true(value: str) -> str:
    return f"coalesce(lower({value}) IN {TRUE_TEXT}, false)"


def _load_table(conn: duckdb.DuckDBPyConnection, table: str, files: list[WarehouseFile]) -> str:
    """Every part's rows into temp `_fmt_ft_<table>` (file_index, origin_file, origin_row, the table's VALUES, and
    raw_record: the row as JSON text for the quarantine); its name. A part without a required column stops."""
    work = f"_fmt_ft_{table}"
    names = list(VALUES[table]({}))
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {work} (file_index INTEGER, origin_file VARCHAR, origin_row BIGINT, "
        + "".join(f"{name} VARCHAR, " for name in names)
        + "active VARCHAR, synced VARCHAR, raw_record VARCHAR)"
    )
    for index, file in enumerate(files):
        source = load_source(conn, file.path, "_fmt_ft_src")
        columns = part_columns(source, file.partitions)
        if not columns:  # an empty part: no rows
            continue
        missing = [name for name in REQUIRED[table] if not _has(set(columns), name)]
        if missing:
            raise LandingError(
                f"{file.name}: a part of the Shopify table {table} without its {', '.join(missing)} column(s) "
                f"(found: {', '.join(source.header)}); export the table with all its columns"
            )
        record = ", ".join(f"{sql_string(name)}, CAST({columns[name.lower()]} AS VARCHAR)" for name in source.header)
        values = ", ".join(f"CAST({sql} AS VARCHAR)" for sql in VALUES[table](columns).values())
        with parquet_read_errors(file.name):  # a Parquet file is read where it lies
            conn.execute(f"""
INSERT INTO {work} SELECT {index}, {sql_string(file.name)}, {RECORD_INDEX} + 1, {values},
       {_text(columns, "_fivetran_active")}, {_text(columns, "_fivetran_synced")}, {raw_record_sql(f"CAST(json_object({record}) AS VARCHAR)")}
FROM {source.relation}""")
    conn.execute("DROP TABLE IF EXISTS temp._fmt_ft_src")
    past = f"coalesce(lower(active) IN {FALSE_TEXT}, false)"
    resynced = _resynced_sql(work) if "id" in names else "false"
    for reason, where in ((PAST_VERSION, past), (RESYNCED, resynced)):
        if table in COUNTED_AS:
            _reject(conn, work, COUNTED_AS[table], reason, where)
        else:
            conn.execute(f"DELETE FROM {work} WHERE {where}")
    return work


def _resynced_sql(work: str) -> str:
    """Rows of `work` with a copy of the same id synced later (RESYNCED); equal or unreadable sync times keep
    both copies, for the contract's duplicate rules."""
    return (
        f"id IS NOT NULL AND {parsed_timestamp_sql('synced')} < (SELECT max({parsed_timestamp_sql('later.synced')}) "
        f"FROM {work} AS later WHERE later.id = {work}.id)"
    )


def _reject(conn: duckdb.DuckDBPyConnection, work: str, contract_table: str, reason: str, where: str) -> None:
    """Move the rows of `work` matching `where` to the rejects list with `reason` (SQL), in source order."""
    conn.execute(f"""
INSERT INTO {REJECTS_TABLE}
SELECT origin_file, origin_row, {sql_string(contract_table)}, {reason}, raw_record FROM {work} WHERE {where}
ORDER BY file_index, origin_row""")
    conn.execute(f"DELETE FROM {work} WHERE {where}")


DELETED = "'deleted_in_shopify: _fivetran_deleted is true (deleted in Shopify; Fivetran keeps the row)'"


def _check_tables(landing_dir: Path, tables: dict[str, list[WarehouseFile]]) -> None:
    """Stop (one line) when a table the others need is missing."""
    if ORDER not in tables:
        raise LandingError(
            f"{landing_dir}: Shopify tables as Fivetran syncs them ({', '.join(sorted(tables))}) but no `order` "
            "table: export it too (order.csv, ORDER.csv, order.parquet or an order/ folder of parts)"
        )
    if REFUND in tables and LINE_REFUND not in tables:
        raise LandingError(
            f"{landing_dir}: a Shopify `refund` table without `order_line_refund`: a refund's amount is the sum of "
            "its order_line_refund rows (and order_adjustment rows); export that table too"
        )
    orphans = [table for table in (LINE_REFUND, ADJUSTMENT) if table in tables and REFUND not in tables]
    if orphans:
        raise LandingError(
            f"{landing_dir}: Shopify `{orphans[0]}` without the `refund` table, which says which order each refund "
            "belongs to and when it was made; export that table too"
        )


def translate(
    conn: duckdb.DuckDBPyConnection, landing_dir: Path, work_dir: Path
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Write orders.parquet (and customers.parquet when a `customer` table exists); fill the rejects list.

    Returns the files written and the notes of each (orders set aside, tables not read)."""
    tables = shopify_table_files(landing_dir)
    _check_tables(landing_dir, tables)
    written = []
    conn.execute("CREATE OR REPLACE TEMP TABLE _fmt_shop_emails (email_key VARCHAR, customer_id VARCHAR)")
    conn.execute("CREATE OR REPLACE TEMP TABLE _fmt_shop_phones (phone_key VARCHAR, customer_id VARCHAR)")
    if CUSTOMER in tables:
        customers = _load_table(conn, CUSTOMER, tables[CUSTOMER])
        _reject(conn, customers, "customers", DELETED, _is_true("deleted"))
        identity = customer_key_sql("id", "email", "phone")
        phone_key = "regexp_replace(phone, '[^0-9+]', '', 'g')"
        conn.execute(
            f"INSERT INTO _fmt_shop_emails SELECT lower(email), min({identity}) FROM {customers} "
            "WHERE email IS NOT NULL GROUP BY lower(email)"
        )
        conn.execute(
            f"INSERT INTO _fmt_shop_phones SELECT {phone_key}, min({identity}) FROM {customers} "
            f"WHERE {phone_key} <> '' GROUP BY ALL"
        )
        addresses = "(SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS zip, NULL::VARCHAR AS country_code)"
        if ADDRESS in tables:
            # A customer's default address: flagged is_default, else the customer's default_address_id, else the
            # first one listed (a deleted address is never one).
            listed = _load_table(conn, ADDRESS, tables[ADDRESS])
            rank = f"row(NOT {_is_true('a.is_default')}, a.id IS DISTINCT FROM c.default_address_id, a.file_index, a.origin_row)"
            addresses = (
                f"(SELECT a.customer_id, arg_min(a.zip, {rank}) AS zip, arg_min(a.country_code, {rank}) AS country_code "
                f"FROM {listed} AS a LEFT JOIN {customers} AS c ON c.id = a.customer_id "
                f"WHERE NOT {_is_true('a.deleted')} GROUP BY a.customer_id)"
            )
        write_contract_file(
            conn,
            f"""
SELECT {customer_key_sql("c.id", "c.email", "c.phone")} AS customer_id, c.email, c.phone, c.first_name, c.last_name,
       a.zip AS postal_code, a.country_code AS country, c.created_at AS signed_up_at,
       NULL::VARCHAR AS acquisition_channel, c.marketing_consent, c.origin_file AS {ORIGIN_FILE},
       c.origin_row AS {ORIGIN_ROW}
FROM {customers} AS c LEFT JOIN {addresses} AS a ON a.customer_id = c.id ORDER BY c.file_index, c.origin_row""",
            work_dir / "customers.parquet",
        )
        written.append("customers.parquet")
    orders = _load_table(conn, ORDER, tables[ORDER])
    conn.execute(f"ALTER TABLE {orders} ADD COLUMN reject VARCHAR")
    conn.execute(f"""
UPDATE {orders} SET reject = CASE
    WHEN {_is_true("deleted")} THEN {DELETED}
    WHEN {_is_true("test")} THEN 'test_order: test is true (placed with a test gateway: no money changed hands)' END""")
    refunds = _refunds(conn, tables, orders)
    _reject(conn, orders, "orders", "reject", "reject IS NOT NULL")
    codes = _load_table(conn, DISCOUNT_CODE, tables[DISCOUNT_CODE]) if DISCOUNT_CODE in tables else None
    notes = _write_orders(conn, orders, refunds, codes, work_dir)
    written.append("orders.parquet")
    unread = sorted(file.name for table in NOT_READ for file in tables.get(table, []))
    if unread:
        notes += (
            f"not read: {', '.join(unread)} (order totals and refunds come from the order, refund, order_line_refund "
            "and order_adjustment tables, in shop currency)",
        )
    for work in (
        *(f"_fmt_ft_{table}" for table in VALUES),
        "_fmt_ft_refund_amounts",
        "_fmt_shop_emails",
        "_fmt_shop_phones",
    ):
        conn.execute(f"DROP TABLE IF EXISTS temp.{work}")
    return tuple(written), {"orders.parquet": notes} if notes else {}


def _refunds(conn: duckdb.DuckDBPyConnection, tables: dict[str, list[WarehouseFile]], orders: str) -> str | None:
    """Load the refunds with their amounts (line refunds and adjustments folded in), reject those that cannot
    count (module docstring); the temp table of the refunds that become refund rows, None without a refund table."""
    if REFUND not in tables:
        return None
    refunds = _load_table(conn, REFUND, tables[REFUND])
    lines = _load_table(conn, LINE_REFUND, tables[LINE_REFUND])
    adjustments = _load_table(conn, ADJUSTMENT, tables[ADJUSTMENT]) if ADJUSTMENT in tables else None
    for work in (lines, adjustments):
        if work is None:
            continue
        _reject(conn, work, "orders", DELETED, _is_true("deleted"))
        _reject(
            conn,
            work,
            "orders",
            "'unknown_refund: refund_id ' || coalesce(refund_id, '(empty)') || ' is not in the refund table'",
            f"refund_id IS NULL OR refund_id NOT IN (SELECT id FROM {refunds} WHERE id IS NOT NULL)",
        )
    # Money refunded = line refunds (subtotal + tax) - adjustments (amount + tax), dbt_shopify's signs: a shipping
    # refund's adjustment is negative (more refunded), a refund for less than calculated positive (less).
    money = [f"SELECT refund_id, {amount} AS amount, 1 AS sign FROM {lines}" for amount in ("subtotal", "total_tax")]
    if adjustments is not None:
        money += [f"SELECT refund_id, {amount}, -1 FROM {adjustments}" for amount in ("amount", "tax_amount")]
    # A table re-saved by a spreadsheet may write `112,9`: read with the decimal mark its amounts prove (the
    # contract's rule), and the refund rows written with it, so orders.parquet keeps one mark.
    proofs = conn.execute(
        f"SELECT count(*) FILTER (WHERE regexp_full_match(amount, '{COMMA_DECIMAL_EVIDENCE}')), "
        f"count(*) FILTER (WHERE regexp_full_match(amount, '{POINT_DECIMAL_EVIDENCE}')) "
        f"FROM ({' UNION ALL '.join(money)})"
    ).fetchall()[0]
    comma = proofs[0] > proofs[1]
    number = (
        f"CAST({parsed_amount_sql('amount', decimal_comma=True)} AS {DECIMAL})"
        if comma
        else f"try_cast(amount AS {DECIMAL})"
    )
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_ft_refund_amounts AS
SELECT refund_id, sum(sign * {number}) AS amount, bool_or(amount IS NOT NULL AND {number} IS NULL) AS invalid
FROM ({" UNION ALL ".join(money)}) GROUP BY refund_id""")
    first_row = (
        f"SELECT * FROM {orders} QUALIFY row_number() OVER (PARTITION BY id ORDER BY file_index, origin_row) = 1"
    )
    code = "split_part(o.reject, ':', 1)"
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE {refunds} AS
SELECT r.*, a.amount, {"replace(CAST(-a.amount AS VARCHAR), '.', ',')" if comma else "CAST(-a.amount AS VARCHAR)"}
       AS refund_text, CASE
    WHEN {_is_true("r.deleted")} THEN {DELETED}
    WHEN o.id IS NULL THEN 'unknown_order: order_id ' || coalesce(r.order_id, '(empty)') || ' is not in the order table'
    WHEN o.reject IS NOT NULL THEN {code} || ': a refund of order ' || coalesce(o.name, o.id) || ', quarantined as '
                                   || {code}
    WHEN {order_status_sql("o.cancelled_at", "o.financial_status")} <> 'completed'
        THEN 'refund_of_cancelled_order: order ' || coalesce(o.name, o.id) || ' is cancelled or voided: it never '
             || 'counts as revenue, so neither does its refund'
    WHEN a.invalid THEN 'invalid_refund_amount: a subtotal, tax or adjustment amount of the refund is not a number'
    WHEN coalesce(a.amount, 0) = 0 THEN 'no_money_refunded: its line refunds and adjustments refund no money (a '
                                        || 'restock or an exchange)' END AS reject
FROM {refunds} AS r LEFT JOIN ({first_row}) AS o ON o.id = r.order_id
     LEFT JOIN _fmt_ft_refund_amounts AS a ON a.refund_id = r.id""")
    _reject(conn, refunds, "orders", "reject", "reject IS NOT NULL")
    return refunds


def _write_orders(
    conn: duckdb.DuckDBPyConnection, orders: str, refunds: str | None, discount_codes: str | None, work_dir: Path
) -> tuple[str, ...]:
    """Orders and refund rows into `_fmt_shop_out` (the table shopify.set_aside_anonymous_orders reads), the
    anonymous ones set aside, then orders.parquet; the orders' notes."""
    phone_key = "regexp_replace({}, '[^0-9+]', '', 'g')"
    customer = (
        f"coalesce(o.customer_id, e.customer_id, p.customer_id, {customer_key_sql('NULL', 'o.email', 'o.phone')})"
    )
    codes = "(SELECT NULL::VARCHAR AS order_id, NULL::VARCHAR AS code WHERE false)"
    if discount_codes is not None:
        codes = (
            "(SELECT order_id, arg_min(code, row(position, file_index, origin_row)) AS code "
            f"FROM {discount_codes} WHERE NOT {_is_true('deleted')} GROUP BY order_id)"
        )
    offset = "regexp_replace({}, ' ?([+-][0-9]{{2}})([0-9]{{2}})$', '\\1:\\2')"
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_ft_buyers AS
SELECT o.*, {customer} AS buyer, row(o.file_index, o.origin_row) AS position, d.code AS discount_code
FROM {orders} AS o
LEFT JOIN _fmt_shop_emails AS e ON e.email_key = lower(o.email)
LEFT JOIN _fmt_shop_phones AS p ON p.phone_key = {phone_key.format("o.phone")}
LEFT JOIN {codes} AS d ON d.order_id = o.id""")
    refund_rows = ""
    if refunds is not None:
        nth = "row_number() OVER (PARTITION BY r.order_id ORDER BY r.created_at, r.file_index, r.origin_row)"
        refund_rows = f"""
  UNION ALL
  SELECT coalesce(o.name, o.id) || '-R' || CASE WHEN {nth} > 1 THEN CAST({nth} AS VARCHAR) ELSE '' END,
         o.buyer, {offset.format("r.created_at")}, r.refund_text, o.currency, NULL, NULL, o.source_name,
         'refunded', r.origin_file, r.origin_row, 1, o.position, row(r.created_at, r.file_index, r.origin_row)
  FROM {refunds} AS r
  JOIN (SELECT * FROM _fmt_ft_buyers QUALIFY row_number() OVER (PARTITION BY id ORDER BY position) = 1) AS o
    ON o.id = r.order_id"""
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _fmt_shop_out AS
SELECT * FROM (
  SELECT coalesce(name, id) AS order_id, buyer AS customer_id, {offset.format("created_at")} AS ordered_at,
         total AS order_total, currency, discount_amount, discount_code, source_name AS channel,
         {order_status_sql("cancelled_at", "financial_status")} AS status, origin_file AS {ORIGIN_FILE},
         origin_row AS {ORIGIN_ROW}, 0 AS part, position AS first_line, NULL AS refund_position
  FROM _fmt_ft_buyers{refund_rows}
) ORDER BY first_line, part, refund_position""")
    orders_file = ", ".join(sorted({row[0] for row in conn.execute(f"SELECT origin_file FROM {orders}").fetchall()}))
    notes = set_aside_anonymous_orders(conn, orders_file or ORDER, CUSTOMER)
    write_contract_file(
        conn,
        "SELECT * EXCLUDE (part, first_line, refund_position) FROM _fmt_shop_out "
        "ORDER BY first_line, part, refund_position",
        work_dir / "orders.parquet",
    )
    for table in ("_fmt_shop_out", "_fmt_ft_buyers"):
        conn.execute(f"DROP TABLE temp.{table}")
    return notes
