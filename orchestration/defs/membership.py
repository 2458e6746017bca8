"""Dynamic segment membership: a validity-interval history of every customer's segments."""

import dagster as dg
import pandas as pd

from ml.segment_history import HistoryOrderError, advance_history, empty_history, transitions
from orchestration.defs.resources import DUCKDB_TAG, Warehouse
from orchestration.lib import groups
from orchestration.lib.keys import CUSTOMER_SCORES, SEGMENT_MEMBERSHIP_HISTORY
from orchestration.lib.metadata import markdown_table
from orchestration.lib.warehouse_io import read_table, table_exists, write_table

SEGMENT_KINDS = ("rfm_segment", "behavioral_segment")


@dg.asset(
    key=SEGMENT_MEMBERSHIP_HISTORY,
    deps=[CUSTOMER_SCORES],
    group_name=groups.SCORES,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
)
def segment_membership_history(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per customer, segment kind and stretch of membership (valid_from, valid_to; NULL = current)."""
    with warehouse.connect() as conn:
        scores = read_table(conn, "marts.customer_scores", ["customer_id", "as_of_date", *SEGMENT_KINDS], order_by="customer_id")
        history = (
            read_table(conn, "marts.segment_membership_history")
            if table_exists(conn, "marts.segment_membership_history")
            else empty_history()
        )
        as_of = pd.Timestamp(scores["as_of_date"].iloc[0]).date() if len(scores) else None
        current = scores.melt(id_vars="customer_id", value_vars=list(SEGMENT_KINDS), var_name="segment_kind", value_name="segment")
        try:
            updated = advance_history(history, current, as_of)
        except HistoryOrderError as error:
            # A backfill of an older date: keep history as it is and say why, instead of failing the run.
            context.log.warning(str(error))
            updated = history
        write_table(conn, "marts.segment_membership_history", updated)
    moves = transitions(updated)
    latest = moves[moves["changed_on"] == pd.Timestamp(as_of)] if as_of else moves.iloc[0:0]
    summary = latest.groupby(["segment_kind", "from_segment", "to_segment"]).size().rename("customers").reset_index()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(updated)),
            "as_of": dg.MetadataValue.text(str(as_of)),
            "transitions_on_as_of": dg.MetadataValue.int(len(latest)),
            "top_transitions": markdown_table(summary.sort_values("customers", ascending=False)),
        }
    )
