"""Finding a landing file and loading it as a DuckDB relation with one row per data record.

The relation has one column per header field, named by position (`c0`, `c1`, ...) so that any header text
is safe in SQL, plus `record_index`, the 0-based record number. CSV is copied as text into a temp table
(`rowid` = record order); Parquet is read in place with its own column types, so the rules can check a
typed value without casting it to text and back (landing/rules.py).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb

from landing.contract import (
    CSV_DELIMITERS,
    DIALECT_SAMPLE_RECORDS,
    STRIPPED_WHITESPACE,
    SUPPORTED_EXTENSIONS,
    TableSpec,
)

# Enough bytes to hold any real header line; the header is read by Python's csv module so that
# segmint, not DuckDB's sniffer, decides the column names (the sniffer can silently fall back to a
# single column or skip rows on a messy file).
HEADER_PROBE_BYTES = 1 << 20
UTF8_BOM = "\ufeff"
FALLBACK_ENCODING = "latin-1"
# A UTF-8 BOM is harmless in a header name and invisible to users, so it is stripped with the spaces.
HEADER_STRIP_CHARS = STRIPPED_WHITESPACE + UTF8_BOM
RECORD_INDEX = "record_index"
TEXT_TYPE = "VARCHAR"
# DuckDB's virtual column numbering the rows of a Parquet file (hidden when the file has a column of that name).
PARQUET_ROW_NUMBER = "file_row_number"
# Compressed CSV, by suffix (Redshift UNLOAD GZIP/ZSTD writes `.gz`/`.zst`, Snowflake `.csv.gz`/`.csv.zst`): DuckDB's
# read_csv decompresses both with its own bundled codecs (no extension to download).
CSV_COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
# DuckDB adds a column for every `key=value` folder in a file's path (Hive partitioning, auto-detected), the landing
# folder's own path included: a file is read as its own columns alone, wherever it lies (landing/README.md).
FILE_COLUMNS_ONLY = "hive_partitioning=false"


class LandingError(Exception):
    """A user's file cannot be read at all; str() is ONE clear line naming file, column and row."""


@dataclass(frozen=True)
class LoadedSource:
    """A landing file ready to read: `relation` has record_index and columns c0..cN typed as `types`."""

    relation: str
    header: tuple[str, ...]
    types: tuple[str, ...]
    rows_in: int
    notes: tuple[str, ...]
    is_parquet: bool = False
    delimiter: str = ","


def find_landing_file(landing_dir: Path, spec: TableSpec) -> Path | None:
    """The one `<name>.csv` or `<name>.parquet` in the landing dir, None when absent; both -> LandingError."""
    present = [landing_dir / f"{spec.name}.{ext}" for ext in SUPPORTED_EXTENSIONS]
    present = [path for path in present if path.is_file()]
    if len(present) > 1:
        names = " and ".join(path.name for path in present)
        raise LandingError(f"{spec.name}: both {names} exist in {landing_dir}; keep only one of them")
    return present[0] if present else None


# Names of data files a shop's tool may drop next to the contract files (a daily `orders_2026-06-27.csv`, a
# browser's `orders (1).csv`): never read, so named rather than ignored silently.
DATA_FILE_SUFFIXES = (".csv", ".parquet", ".tsv", ".json", ".jsonl", ".ndjson", ".gz", ".zst", ".avro", ".xlsx")


def unread_data_files_note(landing_dir: Path, read: Collection[Path]) -> tuple[str, ...]:
    """A warning naming the data files of a contract landing folder that the ingest does not read, () if none."""
    read_names = {path.name for path in read}
    unread = sorted(
        path.name
        for path in landing_dir.iterdir()
        if path.is_file() and path.name not in read_names and path.name.lower().endswith(DATA_FILE_SUFFIXES)
    )
    if not unread:
        return ()
    return (
        f"warning: not read: {', '.join(unread)} (the landing folder is read as segmint's files: one orders, "
        "customers, events and fx_rates file each, `<name>.csv` or `<name>.parquet`; merge a day's new rows into "
        "that file, or remove a copy)",
    )


def sql_string(value: str) -> str:
    """`value` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(value: str) -> str:
    """`value` as a quoted SQL identifier."""
    return '"' + value.replace('"', '""') + '"'


def source_column(position: int) -> str:
    """The positional column name of a loaded source table."""
    return f"c{position}"


def csv_compression(path: Path) -> str:
    """How a CSV file is compressed, by its suffix: `gzip`, `zstd` or `none` (read_csv's `compression` values)."""
    return CSV_COMPRESSIONS.get(path.suffix.lower(), "none")


def _open_decompressed(path: Path, compression: str) -> BinaryIO:
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "zstd":
        import pyarrow  # only for zstd files: the stdlib has no zstd before Python 3.14

        return pyarrow.input_stream(str(path), compression="zstd")
    return path.open("rb")


def _read_probe(path: Path) -> tuple[str, bool]:
    """The first bytes of a file as text, and whether that is the whole file; a compressed file (csv_compression)
    is read decompressed, as DuckDB's read_csv reads it."""
    compression = csv_compression(path)
    try:
        with _open_decompressed(path, compression) as handle:
            probe = handle.read(HEADER_PROBE_BYTES)
    except (OSError, EOFError) as error:  # gzip.BadGzipFile and pyarrow's zstd errors are OSErrors
        if compression == "none":
            raise
        raise LandingError(f"{path.name}: cannot be read as {compression} ({error})") from None
    return _decode_probe(probe).lstrip(UTF8_BOM), len(probe) < HEADER_PROBE_BYTES


def detect_delimiter(text: str, complete: bool) -> str:
    """The delimiter of a CSV text: deterministic, from the header line and the next DIALECT_SAMPLE_RECORDS records.

    A candidate (`,` `;` tab `|`) fits when it splits the header into more than one field and every sampled
    record into the same number of fields (quotes honoured). Of the fitting candidates the one giving the most
    header fields wins, ties in that order; when none fits, the one splitting the header most (so the error
    names the inconsistent line), and `,` for a one-column file. A record cut by the end of the probe is not
    sampled.
    """
    best, best_fields, best_fits = ",", 1, False
    for delimiter in CSV_DELIMITERS:
        records = []
        for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            records.append(record)
            if len(records) > DIALECT_SAMPLE_RECORDS + 1:
                break
        if not complete and len(records) <= DIALECT_SAMPLE_RECORDS + 1:
            records = records[:-1]  # the last record may be cut by the probe
        if not records:
            continue
        fields = len(records[0])
        fits = fields > 1 and all(len(record) == fields for record in records[1:] if record)
        if (fits, fields) > (best_fits, best_fields):
            best, best_fields, best_fits = delimiter, fields, fits
    return best


def read_csv_header(path: Path, delimiter: str | None = None) -> tuple[str, ...]:
    """The header field names of a CSV file (surrounding spaces and BOM stripped); () when the file is blank."""
    text, complete = _read_probe(path)
    delimiter = delimiter or detect_delimiter(text, complete)
    first_record = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    header = tuple(field.strip(HEADER_STRIP_CHARS) for field in first_record)
    return () if all(name == "" for name in header) else header


def _decode_probe(probe: bytes) -> str:
    """The first bytes of a file as text: UTF-8, else latin-1 (every byte is valid latin-1)."""
    try:
        return probe.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut by the probe's end is not an encoding problem.
        if len(probe) == HEADER_PROBE_BYTES and error.start >= len(probe) - 3:
            return probe[: error.start].decode("utf-8")
        return probe.decode(FALLBACK_ENCODING)


def _read_csv_sql(path: Path, column_count: int, encoding: str, delimiter: str) -> str:
    # The dialect is RFC 4180 (double-quote quoting and escaping, header line) with the delimiter detected by
    # detect_delimiter, not DuckDB's sniffer, so the same file always reads the same way; a malformed line is an
    # error, never skipped.
    columns = ", ".join(f"{sql_string(source_column(i))}: 'VARCHAR'" for i in range(column_count))
    return (
        f"SELECT * FROM read_csv({sql_string(str(path))}, columns={{{columns}}}, header=true, "
        f"auto_detect=false, delim={sql_string(delimiter)}, quote='\"', escape='\"', "
        f"encoding={sql_string(encoding)}, compression={sql_string(csv_compression(path))}, {FILE_COLUMNS_ONLY})"
    )


def delimiter_name(delimiter: str) -> str:
    """A delimiter as users write it in a message."""
    return "tab" if delimiter == "\t" else f"'{delimiter}'"


def _csv_error_line(file_name: str, message: str, delimiter: str = ",") -> str:
    """One line saying where and why DuckDB could not parse a CSV file."""
    line_match = re.search(r"CSV Error on Line: (\d+)", message)
    where = f"line {line_match.group(1)}" if line_match else "a line"
    columns_match = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
    if columns_match:
        expected, found = (int(count) for count in columns_match.groups())
        if found <= expected:
            fix = "every line needs one value per column"
        elif delimiter == ",":
            fix = "quote values that contain commas"
        else:
            fix = f"quote values that contain the delimiter {delimiter_name(delimiter)}"
        return f"{file_name}: {where} has {found} fields but the header has {expected} (not valid CSV: {fix})"
    if "unterminated quote" in message:
        return f"{file_name}: {where} has a value with an unterminated quote (not valid CSV)"
    first_line = message.splitlines()[0] if message else "unknown error"
    return f"{file_name}: {where} cannot be read as CSV ({first_line})"


def line_ending_counts(path: Path) -> tuple[int, int]:
    """(CRLF line ends, bare LF line ends) of a (decompressed) CSV file, read in chunks."""
    crlf = lf = 0
    previous_cr = False
    with _open_decompressed(path, csv_compression(path)) as handle:
        while chunk := handle.read(1 << 20):
            newlines = chunk.count(b"\n")
            crlf_here = chunk.count(b"\r\n") + (1 if previous_cr and chunk.startswith(b"\n") else 0)
            crlf += crlf_here
            lf += newlines - crlf_here
            previous_cr = chunk.endswith(b"\r")
    return crlf, lf


def _mixed_line_endings_line(path: Path, message: str) -> str | None:
    """One line for a CSV file whose lines end both in CRLF and in LF (a Windows export to which another tool
    appended the day's rows, or the reverse), which DuckDB's CSV reader cannot split (`The CSV Parser state
    machine reached an invalid state`, whatever line is at fault); None for another error or one kind of line end."""
    if "state machine reached an invalid state" not in message:
        return None
    try:
        crlf, lf = line_ending_counts(path)
    except (OSError, EOFError):
        return None
    if not crlf or not lf:
        return None
    return (
        f"{path.name}: its lines end in both CRLF (Windows, {crlf:,} lines) and LF ({lf:,} lines), so it cannot "
        "be read as CSV (rows appended by another tool?); save it again with one kind of line ending"
    )


def _table_relation(table: str, column_count: int) -> str:
    columns = "".join(f", {source_column(i)}" for i in range(column_count))
    return f"(SELECT rowid AS {RECORD_INDEX}{columns} FROM {table})"


def _empty_source(conn: duckdb.DuckDBPyConnection, table: str, note: str) -> LoadedSource:
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {table} ({source_column(0)} {TEXT_TYPE})")
    return LoadedSource(_table_relation(table, 0), (), (), 0, (note,))


def load_csv(conn: duckdb.DuckDBPyConnection, path: Path, table: str, delimiter: str | None = None) -> LoadedSource:
    """Load a CSV file as text into temp `table`; non-UTF-8 bytes fall back to latin-1 with a note.

    `delimiter` forces the delimiter (SEGMINT_CSV_DELIMITER); by default it is detected (detect_delimiter).
    """
    text, complete = _read_probe(path)
    forced = delimiter is not None
    delimiter = delimiter or detect_delimiter(text, complete)
    header = read_csv_header(path, delimiter)
    if not header:
        return _empty_source(conn, table, "empty file: no header and no data rows")
    notes: tuple[str, ...] = ()
    if delimiter != ",":
        notes = (f"delimiter {delimiter_name(delimiter)} ({'SEGMINT_CSV_DELIMITER' if forced else 'detected'})",)
    try:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {_read_csv_sql(path, len(header), 'utf-8', delimiter)}")
    except duckdb.Error as error:
        if "Invalid unicode" not in str(error):
            raise LandingError(
                _mixed_line_endings_line(path, str(error)) or _csv_error_line(path.name, str(error), delimiter)
            ) from None
        # Spreadsheet exports on Windows are often cp1252/latin-1; every byte is valid latin-1, so this
        # never fails on encoding, and the note tells the user that accents may need checking.
        notes += (f"not valid UTF-8; decoded as {FALLBACK_ENCODING}",)
        read = _read_csv_sql(path, len(header), FALLBACK_ENCODING, delimiter)
        try:
            conn.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {read}")
        except duckdb.Error as retry_error:
            raise LandingError(
                _mixed_line_endings_line(path, str(retry_error))
                or _csv_error_line(path.name, str(retry_error), delimiter)
            ) from None
    rows_in = conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    relation = _table_relation(table, len(header))
    return LoadedSource(relation, header, (TEXT_TYPE,) * len(header), rows_in, notes, delimiter=delimiter)


def load_parquet(conn: duckdb.DuckDBPyConnection, path: Path, table: str) -> LoadedSource:
    """Describe a Parquet file and read it in place, keeping its column types (no text copy of the file)."""
    scan = f"read_parquet({sql_string(str(path))}, {FILE_COLUMNS_ONLY})"
    with parquet_read_errors(path.name):
        described = conn.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
        names = [str(row[0]) for row in described]
        columns = "".join(f", {sql_identifier(name)} AS {source_column(i)}" for i, name in enumerate(names))
        if any(name.lower() == PARQUET_ROW_NUMBER for name in names):
            # The file's own column hides the virtual row number: copy the file so that rowid numbers the records.
            conn.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {scan}")
            relation = f"(SELECT rowid AS {RECORD_INDEX}{columns} FROM {table})"
        else:
            relation = f"(SELECT {PARQUET_ROW_NUMBER} AS {RECORD_INDEX}{columns} FROM {scan})"
        rows_in = conn.execute(f"SELECT count(*) FROM {scan}").fetchall()[0][0]
    header = tuple(name.strip(HEADER_STRIP_CHARS) for name in names)
    types = tuple(str(row[1]) for row in described)
    return LoadedSource(relation, header, types, rows_in, (), is_parquet=True)


@contextmanager
def parquet_read_errors(file_name: str) -> Iterator[None]:
    """Turn a DuckDB error while reading a Parquet file into a one-line LandingError.

    The file is read where it lies, so a damaged data page surfaces when the rows are parsed, not when the
    file is described; every statement that scans it runs inside this.
    """
    try:
        yield
    except duckdb.Error as error:
        first_line = str(error).splitlines()[0]
        raise LandingError(f"{file_name}: cannot be read as Parquet ({first_line})") from None


def load_source(conn: duckdb.DuckDBPyConnection, path: Path, table: str, delimiter: str | None = None) -> LoadedSource:
    """Load a landing file (by extension), one row per data record; `table` is the temp table it may use."""
    if path.stat().st_size == 0:
        return _empty_source(conn, table, "empty file: 0 bytes")
    if path.suffix == ".parquet":
        return load_parquet(conn, path, table)
    return load_csv(conn, path, table, delimiter)


def normalized_column_name(name: str) -> str:
    """A header name as matched against the contract: lower case, runs of spaces/hyphens as `_` (`Order ID`)."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def resolve_columns(
    spec: TableSpec, header: tuple[str, ...], file_name: str, extra: tuple[str, ...] = ()
) -> dict[str, int]:
    """Contract column name (and `extra` names) -> header position; a missing required column -> LandingError.

    Names match case-insensitively with spaces or hyphens read as `_`. The spec's generated key column may be
    absent (it is generated).
    """
    positions: dict[str, int] = {}
    wanted = set(spec.column_names) | set(extra)
    for position, name in enumerate(header):
        normalized = normalized_column_name(name)
        if normalized not in wanted:
            continue
        if normalized in positions:
            raise LandingError(
                f"{file_name}: column '{normalized}' appears twice in the header "
                f"(positions {positions[normalized] + 1} and {position + 1})"
            )
        positions[normalized] = position
    if not header:
        return positions
    found = ", ".join(header)
    hint = _delimiter_hint(header)
    line_amount, total = spec.line_amount or (None, None)
    for required in spec.required_columns:
        if required == total and line_amount in positions:
            continue  # the order total is the sum of its lines' amounts
        if required not in positions:
            raise LandingError(f"{file_name}: required column '{required}' is missing (found: {found}){hint}")
    if spec.one_of_columns and not any(name in positions for name in spec.one_of_columns):
        either = "' or '".join(spec.one_of_columns)
        raise LandingError(f"{file_name}: required column '{either}' is missing (found: {found}){hint}")
    return positions


def _delimiter_hint(header: tuple[str, ...]) -> str:
    # A one-column header holding semicolons or tabs is the commonest reason for "missing" columns.
    if len(header) == 1 and any(separator in header[0] for separator in (";", "\t", "|")):
        return "; the header looks like it uses another separator: set SEGMINT_CSV_DELIMITER"
    return ""
