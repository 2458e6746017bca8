"""Which source format a landing folder holds: from SEGMINT_SOURCE_FORMAT, else from the files present."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import duckdb

from landing.sources import LandingError, read_csv_header, sql_string

SEGMINT, GA4, SEGMENT, SHOPIFY = "segmint", "ga4", "segment", "shopify"
SOURCE_FORMATS = (SEGMINT, GA4, SEGMENT, SHOPIFY)
JSON_LINE_SUFFIXES = (".json", ".jsonl", ".ndjson")
NOT_JSON_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")
# BigQuery names the daily GA4 export tables events_YYYYMMDD (events_intraday_YYYYMMDD while streaming).
GA4_FILE_NAME = re.compile(r"^events_(intraday_)?\d{8}(_\d+)?\.(json|jsonl|ndjson|parquet)(\.gz)?$", re.IGNORECASE)
GA4_KEYS = ("event_name", "event_timestamp")
# The Segment Spec's call types (RudderStack uses the same names).
SEGMENT_CALL_TYPES = ("track", "page", "screen", "identify", "group", "alias")
# Segment Warehouses (docs "Warehouse Schemas"): one table per call type, plus one per track event named by the
# event's snake_case slug (`order_completed`), exported as one CSV or Parquet file per table.
SEGMENT_CALL_TABLES = {
    "tracks": "track",
    "pages": "page",
    "screens": "screen",
    "identifies": "identify",
    "aliases": "alias",
    "groups": "group",
}
# Columns every Segment warehouse table has: `id` (the messageId) and `received_at` (the sort key); an event table
# also has `event` (the slug) and `event_text` (the name as sent).
SEGMENT_TABLE_COLUMNS = ("id", "received_at")
SEGMENT_EVENT_TABLE_COLUMNS = ("event", "event_text")
WAREHOUSE_TABLE_SUFFIXES = (".csv", ".parquet")
SHOPIFY_FILES = ("orders_export.csv", "customers_export.csv")
CONTRACT_ORDERS = ("orders.csv", "orders.parquet")
# Any segmint contract file means the folder is segmint's format (the ingest then names a missing orders file).
CONTRACT_FILES = tuple(f"{table}.{ext}" for table in ("orders", "customers", "events") for ext in ("csv", "parquet"))
PROBE_BYTES = 1 << 20
LOOKED_FOR = (
    "orders.csv or orders.parquet (segmint), events_YYYYMMDD.json/.jsonl/.ndjson[.gz]/.parquet (ga4), "
    "*.json/.jsonl/.ndjson[.gz] or Segment S3 *.gz lines of Segment/RudderStack calls (segment), "
    "Segment warehouse tables tracks/pages/identifies/<event>.csv|parquet with id and received_at (segment), "
    "orders_export.csv or orders_export_1.csv, ... (shopify)"
)


def is_json_lines(path: Path) -> bool:
    """A `.json`/`.jsonl`/`.ndjson` file (optionally `.gz`), or a bare `.gz` that is no CSV or Parquet file.

    Segment's S3 destination writes its logs as gzipped JSON lines named `<received timestamp>.<id>.gz`,
    with no `.json` in the name; the first record then tells what the file holds.
    """
    name = path.name.lower()
    inner = name.removesuffix(".gz")
    bare_gzip = name.endswith(".gz") and not inner.endswith(NOT_JSON_SUFFIXES)
    return path.is_file() and (inner.endswith(JSON_LINE_SUFFIXES) or bare_gzip)


def _first_record(path: Path) -> dict | list | None:
    """The first non-blank line of a JSON-lines file as a dict (or list); None when it is neither."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            for raw_line in handle:
                if raw_line.strip():
                    record = json.loads(raw_line[:PROBE_BYTES])
                    return record if isinstance(record, dict | list) else None
    except (OSError, ValueError, EOFError):
        return None
    return None


def _parquet_columns(path: Path) -> set[str]:
    try:
        rows = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet({sql_string(str(path))})").fetchall()
    except duckdb.Error:
        return set()
    return {str(row[0]) for row in rows}


def _looks_like_ga4(path: Path) -> bool:
    if GA4_FILE_NAME.match(path.name):
        return True
    if path.suffix == ".parquet":
        return path.name != "events.parquet" and set(GA4_KEYS) <= _parquet_columns(path)
    record = _first_record(path) if is_json_lines(path) else None
    return isinstance(record, dict) and all(key in record for key in GA4_KEYS)


def _looks_like_segment(path: Path) -> bool:
    """The first record is a Segment call, or a batch of them (`{"batch": [calls], ...}` as the HTTP Tracking
    API's /v1/batch receives it, or a JSON array of calls): segment.py unpacks batches."""
    record = _first_record(path) if is_json_lines(path) else None
    if isinstance(record, dict) and "type" not in record and isinstance(record.get("batch"), list):
        record = record["batch"]
    if isinstance(record, list):
        record = record[0] if record else None
    return isinstance(record, dict) and record.get("type") in SEGMENT_CALL_TYPES


def table_columns(path: Path) -> set[str]:
    """The lower-cased column names of a CSV or Parquet file (Snowflake exports upper-case them)."""
    names = _parquet_columns(path) if path.suffix == ".parquet" else set(read_csv_header(path))
    return {name.lower() for name in names}


def segment_warehouse_tables(landing_dir: Path) -> list[Path]:
    """The Segment warehouse tables of the folder: a `.csv`/`.parquet` file with Segment's `id` and `received_at`
    columns, named like a call table (`tracks`, `pages`, `identifies`, ...) or holding an event table's `event` and
    `event_text`. segmint's own contract files and derived tables (`users`, `accounts`: upserted copies of the
    identify and group calls) are not among them."""
    found = []
    for path in sorted(landing_dir.iterdir()):
        if not path.is_file() or path.suffix not in WAREHOUSE_TABLE_SUFFIXES or path.name in CONTRACT_FILES:
            continue
        columns = table_columns(path)
        is_call_table = path.stem.lower() in SEGMENT_CALL_TABLES
        if set(SEGMENT_TABLE_COLUMNS) <= columns and (is_call_table or set(SEGMENT_EVENT_TABLE_COLUMNS) <= columns):
            found.append(path)
    return found


def ga4_files(landing_dir: Path) -> list[Path]:
    """The GA4 export files: named events_YYYYMMDD.*, or JSON lines / Parquet whose records carry event_name."""
    candidates = (p for p in sorted(landing_dir.iterdir()) if is_json_lines(p) or p.suffix == ".parquet")
    return [path for path in candidates if _looks_like_ga4(path)]


def segment_files(landing_dir: Path) -> list[Path]:
    """Every JSON-lines file that is not a GA4 export (their first record says which)."""
    return [p for p in sorted(landing_dir.iterdir()) if is_json_lines(p) and not _looks_like_ga4(p)]


def shopify_export_parts(landing_dir: Path, file_name: str) -> list[Path]:
    """The files of one Shopify export: `orders_export.csv`, or the numbered parts Shopify's e-mailed exports are
    named by (`orders_export_1.csv`, `orders_export_2.csv`, ...), in that order. Each has its own header."""
    stem = file_name.removesuffix(".csv")
    pattern = re.compile(rf"^{re.escape(stem)}(?:_(\d+))?\.csv$", re.IGNORECASE)
    found = [(m, p) for p in landing_dir.iterdir() if p.is_file() and (m := pattern.match(p.name))]
    return [p for m, p in sorted(found, key=lambda item: (int(item[0].group(1) or 0), item[1].name))]


def detect_format(landing_dir: Path, override: str | None = None) -> str:
    """The source format of the landing folder; `override` (SEGMINT_SOURCE_FORMAT) wins. No match -> LandingError."""
    if override:
        if override not in SOURCE_FORMATS:
            raise LandingError(f"SEGMINT_SOURCE_FORMAT={override!r} is not one of {', '.join(SOURCE_FORMATS)}")
        return override
    present = {path.name for path in landing_dir.iterdir() if path.is_file()}
    if shopify_export_parts(landing_dir, SHOPIFY_FILES[0]):
        return SHOPIFY
    if ga4_files(landing_dir):
        return GA4
    if any(_looks_like_segment(path) for path in segment_files(landing_dir)) or segment_warehouse_tables(landing_dir):
        return SEGMENT
    if present & set(CONTRACT_FILES):
        return SEGMINT
    raise LandingError(f"{landing_dir}: no known landing format found (looked for {LOOKED_FOR})")
