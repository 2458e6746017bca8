"""What every source-format translator shares: reading JSON lines, writing contract files, the reject list.

A translator turns a shop's export into segmint's contract files (`orders.parquet`, `customers.parquet`,
`events.parquet`, text columns plus `origin_file`/`origin_row`) in a work folder; the normal contract ingest
then reads that folder and applies every record rule. A source record the translator cannot turn into a
contract row at all goes to `_fmt_rejects` with its reason and text, under the table it would have fed.
`reconcile_sql` then counts, per source file and contract table, the rows it became: accepted (in the staged
raw table), quarantined by the contract rules, or rejected by the translator.

A purchase event without an order id (GA4 `transaction_id`, Segment `order_id`: both optional in their specs) is
still an order: it keeps its revenue under a surrogate id made of the event's own identity (`order_id_sql`), one
order per event. The translator lists those rows in `_fmt_generated_ids`, and `reconcile_sql` counts the accepted
ones as `ids_generated` (raw.ingest_log, the raw/orders metadata and a WARN check): without the source's id, a
purchase the source re-sent (a reloaded thank-you page) cannot be told from a second purchase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from landing.contract import SUPPRESSED_TABLE
from landing.sources import FILE_COLUMNS_ONLY, LandingError, LoadedSource, source_column, sql_string

LINES_TABLE = "_fmt_lines"  # a view over the work tables below; drop_lines() frees them
LINES_WORK_TABLES = ("_fmt_file", "_fmt_rows", "_fmt_offsets")
REJECTS_TABLE = "_fmt_rejects"
# Translated rows whose key the translator generated (an order event without its order id), per contract table.
GENERATED_IDS_TABLE = "_fmt_generated_ids"
CONTRACT_REJECTS_TABLE = "_fmt_contract_rejects"
# The key of each contract table (the one a translator may have to generate, record_generated_ids_sql).
CONTRACT_KEYS = {"orders": "order_id", "customers": "customer_id", "events": "event_id"}
# Columns a translator adds to every contract file so that every raw row can be traced to its source record.
ORIGIN_FILE, ORIGIN_ROW = "origin_file", "origin_row"
# Longest source record kept in a quarantine row's raw_record (a GA4 event is a few kB; a broken line can be MBs).
MAX_RAW_RECORD_CHARS = 20_000


@dataclass(frozen=True)
class Translation:
    """A landing folder in a source format, translated into contract files under `contract_dir`."""

    source_format: str
    contract_dir: Path
    # Contract files written by the translator (their quarantine rows are re-pointed to the source record).
    work_files: tuple[str, ...]
    # Contract files taken as they are from the landing folder (e.g. a segmint orders.csv next to GA4 events).
    passthrough_files: tuple[str, ...] = ()
    # True when contract_dir is a temporary folder to remove after the ingest.
    temporary: bool = False
    # Notes of a translated file for its FileReport (e.g. GA4's consent-denied events), keyed by work file name.
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def create_rejects_table(conn: duckdb.DuckDBPyConnection) -> None:
    """The empty list of records the translator rejected (see the module docstring)."""
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {REJECTS_TABLE} (origin_file VARCHAR, origin_row BIGINT, table_name VARCHAR, "
        "reason VARCHAR, raw_record VARCHAR)"
    )
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {GENERATED_IDS_TABLE} (table_name VARCHAR, origin_file VARCHAR, origin_row BIGINT, "
        "generated_id VARCHAR)"
    )


def order_id_sql(order_id: str, source_format: str, event_identity: tuple[str, ...]) -> str:
    """The order id of an order event: the source's own, else `<format>:<event identity parts, ':'-separated>`.

    The one rule for "a purchase (or refund) event with no order id" (module docstring): the surrogate is made of
    the fields that identify the event itself, so distinct events are distinct orders and never merge, and an exact
    copy of one event (the same identity) is the same order, kept once (`duplicate_identical`).
    """
    parts = ", ".join(f"coalesce(CAST({part} AS VARCHAR), '')" for part in event_identity)
    return f"coalesce({order_id}, {sql_string(source_format + ':')} || concat_ws(':', {parts}))"


def _its_purchase_sql(value: str, is_purchase: str, order_id: str) -> str:
    """On a refund row: the one value of `value` over its order's purchase rows (same order id) in the export;
    NULL when the order id is missing, no purchase is there, or its purchases disagree (never guessed)."""
    purchase = f"CASE WHEN {is_purchase} THEN {value} END"
    window = f"OVER (PARTITION BY {order_id})"
    return (
        f"CASE WHEN NOT ({is_purchase}) AND {order_id} IS NOT NULL "
        f"AND min({purchase}) {window} = max({purchase}) {window} THEN min({purchase}) {window} END"
    )


def refund_currency_sql(currency: str, is_purchase: str, order_id: str) -> str:
    """The currency of an order or refund row: its own, else (a refund event that names none) the one currency of
    its order's purchase. The one rule for both event exports: in a multi-currency shop a refund without a currency
    is ambiguous_currency (landing/README.md "Money"), so it would be lost while its purchase counts in full; the
    purchase it refunds says which currency it is in. No copy when the order id is missing or its purchases name
    several currencies (those stay ambiguous)."""
    return f"coalesce({currency}, {_its_purchase_sql(currency, is_purchase, order_id)})"


def refund_buyer_sql(buyer: str, is_purchase: str, order_id: str, own: str | None = None) -> str:
    """The customer of an order or refund row: a refund belongs to the buyer of the purchase it refunds (the one
    buyer of its order's purchases in the export), else to whoever sent it. The one rule for both event exports:
    refunds are often sent server-side (GA4 Measurement Protocol, a Segment server library) under another client
    id, or none at all (a GA4 consent-denied session), and would otherwise be a phantom customer with only
    negative revenue, or lost, while the purchase counts in full for its buyer. `own` (default `buyer`) is the
    row's customer when its purchase is not in the export."""
    return f"coalesce({_its_purchase_sql(buyer, is_purchase, order_id)}, {own or buyer})"


ALREADY_REFUNDED = "already_refunded"


def refund_totals_sql(
    relation: str,
    *,
    total: str,
    is_purchase: str,
    order_id: str,
    currency: str,
    item_count: str,
    items_total: str,
    nth: str,
    first_copy: str,
) -> str:
    """SELECT * of `relation` (a translator's purchase and refund rows) plus, on refund rows, `refund_total` (the
    refunded amount, positive, as text; the given text when it is not a number), `refund_basis` ('given',
    'purchase', 'items'), `refund_capped` and `refund_reject` (an `already_refunded` reason, else NULL).

    The one rule for both event exports (landing/README.md "Refunds that give no total"). A refund that gives no
    total and names a purchase in the export (one total and currency over its order's purchase rows) refunds:
    - with no items (`item_count` 0): the purchase's whole total, a full refund (Google's and Segment's
      convention: a full refund names only the transaction);
    - with items: `items_total`, the sum of price x quantity of the refunded items (NULL when an item has no price:
      never guessed), which leaves out tax and shipping, as the senders' convention does.
    Without a purchase in the export, or when the refund names another currency than its purchase, nothing is
    derived (it stays missing_order_total): amounts are never moved across currencies.
    Refunds of one purchase, in its currency, never take more than its total: taken in order (`nth`, the n-th
    distinct refund event; `first_copy` tells an event's first copy, so an exact copy counts once), each is capped
    at what earlier ones left; one that finds nothing left is `already_refunded` (a full refund sent twice, say).
    """
    paid = _its_purchase_sql(f"try_cast({total} AS DOUBLE)", is_purchase, order_id)
    paid_in = _its_purchase_sql(f"upper(trim({currency}))", is_purchase, order_id)
    refund = f"NOT ({is_purchase})"
    earlier = (
        f"PARTITION BY {is_purchase}, {order_id}, _same ORDER BY {nth} "
        "RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
    )
    return f"""
WITH known AS (
    SELECT *, {paid} AS _paid, {paid_in} AS _paid_in FROM {relation}),
same AS (  -- the refund's money is its purchase's: no currency of its own, or the same one
    SELECT *, coalesce({refund} AND _paid IS NOT NULL
                       AND ({currency} IS NULL OR upper(trim({currency})) = _paid_in), false) AS _same
    FROM known),
asked AS (
    SELECT *,
           CASE WHEN {refund} THEN CASE WHEN {total} IS NOT NULL THEN abs(try_cast({total} AS DOUBLE))
                                        WHEN NOT _same THEN NULL
                                        WHEN {item_count} > 0 THEN {items_total} ELSE _paid END END AS _asked,
           CASE WHEN {refund} THEN CASE WHEN {total} IS NOT NULL THEN 'given'
                                        WHEN NOT _same THEN NULL
                                        WHEN {item_count} = 0 THEN 'purchase'
                                        WHEN {items_total} IS NOT NULL THEN 'items' END END AS refund_basis
    FROM same),
capped AS (
    SELECT *, CASE WHEN _same AND _asked IS NOT NULL THEN greatest(_paid - coalesce(
                  sum(CASE WHEN {first_copy} THEN _asked END) OVER ({earlier}), 0), 0) END AS _left
    FROM asked)
SELECT * EXCLUDE (_paid, _paid_in, _same, _asked, _left),
       CASE WHEN _asked IS NULL THEN CASE WHEN {refund} THEN {total} END
            ELSE CAST(round(least(_asked, coalesce(_left, _asked)), 6) AS VARCHAR) END AS refund_total,
       coalesce(_left < _asked, false) AS refund_capped,
       CASE WHEN _left = 0 AND _asked > 0 THEN '{ALREADY_REFUNDED}: ' || {order_id} || ' is refunded in full (its '
            || 'purchase total ' || CAST(_paid AS VARCHAR) || ') by earlier refunds' END AS refund_reject
FROM capped"""


def refund_totals_note(conn: duckdb.DuckDBPyConnection, relation: str, first_copy: str) -> tuple[str, ...]:
    """The orders' warning line about refunds whose amount segmint derived or capped (refund_totals_sql's
    columns over `relation`); none when every refund gave its total and none was capped."""
    full, items, capped, rejected = conn.execute(f"""
SELECT count(*) FILTER (WHERE refund_basis = 'purchase' AND refund_reject IS NULL),
       count(*) FILTER (WHERE refund_basis = 'items' AND refund_reject IS NULL),
       count(*) FILTER (WHERE refund_capped AND refund_reject IS NULL), count(*) FILTER (WHERE refund_reject IS NOT NULL)
FROM {relation} WHERE {first_copy}""").fetchall()[0]
    if not (full or items or capped or rejected):
        return ()
    return (
        f"warning: {full + items} refunds gave no total: {full} without items took their purchase's whole total "
        f"(full refunds), {items} with items the sum of the items' price x quantity (no tax or shipping); "
        f"{capped} refunds were capped at what earlier refunds left of their purchase's total and {rejected} "
        f"found it refunded in full ({ALREADY_REFUNDED})",
    )


def apply_refund_totals(
    conn: duckdb.DuckDBPyConnection,
    relation: str,
    *,
    raw_record: str,
    record_order: str,
    total: str,
    is_purchase: str,
    order_id: str,
    currency: str,
    item_count: str,
    items_total: str,
    nth: str,
    first_copy: str,
) -> tuple[str, ...]:
    """Run refund_totals_sql over the temp table `relation` (rewritten in place), move its `already_refunded`
    refunds to the rejects list under `orders` (`raw_record`: a row's quarantine text, `record_order`: the
    order they are listed in) and return refund_totals_note's warning. The one call site of the refund rule
    for both event exports; `relation` then holds only the rows that become orders and refunds."""
    totals = refund_totals_sql(
        relation,
        total=total,
        is_purchase=is_purchase,
        order_id=order_id,
        currency=currency,
        item_count=item_count,
        items_total=items_total,
        nth=nth,
        first_copy=first_copy,
    )
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {relation} AS {totals}")
    conn.execute(f"""
INSERT INTO {REJECTS_TABLE}
SELECT origin_file, origin_row, 'orders', refund_reject, {raw_record}
FROM {relation} WHERE refund_reject IS NOT NULL ORDER BY {record_order}""")
    # the note counts the rejected refunds too, so it is read before they leave the table
    note = refund_totals_note(conn, relation, first_copy)
    conn.execute(f"DELETE FROM {relation} WHERE refund_reject IS NOT NULL")
    return note


def refund_order_total_sql(refund_total: str) -> str:
    """A refund row's order_total from refund_totals_sql's `refund_total` (the refunded amount, positive): negated.
    A text DuckDB does not read as a number but the contract may, with the file's decimal mark (`112,9`,
    `1,234.50` from a table a spreadsheet re-saved), is negated as text: passed on as given it was read as a
    positive amount, a refund adding revenue. Any other text (`abc`, or a negative one) is kept as given, for the
    contract to judge with its text."""
    return (
        f"CASE WHEN try_cast({refund_total} AS DOUBLE) IS NOT NULL "
        f"THEN CAST(-try_cast({refund_total} AS DOUBLE) AS VARCHAR) "
        f"WHEN regexp_full_match(trim({refund_total}), '[+]?[0-9][0-9.,]*') THEN '-' || ltrim(trim({refund_total}), '+') "
        f"ELSE {refund_total} END"
    )


def generated_ids_note(table: str, count: int) -> str:
    """The FileReport note of a translated table with `count` accepted rows under surrogate ids (order_id_sql)."""
    return (
        f"{count} rows of {table} come from events without the source's order id, kept under surrogate ids "
        "(<format>:<event identity>): a purchase the source re-sent cannot be told from a second purchase"
    )


def record_generated_ids_sql(table: str, order_id: str, relation: str, generated_id: str) -> str:
    """INSERT the lineage and surrogate key (`generated_id`, order_id_sql's) of `relation`'s rows whose `order_id`
    the source did not give. The key tells the row apart from others of the same source line (a Segment batch)."""
    return (
        f"INSERT INTO {GENERATED_IDS_TABLE} SELECT {sql_string(table)}, {ORIGIN_FILE}, {ORIGIN_ROW}, {generated_id} "
        f"FROM {relation} WHERE {order_id} IS NULL"
    )


def load_json_lines(conn: duckdb.DuckDBPyConnection, paths: list[Path]) -> int:
    """Every non-blank line of the files into temp `_fmt_lines(origin_file, origin_row, line)`; returns the count.

    `.json`, `.jsonl`, `.ndjson` (optionally `.gz`) are newline-delimited JSON, one record per line, as BigQuery,
    Segment and RudderStack write them; `origin_row` is the physical line number (1-based). A `.parquet` file's
    rows become their JSON text (`to_json`), and an `.avro` file's records theirs (landing/formats/avro.py), so one
    code path translates all three; `origin_row` is then the row or record number.
    Blank lines carry no record and are not counted.
    """
    conn.execute(f"DROP VIEW IF EXISTS temp.{LINES_TABLE}")
    conn.execute("CREATE OR REPLACE TEMP TABLE _fmt_file (filename VARCHAR, line VARCHAR)")
    conn.execute("CREATE OR REPLACE TEMP TABLE _fmt_rows (origin_file VARCHAR, origin_row BIGINT, line VARCHAR)")
    text_files = [path for path in paths if path.suffix != ".parquet" and not path.name.lower().endswith(".avro")]
    if text_files:
        # One scan over every file (per-file statements cost more than the parsing on a folder of daily files).
        # One VARCHAR column per physical line: NUL never occurs in JSON text, so no line is ever split; quoting
        # is off so a line is taken byte for byte. Files are read in order and each file's lines stay contiguous
        # (preserve_insertion_order), so rowid minus the file's first rowid is the line number - 1.
        listed = ", ".join(sql_string(str(path)) for path in text_files)
        _run(
            conn,
            text_files,
            f"""
INSERT INTO _fmt_file SELECT filename, line FROM read_csv([{listed}], columns={{'line': 'VARCHAR'}},
    header=false, auto_detect=false, delim=chr(0), quote='', escape='', new_line='\\n', filename=true)""",
        )
    for path in paths:
        if path.suffix == ".parquet":
            _run(
                conn,
                [path],
                f"""
INSERT INTO _fmt_rows SELECT {sql_string(path.name)}, file_row_number + 1, to_json(t)
FROM read_parquet({sql_string(str(path))}, file_row_number=true, {FILE_COLUMNS_ONLY}) AS t""",
            )
        elif path.name.lower().endswith(".avro"):
            _load_avro_records(conn, path)
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _fmt_offsets AS SELECT filename, min(rowid) AS first FROM _fmt_file GROUP BY 1"
    )
    # A view, not a copy: numbering the lines costs one join with a table of one row per file. A blank line
    # (read as NULL, or only whitespace) is no record.
    conn.execute(f"""
CREATE TEMP VIEW {LINES_TABLE} AS
SELECT parse_filename(f.filename) AS origin_file, f.rowid - o.first + 1 AS origin_row, f.line
FROM _fmt_file AS f JOIN _fmt_offsets AS o USING (filename)
WHERE f.line IS NOT NULL AND (ascii(f.line) > 32 OR trim(f.line) <> '')
UNION ALL SELECT * FROM _fmt_rows""")
    return conn.execute(f"SELECT count(*) FROM {LINES_TABLE}").fetchall()[0][0]


def _load_avro_records(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    """An Avro file's records as JSON text into `_fmt_rows`, numbered from 1 (landing/formats/avro.py)."""
    # Imported here: fastavro (and pyarrow's start-up) are needed only when a landing folder holds Avro files.
    import pyarrow as pa

    from landing.formats.avro import avro_json_batches

    first = 1
    for lines in avro_json_batches(path):
        batch = pa.table({"origin_row": pa.array(range(first, first + len(lines)), pa.int64()), "line": lines})
        conn.register("_fmt_avro_batch", batch)
        try:
            conn.execute(f"INSERT INTO _fmt_rows SELECT {sql_string(path.name)}, origin_row, line FROM _fmt_avro_batch")
        finally:
            conn.unregister("_fmt_avro_batch")
        first += len(lines)


def drop_lines(conn: duckdb.DuckDBPyConnection) -> None:
    """Free the lines read by load_json_lines."""
    conn.execute(f"DROP VIEW IF EXISTS temp.{LINES_TABLE}")
    for table in LINES_WORK_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _run(conn: duckdb.DuckDBPyConnection, paths: list[Path], sql: str) -> None:
    """Run a statement that reads `paths`; a file DuckDB cannot read -> one-line LandingError."""
    try:
        conn.execute(sql)
    except duckdb.Error as error:
        first_line = str(error).splitlines()[0]
        names = ", ".join(path.name for path in paths)
        raise LandingError(
            f"{names if len(paths) == 1 else 'one of ' + names}: cannot be read ({first_line})"
        ) from None


def json_reason_sql(line: str) -> str:
    """The reason a JSON line cannot be a record (NULL when it is a JSON object)."""
    return (
        f"CASE WHEN NOT json_valid({line}) THEN 'malformed_json: not valid JSON' "
        f"WHEN json_type({line}) <> 'OBJECT' THEN 'not_a_json_object: a ' || lower(json_type({line})) END"
    )


def raw_record_sql(line: str) -> str:
    """A source line as quarantine raw_record text (cut when huge)."""
    return f"left({line}, {MAX_RAW_RECORD_CHARS})"


def write_contract_file(conn: duckdb.DuckDBPyConnection, select_sql: str, path: Path) -> None:
    """Write one contract table (text columns + origin) as Parquet, in origin order."""
    conn.execute(f"COPY ({select_sql}) TO {sql_string(str(path))} (FORMAT parquet)")


def reconcile_sql(work_files: dict[str, str], stage_tables: dict[str, str]) -> str:
    """SELECT of one raw.ingest_log row per (source file, contract table), plus `unexplained` per row.

    `work_files` maps a contract table to its translated file, `stage_tables` to its staged raw table. A row
    the translator wrote is either in the staged table (accepted) or in CONTRACT_REJECTS_TABLE (the contract
    ingest quarantined it); `unexplained` counts written rows in neither (the caller treats any as an
    internal error). Records the translator rejected itself are quarantined and counted in rows_in.
    `ids_generated` counts accepted rows whose key the translator generated (GENERATED_IDS_TABLE).
    """
    parts = []
    for table, file_name in work_files.items():
        written = (
            f"(SELECT {ORIGIN_FILE} AS origin_file, count(*) AS n "
            f"FROM read_parquet({sql_string(file_name)}) GROUP BY 1)"
        )
        accepted = f"(SELECT {ORIGIN_FILE} AS origin_file, count(*) AS n FROM {stage_tables[table]} GROUP BY 1)"
        rejected = (
            f"(SELECT origin_file, count(*) AS n, count(*) FILTER (WHERE code = 'after_as_of') AS after "
            f"FROM {CONTRACT_REJECTS_TABLE} WHERE table_name = {sql_string(table)} GROUP BY 1)"
        )
        refused = (
            f"(SELECT origin_file, count(*) AS n FROM {REJECTS_TABLE} "
            f"WHERE table_name = {sql_string(table)} GROUP BY 1)"
        )
        suppressed = f"(SELECT origin_file, sum(n) AS n FROM {SUPPRESSED_TABLE} WHERE table_name = {sql_string(table)} GROUP BY 1)"
        generated = (
            f"(SELECT t.{ORIGIN_FILE} AS origin_file, count(*) AS n FROM {stage_tables[table]} AS t "
            f"SEMI JOIN {GENERATED_IDS_TABLE} AS g ON g.table_name = {sql_string(table)} "
            f"AND g.origin_file = t.{ORIGIN_FILE} AND g.origin_row = t.{ORIGIN_ROW} "
            f"AND g.generated_id = t.{CONTRACT_KEYS[table]} GROUP BY 1)"
        )
        parts.append(f"""
SELECT origin_file AS source_file, {sql_string(table)} AS table_name,
       coalesce(w.n, 0) + coalesce(f.n, 0) AS rows_in, coalesce(a.n, 0) AS rows_accepted,
       coalesce(r.n, 0) + coalesce(f.n, 0) AS rows_quarantined, coalesce(r.after, 0) AS rows_after_as_of,
       coalesce(w.n, 0) - coalesce(a.n, 0) - coalesce(r.n, 0) - coalesce(s.n, 0) AS unexplained,
       coalesce(s.n, 0) AS rows_suppressed, coalesce(g.n, 0) AS ids_generated
FROM {written} AS w FULL JOIN {accepted} AS a USING (origin_file) FULL JOIN {rejected} AS r USING (origin_file)
     FULL JOIN {refused} AS f USING (origin_file) FULL JOIN {suppressed} AS s USING (origin_file)
     LEFT JOIN {generated} AS g USING (origin_file)""")
    return " UNION ALL ".join(parts) + " ORDER BY source_file, table_name"


def part_columns(source: LoadedSource, partitions: tuple[tuple[str, str | None], ...]) -> dict[str, str]:
    """A warehouse table part's columns, lower-cased name -> SQL expression: the file's own columns, then the value of
    each partition folder it sits in as a column the file lacks (Hive's meaning; detect.partition_values); {} for an
    empty part (0 bytes, or a gzip of nothing: no rows)."""
    columns = {name.lower(): source_column(i) for i, name in enumerate(source.header)}
    if columns:
        for key, value in partitions:
            columns.setdefault(key, "NULL::VARCHAR" if value is None else sql_string(value))
    return columns
