"""The event vocabulary: the shop's own event names mapped to segmint's (config/event_mapping.yaml).

`raw.event_vocabulary` has one row per distinct (event name, page type, URL path) of raw.events, with its
count and the segmint event_type/page_type it means. dbt's `stage_events` joins it (a dbt source), so raw.events
stays as delivered and the incremental daily staging applies exactly this mapping. It lives in `raw`, the schema
the landing step owns (Python), because dbt owns every relation of `staging` (docs/ARCHITECTURE.md, "Schema
owners"). After editing the mapping file,
run every day (`make run`) so older staged days use it too.
"""

import hashlib

import dagster as dg
import duckdb
import pandas as pd

from landing.event_mapping import (
    PAGE_PATH_PATTERN,
    UNMAPPED_WARN_SHARE,
    EventMappingError,
    load_event_mapping,
    map_event_vocabulary,
    resolve_preset,
    too_many_unmapped,
    unmapped_share,
    unmapped_summary,
)
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, Warehouse
from orchestration.lib import groups
from orchestration.lib.code_versions import asset_code_versions
from orchestration.lib.keys import EVENT_VOCABULARY, RAW_EVENTS, RAW_RUN_CONTEXT
from orchestration.lib.metadata import markdown_table
from orchestration.lib.warehouse_io import read_table, write_table

EVENT_VOCABULARY_TABLE = "raw.event_vocabulary"
# Where the vocabulary lived before dbt became the only owner of `staging` (issue 15); dropped on the next run.
LEGACY_EVENT_VOCABULARY_TABLE = "staging.event_vocabulary"
DEFAULT_SOURCE_FORMAT = "segmint"
UNMAPPED_LISTED = 20


def _columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ?", [schema, table]
    ).fetchall()
    return {row[0].lower() for row in rows}


def read_event_keys(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Distinct (event name, page type, URL path) of raw.events with counts, keyed exactly as stage_events joins."""
    has_url = "page_url" in _columns(conn, "raw", "events")
    path = f"lower(regexp_extract(coalesce(page_url, ''), '{PAGE_PATH_PATTERN}', 1))" if has_url else "''"
    return conn.execute(
        f"""
        select
            lower(trim(coalesce(event_type, ''))) as source_event_type,
            lower(trim(coalesce(page_type, ''))) as source_page_type,
            {path} as source_page_path,
            count(*) as event_count
        from raw.events
        group by all
        order by all
        """
    ).df()


def read_source_format(conn: duckdb.DuckDBPyConnection) -> str:
    """raw.run_context.source_format when the landing records it, else segmint's own contract."""
    if "source_format" not in _columns(conn, "raw", "run_context"):
        return DEFAULT_SOURCE_FORMAT
    row = conn.execute("select source_format from raw.run_context").fetchone()
    return (row[0] if row and row[0] else DEFAULT_SOURCE_FORMAT).strip().lower()


@dg.asset(
    key=EVENT_VOCABULARY,
    deps=[RAW_EVENTS, RAW_RUN_CONTEXT],
    group_name=groups.STAGING,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["event_vocabulary"],
)
def event_vocabulary(settings: SegmintSettings, warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per distinct source event name, page type and URL path: its event count and segmint meaning."""
    s = settings.load()
    try:
        mapping = load_event_mapping(s.event_mapping)
    except EventMappingError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    with warehouse.connect() as conn:
        keys = read_event_keys(conn)
        source_format = read_source_format(conn)
        vocabulary = map_event_vocabulary(keys, mapping, source_format)
        write_table(conn, EVENT_VOCABULARY_TABLE, vocabulary)
        conn.execute(f"drop table if exists {LEGACY_EVENT_VOCABULARY_TABLE}")
    unmapped = unmapped_summary(vocabulary)
    mapped_by = (
        vocabulary.assign(mapped_by=vocabulary["mapped_by"].fillna("unmapped"))
        .groupby("mapped_by", as_index=False)["event_count"]
        .sum()
        .sort_values(["event_count", "mapped_by"], ascending=[False, True])
    )
    file_text = s.event_mapping.read_bytes() if s.event_mapping else b""
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(vocabulary)),
            "mapping_file": dg.MetadataValue.text(mapping.source),
            "mapping_version": dg.MetadataValue.int(mapping.version),
            "mapping_sha256": dg.MetadataValue.text(hashlib.sha256(file_text).hexdigest()[:16]),
            "source_format": dg.MetadataValue.text(source_format),
            "preset": dg.MetadataValue.text(resolve_preset(mapping, source_format).name),
            "user_rules": dg.MetadataValue.int(len(mapping.rules)),
            "events": dg.MetadataValue.int(int(vocabulary["event_count"].sum())),
            "unmapped_share": dg.MetadataValue.float(round(unmapped_share(vocabulary), 4)),
            "unmapped_event_names": dg.MetadataValue.int(len(unmapped)),
            "unmapped": markdown_table(unmapped.head(UNMAPPED_LISTED)),
            "events_by_mapping_source": markdown_table(mapped_by),
        }
    )


@dg.asset_check(
    asset=EVENT_VOCABULARY,
    description=(
        f"Warns (never blocks) when more than {UNMAPPED_WARN_SHARE:.0%} of the events map to no segmint event or "
        "page type: behaviour features then come from the generic event mix; add rules to config/event_mapping.yaml."
    ),
    blocking=False,
    op_tags=DUCKDB_TAG,
)
def check_unmapped_event_share(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as conn:
        vocabulary = read_table(conn, EVENT_VOCABULARY_TABLE, order_by="all")
    share = unmapped_share(vocabulary)
    unmapped = unmapped_summary(vocabulary)
    top = ", ".join(f"{row.source_event_type} ({row.share:.0%})" for row in unmapped.head(5).itertuples())
    warn = too_many_unmapped(vocabulary)
    most_frequent = f"; most frequent: {top}" if top else ""
    return dg.AssetCheckResult(
        passed=not warn,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{share:.1%} of events unmapped (threshold {UNMAPPED_WARN_SHARE:.0%}){most_frequent}",
        metadata={
            "unmapped_share": dg.MetadataValue.float(round(share, 4)),
            "threshold": dg.MetadataValue.float(UNMAPPED_WARN_SHARE),
            "unmapped": markdown_table(unmapped.head(UNMAPPED_LISTED)),
        },
    )
