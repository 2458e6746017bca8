"""Per-customer explanations: why each customer is in each of their segments (ml/explanations.py).

The Python asset writes ml.customer_explanations; the dbt model marts.customer_explanations exposes it (dbt owns
the marts schema), in its own dbt definition (orchestration/defs/dbt_models.py) so it runs after this asset.
"""

import dagster as dg

from ml.explanations import explain_customers
from orchestration.defs.resources import DUCKDB_TAG, Warehouse
from orchestration.lib import groups
from orchestration.lib.metadata import markdown_table
from orchestration.lib.warehouse_io import read_table, write_table

CUSTOMER_SCORES = dg.AssetKey(["marts", "customer_scores"])
CUSTOMER_FEATURES = dg.AssetKey(["marts", "customer_features"])
# ml.cluster_profiles is written by this asset together with the segments.
BEHAVIORAL_SEGMENTS = dg.AssetKey(["ml", "behavioral_segments"])


@dg.asset(
    key=["ml", "customer_explanations"],
    deps=[CUSTOMER_SCORES, CUSTOMER_FEATURES, BEHAVIORAL_SEGMENTS],
    group_name=groups.SCORES,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
)
def customer_explanations(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per customer and segment kind (rfm, behavioral, predicted_value): the reason as text and JSON evidence."""
    with warehouse.connect() as conn:
        scores = read_table(conn, "marts.customer_scores", order_by="customer_id")
        behavioral = read_table(conn, "ml.behavioral_segments", ["customer_id", "cluster_id"], order_by="customer_id")
        profiles = read_table(conn, "ml.cluster_profiles", order_by="cluster_id, feature")
        features = read_table(conn, "marts.customer_features", order_by="customer_id")
        horizon = conn.execute("select horizon_days from raw.run_context").fetchone()[0]
        table = explain_customers(scores, behavioral, profiles, features, horizon)
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
