"""BG/NBD and Gamma-Gamma reproduce the published CDNOW estimates, and the baseline degrades as documented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml import btyd

CDNOW = Path(__file__).parents[1] / "fixtures" / "cdnow_customers_summary.csv"
DAYS_PER_WEEK = 7


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """CDNOW cohort summary (2,357 customers, weeks): x repeat purchases, t_x recency, T age, zbar mean repeat spend."""
    return pd.read_csv(CDNOW)


@pytest.fixture(scope="module")
def cdnow_bgnbd(cdnow) -> btyd.BGNBDParams:
    return btyd.fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"])


def cdnow_as_features(cdnow: pd.DataFrame) -> pd.DataFrame:
    """CDNOW in customer_features columns (days); first order worth 20 so repeat mean spend is exactly zbar."""
    first_order_value = 20.0
    return pd.DataFrame(
        {
            "customer_id": cdnow["ID"].astype(str),
            "repeat_order_count": cdnow["x"],
            "order_count": cdnow["x"] + 1,
            "btyd_recency_days": cdnow["t_x"] * DAYS_PER_WEEK,
            "tenure_days": cdnow["T"] * DAYS_PER_WEEK,
            "first_order_value": first_order_value,
            "gross_revenue": cdnow["zbar"] * cdnow["x"] + first_order_value,
            "total_revenue": cdnow["zbar"] * cdnow["x"] + first_order_value,
            "avg_order_value": (cdnow["zbar"] * cdnow["x"] + first_order_value) / (cdnow["x"] + 1),
        }
    )


def test_bgnbd_reproduces_the_published_cdnow_estimates(cdnow_bgnbd):
    # Fader, Hardie & Lee (2005), section 5: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426.
    assert cdnow_bgnbd.r == pytest.approx(0.243, abs=0.001)
    assert cdnow_bgnbd.alpha == pytest.approx(4.414, abs=0.01)
    assert cdnow_bgnbd.a == pytest.approx(0.793, abs=0.002)
    assert cdnow_bgnbd.b == pytest.approx(2.426, abs=0.01)


def test_conditional_expectation_matches_the_published_value_for_customer_one(cdnow_bgnbd):
    # FHL 2005: a customer with x = 2, t_x = 30.43, T = 38.86 is expected to make 1.226 purchases in the next 39 weeks.
    expected = btyd.expected_purchases(cdnow_bgnbd, 39, [2], [30.43], [38.86])
    assert expected[0] == pytest.approx(1.226, abs=0.002)


def test_gamma_gamma_reproduces_the_published_cdnow_estimates(cdnow):
    # Fader & Hardie (2013), on the 946 customers with at least one repeat purchase: p = 6.25, q = 3.74, v = 15.44.
    repeaters = cdnow[cdnow["x"] > 0]
    params = btyd.fit_gamma_gamma(repeaters["x"], repeaters["zbar"])
    assert params.p == pytest.approx(6.25, abs=0.01)
    assert params.q == pytest.approx(3.74, abs=0.01)
    assert params.v == pytest.approx(15.44, abs=0.02)


def test_gamma_gamma_ignores_customers_without_repeat_spend(cdnow):
    with_zeros = btyd.fit_gamma_gamma(cdnow["x"], cdnow["zbar"])
    repeaters = cdnow[cdnow["x"] > 0]
    assert with_zeros == btyd.fit_gamma_gamma(repeaters["x"], repeaters["zbar"])


def test_expected_spend_shrinks_a_customer_mean_towards_the_population_mean():
    params = btyd.GammaGammaParams(p=6.25, q=3.74, v=15.44)
    population = btyd.population_mean_spend(params)
    assert population == pytest.approx(6.25 * 15.44 / 2.74)
    no_history, one_big, many_big = btyd.expected_average_spend(params, [0, 1, 50], [0.0, 100.0, 100.0])
    assert no_history == pytest.approx(population)
    # Hand-computed from FH 2013 eq. 5: p (v + x zbar) / (p x + q - 1) = 6.25 * 115.44 / 8.99.
    assert one_big == pytest.approx(6.25 * 115.44 / 8.99)
    assert population < one_big < many_big < 100.0


def test_parameters_scale_with_the_time_unit_and_predictions_do_not(cdnow, cdnow_bgnbd):
    in_days = btyd.fit_bgnbd(cdnow["x"], cdnow["t_x"] * DAYS_PER_WEEK, cdnow["T"] * DAYS_PER_WEEK)
    assert in_days.alpha == pytest.approx(cdnow_bgnbd.alpha * DAYS_PER_WEEK, rel=1e-3)
    assert in_days.r == pytest.approx(cdnow_bgnbd.r, rel=1e-3)
    expected_days = btyd.expected_purchases(in_days, 39 * DAYS_PER_WEEK, [2], [30.43 * 7], [38.86 * 7])
    assert expected_days[0] == pytest.approx(1.226, abs=0.002)


def test_expected_purchases_grow_with_the_horizon_and_favour_recent_buyers(cdnow_bgnbd):
    horizons = [btyd.expected_purchases(cdnow_bgnbd, t, [2], [30.0], [38.0])[0] for t in (0, 10, 39, 100)]
    assert horizons[0] == 0
    assert horizons == sorted(horizons)
    recent, lapsed = btyd.expected_purchases(cdnow_bgnbd, 39, [5, 5], [37.0, 5.0], [38.0, 38.0])
    assert recent > 3 * lapsed


def test_bgnbd_refuses_a_base_without_repeat_buyers():
    with pytest.raises(btyd.BTYDFitError):
        btyd.fit_bgnbd([0, 0, 0], [0, 0, 0], [10, 20, 30])


def test_bgnbd_rejects_recency_beyond_the_customer_age():
    with pytest.raises(ValueError):
        btyd.fit_bgnbd([1, 2], [15, 5], [10, 20])


def test_baseline_is_expected_purchases_times_expected_spend(cdnow):
    features = cdnow_as_features(cdnow)
    horizon_days = 39 * DAYS_PER_WEEK
    baseline = btyd.btyd_clv_baseline(features, horizon_days)
    assert baseline.index.equals(features.index)
    assert (baseline >= 0).all()
    repeaters = cdnow[cdnow["x"] > 0]
    spend_params = btyd.fit_gamma_gamma(repeaters["x"], repeaters["zbar"])
    customer_one_spend = btyd.expected_average_spend(spend_params, [2], [22.35])[0]
    assert baseline.iloc[0] == pytest.approx(1.226 * customer_one_spend, rel=0.01)
    # A one-time buyer is valued at the population mean spend, not at zero spend.
    one_timer = features.index[features["repeat_order_count"] == 0][0]
    assert baseline.loc[one_timer] > 0


def test_baseline_uses_the_observed_mean_spend_when_repeat_buyers_are_too_few(cdnow):
    features = cdnow_as_features(cdnow)
    few_repeaters = pd.concat(
        [features[features["repeat_order_count"] > 0].head(3), features[features["repeat_order_count"] == 0].head(200)]
    )
    baseline = btyd.btyd_clv_baseline(few_repeaters, 100)
    assert np.isfinite(baseline).all() and (baseline > 0).all()


def test_baseline_raises_a_typed_error_when_nobody_ever_came_back(cdnow):
    one_timers = cdnow_as_features(cdnow).query("repeat_order_count == 0")
    with pytest.raises(btyd.BTYDFitError):
        btyd.btyd_clv_baseline(one_timers, 90)
