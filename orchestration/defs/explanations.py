"""Per-customer explanations: why each customer is in each of their segments (ml/explanations.py).

The Python asset writes ml.customer_explanations from the ML outputs and the features (the same inputs as
marts.customer_scores, joined the same way), so it runs before the score marts and the dbt model
marts.customer_explanations (tag `scores`, dbt owns the marts schema) is built with them in one dbt invocation.
"""

import dagster as dg
import pandas as pd

from ml.explanations import EXPLANATION_COLUMNS, explain_customers
from orchestration.defs.resources import DUCKDB_TAG, Warehouse
from orchestration.lib import groups
from orchestration.lib.keys import (
    BEHAVIORAL_SEGMENTS,
    CLV_PREDICTIONS,
    CUSTOMER_EXPLANATIONS,
    CUSTOMER_FEATURES,
    RFM_SEGMENTS,
)
from orchestration.lib.metadata import markdown_table
from orchestration.lib.warehouse_io import read_table

# One row per customer of customer_features, as marts.customer_scores joins them.
EXPLAINED_CUSTOMERS_SQL = """
    select
        features.customer_id, rfm.recency_score, rfm.frequency_score, rfm.monetary_score, rfm.rfm_segment,
        behaviour.behavioral_segment, features.recency_days, features.order_count, features.total_revenue,
        predictions.predicted_clv, predictions.purchase_propensity, predictions.clv_model, predictions.top_drivers
    from marts.customer_features as features
    left join ml.rfm_segments as rfm using (customer_id)
    left join ml.behavioral_segments as behaviour using (customer_id)
    left join ml.clv_predictions as predictions using (customer_id)
    where features.customer_id between $first and $last
    order by features.customer_id
"""
# Customers explained at a time: a 1 M-customer shop in one frame peaked at ~8 GiB (the features, the scores and
# three text rows per customer); every explanation depends only on its own customer and the cluster profiles, so
# chunks by customer_id give the same rows in the same order.
EXPLAIN_CHUNK_CUSTOMERS = 100_000


@dg.asset(
    key=CUSTOMER_EXPLANATIONS,
    deps=[CUSTOMER_FEATURES, RFM_SEGMENTS, BEHAVIORAL_SEGMENTS, CLV_PREDICTIONS],
    group_name=groups.SCORES,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
)
def customer_explanations(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per customer and segment kind (rfm, behavioral, predicted_value): the reason as text and JSON evidence."""
    with warehouse.connect() as conn:
        rows, customers, example = write_explanations(conn)
    # One example per segment kind, from the first customer (pseudonymous: customer_id only).
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(rows),
            "customers": dg.MetadataValue.int(customers),
            "example": markdown_table(example[["segment_kind", "segment", "explanation"]]),
        }
    )


def customer_id_bounds(conn, chunk_customers: int) -> list[tuple[str, str]]:
    """(first, last) customer_id of each run of `chunk_customers` customers, in DuckDB's customer_id order."""
    return [
        (first, last)
        for first, last in conn.execute(
            """
            select min(customer_id), max(customer_id)
            from (select customer_id, (row_number() over (order by customer_id) - 1) // $size as chunk
                  from marts.customer_features)
            group by chunk order by chunk
            """,
            {"size": chunk_customers},
        ).fetchall()
    ]


def write_explanations(conn, chunk_customers: int = EXPLAIN_CHUNK_CUSTOMERS) -> tuple[int, int, pd.DataFrame]:
    """ml.customer_explanations, explained `chunk_customers` customers at a time in one transaction (readers see the
    old table or the new one); returns the rows and customers written and the first customer's rows (the example)."""
    profiles = read_table(conn, "ml.cluster_profiles", order_by="cluster_id, feature")
    horizon = conn.execute("select horizon_days from raw.run_context").fetchone()[0]
    rows, customers_seen, example = 0, 0, pd.DataFrame(columns=EXPLANATION_COLUMNS)
    conn.execute("create schema if not exists ml")
    conn.execute("begin transaction")
    try:
        bounds = customer_id_bounds(conn, chunk_customers) or [("", "")]
        for index, (first, last) in enumerate(bounds):
            between = {"first": first, "last": last}
            customers = conn.execute(EXPLAINED_CUSTOMERS_SQL, between).df()
            behavioral = conn.execute(
                "select customer_id, cluster_id from ml.behavioral_segments"
                " where customer_id between $first and $last order by customer_id",
                between,
            ).df()
            features = conn.execute(
                "select * from marts.customer_features where customer_id between $first and $last order by customer_id",
                between,
            ).df()
            table = explain_customers(customers, behavioral, profiles, features, horizon)
            conn.register("_segmint_explanations", table)
            try:
                verb = (
                    "create or replace table ml.customer_explanations as"
                    if index == 0
                    else ("insert into ml.customer_explanations")
                )
                conn.execute(f"{verb} select * from _segmint_explanations")
            finally:
                conn.unregister("_segmint_explanations")
            rows += len(table)
            customers_seen += len(customers)
            if index == 0 and len(table):
                example = table[table["customer_id"] == table["customer_id"].iloc[0]]
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return rows, customers_seen, example
