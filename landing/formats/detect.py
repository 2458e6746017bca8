"""Which source format a landing folder holds: from SEGMINT_SOURCE_FORMAT, else from the files present."""

from __future__ import annotations

import csv
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import duckdb

from landing.sources import FILE_COLUMNS_ONLY, LandingError, read_csv_header, sql_string

SEGMINT, GA4, SEGMENT, SHOPIFY = "segmint", "ga4", "segment", "shopify"
SOURCE_FORMATS = (SEGMINT, GA4, SEGMENT, SHOPIFY)
JSON_LINE_SUFFIXES = (".json", ".jsonl", ".ndjson")
NOT_JSON_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".avro")
# BigQuery names the daily GA4 export tables events_YYYYMMDD (events_intraday_YYYYMMDD while streaming).
# An extract too big for one file goes to a wildcard URI, `events_20251201-*.avro`: BigQuery numbers the parts
# with 12 digits (events_20251201-000000000000.avro, ...-000000000001.avro, ...).
GA4_FILE_NAME = re.compile(
    r"^events_(intraday_)?\d{8}(_\d+)?(-\d{12})?(\.(json|jsonl|ndjson|parquet)(\.gz)?|\.avro)$", re.IGNORECASE
)
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
# A warehouse table is exported as one file or as parts (landing/README.md "Segment Warehouses tables"): its name,
# then the part number the unloading tool writes, then `.csv` (optionally `.gz`, `.zst`, `.zstd`) or `.parquet`
# (Snowflake `.snappy.parquet`; Spark names the Parquet codec the same way: `.gz.parquet`, `.zstd.parquet`, ...).
# The part numbers, as the tools' docs name the files (matched lower-cased, a digit run never split):
WAREHOUSE_PART = (
    r"[_-]?\d{4}_part_\d{2}"  # Redshift UNLOAD, one file per slice: order_completed_0000_part_00
    r"|[_-]?(?<!\d)\d{12}"  # BigQuery export to a wildcard URI (`tracks-*.csv.gz`): tracks-000000000000
    r"|_\d+_\d+_\d+"  # Snowflake COPY INTO <location> (prefix `tracks_`): tracks_0_0_0
    r"|[_-]?(?<!\d)\d{3}"  # Redshift UNLOAD PARALLEL OFF: tracks_000 (then _001 past 6.2 GB)
)
PARQUET_CODECS = r"snappy|gz|zstd|lz4|lz4hadoop|lz4raw|br"  # parquet-mr's codec extensions, all read by DuckDB
WAREHOUSE_FILE = re.compile(
    rf"^(?P<table>.*?)(?:{WAREHOUSE_PART})?(?P<ext>\.csv(?:\.gz|\.zst|\.zstd)?|(?:\.(?:{PARQUET_CODECS}))?\.parquet)$"
)
# Redshift writes no extension unless UNLOAD names one (EXTENSION), `.gz` with GZIP, `.zst` with ZSTD: CSV text.
REDSHIFT_PART_FILE = re.compile(r"^(?P<table>.*?)[_-]?\d{4}_part_\d{2}(?P<ext>\.gz|\.zst)?$")
# A Hive-style partition folder inside a table's folder (`date=2025-12-01/`, nested `day=.../hr=.../`), as Spark,
# Databricks, Athena and Hive write a partitioned table. Names starting with `_` or `.` are never data (Spark's
# `_temporary/` of an unfinished write, Delta's `_delta_log/`).
HIVE_PARTITION_FOLDER = re.compile(r"^(?P<key>[^_.=][^=]*)=(?P<value>.*)$")
# Segment Data Lakes (docs "Data Lakes": `data/<source id>/segment_type=<event type>/day=<YYYY-MM-DD>/hr=<HH>/`,
# Parquet): not read (landing/README.md says why), and named rather than skipped.
DATA_LAKES_FOLDER = re.compile(r"^segment_type=", re.IGNORECASE)
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
# A call table's name is fixed, so a call table with any number (`tracks_2`, `pages-1`: parts split by hand or by
# another tool) is a part of it; a `tracks_2` read as an event table would count every track call twice.
NUMBERED_CALL_TABLE = re.compile(rf"^(?P<table>{'|'.join(SEGMENT_CALL_TABLES)})[_-]\d+$")
SHOPIFY_FILES = ("orders_export.csv", "customers_export.csv")
# Shopify as an ELT connector syncs it (Fivetran's Shopify tables; landing/formats/shopify_tables.py), exported one
# file, parts or a folder of parts per table like a warehouse table above, named as the table (Snowflake upper-cases
# it, `order` is a reserved word and may come quoted: `"order".csv`). Such a table carries Fivetran's
# `_fivetran_synced` column.
SHOPIFY_TABLES = ("order", "order_line", "customer", "refund", "order_line_refund", "order_adjustment", "transaction")
# Read when present: an order's discount code, a customer's default address.
SHOPIFY_TABLES_OPTIONAL = ("order_discount_code", "customer_address")
FIVETRAN_SYNCED = "_fivetran_synced"
CONTRACT_ORDERS = ("orders.csv", "orders.parquet")
# Any segmint contract file means the folder is segmint's format (the ingest then names a missing orders file).
CONTRACT_FILES = tuple(f"{table}.{ext}" for table in ("orders", "customers", "events") for ext in ("csv", "parquet"))
PROBE_BYTES = 1 << 20
LOOKED_FOR = (
    "orders.csv or orders.parquet (segmint), events_YYYYMMDD[-<part>].json/.jsonl/.ndjson[.gz]/.parquet/.avro (ga4), "
    "*.json/.jsonl/.ndjson[.gz] or Segment S3 *.gz lines of Segment/RudderStack calls (segment), "
    "Segment warehouse tables tracks/pages/identifies/<event>.csv|csv.gz|csv.zst|parquet or their parts, with id and "
    "received_at (segment), "
    "orders_export.csv or orders_export_1.csv, ... (shopify), "
    "Fivetran's Shopify tables order/customer/refund/... .csv|parquet or their parts, with _fivetran_synced (shopify), "
    "Shopify Admin API orders/customers as REST pages, bare JSON arrays, one record per line (Singer target-jsonl, "
    "Stitch), Singer tap output, GraphQL bulk JSONL, Airbyte records or Airbyte CSV (shopify)"
)
# Shopify Admin API pulls (read by shopify_api.py, detected here with the other formats; landing/README.md "Shopify
# Admin API pulls"). Keys that tell a REST order or customer from other JSON (a REST resource always has `id`).
REST_ORDER_KEYS = ("financial_status", "total_price", "total_price_set", "line_items", "order_number")
REST_CUSTOMER_KEYS = ("orders_count", "total_spent", "default_address", "email_marketing_consent", "accepts_marketing")
# The same in GraphQL's camelCase, as tap-shopify's GraphQL-era SCHEMA messages list an orders/customers stream's fields.
GRAPHQL_ORDER_KEYS = ("displayFinancialStatus", "totalPriceSet", "lineItems")
GRAPHQL_CUSTOMER_KEYS = ("numberOfOrders", "amountSpent", "defaultAddress", "emailMarketingConsent")
GID_PREFIX = "gid://shopify/"
AIRBYTE_DATA = "_airbyte_data"
# Airbyte's record id column: before destinations v2 `_airbyte_ab_id`, since `_airbyte_raw_id`.
AIRBYTE_ID_COLUMNS = ("_airbyte_ab_id", "_airbyte_raw_id")
# A REST page saved pretty-printed (or `jq .orders`' bare array) is read whole; larger files are JSON lines.
MAX_DOCUMENT_BYTES = 256 << 20
# The Singer spec's message types (`type`, upper-case; BATCH is the Meltano SDK's); a tap writes one per line.
SINGER_MESSAGE_TYPES = ("SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION", "BATCH")
# tap-shopify writes a SCHEMA per selected stream before any record: the orders/customers one is among the first lines.
SINGER_PROBE_LINES = 200
SHOPIFY_STREAMS = ("orders", "customers")
# Other streams of tap-shopify (its schemas/, REST and GraphQL eras) and Airbyte's Shopify source: a file named as one
# (`abandoned_checkouts-20251201.jsonl`, `draft_orders_2025_12_01_..._0.jsonl`) holds no orders, even when its
# records look like them (a draft order or an abandoned checkout has `line_items` and `total_price`).
SHOPIFY_OTHER_STREAMS = (
    "abandoned_checkouts", "application_charges", "application_credits", "article_authors", "article_tags",
    "balance_transactions", "carrier_services", "collections", "collects",
    "custom_collections", "customer_address", "customer_journey",
    "customer_journey_summary", "customer_saved_search", "customer_visit", "discount_codes",
    "draft_orders", "fulfillment_orders", "fulfillment_services", "fulfillments", "giftcards",
    "incoming_items", "inventory_items", "inventory_levels", "marketing_events", "metafields",
    "order_agreements", "order_refunds", "order_risks", "order_shipping_lines",
    "price_rules", "product_category", "product_images", "product_variants", "products",
    "resource_feedback", "script_tags", "shipping_zones", "smart_collections", "tender_transactions",
    "transactions",
)  # fmt: skip
# A file named as a stream: target-jsonl's `orders-20251201T101010.jsonl`, Airbyte's `orders_2025_12_01_<ms>_0.jsonl`,
# a plain `customers.jsonl`, Airbyte's local destinations' `_airbyte_raw_orders.csv`.
STREAM_FILE_NAME = re.compile(r"^(?:_airbyte_raw_)?(?P<stream>[a-z_]+?)(?:[-.]|_\d|$)")


def is_json_lines(path: Path) -> bool:
    """A `.json`/`.jsonl`/`.ndjson` file (optionally `.gz`), or a bare `.gz` that is no CSV or Parquet file.

    Segment's S3 destination writes its logs as gzipped JSON lines named `<received timestamp>.<id>.gz`,
    with no `.json` in the name; the first record then tells what the file holds.
    """
    name = path.name.lower()
    inner = name.removesuffix(".gz")
    bare_gzip = name.endswith(".gz") and not inner.endswith(NOT_JSON_SUFFIXES) and not REDSHIFT_PART_FILE.match(name)
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
        rows = duckdb.sql(
            f"DESCRIBE SELECT * FROM read_parquet({sql_string(str(path))}, {FILE_COLUMNS_ONLY})"
        ).fetchall()
    except duckdb.Error:
        return set()
    return {str(row[0]) for row in rows}


def _looks_like_ga4(path: Path) -> bool:
    if GA4_FILE_NAME.match(path.name):
        return True
    if path.suffix == ".parquet":
        return path.name != "events.parquet" and set(GA4_KEYS) <= _parquet_columns(path)
    if _is_avro(path):
        from landing.formats.avro import avro_field_names  # fastavro only for folders holding Avro files

        return set(GA4_KEYS) <= avro_field_names(path)
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
    """The lower-cased column names of a CSV (optionally gzip'd) or Parquet file (Snowflake exports upper-case
    them); none for an empty file."""
    if path.stat().st_size == 0:
        return set()
    names = _parquet_columns(path) if path.suffix == ".parquet" else set(read_csv_header(path))
    return {name.lower() for name in names}


@dataclass(frozen=True)
class WarehouseFile:
    """One file of a Segment warehouse table: the whole table, or one of its parts."""

    table: str  # the warehouse table, lower-cased: tracks, pages, order_completed
    path: Path
    name: str  # its path under the landing folder, as lineage names it: order_completed/part-00000.parquet
    # The Hive-style partition folders it lies in, (lower-cased key, value; None for Hive's null partition), outermost
    # first: tracks/day=2025-12-01/hr=09/ -> (("day", "2025-12-01"), ("hr", "09"))
    partitions: tuple[tuple[str, str | None], ...] = ()


def warehouse_table_of(file_name: str) -> str | None:
    """The warehouse table a file holds by its name (`tracks-000000000000.csv.gz` -> tracks; `` for a bare part
    such as `0000_part_00.parquet`); None when the name is no CSV or Parquet file."""
    name = file_name.lower()
    match = WAREHOUSE_FILE.match(name) or REDSHIFT_PART_FILE.match(name)
    if not match:
        return None
    table = match.group("table").rstrip("_-")
    numbered = NUMBERED_CALL_TABLE.match(table)
    return numbered.group("table") if numbered else table


def _is_folder_part(file_name: str, folder: str) -> bool:
    """A data file of a table's folder: named by a part number alone (`000000000000.csv`, `0000_part_00`), by the
    unloader's default prefix (Snowflake's `data_0_0_0.csv.gz`, Spark's `part-00000-<uuid>.snappy.parquet`) or by
    the folder's table. A file named as another table (a backup folder holding `order_completed.csv`) is not one,
    nor are `_SUCCESS`, `.crc` and other names starting with `_` or `.`."""
    table = warehouse_table_of(file_name)
    if table is None or file_name.startswith(("_", ".")):
        return False
    return table in ("", "data", folder.lower()) or table.startswith("part")


def _table_folder_files(folder: Path, table: str) -> list[Path]:
    """The data files of a table's folder (_is_folder_part) and of its Hive-style partition folders, at any depth,
    in path order. Other sub-folders are not the table's (a `backup/` folder, Spark's `_temporary/`)."""
    files = []
    for path in sorted(folder.iterdir()):
        if path.is_dir() and HIVE_PARTITION_FOLDER.match(path.name):
            files += _table_folder_files(path, table)
        elif path.is_file() and _is_folder_part(path.name, table):
            files.append(path)
    return files


def landing_data_files(landing_dir: Path) -> list[Path]:
    """Every file of the landing folder a format may read, in path order: the folder's own CSV/Parquet/Avro and JSON
    lines files (compressed or not, named parts too) and the data files of its table folders (_table_folder_files:
    parts, Hive partition folders). What the landing sensor watches and `landing_files` lists; markers (`_SUCCESS`,
    `.crc`, `_temporary/`) and other files (a README) are not data."""
    files = []
    for path in sorted(landing_dir.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        if path.is_dir():
            files += _table_folder_files(path, path.name)
        elif path.suffix.lower() == ".avro" or warehouse_table_of(path.name) is not None or is_json_lines(path):
            files.append(path)
    return files


def _refuse_data_lakes(folder: Path, landing_dir: Path) -> None:
    """Stop on a Segment Data Lakes folder (`segment_type=<event type>/`, or a source's folder holding them): its
    tables would otherwise be skipped in silence (they have no `event_text`), or read as one table of mixed calls."""
    for path in (folder, *(child for child in folder.iterdir() if child.is_dir())):
        if DATA_LAKES_FOLDER.match(path.name):
            raise LandingError(
                f"{path.relative_to(landing_dir)}: a Segment Data Lakes folder, which segmint does not read (its "
                "file names and columns are not documented well enough to read it safely); export the source's "
                "warehouse tables or its S3 destination's JSON calls into the landing folder instead"
            )


def partition_values(path: Path, landing_dir: Path) -> tuple[tuple[str, str | None], ...]:
    """The Hive-style partition folders a file lies in under the landing folder, as WarehouseFile.partitions. Hive and
    Spark escape special characters in a value as `%XX` and write a null value as `__HIVE_DEFAULT_PARTITION__`."""
    values = []
    for name in path.relative_to(landing_dir).parts[:-1]:
        if match := HIVE_PARTITION_FOLDER.match(name):
            value = match.group("value")
            values.append((unquote(match.group("key")).lower(), None if value == HIVE_NULL else unquote(value)))
    return tuple(values)


def segment_warehouse_tables(landing_dir: Path) -> list[WarehouseFile]:
    """The files of the folder's Segment warehouse tables, each table's files together in path order.

    A table is a file named as the table, or its parts: files named as the table plus a part number
    (WAREHOUSE_PART, NUMBERED_CALL_TABLE), or the data files of a sub-folder named as the table and of its Hive-style
    partition folders (`order_completed/part-00000.parquet`, `tracks/date=2025-12-01/part-00000.parquet`;
    _table_folder_files). It is Segment's when its files have Segment's `id` and `received_at` columns and it is named
    like a call table (`tracks`, `pages`, `identifies`, ...) or has an event table's `event` and `event_text`. Every
    part of such a table must have them (an empty part has no columns and no rows): a part without them is read
    wrongly or is another table, and stops the ingest rather than being dropped. A partition folder's key and value
    are a column of its files' rows that the files lack (Hive's and Spark's meaning: `partitionBy("event")` takes the
    column out of the files); a file's own column of that name wins. segmint's own contract files and tables of no
    Segment call (`users`, `accounts`: upserted copies of the identify and group calls) are not among them."""
    parts: dict[str, list[Path]] = {}
    for path in sorted(landing_dir.iterdir()):
        if path.is_dir():
            _refuse_data_lakes(path, landing_dir)
            for part in _table_folder_files(path, path.name):
                parts.setdefault(path.name.lower(), []).append(part)
        elif path.is_file() and path.name not in CONTRACT_FILES and (table := warehouse_table_of(path.name)):
            parts.setdefault(table, []).append(path)
    found = []
    for table, paths in parts.items():
        wanted = set(SEGMENT_TABLE_COLUMNS)
        if table not in SEGMENT_CALL_TABLES:
            wanted |= set(SEGMENT_EVENT_TABLE_COLUMNS)
        partitions = {path: partition_values(path, landing_dir) for path in paths}
        # A partitioned table's rows are its files' columns plus its partition folders' (Spark's partitionBy takes
        # the partition columns out of the files)
        columns = {
            path: names | {key for key, _ in partitions[path]} if (names := table_columns(path)) else names
            for path in paths
        }
        if not any(wanted <= names for names in columns.values()):
            continue
        for path, names in columns.items():
            if names and not wanted <= names:
                raise LandingError(
                    f"{path.relative_to(landing_dir)}: a part of the Segment warehouse table {table} without its "
                    f"{', '.join(sorted(wanted - names))} column(s), which its other parts have: another table, or "
                    "exported without a header line (BigQuery print_header, Snowflake HEADER = TRUE, Redshift "
                    "HEADER); export the table again or move the file out of the landing folder"
                )
        found += [
            WarehouseFile(table, path, path.relative_to(landing_dir).as_posix(), partitions[path]) for path in paths
        ]
    return found


def _is_avro(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(".avro")


def ga4_files(landing_dir: Path) -> list[Path]:
    """The GA4 export files: named events_YYYYMMDD.* (or its wildcard parts), or JSON lines / Parquet / Avro whose
    records carry event_name and event_timestamp."""
    candidates = (p for p in sorted(landing_dir.iterdir()) if is_json_lines(p) or p.suffix == ".parquet" or _is_avro(p))
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


def shopify_table_files(landing_dir: Path) -> dict[str, list[WarehouseFile]]:
    """The files of the folder's Shopify tables (SHOPIFY_TABLES and SHOPIFY_TABLES_OPTIONAL), by table: a file named
    as the table, its numbered parts or a folder of parts (Hive partition folders included), found as
    segment_warehouse_tables finds a warehouse table's files; the name is matched lower-cased and unquoted."""
    found: dict[str, list[WarehouseFile]] = {}
    for path in sorted(landing_dir.iterdir()):
        if path.is_dir():
            table, files = path.name.lower().strip('"`'), _table_folder_files(path, path.name)
        elif path.is_file() and (name := warehouse_table_of(path.name)) is not None:
            table, files = name.strip('"`'), [path]
        else:
            continue
        if table in SHOPIFY_TABLES + SHOPIFY_TABLES_OPTIONAL:
            found.setdefault(table, []).extend(
                WarehouseFile(
                    table, file, file.relative_to(landing_dir).as_posix(), partition_values(file, landing_dir)
                )
                for file in files
            )
    return found


def has_shopify_tables(landing_dir: Path) -> bool:
    """A Shopify table of the folder (shopify_table_files) has Fivetran's `_fivetran_synced` column."""
    tables = shopify_table_files(landing_dir)
    return any(FIVETRAN_SYNCED in table_columns(file.path) for files in tables.values() for file in files)


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _document(path: Path, first: bytes) -> dict | list | None:
    """A JSON file whose first non-blank line `first` is no whole record, read as one document spread over lines (a
    pretty-printed REST page, or `jq .orders`' bare array); None when it is not one."""
    # only what opens like a pretty-printed page is read whole (not a JSON-lines file with a broken first line)
    if not (first.strip() in (b"{", b"[") or first.lstrip().startswith((b'{"orders"', b'{"customers"'))):
        return None
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        return None
    try:
        with _open_binary(path) as handle:
            document = json.load(handle)
    except (OSError, EOFError, ValueError):
        return None
    return document if isinstance(document, dict | list) else None


def json_file_shape(path: Path) -> str:
    """How a Shopify API JSON file is laid out, by its first non-blank line: `document` when that line is no whole
    JSON value (one pretty-printed page or array spread over lines), `singer` when it is a Singer message (a tap's
    output), else `lines` (a record or page per line)."""
    try:
        with _open_binary(path) as handle:
            first = json.loads(next((raw for raw in handle if raw.strip()), b""))
    except (OSError, EOFError, ValueError):
        return "document"
    return "singer" if is_singer_message(first) else "lines"


def _first_shopify_record(path: Path) -> object:
    try:
        with _open_binary(path) as handle:
            first = next((raw for raw in handle if raw.strip()), b"")
    except (OSError, EOFError):
        return None
    try:
        return json.loads(first)
    except ValueError:
        return _document(path, first)


def _is_shopify_resource(data: object) -> bool:
    """A REST order or customer (its `id` and a documented key), or a GraphQL bulk Order/Customer line."""
    if not isinstance(data, dict) or "id" not in data or "type" in data or "event_name" in data:
        return False
    if isinstance(data["id"], str) and data["id"].startswith(GID_PREFIX):
        return data["id"].startswith((GID_PREFIX + "Order/", GID_PREFIX + "Customer/"))
    return any(key in data for key in REST_ORDER_KEYS + REST_CUSTOMER_KEYS)


def _is_rest_record(record: object) -> bool:
    return isinstance(record, dict) and "id" in record and not {"type", "event_name", "batch"} & record.keys()


def is_shopify_record(record: object) -> bool:
    """A REST page, a GraphQL bulk Order/Customer line, a REST order/customer (bare or in Airbyte's envelope), or a
    bare JSON array of REST orders/customers (its first element says)."""
    if isinstance(record, list):
        return bool(record) and _is_shopify_resource(record[0])
    if not isinstance(record, dict) or "type" in record or "event_name" in record:
        return False
    if isinstance(record.get("orders"), list) or isinstance(record.get("customers"), list):
        return True
    data = record.get(AIRBYTE_DATA, record)
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return False
    return _is_shopify_resource(data)


def is_singer_message(record: object) -> bool:
    """A Singer message (`{"type": "RECORD", "stream": ..., "record": {...}}`, SCHEMA, STATE, ...)."""
    return isinstance(record, dict) and record.get("type") in SINGER_MESSAGE_TYPES


def stream_of_file_name(name: str) -> str | None:
    """The Shopify stream a file is named as (STREAM_FILE_NAME: `orders-20251201T101010.jsonl` -> orders); None when
    its name is no known stream's."""
    match = STREAM_FILE_NAME.match(name.lower())
    stream = match.group("stream") if match else None
    return stream if stream in SHOPIFY_STREAMS + SHOPIFY_OTHER_STREAMS else None


def _is_shopify_singer_file(path: Path) -> bool:
    """A tap's output saved to a file (`tap-shopify > out.jsonl`): Singer messages, one naming the `orders` or
    `customers` stream among the first SINGER_PROBE_LINES (tap-shopify writes every selected stream's SCHEMA first),
    with Shopify's fields (the SCHEMA's properties or the RECORD's keys): another tap's `orders` stream is not it."""
    try:
        with _open_binary(path) as handle:
            for number, raw in enumerate(handle):
                if number >= SINGER_PROBE_LINES:
                    return False
                if not raw.strip():
                    continue
                message = json.loads(raw)
                if not is_singer_message(message):
                    return False
                if message.get("stream") not in SHOPIFY_STREAMS:
                    continue
                if message["type"] == "RECORD" and _is_shopify_resource(message.get("record")):
                    return True
                if message["type"] == "SCHEMA":
                    properties = (message.get("schema") or {}).get("properties") or {}
                    keys = REST_ORDER_KEYS + REST_CUSTOMER_KEYS + GRAPHQL_ORDER_KEYS + GRAPHQL_CUSTOMER_KEYS
                    if isinstance(properties, dict) and any(key in properties for key in keys):
                        return True
    except (OSError, EOFError, ValueError):
        return False
    return False


def is_csv_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith((".csv", ".csv.gz"))


def _is_airbyte_csv(path: Path) -> bool:
    """A file of Airbyte's CSV destinations (S3 CSV, local CSV): Airbyte's id column, and a first row whose
    `_airbyte_data` (JSON text), or whose own columns (root-level flattening), are a Shopify order or customer."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    previous = csv.field_size_limit(MAX_DOCUMENT_BYTES)  # a record's JSON text is one field
    try:
        with opener(path, "rt", newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle)
            header, row = next(reader, []), next(reader, [])
    except (OSError, EOFError, csv.Error):
        return False
    finally:
        csv.field_size_limit(previous)
    if not any(column in AIRBYTE_ID_COLUMNS for column in header):
        return False
    record = dict(zip(header, row, strict=False))
    if AIRBYTE_DATA in record:
        return is_shopify_record({AIRBYTE_DATA: record[AIRBYTE_DATA]})
    return _is_shopify_resource({name: _json_or_text(value) for name, value in record.items()})


def _json_or_text(value: str) -> object:
    if value.lstrip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def _is_shopify_json_file(path: Path) -> bool:
    first = _first_shopify_record(path)
    return (
        is_shopify_record(first)
        or (is_singer_message(first) and _is_shopify_singer_file(path))
        # a file named as the orders/customers stream needs no documented key, only a REST record's `id`
        or (stream_of_file_name(path.name) in SHOPIFY_STREAMS and _is_rest_record(first))
    )


def shopify_api_files(landing_dir: Path) -> list[Path]:
    """The folder's Shopify Admin API files, in name order: JSON files whose first record is a Shopify record
    (is_shopify_record) or a REST record in a file named as the orders/customers stream, Singer tap output with
    Shopify's orders/customers streams, and Airbyte CSV files."""
    # one file at a time (a helper's parsed page is freed before the next is parsed: a page kept alive makes the
    # garbage collector walk it during the next parse: 0.35 s instead of 0.29 s on 227 REST pages)
    return [
        path
        for path in sorted(landing_dir.iterdir())
        if (is_json_lines(path) and _is_shopify_json_file(path)) or (is_csv_file(path) and _is_airbyte_csv(path))
    ]


def detect_format(landing_dir: Path, override: str | None = None) -> str:
    """The source format of the landing folder; `override` (SEGMINT_SOURCE_FORMAT) wins. No match -> LandingError."""
    if override:
        if override not in SOURCE_FORMATS:
            raise LandingError(f"SEGMINT_SOURCE_FORMAT={override!r} is not one of {', '.join(SOURCE_FORMATS)}")
        return override
    present = {path.name for path in landing_dir.iterdir() if path.is_file()}
    if shopify_export_parts(landing_dir, SHOPIFY_FILES[0]) or has_shopify_tables(landing_dir):
        return SHOPIFY
    if shopify_api_files(landing_dir):
        return SHOPIFY
    if ga4_files(landing_dir):
        return GA4
    if any(_looks_like_segment(path) for path in segment_files(landing_dir)) or segment_warehouse_tables(landing_dir):
        return SEGMENT
    if present & set(CONTRACT_FILES):
        return SEGMINT
    raise LandingError(f"{landing_dir}: no known landing format found (looked for {LOOKED_FOR})")
