"""The view marts.customer_explanations says what the per-customer Python loop said (frozen in
tests/unit/explanations_reference.py), on inputs that exercise every branch: each RFM rule, the no-web-activity
cluster, clusters with and without distinguishing attributes, customers missing from the cluster labels or the
features, NULL/NaN scores' values and feature values, empty/NULL/non-dict drivers, population models, ties in |z|,
integer-valued and sub-1 numbers, negative zero, booleans and categorical (non-ASCII) features, several currencies'
magnitudes. The sentences are compared byte for byte; the evidence field by field of its JSON (same keys in the
same order, same strings, numbers equal up to the last rounded digit: SQL's round() and Python's can differ there).

`varied_inputs(n)` is also the synthetic input of the read timing: `python -m tests.unit.test_explanations_equivalence
100000` writes it into a DuckDB file and times reading every customer's rows and one customer's rows from the view.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.clustering import NO_WEB_ACTIVITY_CLUSTER
from ml.explanations import EXPLANATION_COLUMNS
from ml.rfm import SEGMENT_RULES
from tests.unit import explanations_reference as reference
from tests.unit.explanations_view import WAREHOUSE, compiled_view, explain_in_sql, reference_inputs, write_inputs

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
    # Names read a recency score raised by the repurchase-cycle floors (ml/rfm.py) for about a third of customers.
    named_recency_score = np.where(rng.random(n) < 0.3, np.maximum(recency_score, rng.integers(3, 5, size=n)),
                                   recency_score)  # fmt: skip
    repurchase_cycle_days = rng.choice([54.0, 96.916667, 365.0, np.nan])
    scores = pd.DataFrame({
        "customer_id": ids,
        "recency_score": recency_score.astype("int32"), "frequency_score": frequency_score.astype("int32"),
        "monetary_score": monetary_score.astype("int32"),
        "rfm_segment": [segments[i % len(segments)] for i in range(n)],
        "named_recency_score": named_recency_score.astype("int32"), "repurchase_cycle_days": repurchase_cycle_days,
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


def assert_same_json(actual: Any, expected: Any, where: str) -> None:
    """Equal JSON values: same keys in the same order, same strings and flags, numbers up to the last rounded digit."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), (where, actual, expected)
        for key in expected:
            assert_same_json(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (where, actual, expected)
        for index, (a, e) in enumerate(zip(actual, expected)):
            assert_same_json(a, e, f"{where}[{index}]")
    elif isinstance(expected, float) and not isinstance(actual, bool) and isinstance(actual, (int, float)):
        assert math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1.0001e-4), (where, actual, expected)
    else:
        assert type(actual) is type(expected) and actual == expected, (where, actual, expected)


def assert_same_meaning(view: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(view.columns) == EXPLANATION_COLUMNS == list(expected.columns)
    assert len(view) == len(expected)
    for column in ("customer_id", "segment_kind", "segment", "explanation"):
        mismatch = [i for i, (a, e) in enumerate(zip(view[column], expected[column], strict=True)) if a != e]
        assert not mismatch, (
            column,
            len(mismatch),
            view.iloc[mismatch[0]].to_dict(),
            expected[column].iloc[mismatch[0]],
        )
    for row, (actual, wanted) in enumerate(zip(view["evidence"], expected["evidence"], strict=True)):
        assert_same_json(json.loads(actual), json.loads(wanted), f"row {row} {expected['segment_kind'].iloc[row]}")


def view_and_reference(scores, behavioral, profiles, features, horizon_days) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The view's rows on these inputs, and the reference's on what the old asset read from the same tables."""
    view = explain_in_sql(scores, behavioral, profiles, features, horizon_days)
    read_scores, read_behavioral, read_features = reference_inputs()
    # A customer without a prediction: DuckDB hands pandas NaN for the NULL model, which the Python asset wrote as
    # "nan" (and the invalid JSON NaN); the view writes None (JSON null), which the reference writes for None.
    read_scores["clv_model"] = read_scores["clv_model"].astype(object).where(read_scores["clv_model"].notna(), None)
    table = reference.explain_customers(read_scores, read_behavioral, profiles, read_features, horizon_days)
    return view, table.astype(object).where(table.notna(), None).reset_index(drop=True)


@pytest.mark.parametrize("horizon_days", [365, None])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_view_says_what_the_per_customer_loop_said(seed, horizon_days):
    inputs = varied_inputs(3000, seed)
    assert_same_meaning(*view_and_reference(*inputs, horizon_days))


def test_the_same_without_profiles_drivers_or_feature_values():
    scores, behavioral, _, features = varied_inputs(200, 4)
    empty_profiles = pd.DataFrame(columns=["cluster_id", "n_customers", "feature", "mean", "base_mean", "z_score"])
    scores = scores.assign(top_drivers=None)
    only_ids = features[["customer_id"]]
    assert_same_meaning(*view_and_reference(scores, behavioral, empty_profiles, only_ids, 30))


def test_the_same_on_a_single_customer_and_none_on_none():
    scores, behavioral, profiles, features = varied_inputs(1, 5)
    assert_same_meaning(*view_and_reference(scores, behavioral, profiles, features, 7))
    empty = explain_in_sql(scores.iloc[:0], behavioral, profiles, features, 7)
    assert list(empty.columns) == EXPLANATION_COLUMNS and empty.empty


def test_non_ascii_text_is_kept_in_the_sentence_and_the_json():
    scores, behavioral, profiles, features = varied_inputs(50, 6)
    features = features.assign(acquisition_channel='Éßé "quoted" 東京')
    scores = scores.assign(
        clv_model="lightgbm",
        top_drivers=json.dumps([{"feature": "acquisition_channel", "contribution": 0.25}]),
        rfm_segment="Can't Lose Them",
    )
    view, expected = view_and_reference(scores, behavioral, profiles, features, 90)
    assert_same_meaning(view, expected)
    value = view[view["segment_kind"] == "predicted_value"].iloc[0]
    assert 'acquisition channel = Éßé "quoted" 東京 raised it (+0.25)' in value["explanation"]
    assert json.loads(value["evidence"])["drivers"][0]["customer_value"] == 'Éßé "quoted" 東京'


def _time_reads(size: int) -> None:
    """Write varied_inputs(size) as the view's inputs and time reading all its rows and one customer's."""
    scores, behavioral, profiles, features = varied_inputs(size)
    with duckdb.connect(str(WAREHOUSE)) as conn:
        write_inputs(conn, scores, behavioral, profiles, features, 365)
    sql = compiled_view()
    with duckdb.connect(str(WAREHOUSE)) as conn:
        conn.execute(f"create or replace view marts.customer_explanations as {sql}")
        started = time.perf_counter()
        rows = conn.execute(
            "select count(*), sum(length(explanation) + length(evidence)) from marts.customer_explanations"
        ).fetchone()
        every = time.perf_counter() - started
        customer = scores["customer_id"].iloc[size // 2]
        started = time.perf_counter()
        one = conn.execute("select * from marts.customer_explanations where customer_id = ?", [customer]).fetchall()
        single = time.perf_counter() - started
    print(
        f"{size} synthetic customers: all {rows[0]} rows in {every:.2f} s, one customer's {len(one)} rows in {single:.3f} s"
    )


if __name__ == "__main__":
    _time_reads(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
