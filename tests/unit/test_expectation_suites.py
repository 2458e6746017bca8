"""The GX suites take their names from the owners of the rules (one owner per rule), so a new RFM segment or
behaviour ratio is accepted without touching expectations/suites.py."""

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from expectations.suites import customer_features_suite, customer_scores_suite, share_columns
from expectations.validate import validate
from ml import feature_columns, rfm

ROOT = Path(__file__).resolve().parents[2]


def _scores(segments: list[str]) -> pd.DataFrame:
    n = len(segments)
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "predicted_clv": np.full(n, 10.0),
                         "purchase_propensity": np.full(n, 0.5), "rfm_segment": segments,
                         "behavioral_segment": ["No Web Activity"] * n})


def _in_set_values(suite) -> list[str]:
    [expectation] = [e for e in suite.expectations if getattr(e, "column", None) == "rfm_segment"]
    return list(expectation.value_set)


def test_the_scores_suite_accepts_exactly_the_segments_of_the_rfm_rule_table():
    assert _in_set_values(customer_scores_suite()) == list(rfm.SEGMENT_NAMES)
    assert validate(_scores(list(rfm.SEGMENT_NAMES)), customer_scores_suite()).passed
    unknown = validate(_scores(["Champions", "Champs"]), customer_scores_suite())
    assert not unknown.passed and unknown.errors[0].column == "rfm_segment"


def test_a_segment_added_to_the_rule_table_passes_the_scores_suite(monkeypatch):
    big_spenders = rfm.SegmentRule("Big Spenders", (1, 5), (1, 5), (5, 5), "the top fifth by spend")
    rules = (big_spenders, *rfm.SEGMENT_RULES)
    monkeypatch.setattr(rfm, "SEGMENT_RULES", rules)
    monkeypatch.setattr(rfm, "SEGMENT_NAMES", tuple(dict.fromkeys(rule.segment for rule in rules)))
    features = pd.DataFrame({"customer_id": [f"c{i}" for i in range(20)], "recency_days": np.arange(20) * 10,
                             "order_count": np.arange(20) % 4 + 1, "total_revenue": np.arange(20) * 7.0})
    segments = rfm.score_rfm(features)["rfm_segment"].tolist()
    assert "Big Spenders" in segments
    assert validate(_scores(segments), customer_scores_suite()).passed


def test_every_behaviour_ratio_is_range_checked_and_exists_in_the_feature_mart():
    columns = share_columns()
    assert set(feature_columns.BEHAVIOUR_RATIOS) <= set(columns)
    assert "product_views_per_active_day" not in columns  # a rate per day, not a share
    checked = {e.column for e in customer_features_suite().expectations
               if type(e).__name__ == "ExpectColumnValuesToBeBetween" and e.max_value == 1}
    assert checked == set(columns)
    mart = yaml.safe_load((ROOT / "dbt_project/models/marts/customer_features.yml").read_text())
    [model] = [m for m in mart["models"] if m["name"] == "customer_features"]
    assert set(columns) <= {column["name"] for column in model["columns"]}
