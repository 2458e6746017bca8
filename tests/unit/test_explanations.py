"""Per-customer explanations (the view marts.customer_explanations, run by tests/unit/explanations_view.py): the RFM
rule that matched, the cluster's distinguishing attributes, the drivers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.clustering import NO_WEB_ACTIVITY_CLUSTER
from ml.explanations import (
    EXPLANATION_COLUMNS,
    cluster_texts,
    matched_rfm_rule,
    model_texts,
    rfm_rule_texts,
    rule_priorities,
)
from ml.rfm import SEGMENT_RULES, assign_segments
from tests.unit.explanations_view import explain_in_sql as explain_customers


def scores(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "customer_id": ["c2", "c1", "c3"],
        "recency_score": [5, 1, 3], "frequency_score": [5, 1, 1], "monetary_score": [5, 2, 1],
        "rfm_segment": ["Champions", "Lost", "About to Sleep"],
        "behavioral_segment": ["Visual Browsers", "Visual Browsers", "No Web Activity"],
        "recency_days": [3.0, 900.0, 200.0], "order_count": [9, 1, 1], "total_revenue": [950.0, 20.0, 15.0],
        "predicted_clv": [420.5, 0.7, 3.2], "purchase_propensity": [0.91, 0.02, 0.1],
        "clv_model": ["lightgbm", "lightgbm", "lightgbm"],
        "top_drivers": [
            json.dumps([{"feature": "order_count", "contribution": 1.2}, {"feature": "acquisition_channel", "contribution": 0.1}]),
            json.dumps([{"feature": "recency_days", "contribution": -1.7}]),
            None,
        ],
    })  # fmt: skip
    return frame.assign(**overrides)


BEHAVIORAL = pd.DataFrame({"customer_id": ["c1", "c2", "c3"], "cluster_id": [0, 0, NO_WEB_ACTIVITY_CLUSTER]})
PROFILES = pd.DataFrame({
    "cluster_id": [0, 0, 0, 0], "n_customers": [2, 2, 2, 2],
    "feature": ["visual_share", "sale_share", "brand_share", "research_share"],
    "mean": [0.6, 0.01, 0.05, 0.06], "base_mean": [0.1, 0.1, 0.06, 0.07], "z_score": [2.1, -0.6, -0.05, 0.3],
})  # fmt: skip
FEATURES = pd.DataFrame({
    "customer_id": ["c1", "c2", "c3"], "visual_share": [0.7, 0.5, 0.0], "sale_share": [0.0, 0.02, 0.0],
    "research_share": [0.1, 0.0, 0.0], "order_count": [1, 9, 1], "recency_days": [900, 3, 200],
    "acquisition_channel": ["email", "affiliate", "email"],
})  # fmt: skip


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return explain_customers(scores(), BEHAVIORAL, PROFILES, FEATURES, horizon_days=365)


def by(table: pd.DataFrame, customer: str, kind: str) -> pd.Series:
    return table[(table["customer_id"] == customer) & (table["segment_kind"] == kind)].iloc[0]


def test_three_rows_per_customer_in_customer_order(table):
    assert list(table.columns) == EXPLANATION_COLUMNS
    assert list(table["customer_id"]) == ["c1"] * 3 + ["c2"] * 3 + ["c3"] * 3
    assert list(table["segment_kind"][:3]) == ["rfm", "behavioral", "predicted_value"]


def test_the_rfm_reason_names_the_first_rule_that_matched_and_the_customers_scores(table):
    row = by(table, "c2", "rfm")
    assert row["segment"] == "Champions"
    assert "matched rule 1 of" in row["explanation"] and "9 orders" in row["explanation"]
    evidence = json.loads(row["evidence"])
    assert evidence["rule_priority"] == 1 and evidence["scores"] == {
        "recency_score": 5,
        "frequency_score": 5,
        "monetary_score": 5,
        "named_recency_score": 5,
    }


def test_a_name_read_from_a_raised_recency_score_says_so_and_matches_that_scores_rule():
    # A young shop's customer (ml/rfm.py floors): quintile 1, but within one repurchase cycle, so named as 4.
    young = scores(
        recency_score=[5, 1, 3], named_recency_score=[5, 4, 3], repurchase_cycle_days=[365.0] * 3,
        rfm_segment=["Champions", "Promising", "About to Sleep"], recency_days=[3.0, 30.0, 200.0],
    )  # fmt: skip
    row = by(explain_customers(young, BEHAVIORAL, PROFILES, FEATURES, horizon_days=365), "c1", "rfm")
    assert row["explanation"].startswith(
        "Promising: recency score 1 (last order 30 days before the as-of date), frequency score 1 (1 order), monetary "
        "score 2 (20 net revenue), named as recency score 4 (the last order is too recent to name lapsing in a shop "
        "younger than its CLV horizon of 365 days). It matched rule 5 of"
    )
    evidence = json.loads(row["evidence"])
    assert evidence["rule"]["meaning"] == "one fairly recent order"
    assert evidence["scores"]["named_recency_score"] == 4 and evidence["values"]["repurchase_cycle_days"] == 365


def test_the_matched_rule_is_always_the_one_assign_segments_applied():
    grid = np.array([(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)])
    priorities = rule_priorities(grid[:, 0], grid[:, 1], grid[:, 2])
    assigned = assign_segments(grid[:, 0], grid[:, 1], grid[:, 2])
    assert [SEGMENT_RULES[p - 1].segment for p in priorities] == list(assigned)
    assert matched_rfm_rule(5, 5, 5)[0] == 1


def test_the_behavioural_reason_lists_the_clusters_strongest_differences_with_the_customers_values(table):
    row = by(table, "c1", "behavioral")
    text = row["explanation"]
    # visual_share (z 2.1) first, then sale_share (-0.6), research_share (0.3); brand_share (|z| < 0.2) left out.
    assert text.index("visual share") < text.index("sale share") < text.index("research share")
    assert "brand share" not in text and "this customer 0.70" in text
    attributes = json.loads(row["evidence"])["attributes"]
    assert [a["feature"] for a in attributes] == ["visual_share", "sale_share", "research_share"]


def test_a_customer_without_web_events_is_told_so(table):
    assert "no web events" in by(table, "c3", "behavioral")["explanation"]


def test_the_value_reason_gives_the_drivers_with_direction_and_the_customers_value(table):
    text = by(table, "c2", "predicted_value")["explanation"]
    assert "Predicted CLV 420.50 over the next 365 days" in text
    assert "order count = 9 raised it (+1.20)" in text and "acquisition channel = affiliate raised it" in text
    assert "recency days = 900 lowered it (-1.70)" in by(table, "c1", "predicted_value")["explanation"]


def test_a_population_model_says_what_its_prediction_rests_on():
    table = explain_customers(scores(clv_model="pareto_nbd", top_drivers=None), BEHAVIORAL, PROFILES, FEATURES)
    assert (
        "rests on repeat orders, recency and tenure (Pareto/NBD)" in by(table, "c1", "predicted_value")["explanation"]
    )


def test_no_contact_field_reaches_an_explanation(table):
    assert not {"email", "phone", "first_name", "last_name"} & set(table.columns)


def test_the_rule_texts_cover_every_score_combination_with_the_rule_assign_segments_applies():
    rules = rfm_rule_texts()
    assert len(rules) == 125 and not rules.duplicated(["recency_score", "frequency_score", "monetary_score"]).any()
    expected = rule_priorities(*(rules[c].to_numpy() for c in ("recency_score", "frequency_score", "monetary_score")))
    assert list(rules["rule_priority"]) == list(expected)
    champions = rules[(rules["recency_score"] == 5) & (rules["frequency_score"] == 5) & (rules["monetary_score"] == 5)]
    assert champions["rule_text"].iloc[0].startswith(f"1 of {len(SEGMENT_RULES)} (recency ")
    assert json.loads(champions["rule_evidence"].iloc[0] + "}")["rule_priority"] == 1


def test_the_cluster_texts_have_one_row_per_cluster_with_attributes_and_the_fallbacks():
    clusters = cluster_texts(PROFILES).set_index("cluster_id", drop=False)
    assert (
        set(clusters["cluster_id"].dropna()) == {0, NO_WEB_ACTIVITY_CLUSTER}
        and clusters["cluster_id"].isna().sum() == 1
    )
    zero = clusters.loc[0]
    assert [zero[f"attribute_{i}_feature"] for i in (1, 2, 3)] == ["visual_share", "sale_share", "research_share"]
    assert json.loads(zero["attribute_1_evidence"] + "null}")["z_score"] == 2.1
    assert cluster_texts(PROFILES.iloc[:0])["attribute_1_feature"].isna().all()  # no profile: the fallbacks only


def test_every_population_model_and_any_other_has_what_its_prediction_rests_on():
    models = model_texts()
    assert models["rests_on"].notna().all() and models["clv_model"].isna().sum() == 1
    assert {"bgnbd", "pareto_nbd", "past_spend_rate"} <= set(models["clv_model"].dropna())
