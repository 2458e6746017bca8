"""BG/NBD and Gamma-Gamma reproduce the published CDNOW estimates, and the baseline degrades as documented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml import btyd
from tests.unit.test_clv import features_at, simulate_shop

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
            "first_order_day_revenue": first_order_value,
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


def test_repeat_mean_spend_is_per_repeat_order_day_as_the_purchase_models_count():
    features = pd.DataFrame(
        {
            # two orders (10 + 30) on the first day, one of 50 later: one repeat day worth 50 (per order: 40).
            # same-day only (20 + 25): no repeat day, a non-repeater whatever its order count.
            # one order of 10, then two (20 + 30) on one later day: one repeat transaction worth 50.
            # a one-time buyer.
            "order_count": [3, 2, 3, 1],
            "repeat_order_count": [1, 0, 1, 0],
            "gross_revenue": [90.0, 45.0, 60.0, 15.0],
            "first_order_value": [10.0, 20.0, 10.0, 15.0],
            "first_order_day_revenue": [40.0, 45.0, 10.0, 15.0],
        },
        index=["two_first_day_then_one", "same_day_only", "two_on_a_later_day", "one_time"],
    )
    spend = btyd.repeat_mean_spend(features)
    assert spend.index.equals(features.index)
    assert spend["two_first_day_then_one"] == pytest.approx(50.0)
    assert spend["two_on_a_later_day"] == pytest.approx(50.0)
    assert spend[["same_day_only", "one_time"]].isna().all()


def test_fit_btyd_reproduces_the_published_gamma_gamma_when_first_days_hold_extra_orders(cdnow):
    # Every CDNOW customer also bought 5 more on the first day: an extra order, but not a repeat transaction,
    # so the spend model still sees zbar per repeat day and must land on FH 2013's p = 6.25, q = 3.74, v = 15.44.
    features = cdnow_as_features(cdnow)
    features = features.assign(
        order_count=features["order_count"] + 1,
        first_order_day_revenue=features["first_order_day_revenue"] + 5.0,
        gross_revenue=features["gross_revenue"] + 5.0,
    )
    assert btyd.repeat_mean_spend(features).to_numpy() == pytest.approx(
        cdnow["zbar"].where(cdnow["x"] > 0).to_numpy(), nan_ok=True
    )
    spend = btyd.fit_btyd(features, "bgnbd").spend_params
    assert spend.p == pytest.approx(6.25, abs=0.01)
    assert spend.q == pytest.approx(3.74, abs=0.01)
    assert spend.v == pytest.approx(15.44, abs=0.02)


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


# ------------------------------------------------------------------ weighted fits, gradients, Pareto/NBD, predictions


@pytest.fixture(scope="module")
def cdnow_pareto(cdnow) -> btyd.ParetoNBDParams:
    return btyd.fit_pareto_nbd(cdnow["x"], cdnow["t_x"], cdnow["T"])


def test_pareto_nbd_reproduces_the_published_cdnow_estimates(cdnow_pareto):
    # Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves": r = 0.553, alpha = 10.578, s = 0.606,
    # beta = 11.669 on the same 2,357 customers in weeks.
    assert cdnow_pareto.r == pytest.approx(0.553, abs=0.001)
    assert cdnow_pareto.alpha == pytest.approx(10.578, abs=0.01)
    assert cdnow_pareto.s == pytest.approx(0.606, abs=0.001)
    assert cdnow_pareto.beta == pytest.approx(11.669, abs=0.01)


def test_pareto_nbd_p_alive_and_conditional_expectation_match_the_r_btyd_walkthrough(cdnow_pareto):
    # R package BTYD walkthrough (CDNOW, weeks): with (0.5534, 10.5802, 0.6061, 11.6562) a customer with x = 26,
    # t_x = 30.86, T = 31 has P(alive) 0.9979 and is expected to make 25.46 purchases in the next 52 weeks.
    published = btyd.ParetoNBDParams(0.5534, 10.5802, 0.6061, 11.6562)
    assert btyd.p_alive(published, [26], [30.86], [31])[0] == pytest.approx(0.9979, abs=0.0005)
    assert btyd.expected_purchases(cdnow_pareto, 52, [26], [30.86], [31])[0] == pytest.approx(25.46, abs=0.01)


def test_pareto_nbd_likelihood_equals_the_integral_over_the_dropout_time():
    # Independent check of the 2F1 closed form (both the alpha >= beta and alpha < beta branches): the likelihood is
    # E[lambda^x e^-(lambda+mu)T] + E[lambda^x mu int_{t_x}^T e^-(lambda+mu)y dy], integrated here by quadrature.
    from scipy.integrate import quad
    from scipy.special import gammaln

    for params in (btyd.ParetoNBDParams(0.55, 10.6, 0.61, 11.7), btyd.ParetoNBDParams(0.5, 30.0, 0.7, 2.0)):
        r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
        for x, t_x, T in ((2, 30.43, 38.86), (0, 0.0, 38.86), (10, 5.0, 40.0), (3, 39.0, 39.0)):
            integral = quad(
                lambda y, r=r, alpha=alpha, s=s, beta=beta, x=x: (alpha + y) ** -(r + x) * (beta + y) ** -(s + 1),
                t_x,
                T,
                epsrel=1e-12,
            )[0]
            constant = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
            by_quadrature = constant + np.log((alpha + T) ** -(r + x) * (beta + T) ** -s + s * integral)
            assert btyd.pareto_nbd_log_likelihood(params, [x], [t_x], [T])[0] == pytest.approx(by_quadrature, rel=1e-9)


def test_bgnbd_p_alive_is_one_without_repeat_purchases_and_matches_the_closed_form(cdnow_bgnbd):
    # FHL 2008 note 021: P(alive) = 1 / (1 + delta(x>0) a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)); by hand with the
    # published (0.243, 4.414, 0.793, 2.426) for customer 1 (x = 2, t_x = 30.43, T = 38.86): 0.7266.
    published = btyd.BGNBDParams(0.243, 4.414, 0.793, 2.426)
    customer_one, one_timer, long_lapsed_one_timer = btyd.p_alive(published, [2, 0, 0], [30.43, 0, 0], [38.86, 1, 500])
    assert customer_one == pytest.approx(0.7266, abs=0.0005)
    assert one_timer == 1.0 and long_lapsed_one_timer == 1.0
    recent, lapsed = btyd.p_alive(cdnow_bgnbd, [5, 5], [37.0, 5.0], [38.0, 38.0])
    assert 0 < lapsed < recent < 1


def test_bgnbd_conditional_expectation_matches_the_lifetimes_quickstart(cdnow_bgnbd):
    # lifetimes Quickstart (CDNOW, weeks): customer 1516 (x = 26, t_x = 30.86, T = 31) expects 0.710623 next week.
    assert btyd.expected_purchases(cdnow_bgnbd, 1, [26], [30.86], [31])[0] == pytest.approx(0.7106, abs=0.0005)


def test_pareto_nbd_p_alive_falls_for_one_time_buyers_as_time_passes(cdnow_pareto):
    recent, old = btyd.p_alive(cdnow_pareto, [0, 0], [0, 0], [1.0, 60.0])
    assert 0 < old < recent < 1


def test_gamma_gamma_conditional_mean_matches_the_lifetimes_quickstart(cdnow):
    # lifetimes Quickstart: conditional expected average profit 24.658619 for customer 1, 35.170981 for x = 0.
    repeaters = cdnow[cdnow["x"] > 0]
    params = btyd.fit_gamma_gamma(repeaters["x"], repeaters["zbar"])
    customer_one, one_timer = btyd.expected_average_spend(params, [2, 0], [22.35, 0.0])
    assert customer_one == pytest.approx(24.6586, abs=0.005)
    assert one_timer == pytest.approx(35.1710, abs=0.01)


@pytest.mark.parametrize("fit", [btyd.fit_bgnbd, btyd.fit_pareto_nbd])
def test_a_weighted_fit_equals_the_fit_on_expanded_rows(cdnow, fit):
    sample = cdnow.sample(300, random_state=1)
    weights = np.arange(300) % 3 + 1
    expanded = sample.loc[sample.index.repeat(weights)]
    weighted = fit(sample["x"], sample["t_x"], sample["T"], weights=weights)
    unweighted = fit(expanded["x"], expanded["t_x"], expanded["T"])
    for name, value in vars(weighted).items():
        assert value == pytest.approx(getattr(unweighted, name), rel=1e-4)


def test_a_weighted_gamma_gamma_fit_equals_the_fit_on_expanded_rows(cdnow):
    repeaters = cdnow[cdnow["x"] > 0].head(400)
    weights = np.arange(len(repeaters)) % 4 + 1
    expanded = repeaters.loc[repeaters.index.repeat(weights)]
    weighted = btyd.fit_gamma_gamma(repeaters["x"], repeaters["zbar"], weights=weights)
    unweighted = btyd.fit_gamma_gamma(expanded["x"], expanded["zbar"])
    for name, value in vars(weighted).items():
        assert value == pytest.approx(getattr(unweighted, name), rel=1e-4)


def _central_difference(function, point: np.ndarray, step: float = 1e-6) -> np.ndarray:
    gradient = np.zeros((len(function(point)), len(point)))
    for i in range(len(point)):
        shift = np.zeros_like(point)
        shift[i] = step * max(1.0, abs(point[i]))
        gradient[:, i] = (function(point + shift) - function(point - shift)) / (2 * shift[i])
    return gradient


def test_bgnbd_analytic_gradient_matches_the_numerical_gradient(cdnow):
    rows = cdnow.sample(50, random_state=2)
    point = np.array([0.3, 5.0, 0.8, 2.5])
    analytic = btyd.bgnbd_log_likelihood_gradient(btyd.BGNBDParams(*point), rows["x"], rows["t_x"], rows["T"])
    numeric = _central_difference(
        lambda z: btyd.bgnbd_log_likelihood(btyd.BGNBDParams(*z), rows["x"], rows["t_x"], rows["T"]), point
    )
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_gamma_gamma_analytic_gradient_matches_the_numerical_gradient(cdnow):
    rows = cdnow[cdnow["x"] > 0].sample(50, random_state=3)
    point = np.array([6.0, 3.5, 15.0])
    analytic = btyd.gamma_gamma_log_likelihood_gradient(btyd.GammaGammaParams(*point), rows["x"], rows["zbar"])
    numeric = _central_difference(
        lambda z: btyd.gamma_gamma_log_likelihood(btyd.GammaGammaParams(*z), rows["x"], rows["zbar"]), point
    )
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_degenerate_inputs_raise_typed_errors_not_nan():
    with pytest.raises(btyd.BTYDFitError):
        btyd.fit_pareto_nbd([0, 0], [0, 0], [5, 9])
    with pytest.raises(btyd.BTYDFitError):
        btyd.fit_bgnbd([], [], [])
    with pytest.raises(ValueError):
        btyd.fit_pareto_nbd([1, np.nan], [1, 1], [2, 2])
    with pytest.raises(ValueError):
        btyd.fit_bgnbd([1, 2], [1, 1], [2, 2], weights=[1, -1])
    with pytest.raises(btyd.BTYDFitError):
        btyd.fit_gamma_gamma([1, 0], [10.0, 0.0])
    with pytest.raises(TypeError):
        btyd.p_alive(btyd.GammaGammaParams(1, 2, 3), [1], [1], [2])


def test_median_days_to_next_purchase_follows_the_posterior_purchase_rate():
    params = btyd.ParetoNBDParams(r=0.5, alpha=10.0, s=0.6, beta=12.0)
    frequent, rare = btyd.expected_days_to_next_purchase(params, [9, 0], [19.0, 0.0], [20.0, 20.0])
    # Hand-computed: (alpha + T) (2^(1/(r+x)) - 1) = 30 (2^(1/9.5) - 1) and 30 (2^2 - 1).
    assert frequent == pytest.approx(30 * (2 ** (1 / 9.5) - 1))
    assert rare == pytest.approx(90.0)
    # It is the median: half of the posterior probability of the next purchase falls before it.
    wait = btyd.expected_days_to_next_purchase(btyd.BGNBDParams(0.3, 5.0, 0.8, 2.5), [3], [10.0], [12.0])[0]
    assert ((5.0 + 12.0) / (5.0 + 12.0 + wait)) ** 3.3 == pytest.approx(0.5)


def test_days_to_next_purchase_within_a_horizon_is_the_median_of_the_truncated_wait():
    params = btyd.ParetoNBDParams(r=0.5, alpha=10.0, s=0.6, beta=12.0)
    x, t_x, T, horizon = np.array([0, 2, 40]), np.array([0.0, 15.0, 19.0]), np.array([20.0, 20.0, 20.0]), 90.0
    within = btyd.expected_days_to_next_purchase(params, x, t_x, T, within=horizon)
    unbounded = btyd.expected_days_to_next_purchase(params, x, t_x, T)
    assert (within > 0).all() and (within < horizon).all() and (within <= unbounded).all()

    def cdf(w):  # P(next purchase within w | alive), posterior Gamma(r + x, alpha + T) rate
        return 1 - ((10.0 + T) / (10.0 + T + w)) ** (0.5 + x)

    np.testing.assert_allclose(cdf(within), cdf(horizon) / 2, rtol=1e-9)
    # A very frequent buyer almost surely orders in the horizon: the truncation barely matters.
    assert within[2] == pytest.approx(unbounded[2], rel=1e-6)
    with pytest.raises(ValueError):
        btyd.expected_days_to_next_purchase(params, x, t_x, T, within=0)


@pytest.mark.parametrize("model", btyd.BTYD_MODELS)
def test_fit_btyd_forecasts_every_customer_with_finite_values(cdnow, model):
    features = cdnow_as_features(cdnow)
    fitted = btyd.fit_btyd(features, model)
    assert fitted.model == model and fitted.spend_params is not None and not fitted.notes
    forecast = fitted.forecast(features, 39 * DAYS_PER_WEEK)
    assert forecast.index.equals(features.index)
    assert list(forecast.columns) == [
        "p_alive",
        "expected_orders",
        "expected_avg_order_value",
        "predicted_clv",
        "expected_days_to_next_order",
    ]
    assert np.isfinite(forecast.to_numpy()).all()
    assert forecast["p_alive"].between(0, 1).all() and (forecast["expected_orders"] >= 0).all()
    assert forecast["predicted_clv"].to_numpy() == pytest.approx(
        (forecast["expected_orders"] * forecast["expected_avg_order_value"]).to_numpy()
    )
    assert forecast["expected_days_to_next_order"].between(0, 39 * DAYS_PER_WEEK).all()
    # Customer one under Pareto/NBD: 39-week expectation in days equals the one in weeks with the weekly fit.
    if model == "pareto_nbd":
        weekly = btyd.fit_pareto_nbd(cdnow["x"], cdnow["t_x"], cdnow["T"])
        in_weeks = btyd.expected_purchases(weekly, 39, [2], [30.43], [38.86])[0]
        assert forecast["expected_orders"].iloc[0] == pytest.approx(in_weeks, rel=2e-3)


def test_fit_btyd_rejects_an_unknown_model(cdnow):
    with pytest.raises(ValueError, match="unknown BTYD model"):
        btyd.fit_btyd(cdnow_as_features(cdnow), "lightgbm")


def test_fit_btyd_notes_the_spend_fallback_when_repeat_buyers_are_few(cdnow):
    features = cdnow_as_features(cdnow)
    few = pd.concat(
        [features[features["repeat_order_count"] > 0].head(3), features[features["repeat_order_count"] == 0].head(100)]
    )
    fitted = btyd.fit_btyd(few, "pareto_nbd")
    assert fitted.spend_params is None and "observed mean spend" in fitted.notes[0]
    assert (fitted.forecast(few, 90)["expected_avg_order_value"] == fitted.fallback_spend).all()


def simulated_train(customers: int = 3000, seed: int = 5) -> pd.DataFrame:
    """customer_features_train-like rows from a Pareto/NBD world, with labels from the next 90 days (whole days)."""
    from bench.btyd_fit import simulate

    x, t_x, age, spend = simulate(customers, seed=seed)
    rng = np.random.default_rng(seed)
    features = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(customers)],
            "cutoff_date": pd.Timestamp("2024-06-30").date(),
            "repeat_order_count": x,
            "order_count": x + 1,
            "btyd_recency_days": t_x,
            "tenure_days": age,
            "first_order_value": 30.0,
            "first_order_day_revenue": 30.0,
            "gross_revenue": 30.0 + spend * x,
            "total_revenue": 30.0 + spend * x,
            "avg_order_value": (30.0 + spend * x) / (x + 1),
        }
    )
    # Labels that follow recency: recent, frequent buyers order again sooner (a rough but monotone truth).
    rate = (x + 0.3) / (age + 30) * np.exp(-(age - t_x) / 120)
    next_wait = rng.exponential(1 / rate)
    has_future = next_wait <= 90
    features["future_order_count"] = np.where(has_future, 1 + rng.poisson(rate * 60), 0)
    features["has_future_order"] = has_future
    features["future_revenue"] = features["future_order_count"] * 30.0
    features["days_to_next_order"] = np.where(has_future, np.ceil(next_wait), np.nan)
    return features


def test_backtest_reports_every_metric_for_both_models_and_chooses_by_the_written_rule():
    train = simulated_train()
    evaluation, chosen = btyd.backtest_btyd(train, 90)
    assert list(evaluation["model"]) == list(btyd.BTYD_MODELS)
    assert evaluation[["churn_auc", "expected_orders_mae", "next_order_days_mae"]].notna().all().all()
    assert (evaluation["n_with_next_order"] == train["has_future_order"].sum()).all()
    auc = evaluation.set_index("model")["churn_auc"]
    # One-time buyers churn most here, and BG/NBD gives every one of them P(alive) = 1: Pareto/NBD must win.
    assert auc["pareto_nbd"] > 0.7 and auc["bgnbd"] < auc["pareto_nbd"]
    assert chosen == "pareto_nbd"


def test_the_choice_rule_takes_churn_auc_first_then_expected_orders_error():
    table = pd.DataFrame(
        {"model": ["bgnbd", "pareto_nbd"], "churn_auc": [0.70, 0.80], "expected_orders_mae": [0.1, 0.5]}
    )
    assert btyd.choose_btyd_model(table) == "pareto_nbd"
    tied = table.assign(churn_auc=[0.798, 0.80])
    assert btyd.choose_btyd_model(tied) == "bgnbd"
    assert btyd.choose_btyd_model(table.assign(expected_orders_mae=np.nan)) is None
    no_auc = table.assign(churn_auc=np.nan)
    assert btyd.choose_btyd_model(no_auc) == "bgnbd"


def test_backtest_without_repeat_buyers_reports_why_and_chooses_nothing():
    train = simulated_train(500).assign(repeat_order_count=0, btyd_recency_days=0.0)
    evaluation, chosen = btyd.backtest_btyd(train, 90)
    assert chosen is None
    assert evaluation["note"].str.contains("not fitted").all()


def test_prediction_table_has_one_row_per_customer_and_dates_from_the_as_of():
    train = simulated_train(1000)
    fitted = btyd.fit_btyd(train, "pareto_nbd")
    table = btyd.btyd_prediction_table(train, fitted, 90)
    assert list(table.columns) == btyd.PREDICTION_COLUMNS and len(table) == len(train)
    assert table.drop(columns="expected_next_order_date").notna().all().all()
    offset = (pd.to_datetime(table["expected_next_order_date"]) - pd.Timestamp("2024-06-30")).dt.days
    assert (offset == table["expected_days_to_next_order"].round()).all()
    empty = btyd.btyd_prediction_table(train, None, 90)
    assert len(empty) == len(train) and empty["p_alive"].isna().all()
    assert (empty["btyd_model"] == "none: no repeat buyers").all()


def test_a_fit_that_uses_up_its_iteration_budget_stops_and_says_so(monkeypatch):
    features = simulated_train(800, seed=3)
    fitted = btyd.fit_btyd_models(features)
    assert all(not f.budget_hit and f.fit_seconds > 0 for f in fitted.values())
    monkeypatch.setitem(btyd.FIT_BUDGET, "lbfgsb_iterations", 2)
    monkeypatch.setitem(btyd.FIT_BUDGET, "nelder_mead_iterations", 3)
    starved = btyd.fit_btyd(features, "bgnbd")
    assert starved.budget_hit
    assert any(note.startswith("bgnbd: L-BFGS-B stopped at its budget") for note in starved.notes)
    assert any("Nelder-Mead restart stopped at its budget (3 iterations)" in note for note in starved.notes)


# ------------------------------------------------------- speed (distinct values, shared spend fit), numbers unchanged

# fit_btyd on CDNOW (days) and its 273-day forecast of customers 0, 1, 17, 1000 and 2356, from ml/btyd.py as of
# ced45e4, before the per-distinct-value computation and the single-threaded fits: pinned to 1e-6 relative.
PINNED_CDNOW = {
    "bgnbd": (
        (0.24259290657566995, 30.89472148991488, 0.7928861266042385, 2.4257534807053664),
        {
            "p_alive": [0.7266091597263892, 0.2122274189074908, 0.3109153277638908, 1.0, 1.0],
            "expected_orders": [
                1.2259104702971728,
                0.2032506551924458,
                0.2977642775975653,
                0.2189398103294454,
                0.258977493294891,
            ],
            "predicted_clv": [
                30.229255875474916,
                3.843770731503569,
                5.262893590279537,
                7.700332468115107,
                9.108497888661537,
            ],
            "expected_days_to_next_order": [
                72.41132431860906,
                89.46064496800584,
                89.46064496800584,
                106.96196724847343,
                102.89400098174417,
            ],
        },
    ),
    "pareto_nbd": (
        (0.5532751758969944, 74.04324038361399, 0.6062140874253994, 81.67566001653852),
        {
            "p_alive": [
                0.869118720650612,
                0.16787220063617436,
                0.2512524752110177,
                0.32945037192141957,
                0.38373909794072114,
            ],
            "expected_orders": [
                1.4551129089541126,
                0.17098072379129356,
                0.2559049676071063,
                0.13157105392602325,
                0.17534846714296265,
            ],
            "predicted_clv": [
                35.88107085978116,
                3.2334985643121144,
                4.523042940565093,
                4.627485777420636,
                6.167181257458023,
            ],
            "expected_days_to_next_order": [
                73.04490586416857,
                88.29090995448871,
                88.29090995448871,
                103.5386403719271,
                99.60783188802425,
            ],
        },
    ),
}
PINNED_GAMMA_GAMMA = (6.248802407726323, 3.7445886337064667, 15.44774911089417)
PINNED_ROWS = [0, 1, 17, 1000, 2356]


@pytest.mark.parametrize("model", btyd.BTYD_MODELS)
def test_estimates_and_predictions_are_unchanged_by_the_speed_work(cdnow, model):
    params, forecast_values = PINNED_CDNOW[model]
    features = cdnow_as_features(cdnow)
    fitted = btyd.fit_btyd_models(features)[model]
    np.testing.assert_allclose(list(vars(fitted.purchase_params).values()), params, rtol=1e-6)
    np.testing.assert_allclose(list(vars(fitted.spend_params).values()), PINNED_GAMMA_GAMMA, rtol=1e-6)
    forecast = fitted.forecast(features, 273).iloc[PINNED_ROWS]
    for column, values in forecast_values.items():
        np.testing.assert_allclose(forecast[column].to_numpy(), values, rtol=1e-6, err_msg=column)


class _PerRowHistories(btyd._Histories):
    """Every row its own group: the per-customer computation the distinct-value one must reproduce bit for bit."""

    @property
    def xs(self):
        return self.x

    @property
    def x_of(self):
        return np.arange(self.x.size)

    @property
    def recency_pairs(self):
        return self.x, self.t_x, np.arange(self.x.size)

    @property
    def age_pairs(self):
        return self.x, self.T, np.arange(self.x.size)


def _simulated_histories(n: int = 20_000, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole days (the grouping's integer path) for most rows, fractional weeks for the rest (the lexsort path)."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(rng.gamma(0.5, 2.0, n)).astype(float)
    T = rng.integers(1, 700, n).astype(float)
    t_x = np.where(x > 0, np.floor(T * rng.random(n)), 0.0)
    weekly = rng.random(n) < 0.2
    return x, np.where(weekly, t_x / 7, t_x), np.where(weekly, T / 7, T)


@pytest.mark.parametrize(
    "params",
    [
        btyd.BGNBDParams(0.7, 55.0, 0.6, 6.0),
        btyd.ParetoNBDParams(1.1, 91.0, 1.2, 820.0),
        btyd.ParetoNBDParams(0.5, 30.0, 0.8, 9.0),
    ],
    ids=["bgnbd", "pareto_nbd_beta_above_alpha", "pareto_nbd_alpha_above_beta"],
)
def test_distinct_value_computation_equals_the_per_customer_one_bit_for_bit(params):
    x, t_x, T = _simulated_histories()
    grouped, per_row = btyd._Histories(x, t_x, T), _PerRowHistories(x, t_x, T)
    assert len(grouped.age_pairs[0]) < x.size / 3  # the grouping does collapse rows
    for h in (grouped, per_row):
        h.result = {"p_alive": btyd._p_alive(params, h), "expected": btyd._expected_purchases(params, 90.0, h)}
        if isinstance(params, btyd.BGNBDParams):
            h.result["ll"] = btyd._bgnbd_log_likelihood(params, h)
            h.result["gradient"] = btyd._bgnbd_log_likelihood_gradient(params, h)
        else:
            h.result["ll"] = btyd._pareto_nbd_log_likelihood(params, h)
    for name, values in per_row.result.items():
        assert np.array_equal(grouped.result[name], values), name
        assert np.isfinite(values).all(), name


def test_grouping_rows_matches_numpy_unique_on_whole_and_fractional_values():
    x, t_x, T = _simulated_histories()
    for columns in ([x, t_x, T], [x, T], [x], [x, t_x + 0.5], [x * 1e9, T]):
        distinct, inverse = btyd._group_rows(columns)
        unique, unique_inverse = np.unique(np.column_stack(columns), axis=0, return_inverse=True)
        np.testing.assert_array_equal(np.column_stack(distinct), unique)
        np.testing.assert_array_equal(inverse, unique_inverse.ravel())
    empty, inverse = btyd._group_rows([np.zeros(0), np.zeros(0)])
    assert [c.size for c in empty] == [0, 0] and inverse.size == 0


def test_the_gamma_gamma_fit_is_shared_by_both_models_and_equals_a_separate_fit(cdnow):
    features = cdnow_as_features(cdnow)
    fits = btyd.fit_btyd_models(features)
    separate = btyd.fit_btyd(features, "pareto_nbd")
    assert fits["bgnbd"].spend_params == fits["pareto_nbd"].spend_params == separate.spend_params
    assert fits["pareto_nbd"].notes == separate.notes and fits["pareto_nbd"].fallback_spend == separate.fallback_spend
    assert all(fit.fit_seconds > 0 for fit in fits.values())


def test_the_feature_columns_are_all_that_fits_forecasts_and_the_backtest_read():
    train = simulated_train(1500, seed=21).assign(unused_feature=1.0)
    narrow = train[[c for c in btyd.FEATURE_COLUMNS + btyd.BACKTEST_LABEL_COLUMNS if c in train.columns]]
    assert "unused_feature" not in narrow.columns
    wide_fits, narrow_fits = btyd.fit_btyd_models(train), btyd.fit_btyd_models(narrow)
    for model in btyd.BTYD_MODELS:
        assert wide_fits[model].purchase_params == narrow_fits[model].purchase_params
        assert wide_fits[model].spend_params == narrow_fits[model].spend_params
        pd.testing.assert_frame_equal(wide_fits[model].forecast(train, 90), narrow_fits[model].forecast(narrow, 90))
    pd.testing.assert_frame_equal(
        btyd.btyd_prediction_table(train, wide_fits["bgnbd"], 90),
        btyd.btyd_prediction_table(narrow, narrow_fits["bgnbd"], 90),
    )
    pd.testing.assert_frame_equal(btyd.backtest_btyd(train, 90)[0], btyd.backtest_btyd(narrow, 90)[0])


@pytest.mark.parametrize("model", btyd.BTYD_MODELS)
def test_the_simulated_predictive_spend_averages_to_the_closed_form_forecast(model):
    rows = features_at(simulate_shop(1500, 700, seed=5), 500, 180)
    fitted = btyd.fit_btyd(rows, model)
    draws = btyd.simulate_spend(fitted, rows, 180, 1000, seed=0)
    forecast = fitted.forecast(rows, 180)["predicted_clv"].to_numpy()
    # The same posterior (alive, rate, dropout, spend per order) the closed forms integrate, drawn instead.
    assert draws.mean(axis=1).sum() == pytest.approx(forecast.sum(), rel=0.03)
    assert np.corrcoef(draws.mean(axis=1), forecast)[0, 1] > 0.99
    assert (draws >= 0).all() and np.array_equal(draws, btyd.simulate_spend(fitted, rows, 180, 1000, seed=0))
    low, high = fitted.spend_quantiles(rows, 180, (0.1, 0.9)).T
    assert (low <= high).all() and (high > 0).any()
