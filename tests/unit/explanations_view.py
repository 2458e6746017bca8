"""The view marts.customer_explanations run on given inputs: dbt compiles it (once per session: every test writes the
same feature-table layout, FEATURE_TYPES) against a small DuckDB warehouse holding the tables it reads, and the
compiled SQL is run there.

`explain_in_sql(scores, behavioral, profiles, features, horizon_days)` takes the inputs the per-customer reference
(tests/unit/explanations_reference.py) takes and returns the view's rows in its order (customer_id, then rfm,
behavioral, predicted_value), so the tests compare the two.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ml.explanations import EXPLANATION_COLUMNS, cluster_texts, model_texts, rfm_rule_texts

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_DIR = PROJECT_ROOT / "dbt_project"
DBT = Path(os.sys.executable).parent / "dbt"
KIND_ORDER = {"rfm": 0, "behavioral": 1, "predicted_value": 2}
# The feature table of every test: the union of the features the tests name, with the warehouse's types (a
# feature the tests name that is not here plays a feature customer_features lacks).
FEATURE_TYPES = {
    "visual_share": "double", "sale_share": "double", "research_share": "double", "brand_share": "double",
    "order_count": "bigint", "recency_days": "double", "tenure_days": "bigint", "avg_order_value": "double",
    "total_revenue": "double", "acquisition_channel": "varchar", "is_subscriber": "boolean",
}  # fmt: skip
_WORKDIR = Path(tempfile.mkdtemp(prefix="segmint_explanations_view_"))
WAREHOUSE = _WORKDIR / "warehouse.duckdb"  # named like the real one: dbt-duckdb names the catalog after the file


def _frame(conn: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, types: dict[str, str] | None = None) -> None:
    conn.execute(f"create schema if not exists {table.split('.')[0]}")
    conn.register("_frame", df)
    try:
        columns = ", ".join(
            f'cast("{c}" as {types[c]}) as "{c}"' if types and c in types else f'"{c}"' for c in df.columns
        )
        conn.execute(f"create or replace table {table} as select {columns} from _frame")
    finally:
        conn.unregister("_frame")


def write_inputs(
    conn: duckdb.DuckDBPyConnection,
    scores: pd.DataFrame,
    behavioral: pd.DataFrame,
    profiles: pd.DataFrame,
    features: pd.DataFrame,
    horizon_days: int | None,
) -> None:
    """The view's input tables from the reference's inputs (recency_days, order_count and total_revenue of
    customer_features are the scores' values, as customer_scores reads them; every scored customer has a feature
    row, empty where `features` has none)."""
    base = scores[["customer_id", "recency_days", "order_count", "total_revenue"]]
    own = features.drop(columns=["recency_days", "order_count", "total_revenue"], errors="ignore")
    table = base.merge(own, on="customer_id", how="left")
    for column in FEATURE_TYPES:
        if column not in table.columns:
            table[column] = None
    table = (
        table[["customer_id", *FEATURE_TYPES]]
        .astype(object)
        .where(table[["customer_id", *FEATURE_TYPES]].notna(), None)
    )
    _frame(conn, "marts.customer_features", table, FEATURE_TYPES)
    if "named_recency_score" not in scores.columns:  # scores named from the quintiles alone (no repurchase cycle)
        scores = scores.assign(named_recency_score=scores["recency_score"], repurchase_cycle_days=np.nan)
    _frame(conn, "ml.rfm_segments", scores[["customer_id", "recency_score", "frequency_score", "monetary_score",
                                            "rfm_segment", "named_recency_score", "repurchase_cycle_days"]],
           {s: "integer" for s in ("recency_score", "frequency_score", "monetary_score", "named_recency_score")}
           | {"repurchase_cycle_days": "double"})  # fmt: skip
    # A scored customer missing from `behavioral` was not clustered: its segment without a cluster_id.
    clustered = scores[["customer_id", "behavioral_segment"]].merge(
        behavioral[["customer_id", "cluster_id"]], on="customer_id", how="left"
    )
    _frame(conn, "ml.behavioral_segments", clustered, {"cluster_id": "integer"})
    predictions = scores[["customer_id", "predicted_clv", "purchase_propensity", "clv_model", "top_drivers"]]
    _frame(conn, "ml.clv_predictions", predictions.astype({"top_drivers": object}),
           {"predicted_clv": "double", "purchase_propensity": "double", "clv_model": "varchar", "top_drivers": "varchar"})  # fmt: skip
    _frame(conn, "raw.run_context", pd.DataFrame({"horizon_days": [horizon_days]}), {"horizon_days": "integer"})
    _frame(conn, "ml.explanation_rfm_rules", rfm_rule_texts())
    _frame(conn, "ml.explanation_clusters", cluster_texts(profiles))
    _frame(conn, "ml.explanation_models", model_texts())


@functools.cache
def compiled_view() -> str:
    """The view's SQL as dbt compiles it against WAREHOUSE (its feature columns and cluster slots at that time)."""
    target = _WORKDIR / "target"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    parsed = DBT_DIR / "target" / "partial_parse.msgpack"
    if parsed.exists():  # tests/conftest.py's session parse: reusing it saves dbt a full parse
        shutil.copy(parsed, target / "partial_parse.msgpack")
    env = {**os.environ, "DO_NOT_TRACK": "1", "SEGMINT_WAREHOUSE": str(WAREHOUSE), "SEGMINT_ENGINE": "duckdb"}
    result = subprocess.run(
        [str(DBT), "compile", "--select", "customer_explanations", "--profiles-dir", ".", "--target-path",
         str(target), "--log-path", str(_WORKDIR / "logs"), "--quiet"],
        cwd=DBT_DIR, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode:
        raise RuntimeError(f"dbt compile failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return next(target.glob("compiled/**/customer_explanations.sql")).read_text()


def explain_in_sql(
    scores: pd.DataFrame,
    behavioral: pd.DataFrame,
    profiles: pd.DataFrame,
    features: pd.DataFrame,
    horizon_days: int | None = None,
) -> pd.DataFrame:
    """The view's rows for these inputs, ordered like the reference's (by customer_id, then segment kind)."""
    with duckdb.connect(str(WAREHOUSE)) as conn:
        write_inputs(conn, scores, behavioral, profiles, features, horizon_days)
    sql = compiled_view()  # after the inputs exist: dbt reads their columns
    with duckdb.connect(str(WAREHOUSE)) as conn:
        rows = conn.execute(sql).df()
    rows["_kind"] = rows["segment_kind"].map(KIND_ORDER)
    rows = rows.sort_values(["customer_id", "_kind"], kind="stable").drop(columns="_kind").reset_index(drop=True)
    return rows[EXPLANATION_COLUMNS].astype(object).where(rows[EXPLANATION_COLUMNS].notna(), None)


# What the Python asset that wrote every customer's rows read (one row per customer of customer_features, as
# customer_scores joins them): the reference is given exactly that.
REFERENCE_INPUT_SQL = """
    select
        features.customer_id, rfm.recency_score, rfm.frequency_score, rfm.monetary_score, rfm.rfm_segment,
        rfm.named_recency_score, rfm.repurchase_cycle_days,
        behaviour.behavioral_segment, features.recency_days, features.order_count, features.total_revenue,
        predictions.predicted_clv, predictions.purchase_propensity, predictions.clv_model, predictions.top_drivers
    from marts.customer_features as features
    left join ml.rfm_segments as rfm using (customer_id)
    left join ml.behavioral_segments as behaviour using (customer_id)
    left join ml.clv_predictions as predictions using (customer_id)
    order by features.customer_id
"""


def reference_inputs() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(scores, behavioral, features) as the asset read them from the inputs explain_in_sql wrote last."""
    with duckdb.connect(str(WAREHOUSE), read_only=True) as conn:
        return (
            conn.execute(REFERENCE_INPUT_SQL).df(),
            conn.execute("select customer_id, cluster_id from ml.behavioral_segments order by customer_id").df(),
            conn.execute("select * from marts.customer_features order by customer_id").df(),
        )
