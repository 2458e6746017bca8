"""Ingest of the landing zone into the typed `raw.*` tables, with every rejected record kept in `raw.quarantine`.

All row work happens in DuckDB SQL. Each output table is built under a staging name and the six tables
are swapped in one transaction, so a run killed mid-way leaves the previous raw tables readable, and the
same input always gives identical tables (rows ordered by source_row, no wall-clock values).

A file is parsed once, straight into its staging table, in record order (preserve_insertion_order); the few
rejected records are then copied to quarantine and deleted, and the reason column dropped. Writing a table to
the database file is the costliest step of a large ingest, so every record is written once and only once.

Before parsing, one scan of the file's text timestamp and amount columns detects its date order and decimal
mark (ValueDialect); after parsing, orders in another currency than the reporting one are converted with
fx_rates.csv or quarantined (as is an order with no currency when others name another one), then duplicates are
marked (line items of one order merged, exact copies counted).

When the inputs are those of the last ingest into the warehouse and only the as-of date moved forward, the
records it held back as after its as-of date that are now due are appended instead (landing/append.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from landing import append, formats, realtime_log
from landing.contract import (
    AFTER_AS_OF,
    DATE_ORDERS,
    DAY_FIRST,
    DERIVED_COLUMNS,
    DUPLICATE_IDENTICAL,
    EVENTS,
    FX_RATES,
    INGEST_LOG_COLUMNS_SQL,
    LANDING_TABLES,
    LINEAGE_COLUMNS_SQL,
    MONTH_FIRST,
    MOSTLY_QUARANTINED_SHARE,
    ORDERS,
    ORIGIN_COLUMN_NAMES,
    QUARANTINE_COLUMNS_SQL,
    RAW_SCHEMA,
    RUN_CONTEXT_COLUMNS_SQL,
    SUPPRESSED_TABLE,
    SUPPRESSED_TABLE_SQL,
    TableSpec,
)
from landing.rules import (
    AMBIGUOUS,
    EXTRA_HASH,
    INCONSISTENT,
    MERGED_LINE,
    REASON,
    ROW_REASON,
    ValueDialect,
    delete_rejected_sql,
    dialect_probe_sql,
    duplicate_keys_sql,
    incomplete_records_sql,
    judged_records_sql,
    last_valid_date_sql,
    mark_duplicates_sql,
    parse_records_sql,
    quoted_value_sql,
    raw_record_json_sql,
    sum_line_totals_sql,
    valid_date_range_sql,
)
from landing.sources import (
    RECORD_INDEX,
    LandingError,
    LoadedSource,
    find_landing_file,
    load_source,
    parquet_read_errors,
    resolve_columns,
    source_column,
    sql_string,
    unread_data_files_note,
)
from landing.special_categories import (
    Denylist,
    DroppedColumn,
    load_denylist,
    screen_source,
    scrub_quarantined_records,
)

QUARANTINE = "quarantine"
INGEST_LOG = "ingest_log"
RUN_CONTEXT = "run_context"
OUTPUT_TABLES = tuple(spec.name for spec in LANDING_TABLES) + (
    QUARANTINE,
    INGEST_LOG,
    RUN_CONTEXT,
    append.HELD,
    append.STATE,
)
STAGE_PREFIX = "_stage_"
WORK_PREFIX = "_landing_"
NO_CURRENCY = "(none)"
# An order with no currency in a file whose orders name another currency than the reporting one.
AMBIGUOUS_CURRENCY = "ambiguous_currency"
# How a run whose orders name no currency (and SEGMINT_CURRENCY unset) shows its reporting currency to a user.
CURRENCY_NOT_GIVEN = "not given (set SEGMINT_CURRENCY)"
# Reason codes that do not make a file "mostly quarantined": rows set aside on purpose, or kept once.
BENIGN_REASONS = (AFTER_AS_OF, DUPLICATE_IDENTICAL)
TOP_REASONS_SHOWN = 3

# Why an ingest cannot append: the previous one stored no input digests.
NO_DIGESTS = (
    "the previous ingest recorded no input digests (none were given, or it dropped special-category columns, whose "
    "names no table keeps)"
)


@dataclass(frozen=True)
class LandingOptions:
    """User settings of the ingest (SEGMINT_CURRENCY, SEGMINT_DATE_FORMAT, SEGMINT_CSV_DELIMITER).

    `reporting_currency`: the currency amounts are summed in (None: chosen by choose_reporting_currency).
    `date_format`: DMY or MDY for `dd/mm/yyyy`-like dates, or a strptime pattern (None: detected per file).
    `csv_delimiter`: forces the CSV delimiter (None: detected per file).
    """

    reporting_currency: str | None = None
    date_format: str | None = None
    csv_delimiter: str | None = None
    # The GDPR art. 9 denylist (config/special_categories.yaml); None: the shipped file (never "no screening").
    special_categories: Denylist | None = None

    def __post_init__(self) -> None:
        if self.date_format is not None and self.date_format not in DATE_ORDERS and "%" not in self.date_format:
            raise ValueError(f"date_format must be DMY, MDY or a strptime pattern with %, got {self.date_format!r}")


@dataclass(frozen=True)
class Suppression:
    """Erased persons, who never enter raw tables nor the quarantine (privacy.suppression, issue 17).

    `hashes`: salted hashes of their ids; `hash_id`: the salted hash function (privacy.subjects.subject_hash with
    the installation's salt). Rows whose customer_id or anonymous_id hashes to one of them are dropped before
    parsing and counted as rows_suppressed, so the counts still reconcile.
    """

    hashes: frozenset[str]
    hash_id: Callable[[str], str]
    columns: tuple[str, ...] = ("customer_id", "anonymous_id")


INGEST_SESSION_SETTINGS = {
    "TimeZone": "'UTC'",  # a naive timestamp is read as UTC, whatever the caller's session zone
    "preserve_insertion_order": "true",  # rowid = record order is what makes source_row right
    "enable_progress_bar": "false",  # bars would flood the Dagster compute log on big files
}


@dataclass(frozen=True)
class FileReport:
    """What happened to one landing file: rows_in = rows_accepted + rows_quarantined (after_as_of is a subset)."""

    source_file: str
    table_name: str
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    rows_after_as_of: int
    reasons: dict[str, int]
    missing_columns: tuple[str, ...]
    # Accepted rows per currency code (orders only; `(none)` = empty currency). More than one key = mixed.
    currencies: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # Accepted line-item rows merged into an earlier row of their order (the raw table has rows_accepted - rows_merged).
    rows_merged: int = 0
    # Accepted rows whose key was generated (events without an event_id column).
    ids_generated: int = 0
    # Columns removed before parsing because they hold special-category data (landing/special_categories.py).
    dropped_columns: tuple[DroppedColumn, ...] = ()
    # Rows of erased persons dropped before parsing (Suppression): rows_in = accepted + quarantined + suppressed.
    rows_suppressed: int = 0


@dataclass(frozen=True)
class LandingReport:
    """One ingest run: the as-of date used, one report per file read, and the optional files not found."""

    as_of: date
    files: tuple[FileReport, ...]
    missing_files: tuple[str, ...]
    # The currency order amounts are converted to (None: the orders name no currency).
    reporting_currency: str | None = None
    # segmint | ga4 | segment | shopify: the format the landing folder was read as (landing/formats/).
    source_format: str = "segmint"
    # The real-time service's event log read as a second events source (landing/realtime_log.py): every log
    # file's counts summed (raw.ingest_log has one row per log file); None when there is no log.
    realtime_log: FileReport | None = None
    # Quarantined source records (a translator's rejects) whose special-category fields were removed.
    special_category_records_scrubbed: int = 0
    # `full`: every file read; `append`: the held records now due moved in (landing/append.py); and why.
    ingest_mode: str = append.FULL
    ingest_mode_reason: str = ""
    # An append: the as-of date of the ingest it continued from, and the rows it added to each raw table (rows of
    # their own: merged line items excluded). The raw GX checks validate exactly those rows
    # (orchestration/defs/quality_checks.py). None / empty for a full ingest.
    appended_after: date | None = None
    rows_appended: Mapping[str, int] = field(default_factory=dict)


def _stage(name: str) -> str:
    return f"{RAW_SCHEMA}.{STAGE_PREFIX}{name}"


def _work(kind: str, table: str) -> str:
    return f"{WORK_PREFIX}{kind}_{table}"


def _typed_columns_sql(spec: TableSpec) -> str:
    derived = [f"{name} {sql_type}" for name, sql_type, _ in DERIVED_COLUMNS.get(spec.name, ())]
    return ", ".join([f"{column.name} {column.sql_type}" for column in spec.columns] + derived)


@contextmanager
def _ingest_session(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Session settings the ingest relies on, set for its duration and then restored."""
    saved = {
        setting: conn.execute(f"SELECT current_setting('{setting}')").fetchall()[0][0]
        for setting in INGEST_SESSION_SETTINGS
    }
    for setting, value in INGEST_SESSION_SETTINGS.items():
        conn.execute(f"SET {setting} = {value}")
    try:
        yield
    finally:
        for setting, value in saved.items():
            conn.execute(f"SET {setting} = {sql_string(str(value))}")


@dataclass(frozen=True)
class _ParsedFile:
    """A landing file parsed into its staging table (row_reason set, duplicates marked), waiting for the as-of date."""

    spec: TableSpec
    file_name: str
    source: LoadedSource
    missing_columns: tuple[str, ...]
    notes: tuple[str, ...] = ()
    ids_generated: bool = False
    dropped_columns: tuple[DroppedColumn, ...] = ()
    rows_suppressed: int = 0
    # The staging table's name (the spec's name, or a second source of the same table: the real-time log).
    table: str = ""

    @property
    def stage(self) -> str:
        return _stage(self.table or self.spec.name)


def _suppress(
    conn: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    source: LoadedSource,
    positions: dict[str, int],
    suppression: Suppression | None,
    file_name: str,
) -> tuple[LoadedSource, int]:
    """The source without the rows of suppressed persons, and how many rows that removed.

    Only the distinct ids are hashed (in Python, with the salt), so the cost is one scan per id column.
    """
    if suppression is None or not suppression.hashes:
        return source, 0
    conditions = []
    for column in suppression.columns:
        if column not in positions:
            continue
        value = f"trim(CAST({source_column(positions[column])} AS VARCHAR))"
        with _source_read_errors(source, file_name):
            ids = [
                row[0]
                for row in conn.execute(f"SELECT DISTINCT {value} FROM {source.relation} AS s").fetchall()
                if row[0]
            ]
        matched = [i for i in ids if suppression.hash_id(i) in suppression.hashes]
        if matched:
            conditions.append(f"coalesce({value} IN ({', '.join(sql_string(i) for i in matched)}), false)")
    if not conditions:
        return source, 0
    kept = f"(SELECT * FROM {source.relation} AS s WHERE NOT ({' OR '.join(conditions)}))"
    rows = conn.execute(f"SELECT count(*) FROM {kept}").fetchall()[0][0]
    if "origin_file" in positions:
        # A translated file: its source files' counts must know where these rows went (formats.reconcile_sql).
        origin = source_column(positions["origin_file"])
        conn.execute(SUPPRESSED_TABLE_SQL)
        conn.execute(
            f"INSERT INTO {SUPPRESSED_TABLE} SELECT {sql_string(spec.name)}, CAST({origin} AS VARCHAR), count(*) "
            f"FROM {source.relation} AS s WHERE {' OR '.join(conditions)} GROUP BY 2"
        )
    return replace(source, relation=kept, rows_in=rows), source.rows_in - rows


def _source_read_errors(source: LoadedSource, file_name: str) -> AbstractContextManager[None]:
    # A Parquet file is read where it lies, so any statement scanning it may meet a damaged page.
    return parquet_read_errors(file_name) if source.is_parquet else nullcontext()


def _date_order(max_first: int | None, max_second: int | None) -> str | None:
    """The order of a column's `dd/mm/yyyy`-like dates from their largest first and second fields (None: none)."""
    if max_first is None or max_second is None:
        return None
    if max_first > 12 and max_second <= 12:
        return DAY_FIRST
    if max_second > 12 and max_first <= 12:
        return MONTH_FIRST
    return AMBIGUOUS if max_first <= 12 else INCONSISTENT


def _detect_value_dialect(
    conn: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    source: LoadedSource,
    positions: dict[str, int],
    options: LandingOptions,
    file_name: str,
) -> tuple[ValueDialect, tuple[str, ...]]:
    """The file's date order per timestamp column and its decimal mark, with notes saying what was chosen.

    Decimal mark: the one more amounts prove (a mark followed by other than three digits, or the last of two
    marks); with no proof either way (integers, `1.234`), a comma for `;`-separated files, else a point. Values
    written with the other mark are then `invalid_number`. Date order: see _date_order; SEGMINT_DATE_FORMAT wins.
    """
    sql, timestamps, amounts = dialect_probe_sql(spec, source.relation, positions, source.types)
    if not timestamps and not amounts:
        return ValueDialect(), ()
    with _source_read_errors(source, file_name):
        probe = conn.execute(sql).fetchall()[0]
    notes: list[str] = []
    date_orders: dict[str, str] = {}
    for i, name in enumerate(timestamps):
        order = options.date_format or _date_order(probe[2 * i], probe[2 * i + 1])
        if order is None:
            continue
        date_orders[name] = order
        if order in (DAY_FIRST, MONTH_FIRST) or "%" in order:
            origin = "SEGMINT_DATE_FORMAT" if options.date_format else "detected"
            notes.append(f"{name}: numeric dates read as {order} ({origin})")
        else:
            notes.append(f"{name}: numeric dates are {order} (day-first or month-first); they are quarantined")
    comma_proofs, point_proofs = probe[-2], probe[-1]
    if comma_proofs != point_proofs:
        decimal_comma = comma_proofs > point_proofs
    else:
        decimal_comma = source.delimiter == ";"
    if decimal_comma and amounts:
        notes.append("amounts read with a decimal comma (1.234,50)")
    if comma_proofs and point_proofs:
        notes.append(
            f"amounts mix decimal marks ({comma_proofs} with a comma, {point_proofs} with a point): "
            "the minority is quarantined as invalid_number"
        )
    return ValueDialect(decimal_comma=decimal_comma, date_orders=date_orders), tuple(notes)


def _parse_file(
    conn: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    path: Path,
    options: LandingOptions,
    before_duplicates: Callable[[], tuple[str, ...]] | None = None,
    table: str | None = None,
    not_compared: tuple[str, ...] = (),
    suppression: Suppression | None = None,
) -> _ParsedFile:
    """Load one landing file and parse every record into its staging table (types, record-level reasons, duplicates).

    `before_duplicates` runs after the record rules and before duplicates are marked (the currency rules); the
    notes it returns join the file's report.
    `table` names the staging table (default: the spec's); `not_compared` columns do not tell duplicates apart.
    """
    table = table or spec.name
    source = load_source(conn, path, _work("src", table), options.csv_delimiter)
    source, dropped = _drop_special_categories(conn, spec, source, path.name, options)
    line_amount, total = spec.line_amount or (None, None)
    positions = resolve_columns(spec, source.header, path.name, extra=(line_amount,) if line_amount else ())
    if spec.file_required and source.rows_in == 0:
        raise LandingError(f"{path.name}: no data rows")
    source, suppressed = _suppress(conn, spec, source, positions, suppression, path.name)
    notes = list(source.notes) + [column.note() for column in dropped]
    sums_lines = line_amount in positions and total not in positions
    if sums_lines:
        # One row per line item with a line amount and no order total: the total is the sum of the lines.
        positions[total] = positions.pop(line_amount)
        notes.append(f"{total} = sum of {line_amount} over each order's line items")
    else:
        positions.pop(line_amount, None)
    key_generated = spec.generated_key is not None and spec.generated_key not in positions
    with_extras = spec.merges_line_items or key_generated
    mapped = set(positions.values())
    extras = tuple(i for i in range(len(source.header)) if i not in mapped) if with_extras else None
    if sums_lines and extras is not None:
        extras += (positions[total],)  # lines differing only in their amount are distinct lines
    dialect, dialect_notes = _detect_value_dialect(conn, spec, source, positions, options, path.name)
    notes += dialect_notes
    stage, duplicates_table = _stage(table), _work("dups", table)
    parsed = parse_records_sql(spec, source.relation, positions, source.types, dialect, extras)
    columns = ", ".join(f"CAST({column.name} AS {column.sql_type}) AS {column.name}" for column in spec.columns)
    derived = "".join(
        f", CAST({value} AS {sql_type}) AS {name}" for name, sql_type, value in DERIVED_COLUMNS.get(spec.name, ())
    )
    extra_column = f", {EXTRA_HASH}" if extras is not None else ""
    # The occurrence window of generated ids does not keep record order: only then is a sort needed.
    order = " ORDER BY source_row" if key_generated else ""
    with _source_read_errors(source, path.name):
        conn.execute(
            f"CREATE OR REPLACE TABLE {stage} AS SELECT {columns}{derived}, {sql_string(path.name)} AS source_file, "
            f"source_row, {ROW_REASON}{extra_column} FROM ({parsed}){order}"
        )
    if sums_lines:
        conn.execute(incomplete_records_sql(spec, stage))
    if before_duplicates is not None:
        notes += before_duplicates()
    compared = tuple(
        name for name in spec.column_names if not (sums_lines and name == total) and name not in not_compared
    )
    duplicate_spec = spec
    if key_generated:
        # Generated ids are unique by construction: duplicates are records with the same values.
        compared = tuple(name for name in spec.column_names if name != spec.generated_key)
        duplicate_spec = replace(spec, key_columns=compared)
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {duplicates_table} AS {duplicate_keys_sql(duplicate_spec, stage, compared)}"
    )
    conn.execute(mark_duplicates_sql(duplicate_spec, stage, duplicates_table, extras is not None, key_generated))
    conn.execute(f"DROP TABLE temp.{duplicates_table}")
    if sums_lines:
        conn.execute(sum_line_totals_sql(spec, stage, total))
    if extras is not None:
        conn.execute(f"ALTER TABLE {stage} DROP COLUMN {EXTRA_HASH}")
    if key_generated:
        notes.append(
            f"no {spec.generated_key} column: ids generated from each row's values and occurrence number; "
            "exact duplicate rows kept once (duplicate_identical)"
        )
    # The origin columns are written by format translators only; their absence is no news to a user.
    missing = tuple(
        name
        for name in spec.column_names
        if name not in positions
        and name not in ORIGIN_COLUMN_NAMES
        and not (key_generated and name == spec.generated_key)
    )
    if suppressed:
        notes.append(f"{suppressed} rows of erased persons suppressed (privacy.suppression): not read, not quarantined")
    return _ParsedFile(
        spec,
        path.name,
        source,
        missing,
        tuple(notes),
        key_generated,
        dropped_columns=dropped,
        rows_suppressed=suppressed,
        table=table,
    )


def _scrub_translator_rejects(conn: duckdb.DuckDBPyConnection, options: LandingOptions) -> int:
    """GDPR art. 9 for the records a format translator rejected, quarantined in their source form (no column
    screen saw them): matching keys are removed, a non-JSON line naming a category is withheld. Rows the contract
    rules rejected carry `origin_file` in their translated record and were screened already."""
    denylist = options.special_categories or load_denylist()
    contract = frozenset(name for spec in LANDING_TABLES for name in spec.column_names)
    translator_rejects = (
        "(CASE WHEN json_valid(raw_record) THEN json_extract_string(raw_record, '$.origin_file') END) IS NULL"
    )
    return scrub_quarantined_records(conn, _stage(QUARANTINE), translator_rejects, contract, denylist)


def _drop_special_categories(
    conn: duckdb.DuckDBPyConnection, spec: TableSpec, source: LoadedSource, file_name: str, options: LandingOptions
) -> tuple[LoadedSource, tuple[DroppedColumn, ...]]:
    """GDPR art. 9: the source without its special-category columns, before any record is parsed or quarantined."""
    denylist = options.special_categories or load_denylist()  # loaded once by ingest_landing
    contract = frozenset(spec.column_names) | frozenset(name for name in (spec.line_amount or ()) if name)
    with _source_read_errors(source, file_name):
        return screen_source(conn, source, file_name, contract, denylist)


def choose_reporting_currency(
    setting: str | None, order_rows: Mapping[str, int], rated: Collection[str], fx_file: str | None
) -> tuple[str | None, str | None]:
    """The reporting currency and a note saying how it was chosen when that is worth saying (None: nothing to say).

    `setting`: SEGMINT_CURRENCY; `order_rows`: valid order rows per (non-empty) currency; `rated`: the currencies
    the valid rows of `fx_file` give a rate other than 1 for (a currency quoted at 1 throughout is the rates' base
    written out, not a rated one). SEGMINT_CURRENCY wins, checked against the rates (setting_against_rates). Else,
    with several order currencies and rates, the one order currency without rates is the rates' evident target
    (rates are quoted *to* it). Else the currency of most order rows (ties: alphabetical), with a note when rates
    exist but their target is ambiguous (every order currency has rates, or several have none): converting with
    them could silently be wrong money. A shop with one order currency converts nothing, so its rates' target does
    not matter. No order currency and no setting: None (raw.run_context.reporting_currency NULL, shown to users
    as CURRENCY_NOT_GIVEN by currency_label), with a note saying so.
    """
    if setting:
        return setting.upper(), setting_against_rates(setting.upper(), order_rows, rated, fx_file)
    if not order_rows:
        # Amounts are still summed (they can only be in one currency), but no one can say which.
        return None, (
            "no order names a currency and SEGMINT_CURRENCY is not set: amounts are kept as given and the "
            f"reporting currency shows as '{CURRENCY_NOT_GIVEN}'; set SEGMINT_CURRENCY to name it"
        )
    commonest = min(order_rows, key=lambda code: (-order_rows[code], code))
    if not rated or len(order_rows) == 1:
        return commonest, None
    unrated = sorted(code for code in order_rows if code not in rated)
    if len(unrated) == 1:
        return unrated[0], (
            f"reporting currency {unrated[0]}: the one order currency {fx_file} gives no rate for (the rates' "
            "evident target)"
        )
    why = (
        f"it gives rates for every order currency ({', '.join(sorted(order_rows))})"
        if not unrated
        else f"several order currencies have no rate in it ({', '.join(unrated)})"
    )
    return commonest, (
        f"warning: the target currency of {fx_file} is ambiguous ({why}); reporting currency {commonest} is the "
        "currency of most orders (ties: alphabetical). Set SEGMINT_CURRENCY to the currency its rates are quoted "
        "against"
    )


def setting_against_rates(
    currency: str, order_rows: Mapping[str, int], rated: Collection[str], fx_file: str | None
) -> str | None:
    """SEGMINT_CURRENCY (`currency`) checked against the rates file (arguments: choose_reporting_currency's).

    - The file gives `currency` itself a rate other than 1 while orders in other currencies exist: its rates are
      certainly quoted against another currency, so converting with them would put that currency's money under
      `currency`'s name (and quarantine its own orders): the run stops (LandingError) naming both fixes.
    - Order currencies other than `currency` that the file gives no rate for: every order in them is quarantined as
      `missing_fx_rate`; a warning says so with the count. When no order is in `currency` and exactly one order
      currency has no rate, the file looks quoted against that one (the unset rule's evident target) and the
      warning says which setting would match; it is not a stop, because the rates may be to `currency` with that
      currency's rates missing, and then the quarantine is right.
    Without a rates file nothing is converted (other currencies are `mixed_currency`, whose reason says so).
    """
    if fx_file is None:
        return None
    others = sorted(code for code in order_rows if code != currency)
    unrated = [code for code in others if code not in rated]
    evident = f", evidently {unrated[0]} (the one order currency it gives no rate for)" if len(unrated) == 1 else ""
    if currency in rated and others:
        fix = f"set SEGMINT_CURRENCY={unrated[0]}" if len(unrated) == 1 else "set SEGMINT_CURRENCY to that currency"
        raise LandingError(
            f"{fx_file}: SEGMINT_CURRENCY={currency} contradicts the rates: they give {currency} itself a rate "
            f"other than 1, so they are quoted against another currency{evident}; orders in {', '.join(others)} "
            f"would be converted with them and reported as {currency}, or quarantined; {fix}, or give rates in "
            f"units of {currency}"
        )
    if not unrated:
        return None
    quarantined = sum(order_rows[code] for code in unrated)
    if currency not in order_rows and len(unrated) == 1 and rated:
        return (
            f"warning: SEGMINT_CURRENCY={currency}, but {fx_file} looks quoted against {unrated[0]} (the one "
            f"order currency it gives no rate for, and no order is in {currency}): its {quarantined} order rows "
            f"are quarantined as missing_fx_rate and the others converted with these rates as if they were to "
            f"{currency}. If they are to {unrated[0]}, set SEGMINT_CURRENCY={unrated[0]}; if they are to "
            f"{currency}, add {unrated[0]}'s rates"
        )
    return (
        f"warning: {fx_file} gives no rate to SEGMINT_CURRENCY={currency} for {', '.join(unrated)}: their "
        f"{quarantined} order rows are quarantined as missing_fx_rate"
    )


def currency_label(reporting_currency: str | None) -> str:
    """The reporting currency as a user reads it (metadata, report): its code, never None or NaN."""
    return reporting_currency or CURRENCY_NOT_GIVEN


def blank_currency_reason(reporting: str | None, order_currencies: Collection[str]) -> str | None:
    """The quarantine reason of an order with no currency, or None when it is taken to be in `reporting`.

    `order_currencies`: the currencies valid orders of the file name. A blank is the reporting currency only when
    no order names another one (a one-currency shop, a file without currencies): then it can be nothing else. When
    orders name another currency (EUR and USD; or only USD with SEGMINT_CURRENCY=EUR) it could be any of them, and
    taking it as the reporting one would silently mix money: `ambiguous_currency`. SEGMINT_CURRENCY does not
    settle it: it names the currency amounts are reported in, not the order's.
    """
    if reporting is None or not set(order_currencies) - {reporting}:
        return None
    named = ", ".join(sorted(order_currencies))
    return (
        f"{AMBIGUOUS_CURRENCY}: currency='' while other orders are in {named} (reporting currency {reporting}): "
        "which one is unknown"
    )


def _convert_orders(
    conn: duckdb.DuckDBPyConnection, options: LandingOptions, fx_file: str | None
) -> tuple[str | None, str | None]:
    """The currency rules over the staged valid orders and rates (fx_file: the rates file, None if absent):
    the reporting currency (choose_reporting_currency), blank currencies (blank_currency_reason), conversion.

    Returns (reporting currency, note or None)."""
    stage = _stage(ORDERS.name)
    order_rows = dict(
        conn.execute(
            f"SELECT currency, count(*) FROM {stage} WHERE {ROW_REASON} IS NULL AND currency IS NOT NULL "
            "GROUP BY currency"
        ).fetchall()
    )
    rated = []
    if fx_file is not None:
        rated = conn.execute(
            f"SELECT DISTINCT currency FROM {_stage(FX_RATES.name)} WHERE {ROW_REASON} IS NULL AND rate <> 1"
        ).fetchall()
    reporting, note = choose_reporting_currency(
        options.reporting_currency, order_rows, {code for (code,) in rated}, fx_file
    )
    blank_reason = blank_currency_reason(reporting, order_rows)
    if blank_reason is not None:
        conn.execute(
            f"UPDATE {stage} SET {ROW_REASON} = ? WHERE {ROW_REASON} IS NULL AND currency IS NULL", [blank_reason]
        )
    _convert_currencies(conn, reporting, fx_file)
    return reporting, note


def _convert_currencies(conn: duckdb.DuckDBPyConnection, reporting: str | None, fx_file: str | None) -> None:
    """Give each valid order outside the reporting currency its fx_rate, or a reason.

    The rate is the one of fx_rates.csv at or before the order's date (`missing_fx_rate` when there is none);
    without fx_rates.csv such orders are `mixed_currency`: amounts are never summed across currencies. An order
    with no currency is left alone (in the reporting currency, or already `ambiguous_currency`).
    """
    if reporting is None:
        return
    stage = _stage(ORDERS.name)
    foreign = f"o.{ROW_REASON} IS NULL AND o.currency IS NOT NULL AND o.currency <> {sql_string(reporting)}"
    quoted = quoted_value_sql("p.currency")
    if fx_file is None:
        conn.execute(
            f"UPDATE {stage} AS o SET {ROW_REASON} = 'mixed_currency: currency=' || {quoted.replace('p.', 'o.')} "
            f"|| ' is not the reporting currency {reporting} (add fx_rates.csv to convert it)' WHERE {foreign}"
        )
        return
    fx = f"(SELECT date, currency, rate FROM {_stage(FX_RATES.name)} WHERE {ROW_REASON} IS NULL)"
    missing = (
        f"'missing_fx_rate: currency=' || {quoted} || ' has no rate to {reporting} in {fx_file} on or before ' "
        "|| CAST(CAST(p.ordered_at AS DATE) AS VARCHAR)"
    )
    conn.execute(
        f"""UPDATE {stage} AS p
SET fx_rate = m.rate, {ROW_REASON} = CASE WHEN m.rate IS NULL THEN {missing} END
FROM (SELECT o.source_row, r.rate FROM {stage} AS o
      ASOF LEFT JOIN {fx} AS r ON o.currency = r.currency AND CAST(o.ordered_at AS DATE) >= r.date
      WHERE {foreign}) AS m
WHERE p.source_row = m.source_row"""
    )


def _top_reasons(conn: duckdb.DuckDBPyConnection, table: str, reason: str, where: str, params: list) -> str:
    """`code xN (e.g. row R: <reason>)` for the most frequent unusable reason codes, most frequent first.

    A translated row (GA4, Segment, Shopify) is named by its source record (`events.jsonl line 7`), not by its
    row in the work file the user never wrote."""
    benign = ", ".join(sql_string(code) for code in (*BENIGN_REASONS, MERGED_LINE))
    if table == _stage(QUARANTINE):
        origin_file = "json_extract_string(raw_record, '$.origin_file')"
        origin_row = "json_extract_string(raw_record, '$.origin_row')"
    else:
        origin_file, origin_row = "origin_file", "CAST(origin_row AS VARCHAR)"
    where_from = f"coalesce({origin_file} || ' line ' || {origin_row}, 'row ' || source_row)"
    rows = conn.execute(
        f"SELECT split_part({reason}, ':', 1) AS code, count(*) AS n, arg_min({reason}, source_row), "
        f"arg_min({where_from}, source_row) FROM {table} WHERE {where} AND {reason} IS NOT NULL GROUP BY code "
        f"HAVING code NOT IN ({benign}) ORDER BY n DESC, code LIMIT {TOP_REASONS_SHOWN}",
        params,
    ).fetchall()
    return "; ".join(f"{code} x{count} (e.g. {row}: {text})" for code, count, text, row in rows)


def _default_as_of(conn: duckdb.DuckDBPyConnection, orders: _ParsedFile) -> date:
    """The last accepted order date; no valid order at all -> LandingError (there is nothing to model)."""
    last = conn.execute(last_valid_date_sql(ORDERS, _stage(ORDERS.name))).fetchall()[0][0]
    if last is None:
        top = _top_reasons(conn, _stage(ORDERS.name), ROW_REASON, "true", [])
        raise LandingError(
            f"{orders.file_name}: no order passed validation ({orders.source.rows_in} rows, all quarantined), "
            f"so the as-of date cannot be derived; top reasons: {top}"
        )
    return last


def _write_file(conn: duckdb.DuckDBPyConnection, parsed: _ParsedFile, as_of: date, hold: bool = True) -> FileReport:
    """Move one file's rejected records from its staging table to staging quarantine, leaving the accepted rows.

    With `hold`, the records set aside only for their date are also kept, parsed, in the staged raw.ingest_held
    (the next day's append ingest moves them in: landing/append.py)."""
    spec, source, stage = parsed.spec, parsed.source, parsed.stage
    judged = judged_records_sql(spec, stage, as_of)
    raw_json = raw_record_json_sql(source.header, source.types, "s")
    with _source_read_errors(source, parsed.file_name):
        conn.execute(
            f"INSERT INTO {_stage(QUARANTINE)} SELECT {sql_string(parsed.file_name)}, j.source_row, {raw_json}, "
            f"j.{REASON} FROM ({judged}) AS j JOIN {source.relation} AS s ON s.{RECORD_INDEX} = j.source_row - 1 "
            f"WHERE j.{REASON} IS NOT NULL AND j.{REASON} <> '{MERGED_LINE}' ORDER BY j.source_row"
        )
    if hold:
        conn.execute(append.hold_records_sql(spec, stage, _stage(append.HELD), as_of))
    merged = 0
    if spec.merges_line_items and not parsed.ids_generated:
        # Only these have merged lines (mark_duplicates_sql); a scan of 36 M events to count none costs ~1 s.
        merged = conn.execute(f"SELECT count(*) FROM ({judged}) WHERE {REASON} = '{MERGED_LINE}'").fetchall()[0][0]
    # Deleting keeps the remaining rows in insertion order, which is source_row order: no ORDER BY needed.
    conn.execute(delete_rejected_sql(spec, stage, as_of))
    conn.execute(f"ALTER TABLE {stage} DROP COLUMN {ROW_REASON}")
    # Free the work table now: with 30 M events, holding every file's copies at once costs gigabytes.
    conn.execute(f"DROP TABLE IF EXISTS temp.{_work('src', parsed.table or spec.name)}")
    return _file_report(conn, parsed, merged)


def _file_report(conn: duckdb.DuckDBPyConnection, parsed: _ParsedFile, merged: int) -> FileReport:
    """Counts for one written file, checked to reconcile with the rows read."""
    spec = parsed.spec
    in_table = conn.execute(f"SELECT count(*) FROM {parsed.stage}").fetchall()[0][0]
    accepted = in_table + merged
    reason_rows = conn.execute(
        f"SELECT split_part(reason, ':', 1) AS code, count(*) FROM {_stage(QUARANTINE)} "
        f"WHERE source_file = ? GROUP BY code ORDER BY code",
        [parsed.file_name],
    ).fetchall()
    reasons = {code: count for code, count in reason_rows}
    quarantined = sum(reasons.values())
    if accepted + quarantined != parsed.source.rows_in:
        # An internal invariant: every record read is either accepted or quarantined, exactly once.
        raise RuntimeError(
            f"{parsed.file_name}: {parsed.source.rows_in} rows read but {accepted} accepted + {quarantined} quarantined"
        )
    currencies: dict[str, int] = {}
    if spec is ORDERS and "currency" not in parsed.missing_columns:
        currency_rows = conn.execute(
            f"SELECT coalesce(currency, '{NO_CURRENCY}') AS code, count(*) FROM {_stage(spec.name)} "
            "GROUP BY code ORDER BY code"
        ).fetchall()
        currencies = {code: count for code, count in currency_rows}
    notes = parsed.notes
    unusable = quarantined - sum(reasons.get(code, 0) for code in BENIGN_REASONS)
    if unusable > MOSTLY_QUARANTINED_SHARE * parsed.source.rows_in:
        top = _top_reasons(conn, _stage(QUARANTINE), "reason", "source_file = ?", [parsed.file_name])
        notes += (f"{unusable} of {parsed.source.rows_in} rows quarantined; top reasons: {top}",)
    return FileReport(
        source_file=parsed.file_name,
        table_name=spec.name,
        rows_in=parsed.source.rows_in + parsed.rows_suppressed,
        rows_accepted=accepted,
        rows_quarantined=quarantined,
        rows_after_as_of=reasons.get(AFTER_AS_OF, 0),
        reasons=reasons,
        missing_columns=parsed.missing_columns,
        currencies=currencies,
        notes=notes,
        rows_merged=merged,
        ids_generated=in_table if parsed.ids_generated else 0,
        dropped_columns=parsed.dropped_columns,
        rows_suppressed=parsed.rows_suppressed,
    )


def _check_orders_mostly_usable(conn: duckdb.DuckDBPyConnection, report: FileReport) -> None:
    """Stop when most order rows are unusable: the file is read wrongly (a format), not merely dirty.

    Rows after the as-of date and exact duplicates do not count; customers and events only get a note.
    """
    unusable = report.rows_quarantined - sum(report.reasons.get(code, 0) for code in BENIGN_REASONS)
    if unusable > MOSTLY_QUARANTINED_SHARE * report.rows_in:
        top = _top_reasons(conn, _stage(QUARANTINE), "reason", "source_file = ?", [report.source_file])
        # A warning of the ingest (e.g. the rates against SEGMINT_CURRENCY) often says why: it joins the line.
        warnings = "".join(f"; {note}" for note in report.notes if note.startswith("warning:"))
        raise LandingError(
            f"{report.source_file}: {unusable} of {report.rows_in} rows quarantined, more than half, so the file "
            f"is probably not read as intended; top reasons: {top}{warnings}"
        )


def _check_some_order_by_as_of(
    conn: duckdb.DuckDBPyConnection, report: FileReport, as_of: date, first_order_date: date | None
) -> None:
    """Stop when no order is left on or before the as-of date (one given before the shop's first order): there
    would be no customer to score, and every step after the ingest would fail on empty tables instead."""
    if report.rows_accepted > 0:
        return
    top = _top_reasons(conn, _stage(QUARANTINE), "reason", "source_file = ?", [report.source_file])
    first = f", the first valid one on {first_order_date}" if first_order_date is not None else ""
    raise LandingError(
        f"{report.source_file}: no order on or before the as-of date {as_of} ({report.rows_in} rows, "
        f"{report.rows_after_as_of} after it{first}), so there is no customer to score; set SEGMINT_AS_OF to a "
        f"later date" + (f"; other reasons: {top}" if top else "")
    )


def _stage_empty_table(conn: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    conn.execute(f"CREATE OR REPLACE TABLE {_stage(spec.name)} ({_typed_columns_sql(spec)}, {LINEAGE_COLUMNS_SQL})")


def _stage_bookkeeping(
    conn: duckdb.DuckDBPyConnection,
    reports: tuple[FileReport, ...],
    as_of: date,
    horizon_days: int,
    landing_dir: Path,
    is_demo: bool,
    reporting_currency: str | None,
    source_format: str = "segmint",
) -> None:
    """Stage raw.ingest_log (one row per file read) and raw.run_context (exactly one row)."""
    conn.execute(f"CREATE OR REPLACE TABLE {_stage(INGEST_LOG)} ({INGEST_LOG_COLUMNS_SQL})")
    if reports:
        conn.executemany(
            f"INSERT INTO {_stage(INGEST_LOG)} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    r.source_file,
                    r.table_name,
                    r.rows_in,
                    r.rows_accepted,
                    r.rows_quarantined,
                    r.rows_after_as_of,
                    r.rows_merged,
                    r.ids_generated,
                    r.rows_suppressed,
                ]
                for r in reports
            ],
        )
    conn.execute(f"CREATE OR REPLACE TABLE {_stage(RUN_CONTEXT)} ({RUN_CONTEXT_COLUMNS_SQL})")
    conn.execute(
        f"INSERT INTO {_stage(RUN_CONTEXT)} VALUES (?, ?, ?, ?, ?, ?)",
        [as_of, horizon_days, str(landing_dir), is_demo, reporting_currency, source_format],
    )


def _swap_in_staged_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Replace every raw output table by its staged build in one transaction (all or nothing)."""
    conn.execute("BEGIN TRANSACTION")
    try:
        for name in OUTPUT_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {RAW_SCHEMA}.{name}")
            conn.execute(f"ALTER TABLE {_stage(name)} RENAME TO {name}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _drop_work_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"DROP TABLE IF EXISTS temp.{SUPPRESSED_TABLE}")
    for table in (*(spec.name for spec in LANDING_TABLES), realtime_log.STAGE_TABLE):
        for kind in ("src", "dups"):
            conn.execute(f"DROP TABLE IF EXISTS temp.{_work(kind, table)}")
    realtime_log.drop_work_tables(conn)


def _drop_stage_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for name in (*OUTPUT_TABLES, realtime_log.STAGE_TABLE):
        conn.execute(f"DROP TABLE IF EXISTS {_stage(name)}")


def ingest_landing(
    conn: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    as_of: date | None,
    horizon_days: int,
    is_demo: bool,
    options: LandingOptions | None = None,
    source_format: str | None = None,
    work_dir: Path | None = None,
    realtime_log_dir: Path | None = None,
    suppression: Suppression | None = None,
    append_inputs: Mapping[str, object] | None = None,
    allow_append: bool = True,
) -> LandingReport:
    """(Re)write raw.orders/customers/events/fx_rates/quarantine/ingest_log/run_context from the landing dir.

    `as_of=None` means the last accepted order date. A file that cannot be read at all, or an orders file whose
    rows are mostly unusable, raises LandingError (one line) and leaves the previous raw tables untouched. A folder
    of GA4, Segment or Shopify exports (detected, or named by `source_format`) is first translated into contract
    files under `work_dir` (landing/formats/). The `events-*.jsonl` files of `realtime_log_dir` (the real-time
    service's durable log) are a second source of events (landing/realtime_log.py). Rows of persons on the
    `suppression` list are dropped unread.

    `append_inputs`: digests of what the ingest reads besides its arguments (landing and log file contents, the
    suppression list, the code; orchestration/lib/ingest_fingerprint.py). Given, and equal to those the last
    ingest into this warehouse recorded, with an as-of date not before its own, the ingest appends the held
    records now due instead of reading every file (landing/append.py), unless `allow_append` is False; the
    report's `ingest_mode` and `ingest_mode_reason` say which ran and why. None: a full ingest, and the next
    one is full too.
    """
    options = options or LandingOptions()
    if options.special_categories is None:
        options = replace(options, special_categories=load_denylist())
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be a positive number of days, got {horizon_days}")
    landing_dir = Path(landing_dir).resolve()
    if not landing_dir.is_dir():
        raise LandingError(f"{landing_dir}: landing directory does not exist")
    log_files = realtime_log.event_log_files(realtime_log_dir)
    inputs = None
    if append_inputs is not None:
        # The arguments that shape the tables join the caller's digests: any change to them reads every file.
        inputs = {
            **append_inputs,
            "arguments": {
                "landing_dir": str(landing_dir),
                "horizon_days": horizon_days,
                "is_demo": is_demo,
                "source_format": source_format,
                "reporting_currency": options.reporting_currency,
                "date_format": options.date_format,
                "csv_delimiter": options.csv_delimiter,
                "special_categories": options.special_categories.version if options.special_categories else None,
                "realtime_log_files": sorted(str(path) for path in log_files),
            },
        }
    if inputs is None:
        mode_reason = "no input digests given (an append needs them)"
    elif not allow_append:
        mode_reason = "forced (SEGMINT_FORCE_INGEST=1)"
    else:
        appended = _try_append(conn, as_of, inputs, log_files)
        if isinstance(appended, LandingReport):
            return appended
        mode_reason = appended
    translation = formats.translate_landing(conn, landing_dir, source_format, work_dir)
    contract_dir = translation.contract_dir if translation is not None else landing_dir
    log_work = _log_work_dir(work_dir) if log_files else None
    paths = {spec.name: find_landing_file(contract_dir, spec) for spec in LANDING_TABLES}
    if paths[ORDERS.name] is None:
        raise LandingError(f"orders.csv: file is missing from {landing_dir} (expected orders.csv or orders.parquet)")
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    fx_path = paths[FX_RATES.name]
    reporting: list[str | None] = [options.reporting_currency]

    def convert_orders() -> tuple[str, ...]:
        fx_file = fx_path.name if fx_path is not None else None
        reporting[0], note = _convert_orders(conn, options, fx_file)
        return (note,) if note else ()

    # The rates are parsed first: the orders need them before their duplicates are judged.
    parse_order = sorted(LANDING_TABLES, key=lambda spec: spec is not FX_RATES)
    try:
        with _ingest_session(conn):
            parsed_by_name = {
                # The lineage of a translated row tells no duplicates apart: a re-sent source record is one.
                spec.name: _parse_file(
                    conn,
                    spec,
                    path,
                    options,
                    convert_orders if spec is ORDERS else None,
                    not_compared=ORIGIN_COLUMN_NAMES,
                    suppression=suppression,
                )
                for spec in parse_order
                if (path := paths[spec.name]) is not None
            }
            parsed_files = [parsed_by_name[spec.name] for spec in LANDING_TABLES if spec.name in parsed_by_name]
            log_parsed = _parse_event_log(
                conn, log_files, realtime_log_dir, log_work, parsed_by_name.get(EVENTS.name), suppression
            )
            default_as_of, first_order_date = conn.execute(
                valid_date_range_sql(ORDERS, _stage(ORDERS.name))
            ).fetchall()[0]
            effective_as_of = as_of if as_of is not None else _default_as_of(conn, parsed_by_name[ORDERS.name])
            conn.execute(f"CREATE OR REPLACE TABLE {_stage(QUARANTINE)} ({QUARANTINE_COLUMNS_SQL})")
            conn.execute(f"CREATE OR REPLACE TABLE {_stage(append.HELD)} ({append.held_columns_sql()})")
            # Held records serve only an append, which needs recorded input digests.
            hold = inputs is not None
            reports = tuple(_write_file(conn, parsed, effective_as_of, hold) for parsed in parsed_files)
            if translation is not None:
                # Before the stop check, so that its line carries a translator's warning (e.g. consent-denied orders).
                reports = tuple(
                    replace(r, notes=(*r.notes, *translation.notes.get(r.source_file, ()))) for r in reports
                )
            else:
                unread = unread_data_files_note(landing_dir, [path for path in paths.values() if path is not None])
                reports = tuple(
                    replace(r, notes=(*r.notes, *unread)) if r.table_name == ORDERS.name else r for r in reports
                )
            _check_orders_mostly_usable(conn, reports[0])
            _check_some_order_by_as_of(conn, reports[0], effective_as_of, first_order_date)
            log_report = _write_file(conn, log_parsed, effective_as_of, hold=False) if log_parsed is not None else None
            for spec in LANDING_TABLES:
                if paths[spec.name] is None:
                    _stage_empty_table(conn, spec)
            _stage_bookkeeping(
                conn,
                reports,
                effective_as_of,
                horizon_days,
                landing_dir,
                is_demo,
                reporting[0],
                formats.source_format_of(translation),
            )
            scrubbed = 0
            if translation is not None:
                generated = formats.stage_translation(conn, translation, _stage)
                scrubbed = _scrub_translator_rejects(conn, options)
                # Orders kept under surrogate ids (landing/formats/common.py:order_id_sql) are counted and said.
                reports = tuple(
                    replace(r, ids_generated=n, notes=(*r.notes, formats.generated_ids_note(r.table_name, n)))
                    if (n := generated.get(r.table_name, 0)) and r.source_file in translation.work_files
                    else r
                    for r in reports
                )
            if log_report is not None:
                log_report = _stage_event_log(conn, log_report)
            report = LandingReport(
                as_of=effective_as_of,
                files=reports,
                missing_files=tuple(spec.name for spec in LANDING_TABLES if paths[spec.name] is None),
                reporting_currency=reporting[0],
                source_format=formats.source_format_of(translation),
                realtime_log=log_report,
                special_category_records_scrubbed=scrubbed,
                ingest_mode=append.FULL,
                ingest_mode_reason=mode_reason,
            )
            ids_generated = [parsed.file_name for parsed in parsed_files if parsed.ids_generated]
            # The report names the special-category columns it dropped, and no table may hold their names (GDPR
            # art. 9): such an ingest records no digests, so the next one is full again and says so.
            dropped = any(file.dropped_columns for file in (*reports, *([log_report] if log_report else [])))
            state_report = replace(
                report,
                files=tuple(_without_dropped_names(file) for file in reports),
                realtime_log=_without_dropped_names(log_report) if log_report is not None else None,
            )
            _stage_state(conn, None if dropped else inputs, effective_as_of, default_as_of, state_report, ids_generated)
            _swap_in_staged_tables(conn)
    except BaseException:
        _drop_stage_tables(conn)
        raise
    finally:
        _drop_work_tables(conn)
        formats.cleanup(translation)
        if log_work is not None and work_dir is None:
            shutil.rmtree(log_work, ignore_errors=True)
    return report


def _without_dropped_names(file: FileReport) -> FileReport:
    """The report of a file without the special-category column names it dropped (nor the notes naming them)."""
    named = {column.note() for column in file.dropped_columns}
    return replace(file, dropped_columns=(), notes=tuple(note for note in file.notes if note not in named))


def _stage_state(
    conn: duckdb.DuckDBPyConnection,
    inputs: Mapping[str, object] | None,
    as_of: date,
    default_as_of: date | None,
    report: LandingReport,
    ids_generated: list[str],
) -> None:
    """Stage raw.ingest_state: what this ingest read (NULL inputs: no append may follow it) and its report."""
    conn.execute(f"CREATE OR REPLACE TABLE {_stage(append.STATE)} ({append.STATE_COLUMNS_SQL})")
    state = {"report": asdict(report), "ids_generated": ids_generated}
    conn.execute(
        f"INSERT INTO {_stage(append.STATE)} VALUES (?, ?, ?, ?, ?)",
        [
            append.STATE_VERSION,
            append.inputs_json(inputs) if inputs is not None else None,
            as_of,
            default_as_of,
            json.dumps(state, sort_keys=True, default=str),
        ],
    )


def _file_report_from_dict(values: dict) -> FileReport:
    return FileReport(
        **values
        | {
            "missing_columns": tuple(values["missing_columns"]),
            "notes": tuple(values["notes"]),
            "dropped_columns": tuple(DroppedColumn(**column) for column in values["dropped_columns"]),
        }
    )


def _report_from_dict(values: dict) -> LandingReport:
    log = values["realtime_log"]
    return LandingReport(
        **values
        | {
            "as_of": date.fromisoformat(values["as_of"]),
            "appended_after": date.fromisoformat(after) if (after := values.get("appended_after")) else None,
            "files": tuple(_file_report_from_dict(f) for f in values["files"]),
            "missing_files": tuple(values["missing_files"]),
            "realtime_log": _file_report_from_dict(log) if log is not None else None,
        }
    )


def _table_exists(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [RAW_SCHEMA, name],
        ).fetchall()[0][0]
    )


def _try_append(
    conn: duckdb.DuckDBPyConnection, as_of: date | None, inputs: Mapping[str, object], log_files: list[Path]
) -> LandingReport | str:
    """The report of an append ingest (landing/append.py), or why the full ingest must run instead."""
    if not all(_table_exists(conn, name) for name in OUTPUT_TABLES):
        return "no previous ingest state in the warehouse"
    rows = conn.execute(f"SELECT version, inputs, as_of, default_as_of, report FROM {RAW_SCHEMA}.{append.STATE}")
    state = rows.fetchall()
    if len(state) != 1 or state[0][0] != append.STATE_VERSION or state[0][1] is None:
        return NO_DIGESTS
    _, previous_inputs, previous_as_of, default_as_of, saved = state[0]
    changes = append.changed_inputs(json.loads(previous_inputs), json.loads(append.inputs_json(inputs)))
    if changes:
        return f"inputs changed since the ingest at {previous_as_of}: {'; '.join(changes)}"
    if log_files:
        return "the real-time log is read: appends cover the shop's landing files only"
    saved = json.loads(saved)
    previous = _report_from_dict(saved["report"])
    if previous.source_format != formats.SEGMINT or previous.realtime_log is not None:
        return "a translated source format or a real-time log: appends cover segmint's contract files only"
    new_as_of = as_of if as_of is not None else default_as_of
    if new_as_of is None:
        return "no as-of date given and the last ingest found no valid order to derive one"
    if new_as_of < previous_as_of:
        return f"the as-of date moved backwards ({previous_as_of} -> {new_as_of})"
    if not _tables_match(conn, previous):
        return "the raw tables do not hold the rows the last ingest recorded"
    with _ingest_session(conn):
        conn.execute("BEGIN TRANSACTION")
        try:
            files = tuple(
                _append_file(conn, report, new_as_of, report.source_file in saved["ids_generated"])
                for report in previous.files
            )
            conn.execute(
                append.reason_as_of_sql(f"{RAW_SCHEMA}.{QUARANTINE}", [f.source_file for f in files], new_as_of)
            )
            conn.execute(f"UPDATE {RAW_SCHEMA}.{RUN_CONTEXT} SET as_of = ?", [new_as_of])
            moved = sum(f.rows_accepted - p.rows_accepted for f, p in zip(files, previous.files, strict=True))
            rows_appended = {spec.name: 0 for spec in LANDING_TABLES}
            for f, p in zip(files, previous.files, strict=True):
                rows_appended[f.table_name] += (f.rows_accepted - f.rows_merged) - (p.rows_accepted - p.rows_merged)
            report = replace(
                previous,
                as_of=new_as_of,
                files=files,
                ingest_mode=append.APPEND,
                ingest_mode_reason=(
                    f"inputs unchanged since the ingest at {previous_as_of}; {moved} held records at or before "
                    f"{new_as_of} appended"
                ),
                appended_after=previous_as_of,
                rows_appended=rows_appended,
            )
            state = {"report": asdict(report), "ids_generated": saved["ids_generated"]}
            conn.execute(
                f"UPDATE {RAW_SCHEMA}.{append.STATE} SET as_of = ?, report = ?",
                [new_as_of, json.dumps(state, sort_keys=True, default=str)],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return report


def _tables_match(conn: duckdb.DuckDBPyConnection, report: LandingReport) -> bool:
    """Whether raw.* holds the rows the report counts (a warehouse changed behind the ingest's back does not)."""
    expected = {spec.name: 0 for spec in LANDING_TABLES}
    for f in report.files:
        expected[f.table_name] += f.rows_accepted - f.rows_merged
    expected[QUARANTINE] = sum(f.rows_quarantined for f in report.files)
    expected[append.HELD] = sum(f.rows_after_as_of for f in report.files)
    counts = " UNION ALL ".join(f"SELECT {sql_string(name)}, count(*) FROM {RAW_SCHEMA}.{name}" for name in expected)
    return dict(conn.execute(counts).fetchall()) == expected


def _append_file(conn: duckdb.DuckDBPyConnection, previous: FileReport, as_of: date, ids_generated: bool) -> FileReport:
    """Move one file's held records now due into its raw table and out of the quarantine; its new report."""
    spec, held, name = append.spec_of(previous.table_name), f"{RAW_SCHEMA}.{append.HELD}", previous.source_file
    due = f"{append.due_sql(spec, as_of)} AND source_file = {sql_string(name)}"
    moved, merged = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {ROW_REASON} = '{MERGED_LINE}') FROM {held} WHERE {due}"
    ).fetchall()[0]
    currencies = dict(previous.currencies)
    if spec is ORDERS and "currency" not in previous.missing_columns:
        currency = append.held_column(spec, "currency")
        for code, count in conn.execute(
            f"SELECT coalesce({currency}, '{NO_CURRENCY}'), count(*) FROM {held} WHERE {due} AND {ROW_REASON} IS NULL "
            "GROUP BY ALL"
        ).fetchall():
            currencies[code] = currencies.get(code, 0) + count
    conn.execute(append.move_due_records_sql(spec, held, as_of, name))
    deleted = conn.execute(
        f"DELETE FROM {RAW_SCHEMA}.{QUARANTINE} WHERE source_file = ? AND starts_with(reason, '{AFTER_AS_OF}: ') "
        f"AND source_row IN (SELECT source_row FROM {held} WHERE {due})",
        [name],
    ).fetchall()[0][0]
    if deleted != moved:
        # An internal invariant: every held record has its after_as_of quarantine row.
        raise RuntimeError(f"{name}: {moved} held records due but {deleted} after_as_of quarantine rows")
    conn.execute(f"DELETE FROM {held} WHERE {due}")
    reasons = dict(previous.reasons)
    reasons[AFTER_AS_OF] = reasons.get(AFTER_AS_OF, 0) - moved
    if not reasons[AFTER_AS_OF]:
        del reasons[AFTER_AS_OF]
    report = replace(
        previous,
        rows_accepted=previous.rows_accepted + moved,
        rows_quarantined=previous.rows_quarantined - moved,
        rows_after_as_of=previous.rows_after_as_of - moved,
        reasons=dict(sorted(reasons.items())),
        currencies=dict(sorted(currencies.items())),
        rows_merged=previous.rows_merged + merged,
        ids_generated=previous.ids_generated + (moved - merged if ids_generated else 0),
    )
    if report.rows_accepted + report.rows_quarantined + report.rows_suppressed != report.rows_in:
        raise RuntimeError(f"{name}: counts no longer reconcile after the append")
    conn.execute(
        f"UPDATE {RAW_SCHEMA}.{INGEST_LOG} SET rows_accepted = ?, rows_quarantined = ?, rows_after_as_of = ?, "
        "rows_merged = ?, ids_generated = ? WHERE source_file = ? AND table_name = ?",
        [
            report.rows_accepted,
            report.rows_quarantined,
            report.rows_after_as_of,
            report.rows_merged,
            report.ids_generated,
            name,
            spec.name,
        ],
    )
    return report


def _log_work_dir(work_dir: Path | None) -> Path:
    """Where the log is translated: `<work_dir>/realtime/` (kept for inspection), else a temporary folder."""
    if work_dir is None:
        return Path(tempfile.mkdtemp(prefix="segmint-realtime-log-"))
    folder = Path(work_dir) / "realtime"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _parse_event_log(
    conn: duckdb.DuckDBPyConnection,
    files: list[Path],
    log_dir: Path | None,
    work: Path | None,
    events: _ParsedFile | None,
    suppression: Suppression | None = None,
) -> _ParsedFile | None:
    """The real-time log's events parsed into their own stage, ids already in the shop's events file set aside."""
    if not files or work is None:
        return None
    path = work / realtime_log.WORK_FILE
    realtime_log.translate_event_log(conn, files, path, Path(log_dir) if log_dir else None)
    # The log's records are JSON values: no delimiter or date-order setting of the shop's CSV files applies.
    parsed = _parse_file(
        conn,
        EVENTS,
        path,
        LandingOptions(),
        table=realtime_log.STAGE_TABLE,
        not_compared=ORIGIN_COLUMN_NAMES,
        suppression=suppression,
    )
    if events is not None:
        conn.execute(realtime_log.mark_landing_duplicates_sql(parsed.stage, events.stage, events.file_name, ROW_REASON))
    return parsed


def _stage_event_log(conn: duckdb.DuckDBPyConnection, report: FileReport) -> FileReport:
    """Move the log's events into the staged raw.events, one raw.ingest_log row per log file; their summed report."""
    rows = realtime_log.stage_event_log(
        conn, _stage(realtime_log.STAGE_TABLE), _stage(EVENTS.name), _stage(QUARANTINE), _stage(INGEST_LOG)
    )
    files = ", ".join(sql_string(name) for name, *_ in rows) or "NULL"
    reasons = dict(
        conn.execute(
            f"SELECT split_part(reason, ':', 1) AS code, count(*) FROM {_stage(QUARANTINE)} "
            f"WHERE source_file IN ({files}) GROUP BY code ORDER BY code"
        ).fetchall()
    )
    return replace(
        report,
        source_file=f"{realtime_log.LOG_SUBDIR}/{realtime_log.EVENT_LOG_PATTERN}",
        rows_in=sum(row[1] for row in rows),
        rows_accepted=sum(row[2] for row in rows),
        rows_quarantined=sum(row[3] for row in rows),
        rows_after_as_of=sum(row[4] for row in rows),
        rows_suppressed=sum(row[5] for row in rows),
        reasons=reasons,
        notes=(*report.notes, f"{len(rows)} log file(s) read"),
    )


def quarantine_summary(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Quarantined rows per source file and reason code (columns: source_file, reason, rows), largest first."""
    return conn.execute(
        f"SELECT source_file, split_part(reason, ':', 1) AS reason, count(*) AS rows "
        f"FROM {RAW_SCHEMA}.{QUARANTINE} GROUP BY ALL ORDER BY rows DESC, source_file, reason"
    ).df()
