"""Dynamic segment membership: a validity-interval history of every customer's segments, batch and real-time.

Batch rows (source 'batch') advance one as-of date at a time from marts.customer_scores; real-time rows (source
'realtime') are rebuilt on every run from the segment service's transitions log (`<data dir>/realtime/log/
transitions-*.jsonl`, see landing/realtime_log.py), up to the end of the as-of date, like the raw events.
Python owns the table in schema `ml`; dbt publishes it as the view marts.segment_membership_history (the contract
name of issue 16; dbt_project/models/marts/after_scores/).
"""

import dagster as dg
import pandas as pd

from landing.realtime_log import read_transitions, transition_log_files
from ml.segment_history import (
    BATCH,
    HISTORY_COLUMNS,
    HistoryOrderError,
    advance_history_sql,
    realtime_history,
)
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, Warehouse
from orchestration.lib import groups
from orchestration.lib.code_versions import asset_code_versions
from orchestration.lib.keys import CUSTOMER_SCORES, SEGMENT_MEMBERSHIP_HISTORY
from orchestration.lib.metadata import markdown_table
from orchestration.lib.warehouse_io import is_base_table, present_columns, table_exists

SEGMENT_KINDS = ("rfm_segment", "behavioral_segment")
HISTORY_TABLE = "ml.segment_membership_history"
# Where this asset wrote before dbt became the only owner of `marts` (issue 15); read once to carry history over.
LEGACY_HISTORY_TABLE = "marts.segment_membership_history"


def _previous_history(conn) -> str:
    """The query of the batch rows carried over from the last run (real-time rows are rebuilt from the log)."""
    for table in (HISTORY_TABLE, LEGACY_HISTORY_TABLE):
        # A warehouse from before the move keeps its history: the old table is read once, then dbt replaces it by
        # the view of ml.segment_membership_history.
        if (table == HISTORY_TABLE and table_exists(conn, table)) or is_base_table(conn, table):
            has_source = "source" in present_columns(conn, table, ["source"])
            batch_only = f" where coalesce(source, '{BATCH}') = '{BATCH}'" if has_source else ""
            return f"(select {', '.join(HISTORY_COLUMNS)} from {table}{batch_only})"
    return (
        "(select null::varchar as customer_id, null::varchar as segment_kind, null::varchar as segment, "
        "null::timestamp as valid_from, null::timestamp as valid_to where false)"
    )


# The segment changes on the as-of date, per kind and pair of segments.
TRANSITIONS_SQL = """
select closed.segment_kind, closed.segment as from_segment, opened.segment as to_segment, count(*) as customers
from _membership_batch as closed
join _membership_batch as opened
    on closed.customer_id = opened.customer_id and closed.segment_kind = opened.segment_kind
    and closed.valid_to = opened.valid_from
where closed.valid_to = $as_of
group by all
order by customers desc, segment_kind, from_segment, to_segment
"""


@dg.asset(
    key=SEGMENT_MEMBERSHIP_HISTORY,
    deps=[CUSTOMER_SCORES],
    group_name=groups.SCORES,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["segment_membership_history"],
)
def segment_membership_history(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: SegmintSettings
) -> dg.MaterializeResult:
    """One row per customer (visitor, for real-time segments), segment kind, segment and stretch of membership.

    Columns: customer_id, segment_kind, segment, valid_from, valid_to (NULL = current), source ('batch' or
    'realtime'). The batch history advances inside DuckDB (ml.segment_history.ADVANCE_SQL): at 1 M customers the
    history never passes through pandas.
    """
    log_dir = settings.load().realtime_log_dir
    log_files = transition_log_files(log_dir)
    with warehouse.connect() as conn:
        as_of_value = conn.execute("select max(as_of_date) from marts.customer_scores").fetchone()[0]
        as_of = pd.Timestamp(as_of_value).date() if as_of_value is not None else None
        previous = _previous_history(conn)
        current = "(" + " union all ".join(
            f"select customer_id, '{kind}' as segment_kind, {kind} as segment from marts.customer_scores"
            for kind in SEGMENT_KINDS
        ) + ")"  # fmt: skip
        as_of_ts = pd.Timestamp(as_of).to_pydatetime() if as_of else None
        try:
            if as_of is None:  # nothing scored: the history stays as it is
                raise HistoryOrderError("no scored customers")
            batch = f"({advance_history_sql(conn, previous, current, as_of)})"
        except HistoryOrderError as error:
            # A backfill of an older date: keep history as it is and say why, instead of failing the run.
            if as_of is not None:
                context.log.warning(str(error))
            batch = previous
        log = read_transitions(conn, log_files, log_dir)
        live = realtime_history(log.transitions, as_of)
        conn.register("_membership_live", live)
        try:
            conn.execute("create schema if not exists ml")
            # Batch rows first (customer, kind, valid_from), then the real-time ones (visitor, segment, valid_from).
            # Written once, straight from the advancing query (it reads the table it replaces: DuckDB reads the
            # old rows first); the batch rows are not materialized on their own first (~1 s at 1 M customers).
            conn.execute(
                f"""create or replace table {HISTORY_TABLE} as
                select {", ".join(HISTORY_COLUMNS)}, '{BATCH}' as source from {batch}
                union all
                select customer_id::varchar, segment_kind::varchar, segment::varchar, valid_from::timestamp,
                    valid_to::timestamp, source::varchar from _membership_live""",
                {"as_of": as_of_ts} if "$as_of" in batch else None,
            )
        finally:
            conn.unregister("_membership_live")
        conn.execute(
            f"create or replace temp view _membership_batch as select * from {HISTORY_TABLE} where source = '{BATCH}'"
        )
        batch_rows = conn.execute("select count(*) from _membership_batch").fetchone()[0]
        summary = (
            conn.execute(TRANSITIONS_SQL, {"as_of": as_of_ts}).df()
            if as_of
            else pd.DataFrame(columns=["segment_kind", "from_segment", "to_segment", "customers"])
        )
        conn.execute("drop view if exists _membership_batch")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(batch_rows + len(live)),
            "as_of": dg.MetadataValue.text(str(as_of)),
            "transitions_on_as_of": dg.MetadataValue.int(int(summary["customers"].sum()) if len(summary) else 0),
            "realtime_rows": dg.MetadataValue.int(len(live)),
            "realtime_transition_lines": dg.MetadataValue.int(log.lines_read),
            "realtime_transitions_after_as_of": dg.MetadataValue.int(
                int(
                    (pd.to_datetime(log.transitions["occurred_at"]) >= pd.Timestamp(as_of) + pd.Timedelta(days=1)).sum()
                )
                if as_of and len(log.transitions)
                else 0
            ),
            # Lines that are not transitions (a torn last line after a crash, ...): counted, never silently dropped.
            "realtime_lines_set_aside": dg.MetadataValue.json(log.set_aside),
            "realtime_set_aside_examples": dg.MetadataValue.json(list(log.examples)),
            "top_transitions": markdown_table(summary),
        }
    )
