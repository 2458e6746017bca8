"""Per-customer explanations: why each customer is in each of their segments (ml/explanations.py).

The Python asset writes ml.customer_explanations from the ML outputs and the features (the same inputs as
marts.customer_scores, joined the same way), so it runs before the score marts and the dbt model
marts.customer_explanations (tag `scores`, dbt owns the marts schema) is built with them in one dbt invocation.
"""

import dagster as dg

from ml.explanations import explain_customers
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
from orchestration.lib.warehouse_io import read_table, write_table

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
    order by features.customer_id
"""


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
        customers = conn.execute(EXPLAINED_CUSTOMERS_SQL).df()
        behavioral = read_table(conn, "ml.behavioral_segments", ["customer_id", "cluster_id"], order_by="customer_id")
        profiles = read_table(conn, "ml.cluster_profiles", order_by="cluster_id, feature")
        features = read_table(conn, "marts.customer_features", order_by="customer_id")
        horizon = conn.execute("select horizon_days from raw.run_context").fetchone()[0]
        table = explain_customers(customers, behavioral, profiles, features, horizon)
        write_table(conn, "ml.customer_explanations", table)
    # One example per segment kind, from the first customer (pseudonymous: customer_id only).
    example = table[table["customer_id"] == table["customer_id"].iloc[0]] if len(table) else table
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "customers": dg.MetadataValue.int(int(table["customer_id"].nunique()) if len(table) else 0),
            "example": markdown_table(example[["segment_kind", "segment", "explanation"]]),
        }
    )
