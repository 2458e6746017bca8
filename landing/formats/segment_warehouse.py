"""Segment Warehouses exports (a CSV, gzip'd CSV or Parquet file per warehouse table, or its parts) -> Segment calls.

Segment's warehouse destinations (Redshift, Postgres, BigQuery, Snowflake; docs "Warehouse Schemas") store each call
type in its own table, `tracks`, `pages`, `screens`, `identifies`, `aliases`, `groups`, and every track call also
in the table of its event, named by the event's snake_case slug (`order_completed`). Columns: `id` (the
messageId), `anonymous_id`, `user_id`, `timestamp`, `original_timestamp`, `sent_at`, `received_at`, on track
tables `event` (the slug) and `event_text` (the name as sent), `context_*` (the context flattened: `context_page_url`),
and the call's properties (traits on identifies) as snake_case columns, nested objects flattened
(`address_postal_code`) and arrays stringified (`products` holds the JSON text of the array).

Each row is rebuilt into the Segment call it was (the fields segment.py reads) and joins the JSON lines, so every
Segment rule (orders, refunds, cancellations, stitching, identities, quarantine reasons) has one owner. What is
rebuilt: type (from the table), event = `event_text` (else the slug with spaces), name (pages/screens),
userId, anonymousId, previousId (aliases), messageId = `id`, the four timestamps, properties (traits on
identifies and aliases) = every column that is not one of Segment's own with `products` parsed back into its
array and `address_postal_code`/`address_country` into `address`, context.page.url / campaign.source / campaign.name /
device.type from their flattened columns. Other `context_*` columns are not read (nor taken for properties).

Segment writes every track call twice: in `tracks` (common columns only) and in its event table (with its
properties). A `tracks` row whose id an event table of the folder holds is that call's copy: it is not read (the
event table's row is the call, so it counts once), and the events' notes say how many rows of `tracks` were left
to their event tables; `raw.ingest_log.rows_in` of `tracks` counts the rows read, each accepted or quarantined.
(Quarantining the copies instead put a copy of most track calls into raw.quarantine, each scrubbed for special
categories in Python: 10,622 rows and +3.3 CPU s on a 400-customer demo export, growing with the track calls.) A `tracks`
row whose event table was not exported, or whose id its event table lacks, is read from `tracks` (without
properties: an Order Completed there has no order id or total).

A table unloaded in parts (Redshift `order_completed_0000_part_00`, BigQuery `tracks-000000000000.csv.gz`, Snowflake
`TRACKS_0_0_0.csv.gz`, a folder per table; detect.segment_warehouse_tables names the rules) is read part by part,
each by its own header, with the part's path under the landing folder as its lineage, so every part reconciles on
its own; all event-table parts come before the `tracks` parts, so the copies are left out across parts too. A file
of a Hive-style partition folder (`tracks/day=2025-12-01/hr=09/part-00000.parquet`) is a part too, the folders'
`key=value` standing for columns its rows lack (Spark's partitionBy writes them only in the path)."""

from __future__ import annotations

import duckdb

from landing.formats.common import part_columns
from landing.formats.detect import SEGMENT_CALL_TABLES, WarehouseFile
from landing.sources import RECORD_INDEX, load_source, parquet_read_errors, sql_string

TRACKS = "tracks"
# Columns Segment writes itself (never a property): the call's own fields, its bookkeeping, the loader's columns.
OWN_COLUMNS = frozenset(
    (
        "id",
        "anonymous_id",
        "user_id",
        "timestamp",
        "original_timestamp",
        "sent_at",
        "received_at",
        "event",
        "event_text",
        "uuid",
        "uuid_ts",
        "loaded_at",
        "previous_id",
        "group_id",
    )
)
# The context fields segment.py reads, from their flattened columns (other context_* columns are not read).
CONTEXT_COLUMNS = {
    "page": {"url": "context_page_url"},
    "campaign": {"source": "context_campaign_source", "name": "context_campaign_name"},
    "device": {"type": "context_device_type"},
}
ADDRESS_COLUMNS = {"postal_code": "address_postal_code", "country": "address_country"}
IDS_TABLE = "_fmt_wh_ids"  # the messageIds of the event tables' calls


def load_calls(
    conn: duckdb.DuckDBPyConnection, tables: list[WarehouseFile], order_events: tuple[str, ...] = ()
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Append the tables' rows as Segment calls to `_fmt_rows` (common.load_json_lines' work table, whose view
    segment.py reads), one per row with origin = file (a part's path under the landing folder) and record number,
    but for the `tracks` copies of event-table rows (module docstring). Returns the events' notes (how many copies
    were left out) and the orders' warnings: calls named in `order_events` (lower case) read from `tracks`, which
    has no properties, so no order id or total (their event table was not exported, or lacks them)."""
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {IDS_TABLE} (message_id VARCHAR)")
    notes, order_notes = [], []
    # tracks last: the ids of every event table's calls, in all its parts, are then known, and its copies are
    # never rebuilt
    for file in sorted(tables, key=lambda table: table.table == TRACKS):
        source = load_source(conn, file.path, "_fmt_wh_src")
        columns = part_columns(source, file.partitions)
        if not columns:  # an empty part: no rows
            continue
        message_id = _text(columns, "id")
        is_tracks = file.table == TRACKS
        is_copy = f"{message_id} IN (SELECT message_id FROM {IDS_TABLE})"
        with parquet_read_errors(file.name):  # a Parquet file is read where it lies
            if is_tracks:
                copies = conn.execute(f"SELECT count(*) FROM {source.relation} WHERE {is_copy}").fetchall()[0][0]
                if copies:
                    notes.append(
                        f"{file.name}: {copies} rows not read: the same track calls (same id) are read from their "
                        "event tables, which hold their properties (each call counted once; not in rows_in)"
                    )
                order_calls = conn.execute(
                    f"SELECT count(*) FROM {source.relation} WHERE NOT coalesce({is_copy}, false) "
                    f"AND lower(trim({_event_sql(file.table, columns)})) IN {tuple(order_events) or ('',)}"
                ).fetchall()[0][0]
                if order_calls:
                    order_notes.append(
                        f"warning: {file.name}: {order_calls} order calls (Order Completed, Refunded, Cancelled) are "
                        "read from `tracks`, which holds no properties (no order id, total or currency): their event "
                        "tables (order_completed, ...) are not in the folder or lack these calls; export them"
                    )
            else:
                conn.execute(f"INSERT INTO {IDS_TABLE} SELECT {message_id} FROM {source.relation}")
            conn.execute(f"""
INSERT INTO _fmt_rows
SELECT {sql_string(file.name)}, {RECORD_INDEX} + 1, CAST({_call_sql(file.table, columns)} AS VARCHAR)
FROM {source.relation}
WHERE {f"NOT coalesce({is_copy}, false)" if is_tracks else "true"}""")
    conn.execute("DROP TABLE IF EXISTS temp._fmt_wh_src")
    conn.execute(f"DROP TABLE temp.{IDS_TABLE}")
    return tuple(notes), tuple(order_notes)


def _text(columns: dict[str, str], name: str) -> str:
    """A column's value as trimmed text (NULL when the table lacks it or the value is empty)."""
    return f"nullif(trim(CAST({columns[name]} AS VARCHAR)), '')" if name in columns else "NULL::VARCHAR"


def _event_sql(table: str, columns: dict[str, str]) -> str:
    """A track row's event name as sent: `event_text`, else the slug (an event table is named by it) with spaces."""
    slug = f"coalesce({_text(columns, 'event')}, {sql_string(table)})"
    return f"coalesce({_text(columns, 'event_text')}, replace({slug}, '_', ' '))"


def _call_sql(table: str, columns: dict[str, str]) -> str:
    """The JSON object of the Segment call a row of `table` was (see the module docstring)."""
    call_type = SEGMENT_CALL_TABLES.get(table, "track")
    event = _event_sql(table, columns) if call_type == "track" else "NULL"
    own = set(OWN_COLUMNS)
    if call_type in ("page", "screen"):
        own.add("name")  # the page/screen call's own name (its page type), not a property
    values = []
    for name in sorted(name for name in set(columns) - own if not name.startswith("context_")):
        value = _text(columns, name)
        if name == "products":  # the Ecommerce spec's array, stringified by the warehouse loader
            value = f"CASE WHEN json_valid({value}) THEN json({value}) ELSE to_json({value}) END"
        values += [sql_string(name), value]
    if call_type in ("identify", "alias"):
        address = ", ".join(f"{sql_string(key)}, {_text(columns, column)}" for key, column in ADDRESS_COLUMNS.items())
        values += ["'address'", f"json_object({address})"]
    context = ", ".join(
        f"{sql_string(key)}, json_object({', '.join(f'{sql_string(f)}, {_text(columns, c)}' for f, c in fields.items())})"
        for key, fields in CONTEXT_COLUMNS.items()
    )
    fields = {
        "type": sql_string(call_type),
        "event": event,
        "name": _text(columns, "name") if call_type in ("page", "screen") else "NULL",
        "userId": _text(columns, "user_id"),
        "anonymousId": _text(columns, "anonymous_id"),
        "previousId": _text(columns, "previous_id"),
        "messageId": _text(columns, "id"),
        "timestamp": _text(columns, "timestamp"),
        "originalTimestamp": _text(columns, "original_timestamp"),
        "receivedAt": _text(columns, "received_at"),
        "sentAt": _text(columns, "sent_at"),
        "traits" if call_type in ("identify", "alias") else "properties": f"json_object({', '.join(values)})",
        "context": f"json_object({context})",
    }
    return "json_object(" + ", ".join(f"{sql_string(key)}, {value}" for key, value in fields.items()) + ")"
