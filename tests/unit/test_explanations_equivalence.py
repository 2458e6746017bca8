"""The vectorized explain_customers writes exactly the rows the per-customer loop wrote (frozen in
tests/unit/explanations_reference.py), byte for byte, on inputs that exercise every branch: each RFM rule, the
no-web-activity cluster, clusters with and without distinguishing attributes, customers missing from the cluster
labels or the features, NULL scores and feature values, empty/NULL/non-dict drivers, population models, ties in |z|,
integer-valued and sub-1 numbers, negative zero, booleans and categorical features, several currencies' magnitudes.

`varied_inputs(n)` is also the synthetic input of the 100 k timing (bench note in the module docstring of
ml/explanations.py): `python -m tests.unit.test_explanations_equivalence 100000`, or
`... --warehouse <copy.duckdb>` for the asset's own reads of a warehouse; both time old and new and compare them.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd
import pytest

from ml.clustering import NO_WEB_ACTIVITY_CLUSTER
from ml.explanations import EXPLANATION_COLUMNS, explain_customers
from ml.rfm import SEGMENT_RULES
from tests.unit import explanations_reference as reference

NUMERIC_FEATURES = ["visual_share", "sale_share", "order_count", "recency_days", "avg_order_value", "tenure_days"]


def _drivers_text(rng: np.random.Generator, i: int) -> str | None:
    kind = i % 11
    if kind == 0:
        return None
    if kind == 1:
        return ""
    if kind == 2:
        return "[]"
    if kind == 3:  # junk entries are skipped, a driver without a contribution counts 0
        return json.dumps(
            [{"feature": "order_count"}, "noise", {"no_feature": 1}, {"feature": "recency_days", "contribution": -0.0}]
        )
    features = [*NUMERIC_FEATURES, "acquisition_channel", "is_subscriber", "feature_not_in_marts"]
    chosen = rng.choice(len(features), size=int(rng.integers(1, 6)), replace=False)
    contributions = rng.normal(0, 3, size=len(chosen)) * rng.choice([1e-6, 0.01, 1, 1000], size=len(chosen))
    contributions[rng.random(len(chosen)) < 0.1] = 0.005  # rounds to a tie at +0.01/-0.00 boundaries
    return json.dumps(
        [{"feature": features[j], "contribution": round(float(c), 4)} for j, c in zip(chosen, contributions)]
    )


def varied_inputs(n: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(scores, behavioral, profiles, features) for n customers, shaped like the asset's reads."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i:07d}" for i in rng.permutation(n)]
    recency_score, frequency_score, monetary_score = (rng.integers(1, 6, size=n) for _ in range(3))
    # every rule at least once
    for position, rule in enumerate(SEGMENT_RULES[: min(n, len(SEGMENT_RULES))]):
        recency_score[position], frequency_score[position], monetary_score[position] = (
            rule.recency[0], rule.frequency[0], rule.monetary[0])  # fmt: skip
    scale = rng.choice([1.0, 100.0, 10_000.0], size=n)  # EUR-, JPY-, IDR-like magnitudes per customer
    recency_days = rng.integers(0, 1500, size=n).astype("float64")
    recency_days[rng.random(n) < 0.05] = np.nan
    order_count = rng.integers(0, 40, size=n)
    total_revenue = np.round(rng.gamma(2.0, 80.0, size=n) * scale, 2)
    total_revenue[::17] = np.round(total_revenue[::17])  # integer-valued
    total_revenue[::23] = 0.0
    total_revenue[::29] = -0.0
    total_revenue[::31] = 0.5
    total_revenue[::37] = -12.75  # net of refunds
    total_revenue[::41] = np.nan
    predicted_clv = np.round(rng.gamma(1.5, 50.0, size=n) * scale, 6)
    predicted_clv[::13] = np.nan
    predicted_clv[::19] = 1.0
    propensity = rng.random(n)
    propensity[::43] = np.nan
    models = np.array(["lightgbm", "bgnbd", "pareto_nbd", "past_spend_rate", "mystery_model"])
    clv_model = models[rng.choice(len(models), size=n, p=[0.7, 0.1, 0.1, 0.05, 0.05])].astype(object)
    clv_model[::47] = None  # no prediction for this customer
    segments = [rule.segment for rule in SEGMENT_RULES]
    scores = pd.DataFrame({
        "customer_id": ids,
        "recency_score": recency_score.astype("int32"), "frequency_score": frequency_score.astype("int32"),
        "monetary_score": monetary_score.astype("int32"),
        "rfm_segment": [segments[i % len(segments)] for i in range(n)],
        "behavioral_segment": [["Visual Browsers", "Deal Seekers", "Researchers", "No Web Activity"][i % 4] for i in range(n)],
        "recency_days": recency_days, "order_count": order_count, "total_revenue": total_revenue,
        "predicted_clv": predicted_clv, "purchase_propensity": propensity, "clv_model": clv_model,
        "top_drivers": [_drivers_text(rng, i) for i in range(n)],
    })  # fmt: skip
    cluster = rng.choice([0, 1, 2, 3, NO_WEB_ACTIVITY_CLUSTER], size=n)
    behavioral = pd.DataFrame({"customer_id": ids, "cluster_id": cluster})
    behavioral = behavioral.drop(index=behavioral.index[5::53])  # some customers were never clustered
    profiles = pd.DataFrame({
        # cluster 0: a tie in |z| (broken by feature name) and a feature below MIN_ABS_Z; cluster 2: none strong;
        # cluster 1: more than MAX_CLUSTER_ATTRIBUTES strong, one named feature absent from the features table
        "cluster_id": [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2],
        "n_customers": [10] * 11,
        "feature": ["visual_share", "sale_share", "tenure_days", "order_count",
                    "avg_order_value", "recency_days", "visual_share", "not_a_feature", "sale_share",
                    "visual_share", "sale_share"],
        "mean": [0.6, 0.01, 400.0, 3.0, 1234.5678, 30.0, 0.123456, 2.0, 0.5, 0.3, 0.3],
        "base_mean": [0.1, 0.1, 380.0, 2.0, 99.0, 200.0, 0.2, 1.0, 0.4, 0.29, 0.31],
        "z_score": [2.1, -2.1, 0.05, 0.2, 3.333, -1.25, -0.95, 5.0, 0.21, 0.1, -0.1],
    })  # fmt: skip
    features = pd.DataFrame({
        "customer_id": ids,
        "visual_share": rng.random(n), "sale_share": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
        "order_count": order_count, "recency_days": recency_days, "tenure_days": rng.integers(1, 3000, size=n),
        "avg_order_value": np.round(rng.gamma(2.0, 40.0, size=n) * scale, 2),
        "acquisition_channel": pd.Series(rng.choice(["email", "affiliate", "paid_social"], size=n)).where(rng.random(n) > 0.05),
        "is_subscriber": rng.random(n) < 0.3,
    })  # fmt: skip
    features = features.drop(index=features.index[3::59])  # some scored customers have no feature row
    return scores, behavioral, profiles, features


def assert_identical(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == EXPLANATION_COLUMNS == list(expected.columns)
    assert len(actual) == len(expected)
    assert list(actual.dtypes) == list(expected.dtypes)
    for column in EXPLANATION_COLUMNS:
        mismatch = [
            i
            for i, (a, e) in enumerate(zip(actual[column], expected[column], strict=True))
            if a != e or type(a) is not type(e)
        ]
        assert not mismatch, (column, actual[column].iloc[mismatch[0]], expected[column].iloc[mismatch[0]])


@pytest.mark.parametrize("horizon_days", [365, None])
@pytest.mark.parametrize("seed", [1, 2])
def test_vectorized_rows_are_byte_identical_to_the_per_customer_loop(seed, horizon_days):
    inputs = varied_inputs(3000, seed)
    assert_identical(explain_customers(*inputs, horizon_days), reference.explain_customers(*inputs, horizon_days))


def test_identical_with_nullable_and_float_columns_as_duckdb_can_return_them():
    scores, behavioral, profiles, features = varied_inputs(800, 3)
    scores = scores.astype({"order_count": "float64", "recency_score": "int64"})
    behavioral = behavioral.astype({"cluster_id": "float64"})
    features = features.astype({"tenure_days": "Int64", "order_count": "Int64"})
    features.loc[features.index[::7], "tenure_days"] = pd.NA
    assert_identical(
        explain_customers(scores, behavioral, profiles, features, 90),
        reference.explain_customers(scores, behavioral, profiles, features, 90),
    )


def test_identical_without_profiles_drivers_or_features():
    scores, behavioral, _, features = varied_inputs(200, 4)
    empty_profiles = pd.DataFrame(columns=["cluster_id", "n_customers", "feature", "mean", "base_mean", "z_score"])
    scores = scores.assign(top_drivers=None)
    only_ids = features[["customer_id"]]
    assert_identical(
        explain_customers(scores, behavioral, empty_profiles, only_ids, 30),
        reference.explain_customers(scores, behavioral, empty_profiles, only_ids, 30),
    )


def test_identical_on_a_single_customer_and_on_none():
    scores, behavioral, profiles, features = varied_inputs(1, 5)
    assert_identical(explain_customers(scores, behavioral, profiles, features, 7),
                     reference.explain_customers(scores, behavioral, profiles, features, 7))  # fmt: skip
    empty = explain_customers(scores.iloc[:0], behavioral, profiles, features, 7)
    assert list(empty.columns) == EXPLANATION_COLUMNS and empty.empty


def _warehouse_inputs(path: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """The asset's own reads, from a warehouse file (open read-only: use a copy, not a warehouse a run is writing)."""
    import duckdb

    from orchestration.defs.explanations import EXPLAINED_CUSTOMERS_SQL
    from orchestration.lib.warehouse_io import read_table

    with duckdb.connect(path, read_only=True) as conn:
        return (
            conn.execute(EXPLAINED_CUSTOMERS_SQL).df(),
            read_table(conn, "ml.behavioral_segments", ["customer_id", "cluster_id"], order_by="customer_id"),
            read_table(conn, "ml.cluster_profiles", order_by="cluster_id, feature"),
            read_table(conn, "marts.customer_features", order_by="customer_id"),
            conn.execute("select horizon_days from raw.run_context").fetchone()[0],
        )


if __name__ == "__main__":
    # Timing, paired on the same input: python -m tests.unit.test_explanations_equivalence 100000
    # or on a (copied) warehouse, also checking identity: ... --warehouse /tmp/copy.duckdb
    if "--warehouse" in sys.argv:
        *inputs, horizon = _warehouse_inputs(sys.argv[sys.argv.index("--warehouse") + 1])
        label = f"{len(inputs[0])} customers of the warehouse"
    else:
        size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
        inputs, horizon, label = list(varied_inputs(size)), 365, f"{size} synthetic customers"
    tables = []
    for implementation in (reference.explain_customers, explain_customers):
        started = time.perf_counter()
        tables.append(implementation(*inputs, horizon))
        print(f"{implementation.__module__}: {label}, {len(tables[-1])} rows in {time.perf_counter() - started:.2f} s")
    assert_identical(tables[1], tables[0])
    print("byte-identical")
