"""Ingest of the landing zone into the typed `raw.*` tables, with every rejected record kept in `raw.quarantine`.

All row work happens in DuckDB SQL. Each output table is built under a staging name and the six tables
are swapped in one transaction, so a run killed mid-way leaves the previous raw tables readable, and the
same input always gives identical tables (rows ordered by source_row, no wall-clock values).

A file is parsed once, straight into its staging table, in record order (preserve_insertion_order); the few
rejected records are then copied to quarantine and deleted, and the reason column dropped. Writing a table to
the database file is the costliest step of a large ingest, so every record is written once and only once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from landing import formats
from landing.contract import (
    AFTER_AS_OF,
    INGEST_LOG_COLUMNS_SQL,
    LANDING_TABLES,
    LINEAGE_COLUMNS_SQL,
    ORDERS,
    ORIGIN_COLUMN_NAMES,
    QUARANTINE_COLUMNS_SQL,
    RAW_SCHEMA,
    RUN_CONTEXT_COLUMNS_SQL,
    TableSpec,
)
from landing.rules import (
    REASON,
    ROW_REASON,
    delete_rejected_sql,
    duplicate_keys_sql,
    judged_records_sql,
    last_valid_date_sql,
    mark_duplicates_sql,
    parse_records_sql,
    raw_record_json_sql,
)
from landing.sources import (
    RECORD_INDEX,
    LandingError,
    LoadedSource,
    find_landing_file,
    load_source,
    parquet_read_errors,
    resolve_columns,
    sql_string,
)

QUARANTINE = "quarantine"
INGEST_LOG = "ingest_log"
RUN_CONTEXT = "run_context"
OUTPUT_TABLES = tuple(spec.name for spec in LANDING_TABLES) + (QUARANTINE, INGEST_LOG, RUN_CONTEXT)
STAGE_PREFIX = "_stage_"
WORK_PREFIX = "_landing_"
NO_CURRENCY = "(none)"
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


@dataclass(frozen=True)
class LandingReport:
    """One ingest run: the as-of date used, one report per file read, and the optional files not found."""

    as_of: date
    files: tuple[FileReport, ...]
    missing_files: tuple[str, ...]
    # segmint | ga4 | segment | shopify: the format the landing folder was read as (landing/formats/).
    source_format: str = "segmint"


def _stage(name: str) -> str:
    return f"{RAW_SCHEMA}.{STAGE_PREFIX}{name}"


def _work(kind: str, spec: TableSpec) -> str:
    return f"{WORK_PREFIX}{kind}_{spec.name}"


def _typed_columns_sql(spec: TableSpec) -> str:
    return ", ".join(f"{column.name} {column.sql_type}" for column in spec.columns)


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


def _source_read_errors(source: LoadedSource, file_name: str) -> AbstractContextManager[None]:
    # A Parquet file is read where it lies, so any statement scanning it may meet a damaged page.
    return parquet_read_errors(file_name) if source.is_parquet else nullcontext()


def _parse_file(conn: duckdb.DuckDBPyConnection, spec: TableSpec, path: Path) -> _ParsedFile:
    """Load one landing file and parse every record into its staging table (types, record-level reasons, duplicates)."""
    source = load_source(conn, path, _work("src", spec))
    positions = resolve_columns(spec, source.header, path.name)
    if spec.file_required and source.rows_in == 0:
        raise LandingError(f"{path.name}: no data rows")
    stage, duplicates_table = _stage(spec.name), _work("dups", spec)
    parsed = parse_records_sql(spec, source.relation, positions, source.types)
    columns = ", ".join(f"CAST({column.name} AS {column.sql_type}) AS {column.name}" for column in spec.columns)
    with _source_read_errors(source, path.name):
        conn.execute(
            f"CREATE OR REPLACE TABLE {stage} AS SELECT {columns}, {sql_string(path.name)} AS source_file, source_row, "
            f"{ROW_REASON} FROM ({parsed})"
        )
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {duplicates_table} AS {duplicate_keys_sql(spec, stage)}")
    conn.execute(mark_duplicates_sql(spec, stage, duplicates_table))
    conn.execute(f"DROP TABLE temp.{duplicates_table}")
    # The origin columns are written by format translators only; their absence is no news to a user.
    missing = tuple(name for name in spec.column_names if name not in positions and name not in ORIGIN_COLUMN_NAMES)
    return _ParsedFile(spec, path.name, source, missing)


def _default_as_of(conn: duckdb.DuckDBPyConnection, orders: _ParsedFile) -> date:
    """The last accepted order date; no valid order at all -> LandingError (there is nothing to model)."""
    last = conn.execute(last_valid_date_sql(ORDERS, _stage(ORDERS.name))).fetchall()[0][0]
    if last is None:
        raise LandingError(
            f"{orders.file_name}: no order passed validation ({orders.source.rows_in} rows, all quarantined), "
            "so the as-of date cannot be derived"
        )
    return last


def _write_file(conn: duckdb.DuckDBPyConnection, parsed: _ParsedFile, as_of: date) -> FileReport:
    """Move one file's rejected records from its staging table to staging quarantine, leaving the accepted rows."""
    spec, source, stage = parsed.spec, parsed.source, _stage(parsed.spec.name)
    judged = judged_records_sql(spec, stage, as_of)
    raw_json = raw_record_json_sql(source.header, source.types, "s")
    with _source_read_errors(source, parsed.file_name):
        conn.execute(
            f"INSERT INTO {_stage(QUARANTINE)} SELECT {sql_string(parsed.file_name)}, j.source_row, {raw_json}, "
            f"j.{REASON} FROM ({judged}) AS j JOIN {source.relation} AS s ON s.{RECORD_INDEX} = j.source_row - 1 "
            f"WHERE j.{REASON} IS NOT NULL ORDER BY j.source_row"
        )
    # Deleting keeps the remaining rows in insertion order, which is source_row order: no ORDER BY needed.
    conn.execute(delete_rejected_sql(spec, stage, as_of))
    conn.execute(f"ALTER TABLE {stage} DROP COLUMN {ROW_REASON}")
    # Free the work table now: with 30 M events, holding every file's copies at once costs gigabytes.
    conn.execute(f"DROP TABLE IF EXISTS temp.{_work('src', spec)}")
    return _file_report(conn, parsed)


def _file_report(conn: duckdb.DuckDBPyConnection, parsed: _ParsedFile) -> FileReport:
    """Counts for one written file, checked to reconcile with the rows read."""
    spec = parsed.spec
    accepted = conn.execute(f"SELECT count(*) FROM {_stage(spec.name)}").fetchall()[0][0]
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
    return FileReport(
        source_file=parsed.file_name,
        table_name=spec.name,
        rows_in=parsed.source.rows_in,
        rows_accepted=accepted,
        rows_quarantined=quarantined,
        rows_after_as_of=reasons.get(AFTER_AS_OF, 0),
        reasons=reasons,
        missing_columns=parsed.missing_columns,
        currencies=currencies,
        notes=parsed.source.notes,
    )


def _stage_empty_table(conn: duckdb.DuckDBPyConnection, spec: TableSpec) -> None:
    conn.execute(f"CREATE OR REPLACE TABLE {_stage(spec.name)} ({_typed_columns_sql(spec)}, {LINEAGE_COLUMNS_SQL})")


def _stage_bookkeeping(
    conn: duckdb.DuckDBPyConnection, reports: tuple[FileReport, ...], as_of: date, horizon_days: int,
    landing_dir: Path, is_demo: bool, source_format: str = "segmint",
) -> None:
    """Stage raw.ingest_log (one row per file read) and raw.run_context (exactly one row)."""
    conn.execute(f"CREATE OR REPLACE TABLE {_stage(INGEST_LOG)} ({INGEST_LOG_COLUMNS_SQL})")
    if reports:
        conn.executemany(
            f"INSERT INTO {_stage(INGEST_LOG)} VALUES (?, ?, ?, ?, ?, ?)",
            [
                [r.source_file, r.table_name, r.rows_in, r.rows_accepted, r.rows_quarantined, r.rows_after_as_of]
                for r in reports
            ],
        )
    conn.execute(f"CREATE OR REPLACE TABLE {_stage(RUN_CONTEXT)} ({RUN_CONTEXT_COLUMNS_SQL})")
    conn.execute(
        f"INSERT INTO {_stage(RUN_CONTEXT)} VALUES (?, ?, ?, ?, ?)",
        [as_of, horizon_days, str(landing_dir), is_demo, source_format],
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
    for spec in LANDING_TABLES:
        for kind in ("src", "dups"):
            conn.execute(f"DROP TABLE IF EXISTS temp.{_work(kind, spec)}")


def _drop_stage_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for name in OUTPUT_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS {_stage(name)}")


def ingest_landing(
    conn: duckdb.DuckDBPyConnection, landing_dir: Path, as_of: date | None, horizon_days: int, is_demo: bool,
    source_format: str | None = None, work_dir: Path | None = None,
) -> LandingReport:
    """(Re)write raw.orders/customers/events/quarantine/ingest_log/run_context from the landing dir.

    `as_of=None` means the last accepted order date. A file that cannot be read at all raises
    LandingError (one line) and leaves the previous raw tables untouched. A folder of GA4, Segment or
    Shopify exports (detected, or named by `source_format`) is first translated into contract files under
    `work_dir` (landing/formats/).
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be a positive number of days, got {horizon_days}")
    landing_dir = Path(landing_dir).resolve()
    if not landing_dir.is_dir():
        raise LandingError(f"{landing_dir}: landing directory does not exist")
    translation = formats.translate_landing(conn, landing_dir, source_format, work_dir)
    contract_dir = translation.contract_dir if translation is not None else landing_dir
    paths = {spec.name: find_landing_file(contract_dir, spec) for spec in LANDING_TABLES}
    if paths[ORDERS.name] is None:
        raise LandingError(f"orders.csv: file is missing from {landing_dir} (expected orders.csv or orders.parquet)")
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    try:
        with _ingest_session(conn):
            parsed_files = [
                _parse_file(conn, spec, path) for spec in LANDING_TABLES if (path := paths[spec.name]) is not None
            ]
            effective_as_of = as_of if as_of is not None else _default_as_of(conn, parsed_files[0])
            conn.execute(f"CREATE OR REPLACE TABLE {_stage(QUARANTINE)} ({QUARANTINE_COLUMNS_SQL})")
            reports = tuple(_write_file(conn, parsed, effective_as_of) for parsed in parsed_files)
            for spec in LANDING_TABLES:
                if paths[spec.name] is None:
                    _stage_empty_table(conn, spec)
            _stage_bookkeeping(
                conn, reports, effective_as_of, horizon_days, landing_dir, is_demo, formats.source_format_of(translation)
            )
            if translation is not None:
                formats.stage_translation(conn, translation, _stage)
            _swap_in_staged_tables(conn)
    except BaseException:
        _drop_stage_tables(conn)
        raise
    finally:
        _drop_work_tables(conn)
        formats.cleanup(translation)
    missing = tuple(spec.name for spec in LANDING_TABLES if paths[spec.name] is None)
    return LandingReport(effective_as_of, reports, missing, formats.source_format_of(translation))


def quarantine_summary(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Quarantined rows per source file and reason code (columns: source_file, reason, rows), largest first."""
    return conn.execute(
        f"SELECT source_file, split_part(reason, ':', 1) AS reason, count(*) AS rows "
        f"FROM {RAW_SCHEMA}.{QUARANTINE} GROUP BY ALL ORDER BY rows DESC, source_file, reason"
    ).df()
