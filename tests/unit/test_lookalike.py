import numpy as np
import pandas as pd
import pytest

from ml.lookalike import (
    BASE_RATE_METHOD,
    MODEL_METHOD,
    SCORE_COLUMNS,
    fit_lookalike,
    is_high_value,
    score_prospects,
)


def behaviour(ids: list[str], research_share: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    count = len(ids)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "product_views_per_active_day": rng.lognormal(1.0, 0.4, count),
            "research_share": research_share,
            "sale_share": rng.beta(2, 30, count),
            "discount_event_share": rng.beta(1, 60, count),
            "shipping_abandon_rate": rng.beta(2, 10, count),
            "brand_share": rng.beta(2, 40, count),
            "visual_share": rng.beta(2, 30, count),
            "urgency_share": rng.beta(1, 50, count),
            "event_count": rng.integers(1, 100, count),
            "active_days": rng.integers(1, 10, count),
        }
    )


def rfm_rows(ids: list[str], high_value: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids,
            "recency_score": np.where(high_value, 5, 2),
            "frequency_score": np.where(high_value, 4, 1),
            "monetary_score": np.where(high_value, 4, 2),
            "rfm_segment": np.where(high_value, "Loyal Customers", "Hibernating"),
        }
    )


@pytest.fixture(scope="module")
def researchers_become_high_value():
    """Customers who researched before buying became high value far more often (planted signal)."""
    rng = np.random.default_rng(0)
    count = 2000
    ids = [f"c{i:05d}" for i in range(count)]
    research = rng.beta(2, 20, count)
    high_value = rng.random(count) < np.where(research > 0.1, 0.6, 0.1)
    return behaviour(ids, research, rng), rfm_rows(ids, high_value)


def test_researchers_score_higher_than_bargain_browsers(researchers_become_high_value):
    prepurchase, rfm = researchers_become_high_value
    model = fit_lookalike(prepurchase, rfm, seed=0)
    assert model.method == MODEL_METHOD
    assert model.holdout_auc > 0.7
    rng = np.random.default_rng(1)
    prospects = behaviour([f"p{i}" for i in range(200)], np.r_[np.full(100, 0.3), np.full(100, 0.01)], rng)
    prospects = prospects.rename(columns={"customer_id": "prospect_id"})
    scores = score_prospects(model, prospects)
    assert list(scores.columns) == SCORE_COLUMNS
    assert scores["lookalike_score"].between(0, 1).all()
    assert scores["lookalike_score"][:100].mean() > scores["lookalike_score"][100:].mean() + 0.2


def test_scores_stay_near_the_base_rate_on_average(researchers_become_high_value):
    prepurchase, rfm = researchers_become_high_value
    model = fit_lookalike(prepurchase, rfm, seed=0)
    scores = score_prospects(model, prepurchase.rename(columns={"customer_id": "prospect_id"}))
    # No class re-weighting: the mean probability matches the observed high-value share (calibrated-ish).
    assert abs(scores["lookalike_score"].mean() - model.base_rate) < 0.02


def test_no_signal_gives_an_auc_near_one_half():
    rng = np.random.default_rng(2)
    ids = [f"c{i}" for i in range(2000)]
    model = fit_lookalike(behaviour(ids, rng.beta(2, 20, 2000), rng), rfm_rows(ids, rng.random(2000) < 0.3))
    assert model.method == MODEL_METHOD
    assert 0.4 < model.holdout_auc < 0.6


def test_high_value_means_loyal_segments_or_top_spend():
    rfm = pd.DataFrame(
        {
            "rfm_segment": ["Champions", "Loyal Customers", "At Risk", "Hibernating"],
            "monetary_score": [3, 2, 5, 4],
        }
    )
    assert is_high_value(rfm).tolist() == [True, True, True, False]


def test_one_class_falls_back_to_the_base_rate():
    rng = np.random.default_rng(3)
    ids = [f"c{i}" for i in range(300)]
    model = fit_lookalike(behaviour(ids, rng.beta(2, 20, 300), rng), rfm_rows(ids, np.zeros(300, dtype=bool)))
    assert model.method == BASE_RATE_METHOD
    assert np.isnan(model.holdout_auc)
    assert "Fallback" in model.notes[0]
    prospects = behaviour(["p1", "p2"], np.array([0.2, 0.0]), rng).rename(columns={"customer_id": "prospect_id"})
    assert score_prospects(model, prospects)["lookalike_score"].tolist() == [0.0, 0.0]


def test_no_prepurchase_events_fall_back_to_the_share_of_high_value_customers():
    rng = np.random.default_rng(4)
    ids = [f"c{i}" for i in range(10)]
    rfm = rfm_rows(ids, np.array([True] * 3 + [False] * 7))
    model = fit_lookalike(behaviour([], np.array([]), rng), rfm)
    assert model.method == BASE_RATE_METHOD and model.base_rate == pytest.approx(0.3)
    prospects = behaviour(["p1"], np.array([0.2]), rng).rename(columns={"customer_id": "prospect_id"})
    assert score_prospects(model, prospects)["lookalike_score"].tolist() == [pytest.approx(0.3)]


def test_no_prospects_give_an_empty_score_table(researchers_become_high_value):
    model = fit_lookalike(*researchers_become_high_value)
    scores = score_prospects(model, pd.DataFrame(columns=["prospect_id", *model.feature_columns]))
    assert scores.empty and list(scores.columns) == SCORE_COLUMNS


def test_prospects_missing_a_model_column_is_an_error(researchers_become_high_value):
    model = fit_lookalike(*researchers_become_high_value)
    prospects = pd.DataFrame({"prospect_id": ["p1"], "research_share": [0.2]})
    with pytest.raises(KeyError, match="lacks"):
        score_prospects(model, prospects)
