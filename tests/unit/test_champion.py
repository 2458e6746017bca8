"""Tests of the CLV champion: every candidate, the selection rule on planted tables, calibration and intervals."""

from __future__ import annotations

import dataclasses
import json
import math

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from ml import btyd, champion, clv
from ml.evaluation import calibration_ratio, interval_coverage, quality_gate
from tests.unit.test_clv import features_at, simulate_shop

HORIZON = 180
N_DAYS = 1100


@pytest.fixture(scope="module")
def shop():
    return simulate_shop(4000, N_DAYS, seed=11)


@pytest.fixture(scope="module")
def evaluation_rows(shop):
    return features_at(shop, N_DAYS - 1 - HORIZON, HORIZON)


@pytest.fixture(scope="module")
def selection_rows(shop):
    return features_at(shop, N_DAYS - 1 - 2 * HORIZON, HORIZON)


@pytest.fixture(scope="module")
def scoring_rows(shop):
    return features_at(shop, N_DAYS - 1)


@pytest.fixture(scope="module")
def result(evaluation_rows, selection_rows):
    return champion.champion_backtest(evaluation_rows, HORIZON, selection_rows)


def test_every_candidate_has_a_selection_and_an_evaluation_row(result):
    table = result.evaluation
    assert sorted(table["model"].unique()) == sorted(champion.CANDIDATES)
    assert (
        table.groupby("model")["backtest_window"].apply(sorted)
        == [[champion.EVALUATION, champion.SELECTION]] * len(champion.CANDIDATES)
    ).all()
    assert table.loc[table["is_champion"], "model"].tolist() == [result.champion] * 2
    assert result.mode == champion.FORWARD and (table["mode"] == champion.FORWARD).all()
    # Forward mode forecasts every customer of the training cut-off, split into two disjoint halves.
    assert (table.groupby("backtest_window")["n_customers"].first().sum()) == result.n_selection + result.n_evaluation
    assert abs(result.n_selection - result.n_evaluation) < 0.1 * (result.n_selection + result.n_evaluation)


@pytest.mark.parametrize("name", champion.CANDIDATES)
def test_each_candidate_ranks_and_after_calibration_totals_are_close(result, name):
    row = result.evaluation.set_index(["model", "backtest_window"]).loc[(name, champion.EVALUATION)]
    assert row["spearman"] > 0.3
    assert 0.7 <= row["calibration_ratio"] <= 1.3  # the gate's band
    assert 0.75 <= row["interval_coverage"] <= 1.0


def test_a_btyd_candidate_that_cannot_be_fitted_keeps_nan_rows_with_the_reason(evaluation_rows, selection_rows):
    one_timers = evaluation_rows.assign(repeat_order_count=0, btyd_recency_days=0)
    result = champion.champion_backtest(one_timers, HORIZON, selection_rows)
    rows = result.evaluation[result.evaluation["model"].isin(champion.BTYD_CANDIDATES)]
    assert rows["spearman"].isna().all() and rows["note"].str.contains("could not be fitted").all()
    assert result.champion not in champion.BTYD_CANDIDATES


def test_the_learning_models_beat_the_naive_forecast_and_the_champion_passes_the_gate(result):
    reported = result.evaluation[result.evaluation["backtest_window"] == champion.EVALUATION].set_index("model")
    for name in (champion.LIGHTGBM, champion.STACKED):
        assert reported.loc[name, "spearman"] > reported.loc[champion.PAST_SPEND, "spearman"]
    assert quality_gate(result.evaluation).passed
    assert result.champion in result.reason


def test_the_stacked_candidate_uses_the_btyd_outputs_as_features(evaluation_rows):
    columns, _, _ = champion.btyd_outputs(evaluation_rows, HORIZON)
    fitted = champion.fit_candidate(champion.STACKED, evaluation_rows, columns, HORIZON)
    assert fitted.models.extra_features == champion.BTYD_FEATURES
    assert set(champion.BTYD_FEATURES) & set(fitted.models.value_model.feature_name())


def test_the_blend_is_the_mean_of_the_stacked_forecast_and_the_btyd_mean(evaluation_rows):
    rows = evaluation_rows.head(1500)
    columns, forecasts, _ = champion.btyd_outputs(rows, HORIZON)
    stacked = champion.fit_candidate(champion.STACKED, rows, columns, HORIZON)
    blend = dataclasses.replace(stacked, name=champion.BLEND)
    stacked_scores = champion.score_candidate(stacked, rows, columns, forecasts)
    blend_scores = champion.score_candidate(blend, rows, columns, forecasts)
    expected = 0.5 * (stacked_scores.predicted + champion.structural_forecast(forecasts))
    np.testing.assert_allclose(blend_scores.predicted, expected)
    np.testing.assert_allclose(blend_scores.propensity, stacked_scores.propensity)  # the classifier's score
    # Without a BTYD forecast there is nothing to blend: no score, with the reason (the candidate's rows stay NaN).
    missing = champion.score_candidate(blend, rows, columns, {})
    assert missing.predicted is None and "no BTYD model" in missing.error


@pytest.fixture(scope="module")
def hurdle_result(evaluation_rows, selection_rows):
    candidates = (
        champion.STACKED,
        champion.HURDLE,
        champion.LEVELED_HURDLE,
        champion.PLAIN_HURDLE,
        champion.SHAPE_HURDLE,
        champion.PAST_SPEND,
    )
    return champion.champion_backtest(evaluation_rows, HORIZON, selection_rows, candidates=candidates)


def test_the_hurdle_candidate_is_measured_under_the_same_rule_only_when_named(result, hurdle_result):
    assert champion.HURDLE not in result.evaluation["model"].tolist()  # tried, not kept: the assets never fit it
    row = hurdle_result.evaluation.set_index(["model", "backtest_window"]).loc[(champion.HURDLE, champion.EVALUATION)]
    assert row["spearman"] > 0.3 and 0.7 <= row["calibration_ratio"] <= 1.3
    # The same purchase classifier as the stacked candidate: the same AUC.
    stacked = hurdle_result.evaluation.set_index(["model", "backtest_window"]).loc[
        (champion.STACKED, champion.EVALUATION)
    ]
    assert row["propensity_auc"] == pytest.approx(stacked["propensity_auc"])


def test_the_hurdle_forecast_is_p_buy_times_the_lognormal_mean_of_buyer_spend(evaluation_rows):
    rows = evaluation_rows.head(2000)
    columns, forecasts, _ = champion.btyd_outputs(rows, HORIZON)
    fitted = champion.fit_candidate(champion.HURDLE, rows, columns, HORIZON)
    assert fitted.spend is not None and fitted.spend.sigma2 > 0
    scores = champion.score_candidate(fitted, rows, columns, forecasts)
    stacked = champion.score_candidate(dataclasses.replace(fitted, name=champion.STACKED), rows, columns, forecasts)
    np.testing.assert_allclose(scores.propensity, stacked.propensity)
    with_btyd = pd.concat([rows.reset_index(drop=True), columns], axis=1)
    spend = champion.clv.expected_buyer_spend(fitted.spend, with_btyd)
    np.testing.assert_allclose(scores.predicted, stacked.propensity * spend)
    assert np.isfinite(scores.predicted).all() and (scores.predicted >= 0).all()


def test_the_lognormal_correction_recovers_the_buyers_mean_spend():
    # Buyers' spend is lognormal around a level set by one feature, sigma 1: exp(mu) alone is the median, ~40 % low.
    rng = np.random.default_rng(5)
    n = 4000
    rows = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "total_revenue": rng.uniform(10, 200, n),
            "order_count": rng.integers(1, 6, n).astype(float),
            "tenure_days": 300.0,
        }
    )
    rows["future_revenue"] = np.exp(np.log(rows["total_revenue"]) + rng.normal(0.0, 1.0, n))
    categories = champion.clv.learn_categories(rows)
    model = champion.clv.fit_buyer_spend_model(rows, categories)
    assert model.sigma2 == pytest.approx(1.0, rel=0.15)
    mean = champion.clv.expected_buyer_spend(model, rows)
    assert mean.sum() / rows["future_revenue"].sum() == pytest.approx(1.0, abs=0.1)
    median = mean * math.exp(-model.sigma2 / 2)
    assert median.sum() / rows["future_revenue"].sum() < 0.7


def test_the_leveled_hurdle_ranks_as_the_hurdle_at_the_stacked_candidates_raw_total(evaluation_rows):
    rows = evaluation_rows.head(2000)
    columns, forecasts, _ = champion.btyd_outputs(rows, HORIZON)
    fitted = champion.fit_candidate(champion.LEVELED_HURDLE, rows, columns, HORIZON)
    assert fitted.spend is not None
    leveled = champion.score_candidate(fitted, rows, columns, forecasts)
    hurdle = champion.score_candidate(dataclasses.replace(fitted, name=champion.HURDLE), rows, columns, forecasts)
    stacked = champion.score_candidate(dataclasses.replace(fitted, name=champion.STACKED), rows, columns, forecasts)
    # One factor: the hurdle's ranking exactly, and lightgbm_btyd's raw total.
    k = leveled.predicted.sum() / hurdle.predicted.sum()
    np.testing.assert_allclose(leveled.predicted, hurdle.predicted * k)
    assert (np.argsort(leveled.predicted, kind="stable") == np.argsort(hurdle.predicted, kind="stable")).all()
    assert leveled.predicted.sum() == pytest.approx(stacked.predicted.sum())
    assert k != pytest.approx(1.0)  # the two levels differ on this shop, so the factor did something
    np.testing.assert_allclose(leveled.propensity, hurdle.propensity)
    # The plain hurdle scores as the leveled one; only its calibration options differ.
    plain = champion.score_candidate(dataclasses.replace(fitted, name=champion.PLAIN_HURDLE), rows, columns, forecasts)
    np.testing.assert_allclose(plain.predicted, leveled.predicted)
    np.testing.assert_allclose(plain.propensity, leveled.propensity)


def test_the_leveling_factor_is_one_when_either_total_is_zero():
    hurdle = champion.CandidateScores(np.array([1.0, 3.0]), np.array([0.2, 0.4]))
    assert champion.at_stacked_level(hurdle, np.array([2.0, 6.0])).predicted.tolist() == [2.0, 6.0]
    assert champion.at_stacked_level(hurdle, np.zeros(2)).predicted.tolist() == [1.0, 3.0]
    zero = champion.CandidateScores(np.zeros(2), np.zeros(2))
    assert champion.at_stacked_level(zero, np.array([2.0, 6.0])).predicted.tolist() == [0.0, 0.0]
    assert champion.at_stacked_level(hurdle, np.array([2.0, 6.0])).propensity is hurdle.propensity


def test_the_leveled_hurdle_is_measured_only_when_named_with_the_hurdles_ranking(result, hurdle_result):
    assert champion.LEVELED_HURDLE not in result.evaluation["model"].tolist()
    table = hurdle_result.evaluation.set_index(["model", "backtest_window"])
    for window in (champion.SELECTION, champion.EVALUATION):
        leveled, hurdle = table.loc[(champion.LEVELED_HURDLE, window)], table.loc[(champion.HURDLE, window)]
        assert leveled["spearman"] == pytest.approx(hurdle["spearman"], abs=1e-6)
        assert leveled["propensity_auc"] == pytest.approx(hurdle["propensity_auc"])
    # One factor k over both halves together: the raw sum ratios of the two halves are the hurdle's x the same k.
    raw = table["raw_calibration_ratio"]
    k = raw.loc[champion.LEVELED_HURDLE] / raw.loc[champion.HURDLE]
    assert k[champion.SELECTION] == pytest.approx(k[champion.EVALUATION]) and k.iloc[0] != pytest.approx(1.0)


def test_the_plain_hurdle_is_the_leveled_hurdle_calibrated_without_isotonic(result, hurdle_result):
    assert champion.PLAIN_HURDLE not in result.evaluation["model"].tolist()  # measured only when named
    table = hurdle_result.evaluation.set_index(["model", "backtest_window"])
    for window in (champion.SELECTION, champion.EVALUATION):
        plain, leveled = table.loc[(champion.PLAIN_HURDLE, window)], table.loc[(champion.LEVELED_HURDLE, window)]
        assert plain["raw_calibration_ratio"] == pytest.approx(leveled["raw_calibration_ratio"])
        assert plain["raw_decile_mape"] == pytest.approx(leveled["raw_decile_mape"])
        assert plain["spearman"] == pytest.approx(leveled["spearman"], abs=1e-6)
        # Chosen among none and factor only: the shipped map is one factor, never an isotonic curve.
        calibration = champion.Calibration.from_json(plain["calibration_map"])
        assert calibration.method.split(" ")[0] in ("none", "factor") and calibration.x == ()
        assert "isotonic" not in plain["calibration"]


def test_a_candidate_restricted_to_none_and_factor_never_gets_an_isotonic_map():
    assert champion.calibration_methods(champion.PLAIN_HURDLE) == ("none", "factor")
    for name in champion.CANDIDATES + (champion.HURDLE, champion.LEVELED_HURDLE):
        assert champion.calibration_methods(name) == champion.CALIBRATION_METHODS
    mean, actual = zero_inflated(20000, seed=2)
    bent, fold = mean**0.5, np.arange(20000) % 2 == 0  # the prediction isotonic wins on (the test below)
    restricted = champion.learn_calibration(bent, actual, fold=fold, methods=("none", "factor"))
    assert restricted.method.startswith("factor") and restricted.x == () and "isotonic" not in restricted.method
    assert restricted.factor == pytest.approx(np.clip(actual.sum() / bent.sum(), *champion.FACTOR_BOUNDS))
    # The small-data path is unchanged: one clipped factor.
    small = champion.learn_calibration([1.0, 2.0, 3.0], [10.0, 20.0, 30.0], fold=np.array([True, False, True]))
    assert (
        champion.learn_calibration(
            [1.0, 2.0, 3.0], [10.0, 20.0, 30.0], fold=np.array([True, False, True]), methods=("none", "factor")
        )
        == small
    )


def test_the_shape_hurdle_is_the_leveled_hurdle_whose_isotonic_map_keeps_the_raw_total(result, hurdle_result):
    assert champion.SHAPE_HURDLE in result.evaluation["model"].tolist()  # a candidate: the assets fit it
    assert champion.shape_only_calibration(champion.SHAPE_HURDLE)
    assert [name for name in champion.KNOWN_CANDIDATES if champion.shape_only_calibration(name)] == [
        champion.SHAPE_HURDLE
    ]
    table = hurdle_result.evaluation.set_index(["model", "backtest_window"])
    for window in (champion.SELECTION, champion.EVALUATION):
        shape, leveled = table.loc[(champion.SHAPE_HURDLE, window)], table.loc[(champion.LEVELED_HURDLE, window)]
        assert shape["raw_calibration_ratio"] == pytest.approx(leveled["raw_calibration_ratio"])
        assert shape["spearman"] == pytest.approx(leveled["spearman"], abs=1e-6)
        calibration = champion.Calibration.from_json(shape["calibration_map"])
        # An isotonic map ships as shape only; none / factor are the usual maps.
        assert calibration.keeps_total == bool(calibration.x)
        assert ("isotonic shape" in shape["calibration"]) == bool(calibration.x)


def test_a_shape_only_isotonic_map_keeps_the_order_and_the_uncalibrated_total():
    mean, actual = zero_inflated(20000, seed=2)
    fold = np.arange(20000) % 2 == 0
    bent = 0.8 * actual.sum() * mean**0.5 / (mean**0.5).sum()  # the wrong shape, 20 % under the actual total
    usual = champion.learn_calibration(bent, actual, fold=fold)
    shape = champion.learn_calibration(bent, actual, fold=fold, keep_total=True)
    assert shape.method.startswith("isotonic shape") and shape.keeps_total and not usual.keeps_total
    assert (shape.x, shape.y) == (usual.x, usual.y)  # the same map, rescaled when applied
    fresh = 0.8 * zero_inflated(20000, seed=3)[0] ** 0.5
    for rows in (bent, fresh, fresh[:300]):
        calibrated = shape.apply(rows)
        assert calibrated.sum() == pytest.approx(rows.sum())  # the level is the raw one, over the rows mapped
        assert (np.diff(calibrated[np.argsort(rows, kind="stable")]) >= 0).all()  # the order is kept
        # The shape is the isotonic map's: one factor away from it.
        np.testing.assert_allclose(calibrated / calibrated.sum(), usual.apply(rows) / usual.apply(rows).sum())
    assert calibration_ratio(actual, usual.apply(bent)) == pytest.approx(1.0, abs=0.05)  # the usual map lifts
    assert calibration_ratio(actual, shape.apply(bent)) == pytest.approx(bent.sum() / actual.sum())
    assert champion.Calibration.from_json(shape.to_json()) == shape
    # Saved before the field existed: the usual map.
    assert not champion.Calibration.from_json('{"method": "isotonic", "x": [1], "y": [2], "factor": 1.0}').keeps_total
    # none and factor are unchanged by keep_total.
    for method in ("none", "factor"):
        restricted = champion.learn_calibration(bent, actual, fold=fold, methods=(method,), keep_total=True)
        assert restricted == champion.learn_calibration(bent, actual, fold=fold, methods=(method,))


def test_the_shape_only_rescaling_factor_is_one_when_either_total_is_zero():
    shape = champion.Calibration("isotonic", x=(0.0, 1.0), y=(5.0, 10.0), keeps_total=True)
    # Raw total 0: nothing to rescale to, the isotonic output is kept (factor 1).
    assert shape.apply(np.zeros(3)).tolist() == [5.0, 5.0, 5.0]
    assert shape.apply(np.array([])).tolist() == []
    # Isotonic total 0 (a map to 0 of zero predictions): factor 1, zeros stay zeros.
    zero = champion.Calibration("isotonic", x=(0.0, 1.0), y=(0.0, 0.0), keeps_total=True)
    assert zero.apply(np.zeros(2)).tolist() == [0.0, 0.0]
    assert champion.structural_level_factor(0.0, 3.0) == champion.structural_level_factor(3.0, 0.0) == 1.0


@pytest.mark.parametrize("name", champion.HURDLE_CANDIDATES)
@pytest.mark.parametrize("buyers", [0, 1])
def test_the_hurdle_with_no_or_one_buyer_falls_back_and_predicts_without_nan(evaluation_rows, buyers, name):
    rows = evaluation_rows.head(300).assign(future_revenue=0.0, has_future_order=False)
    rows.loc[rows.index[:buyers], ["future_revenue", "has_future_order"]] = (50.0, True)
    columns, forecasts, _ = champion.btyd_outputs(rows, HORIZON)
    fitted = champion.fit_candidate(name, rows, columns, HORIZON)
    assert fitted.spend is None and fitted.models.fallback_reason is not None
    assert champion.clv.fit_buyer_spend_model(rows, fitted.models.categories) is None
    scores = champion.score_candidate(fitted, rows, columns, forecasts)
    assert np.isfinite(scores.predicted).all() and np.isfinite(scores.propensity).all()
    # The fallback is the stacked candidate's own forecast, so the leveling factor is 1.
    stacked = champion.score_candidate(dataclasses.replace(fitted, name=champion.STACKED), rows, columns, forecasts)
    np.testing.assert_allclose(scores.predicted, stacked.predicted)


@pytest.mark.parametrize("name", [champion.HURDLE, champion.PLAIN_HURDLE, champion.SHAPE_HURDLE])
def test_the_hurdle_can_be_the_production_model(hurdle_result, evaluation_rows, scoring_rows, name):
    table = hurdle_result.evaluation.assign(is_champion=hurdle_result.evaluation["model"] == name)
    model = champion.fit_champion(evaluation_rows, HORIZON, table)
    assert model.name == name and model.fitted.spend is not None
    if name == champion.PLAIN_HURDLE:  # production ships the map the selection half chose: one factor at most
        assert model.calibration.x == () and model.calibration.method.split(" ")[0] in ("none", "factor")
    scores = champion.predict_champion(model, scoring_rows.head(500))
    if name == champion.SHAPE_HURDLE:  # the selection half chose isotonic for it on this shop (forward mode)
        assert model.calibration.keeps_total and model.calibration.x and not model.structural_level
        # Production ships the leveled raw total (x the season): the isotonic map brings its shape only.
        rows = scoring_rows.head(500).reset_index(drop=True)
        columns, forecasts, _ = champion.btyd_outputs(rows, HORIZON)
        raw = champion.score_candidate(model.fitted, rows, columns, forecasts).predicted
        assert scores["predicted_clv"].sum() == pytest.approx(raw.sum() * model.seasonal_factor)
    assert scores.notna().all().all()
    # Per-customer drivers for every customer (clv.hurdle_drivers: the hurdle forecast's log-scale attribution).
    drivers = [json.loads(text) for text in scores["top_drivers"]]
    assert all(len(row) == 3 and all(math.isfinite(d["contribution"]) for d in row) for row in drivers)
    assert (scores["predicted_clv_p10"] <= scores["predicted_clv"]).all()
    assert (scores["predicted_clv"] <= scores["predicted_clv_p90"]).all()


@pytest.fixture(scope="module")
def planted_hurdle(scoring_rows):
    """A toy hurdle on real feature rows with planted labels: buying follows order_count, a buyer's log spend
    follows total_revenue (nothing else moves either)."""
    rows = scoring_rows.reset_index(drop=True)
    categories = champion.clv.learn_categories(rows)
    matrix = champion.clv.model_matrix(rows, categories)
    rng = np.random.default_rng(0)
    orders = rows["order_count"].to_numpy(float)
    buys = (orders + rng.normal(0.0, 0.5, len(rows)) > np.median(orders)).astype(float)
    log_spend = 0.5 * np.log1p(rows["total_revenue"].clip(lower=0).to_numpy(float)) + rng.normal(0, 0.05, len(rows))
    train = lambda objective, label: lgb.train(  # noqa: E731
        champion.clv._lgb_params(objective, 0, len(rows)), lgb.Dataset(matrix, label), num_boost_round=60
    )
    models = champion.clv.ClvModels("tweedie", categories, buy_model=train("binary", buys))
    spend = champion.clv.BuyerSpendModel(train("regression", log_spend), 0.3, categories)
    return rows, models, spend, matrix


def test_the_hurdle_attribution_sums_to_the_log_forecasts_difference_from_the_mean(planted_hurdle):
    rows, models, spend, matrix = planted_hurdle
    contributions, names = champion.clv.hurdle_log_contributions(models, spend, rows)
    assert names == list(matrix.columns) and contributions.shape == (len(rows), len(names) + 1)
    p = models.buy_model.predict(matrix)
    log_forecast = np.log(p) + spend.booster.predict(matrix) + spend.sigma2 / 2.0
    attributed = contributions.sum(axis=1)  # the features' contributions + the bias (the mean row's log forecast)
    # The spend part is TreeSHAP on mu, the purchase part the secant-scaled logit contributions: they add up to the
    # log forecast (float rounding), whatever the customer's P(buy).
    np.testing.assert_allclose(attributed, log_forecast, rtol=0, atol=1e-9)
    assert log_forecast.std() > 0.3  # a spread to explain


def test_the_hurdle_drivers_point_the_planted_way(planted_hurdle):
    rows, models, spend, _ = planted_hurdle
    contributions, names = champion.clv.hurdle_log_contributions(models, spend, rows)
    orders, revenue = contributions[:, names.index("order_count")], contributions[:, names.index("total_revenue")]
    many, few = (
        rows["order_count"] >= rows["order_count"].quantile(0.9),
        rows["order_count"] <= rows["order_count"].quantile(0.1),
    )
    assert np.median(orders[many.to_numpy()]) > 0 > np.median(orders[few.to_numpy()])
    big, small = rows["total_revenue"].rank(pct=True) >= 0.9, rows["total_revenue"].rank(pct=True) <= 0.1
    assert np.median(revenue[big.to_numpy()]) > 0 > np.median(revenue[small.to_numpy()])
    drivers = [json.loads(text) for text in champion.clv.hurdle_drivers(models, spend, rows)]
    assert len(drivers) == len(rows) and all(len(row) == 3 for row in drivers)
    # Ranked by |contribution| as every candidate's drivers; the planted features lead.
    assert all(abs(row[0]["contribution"]) >= abs(row[1]["contribution"]) for row in drivers)
    leaders = pd.Series([row[0]["feature"] for row in drivers]).value_counts()
    assert set(leaders.index[:2]) <= {"order_count", "total_revenue", "spend_per_tenure_day", "orders_per_tenure_day"}


def test_the_short_history_level_is_btyds_with_its_ratio_one_horizon_earlier_noted():
    actual = np.full(1000, 10.0)
    use, why = champion.structural_level_decision(champion.SHORT_HISTORY, actual * 0.6, actual)
    assert use and why.startswith(champion.STRUCTURAL_LEVEL_LABEL) and "0.600" in why
    assert not champion.structural_level_decision(champion.SHORT_HISTORY, None, actual)[0]
    assert not champion.structural_level_decision(champion.FORWARD, actual, actual)[0]  # forward keeps its level


@pytest.fixture(scope="module")
def short(evaluation_rows):
    return champion.champion_backtest(evaluation_rows, HORIZON, evaluation_rows.head(0))


def test_short_history_selects_within_the_training_cut_and_says_so(evaluation_rows, short):
    assert short.mode == champion.SHORT_HISTORY and "short history" in short.notes[0]
    assert short.champion in champion.CANDIDATES
    # Fitted outside the hold-out; the hold-out is split into the two halves.
    assert short.n_fit + short.n_selection + short.n_evaluation == len(evaluation_rows)


def test_the_structural_level_sets_the_total_and_keeps_the_order():
    predicted, structural = np.array([1.0, 5.0, 2.0]), np.array([4.0, 4.0, 8.0])
    leveled = champion.to_structural_level(predicted, structural)
    assert leveled.sum() == pytest.approx(16.0)
    assert (np.argsort(leveled) == np.argsort(predicted)).all()
    assert (champion.to_structural_level(predicted, None) == predicted).all()
    assert (champion.to_structural_level(predicted, np.zeros(3)) == predicted).all()  # nothing to anchor on


def test_short_history_takes_the_level_from_btyd_and_the_shape_from_the_calibration(
    short, evaluation_rows, scoring_rows
):
    reported = short.evaluation[
        (short.evaluation["backtest_window"] == champion.EVALUATION)
        & np.isfinite(short.evaluation["calibration_ratio"])
    ]
    assert reported["calibration"].str.contains("level: BTYD total").all()
    # One total for every candidate (the BTYD models' mean on the same customers): the ratios agree.
    assert reported["calibration_ratio"].max() - reported["calibration_ratio"].min() < 1e-6
    model = champion.fit_champion(evaluation_rows, HORIZON, short.evaluation)
    assert model.structural_level and any(note.startswith("level: the BTYD") for note in model.notes)
    scores = champion.predict_champion(model, scoring_rows, explain=False)
    _, forecasts, _ = champion.btyd_outputs(scoring_rows, HORIZON)
    assert scores["predicted_clv"].sum() == pytest.approx(champion.structural_forecast(forecasts).sum(), rel=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_on_a_young_shop_the_structural_level_brings_the_next_horizons_total_closer(seed):
    # 560 days of history and a 180-day horizon: short history, scored customers older than any trained on.
    horizon, n_days = 180, 560
    young = simulate_shop(2000, n_days, seed)
    as_of = n_days - 1 - horizon
    rows_e, rows_s = features_at(young, as_of - horizon, horizon), features_at(young, as_of - 2 * horizon, horizon)
    now = features_at(young, as_of, horizon)
    backtest = champion.champion_backtest(rows_e, horizon, rows_s)
    assert backtest.mode == champion.SHORT_HISTORY
    model = champion.fit_champion(rows_e, horizon, backtest.evaluation)
    actual = now["future_revenue"].to_numpy(float)
    leveled = calibration_ratio(actual, champion.predict_champion(model, now, explain=False)["predicted_clv"])
    learned = calibration_ratio(
        actual,
        champion.predict_champion(dataclasses.replace(model, structural_level=False), now, explain=False)[
            "predicted_clv"
        ],
    )
    assert abs(math.log(leveled)) < abs(math.log(learned))


def test_forward_mode_keeps_the_level_its_back_test_measured(result, evaluation_rows):
    assert not result.evaluation["calibration"].astype(str).str.contains("level: BTYD").any()
    assert not champion.fit_champion(evaluation_rows, HORIZON, result.evaluation).structural_level


def test_the_production_model_is_the_champion_with_its_calibration_and_intervals(result, evaluation_rows, scoring_rows):
    model = champion.fit_champion(evaluation_rows, HORIZON, result.evaluation)
    assert model.name == result.champion
    scores = champion.predict_champion(model, scoring_rows, explain=False)
    assert len(scores) == len(scoring_rows) and (scores["clv_model"] == result.champion).all()
    assert (scores["predicted_clv_p10"] <= scores["predicted_clv"]).all()
    assert (scores["predicted_clv"] <= scores["predicted_clv_p90"]).all()
    assert scores["purchase_propensity"].between(0, 1).all()


@pytest.mark.parametrize("name", champion.CANDIDATES)
def test_every_candidate_can_be_the_production_model(result, evaluation_rows, scoring_rows, name):
    table = result.evaluation.assign(is_champion=result.evaluation["model"] == name)
    if table.loc[table["is_champion"], "calibration_map"].isna().all():
        pytest.skip(f"{name} could not be fitted here")
    scores = champion.predict_champion(champion.fit_champion(evaluation_rows, HORIZON, table), scoring_rows.head(300))
    assert np.isfinite(scores["predicted_clv"]).all() and (scores["clv_model"] == name).all()


def test_on_a_shop_younger_than_one_horizon_the_propensity_agrees_with_the_value(scoring_rows):
    # Regression: no customer at as-of minus one horizon means no label, so the champion is the past-spend rate;
    # its propensity was the empty training cut's buy rate, 0, next to a positive predicted_clv for everyone.
    # (No BTYD model fitted at the as-of date either, so the label-free champion is the past-spend rate.)
    nobody = scoring_rows.head(0)
    unfitted = {name: "no repeat buyer" for name in champion.LABEL_FREE_CHAMPIONS}
    backtest = champion.champion_backtest(nobody, HORIZON, nobody, scoring_fits=unfitted)
    model = champion.fit_champion(nobody, HORIZON, backtest.evaluation)
    assert model.name == champion.PAST_SPEND
    assert any(note.startswith("purchase_propensity: 1 - exp(-past orders") for note in model.notes)
    scores = champion.predict_champion(model, scoring_rows, explain=False)
    spends = scores["predicted_clv"] > 0
    assert spends.any() and (scores.loc[spends, "purchase_propensity"] > 0).all()
    # The same Poisson model: orders expected = value / spend per order, P(>= 1 order) = 1 - exp(-orders expected).
    rows = scoring_rows.set_index("customer_id").loc[scores["customer_id"]]
    spend_per_order = (rows["total_revenue"] / rows["order_count"]).to_numpy()
    expected_orders = scores["predicted_clv"].to_numpy() / spend_per_order
    positive = spend_per_order > 0
    assert np.allclose(
        scores["purchase_propensity"].to_numpy()[positive], 1 - np.exp(-expected_orders[positive]), atol=1e-9
    )
    # A more frequent buyer is more likely to buy: the propensity ranks (a constant base rate did not).
    assert scores["purchase_propensity"].nunique() > 1


# ------------------------------------------------------------------------------------------ no back-test


def panel_window(shop: dict[str, pd.DataFrame], start_day: int) -> dict[str, pd.DataFrame]:
    """The shop seen from start_day on, days counted from there (a panel that starts recording an existing shop, as
    The Complete Journey does): at day 1 every customer has at most one day of history."""
    return {
        name: table[table["day"] >= start_day].assign(day=table["day"] - start_day) if "day" in table else table
        for name, table in shop.items()
    }


@pytest.fixture(scope="module")
def one_day_window(shop):
    """A horizon ahead of a training cut-off one day into the log (CJ 2017-06-30 h=180): E, S (empty) and as-of rows."""
    panel = panel_window(shop, 700)
    as_of = 1 + HORIZON
    rows_e, rows_s = features_at(panel, 1, HORIZON), features_at(panel, as_of - 2 * HORIZON, HORIZON)
    return rows_e, rows_s, features_at(panel, as_of, HORIZON)


@pytest.fixture(scope="module")
def no_backtest(one_day_window):
    rows_e, rows_s, now = one_day_window
    return champion.champion_backtest(rows_e, HORIZON, rows_s, scoring_fits=btyd.fit_btyd_models(now))


def test_a_training_cut_off_with_one_day_of_history_ships_bgnbd_uncalibrated_and_says_so(one_day_window, no_backtest):
    rows_e, _, now = one_day_window
    assert champion.window_shortfall(rows_e, HORIZON, champion.TRAINING_CUTOFF).startswith("1 days of orders")
    assert no_backtest.mode == champion.NO_BACKTEST and no_backtest.champion == champion.BGNBD
    assert "no label-trained candidate is eligible" in no_backtest.reason
    assert (no_backtest.evaluation["mode"] == champion.NO_BACKTEST).all()
    model = champion.fit_champion(rows_e, HORIZON, no_backtest.evaluation)
    assert model.calibration.method.startswith("none (no back-test") and not model.structural_level
    assert model.seasonal_factor == 1.0
    scores = champion.predict_champion(model, now, explain=False)
    # The shipped forecast is BG/NBD x Gamma-Gamma fitted on all history at the as-of date, as it gives it.
    forecast = btyd.fit_btyd(now, "bgnbd").forecast(now, HORIZON)
    assert np.allclose(scores["predicted_clv"], forecast["predicted_clv"])
    assert scores["purchase_propensity"].nunique() > 1  # a real propensity, not the base rate
    # Its p10 / p90 are BG/NBD x Gamma-Gamma's own predictive quantiles, not the empty map's 0 and the forecast.
    assert model.predictive_intervals and any(note.startswith("intervals: p10 / p90 of bgnbd") for note in model.notes)
    low, high = btyd.fit_btyd(now, "bgnbd").spend_quantiles(now, HORIZON, (0.1, 0.9)).T
    assert np.allclose(scores["predicted_clv_p10"], np.minimum(low, scores["predicted_clv"]))
    assert np.allclose(scores["predicted_clv_p90"], np.maximum(high, scores["predicted_clv"]))
    assert (scores["predicted_clv_p90"] > scores["predicted_clv"] + 1e-6).any()
    gate = quality_gate(no_backtest.evaluation)
    assert not gate.passed and len(gate.reasons) == 1
    assert gate.reasons[0].startswith("calibration could not be measured: no back-test") and "bgnbd" in gate.reasons[0]


def test_a_normal_shop_keeps_its_back_test_and_the_rule_it_was_chosen_by(result, evaluation_rows):
    assert champion.window_shortfall(evaluation_rows, HORIZON, champion.TRAINING_CUTOFF) is None
    assert result.mode == champion.FORWARD and "no back-test" not in result.reason
    assert quality_gate(result.evaluation).passed


def test_without_a_btyd_fit_at_the_as_of_date_the_label_free_champion_falls_back_in_order():
    fitted = btyd.FittedBTYD.__new__(btyd.FittedBTYD)
    assert champion.label_free_champion({"bgnbd": "no repeat buyer", "pareto_nbd": fitted}, "x")[0] == "pareto_nbd"
    name, reason = champion.label_free_champion({"bgnbd": "no repeat buyer", "pareto_nbd": "no repeat buyer"}, "x")
    assert name == champion.PAST_SPEND and "nothing fitted" in reason
    assert champion.label_free_champion(None, "x")[0] == champion.BGNBD


def test_a_label_free_champion_that_was_not_a_candidate_gets_rows_without_maps(one_day_window):
    rows_e, rows_s, _ = one_day_window
    backtest = champion.champion_backtest(
        rows_e, HORIZON, rows_s, candidates=(champion.LIGHTGBM,), scoring_fits={"bgnbd": "no repeat buyer"}
    )
    assert backtest.champion == champion.PAST_SPEND
    model = champion.fit_champion(rows_e, HORIZON, backtest.evaluation)
    assert model.name == champion.PAST_SPEND and model.calibration.method.startswith("none (no back-test")


# ------------------------------------------------------------------------------------------ the selection rule


def selection_rows_for(**metrics) -> pd.DataFrame:
    """One selection row per candidate: (spearman, decile_mape, calibration_ratio)."""
    return pd.DataFrame(
        [
            {"model": name, "spearman": s, "decile_mape": m, "calibration_ratio": c, "n_customers": 2000}
            for name, (s, m, c) in metrics.items()
        ]
    )


ORDINARY = (0.45, 0.60, 1.0)
PLANTED_WINNERS = {
    # lightgbm ranks best by far: the others are out of the Spearman tolerance, whatever their MAPE.
    champion.LIGHTGBM: {champion.LIGHTGBM: (0.60, 0.40, 1.0), champion.BGNBD: (0.50, 0.10, 1.0)},
    # stacked and lightgbm tie on ranking; stacked is better calibrated by decile.
    champion.STACKED: {champion.LIGHTGBM: (0.60, 0.40, 1.0), champion.STACKED: (0.59, 0.30, 1.0)},
    # the blend ranks with the trees and has the lowest decile MAPE of the three.
    champion.BLEND: {
        champion.LIGHTGBM: (0.60, 0.40, 1.0),
        champion.STACKED: (0.59, 0.30, 1.0),
        champion.BLEND: (0.61, 0.25, 1.0),
    },
    # BG/NBD ranks as well as the trees (within the tolerance) and has the lowest decile MAPE.
    champion.BGNBD: {champion.LIGHTGBM: (0.55, 0.40, 1.0), champion.BGNBD: (0.54, 0.20, 1.02)},
    # the trees fail the calibration band: Pareto/NBD is the best that passes.
    champion.PARETO_NBD: {champion.LIGHTGBM: (0.62, 0.10, 1.6), champion.PARETO_NBD: (0.50, 0.30, 0.95)},
    # the shape hurdle ranks with the trees and has the lowest decile MAPE.
    champion.SHAPE_HURDLE: {
        champion.LIGHTGBM: (0.60, 0.40, 1.0),
        champion.STACKED: (0.59, 0.30, 1.0),
        champion.SHAPE_HURDLE: (0.60, 0.20, 1.0),
    },
    # a shop where only the naive forecast ranks above the floor.
    champion.PAST_SPEND: {name: (0.10, 0.20, 1.0) for name in champion.CANDIDATES}
    | {champion.PAST_SPEND: (0.30, 0.50, 1.1)},
}


@pytest.mark.parametrize("winner", champion.CANDIDATES)
def test_each_candidate_wins_where_the_written_rule_says_it_should(winner):
    metrics = {name: ORDINARY for name in champion.CANDIDATES} | PLANTED_WINNERS[winner]
    chosen, reason = champion.select_champion(selection_rows_for(**metrics))
    assert chosen == winner and reason.startswith(winner)


def test_a_tie_goes_to_the_earlier_candidate():
    chosen, _ = champion.select_champion(selection_rows_for(bgnbd=(0.5, 0.3, 1.0), lightgbm=(0.5, 0.3, 1.0)))
    assert chosen == champion.LIGHTGBM


def test_when_nothing_passes_the_gate_the_rule_still_chooses_and_says_so():
    chosen, reason = champion.select_champion(selection_rows_for(lightgbm=(0.1, 0.5, 2.0), bgnbd=(0.09, 0.2, 1.9)))
    assert chosen == champion.BGNBD and "none passes the gate" in reason


def test_without_any_measured_candidate_the_naive_forecast_is_the_champion():
    nan = (math.nan, math.nan, math.nan)
    chosen, _ = champion.select_champion(selection_rows_for(lightgbm=nan, bgnbd=nan))
    assert chosen == champion.PAST_SPEND


# ------------------------------------------------------------------------------------------ calibration, intervals


def zero_inflated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True mean per customer and an actual drawn around it: 80 % buy nothing, buyers spend ~gamma."""
    rng = np.random.default_rng(seed)
    mean = rng.lognormal(3.0, 1.0, size=n)
    buys = rng.uniform(size=n) < 0.2
    actual = np.where(buys, rng.gamma(2.0, mean / 2.0 / 0.2), 0.0)
    return mean, actual


def test_calibration_restores_totals_of_a_model_that_overpredicts_twofold():
    mean, actual = zero_inflated(6000, seed=1)
    fold = np.arange(6000) % 2 == 0
    calibration = champion.learn_calibration(2 * mean, actual, fold=fold)
    assert calibration.method.split(" ")[0] in ("factor", "isotonic")
    assert calibration_ratio(actual, calibration.apply(2 * mean)) == pytest.approx(1.0, abs=0.02)


def test_isotonic_calibration_fixes_a_bent_prediction_and_keeps_the_order():
    mean, actual = zero_inflated(20000, seed=2)
    bent = mean**0.5  # ranks right, calibrated wrong in a non-linear way
    calibration = champion.learn_calibration(bent, actual, fold=np.arange(20000) % 2 == 0)
    assert calibration.method.startswith("isotonic")
    calibrated = calibration.apply(bent)
    assert (np.diff(calibrated[np.argsort(bent)]) >= 0).all()
    fresh_mean, fresh_actual = zero_inflated(20000, seed=3)
    from ml.evaluation import decile_mape

    assert decile_mape(fresh_actual, calibration.apply(fresh_mean**0.5)) < 0.5 * decile_mape(
        fresh_actual, fresh_mean**0.5
    )


def test_a_well_calibrated_prediction_is_left_alone_or_barely_moved():
    mean, actual = zero_inflated(20000, seed=4)
    calibration = champion.learn_calibration(mean, actual, fold=np.arange(20000) % 2 == 0)
    assert calibration_ratio(mean, calibration.apply(mean)) == pytest.approx(1.0, abs=0.05)


def test_small_or_spendless_data_gets_a_clipped_factor_or_nothing():
    small = champion.learn_calibration([1.0, 2.0, 3.0], [10.0, 20.0, 30.0], fold=np.array([True, False, True]))
    assert small.method.startswith("factor") and small.factor == champion.FACTOR_BOUNDS[1]
    assert champion.learn_calibration([1.0, 2.0], [0.0, 0.0]).method.startswith("none")
    restored = champion.Calibration.from_json(small.to_json())
    assert restored == small


def test_p10_p90_intervals_cover_about_eighty_percent_of_fresh_customers():
    rng = np.random.default_rng(5)
    predicted = rng.lognormal(3.0, 1.0, size=20000)
    actual = predicted * rng.lognormal(0.0, 0.6, size=20000)  # continuous spend: no mass at zero
    intervals = champion.learn_intervals(predicted[:10000], actual[:10000])
    low, high = intervals.apply(predicted[10000:])
    assert interval_coverage(actual[10000:], low, high) == pytest.approx(0.8, abs=0.04)
    assert (low <= high).all()


def test_intervals_on_zero_inflated_spend_start_at_zero_and_cover_at_least_eighty_percent():
    mean, actual = zero_inflated(20000, seed=6)
    intervals = champion.learn_intervals(mean[:10000], actual[:10000])
    low, high = intervals.apply(mean[10000:])
    assert (low == 0).mean() > 0.9
    assert interval_coverage(actual[10000:], low, high) >= 0.8


def test_a_selection_cut_off_without_enough_history_of_its_own_means_short_history(selection_rows):
    assert champion.history_mode(selection_rows, HORIZON)[0] == champion.FORWARD
    young = selection_rows.assign(tenure_days=selection_rows["tenure_days"].clip(upper=10))
    mode, why = champion.history_mode(young, HORIZON)
    assert mode == champion.SHORT_HISTORY and "10 days of orders" in why
    assert champion.history_mode(selection_rows.head(50), HORIZON)[0] == champion.SHORT_HISTORY


# ------------------------------------------------------------------------------------------ seasonality


def seasonal_revenue(years: float = 3, holiday_lift: float = 2.0) -> pd.Series:
    """Daily revenue 100, times holiday_lift in November and December: a planted season."""
    days = pd.date_range("2021-01-01", periods=int(365 * years), freq="D")
    return pd.Series(np.where(days.month >= 11, 100.0 * holiday_lift, 100.0), index=days)


def test_the_seasonal_factor_is_the_year_earlier_ratio_of_the_window_ahead_to_the_window_before():
    revenue = seasonal_revenue()
    # As of 2023-09-01 with 122 days: a year earlier, Sep-Dec 2022 (61 days lifted) over May-Aug 2022.
    factor = champion.seasonal_factor(revenue, pd.Timestamp("2023-09-01"), 122)
    expected = (61 * 100 + 61 * 200) / (122 * 100)
    assert factor == pytest.approx(expected, rel=0.02)
    assert champion.seasonal_factor(revenue, pd.Timestamp("2021-09-01"), 122) is None  # no year of history
    assert champion.seasonal_factor(revenue, pd.Timestamp("2023-09-01"), 365) is None  # a year holds every season


def test_a_history_of_exactly_a_year_plus_the_horizon_measures_the_seasonal_factor():
    # The window before the year-earlier one is (as_of - 365 - h, as_of - 365]: its first day is as_of - 364 - h. A
    # history starting that day covers it (CDNOW as of 1998-03-31, h 90: days 0-89 of the log), and was refused as
    # "history shorter than a year plus the horizon" until 2026-11-27 (bench/results/clv_sweep.md).
    revenue = pd.Series(100.0, index=pd.date_range("2021-01-01", periods=600, freq="D"))
    exactly = pd.Timestamp("2021-01-01") + pd.Timedelta(days=365 + 90 - 1)
    assert champion.seasonal_factor(revenue, exactly, 90) == pytest.approx(1.0)
    assert champion.seasonal_factor(revenue, exactly - pd.Timedelta(days=1), 90) is None  # one day short
    reason = champion.decide_seasonality(revenue, exactly, 90, champion.FORWARD).reason
    assert "shorter than a year plus the horizon" not in reason and "two horizons" in reason


def test_seasonality_applies_when_the_shops_step_repeated_the_year_before():
    revenue = seasonal_revenue(3.5)
    # As of 2024-03-01, 122 days: one horizon earlier the shop stepped from Jul-Oct 2023 into the lifted Nov-Dec
    # (x ~1.49), as it had a year before (x 1.5): the season repeats. Production steps from that window into spring.
    decision = champion.decide_seasonality(revenue, "2024-03-01", 122, champion.FORWARD)
    assert decision.applied and decision.reason.startswith("applied")
    assert decision.backtest_step == pytest.approx(1.5, rel=0.02)
    assert decision.factor == pytest.approx(1 / 1.5, rel=0.02)
    # The test reads revenue only, so short history runs it too; its candidates fit and calibrate on one window's
    # labels, so nothing is taken out of the calibration (a 95 % Christmas shop of 600 customers was refused for
    # the mode alone and forecast 78,936 for a next quarter of 1,149).
    short = champion.decide_seasonality(revenue, "2024-03-01", 122, champion.SHORT_HISTORY)
    assert short.applied and short.factor == decision.factor and short.backtest_step == 1.0


def test_a_one_off_lift_the_shop_did_not_repeat_is_not_a_season():
    revenue = seasonal_revenue(3.5)
    days = pd.to_datetime(revenue.index)
    once = revenue.where(~((days.month >= 11) & (days.year == 2023)), 100.0)  # lifted in 2021-2022, not in 2023
    decision = champion.decide_seasonality(once, "2024-03-01", 122, champion.FORWARD)
    assert not decision.applied and decision.factor == decision.backtest_step == 1.0
    assert "closer to no season" in decision.reason
    assert not champion.decide_seasonality(once, "2024-03-01", 122, champion.SHORT_HISTORY).applied


def test_seasonality_says_why_it_is_not_applied():
    revenue = seasonal_revenue()
    assert "whole year" in champion.decide_seasonality(revenue, "2023-11-01", 365, champion.FORWARD).reason
    short = champion.decide_seasonality(seasonal_revenue(1.2), "2022-01-20", 122, champion.FORWARD)
    assert "a year plus the horizon" in short.reason
    blocked = champion.decide_seasonality(revenue, "2023-11-01", 122, champion.NO_BACKTEST)
    assert blocked.factor == 1.0 and champion.NO_BACKTEST in blocked.reason
    assert (
        "two horizons" in champion.decide_seasonality(seasonal_revenue(1.5), "2022-06-01", 122, champion.FORWARD).reason
    )


def christmas_revenue(first_day: str = "2021-11-01", last_day: str = "2022-12-31", every: int = 1) -> pd.Series:
    """Revenue 100 on every `every`-th day of November-December (2021 and 2022: a Christmas shop), 0 otherwise."""
    days = pd.date_range(first_day, last_day, freq="D")
    revenue = np.zeros(len(days))
    revenue[np.flatnonzero(days.month >= 11)[::every]] = 100.0
    return pd.Series(revenue, index=days)


@pytest.mark.parametrize("mode", [champion.FORWARD, champion.SHORT_HISTORY])
def test_a_season_closed_a_year_earlier_is_forecast_at_zero_in_either_mode(mode):
    # Regression: the Christmas shop of the shape sweep, scored on 2022-12-31 for 90 days, was forecast 36,590 for a
    # quarter that held 0: its factor 0 / x was "undefined" and the decision said "history shorter than a year".
    revenue = christmas_revenue()
    assert champion.closed_season(revenue, "2022-12-31", 90) is not None
    decision = champion.decide_seasonality(revenue, "2022-12-31", 90, mode)
    assert decision.applied and decision.factor == 0.0 and decision.backtest_step == 1.0
    assert "closed season" in decision.reason and "61 selling days" in decision.reason


def test_a_shop_open_all_year_or_too_young_or_too_sparse_is_not_called_closed():
    # Every day sold: the existing step decides, as before.
    assert champion.closed_season(seasonal_revenue(3.5), "2024-03-01", 122) is None
    assert champion.decide_seasonality(seasonal_revenue(3.5), "2024-03-01", 122, champion.FORWARD).factor > 0
    # The window a year earlier lies before the shop's first sale: nothing is known about it.
    young = christmas_revenue("2022-05-01")
    assert champion.closed_season(young.where(young.index.month >= 11, 5.0), "2022-12-31", 90) is None
    # Seven selling days in the 90 before the window: a quiet quarter of a sparse shop is not a closed season.
    sparse = christmas_revenue("2021-09-01", every=10)
    assert champion.closed_season(sparse, "2022-12-31", 90) is None
    decision = champion.decide_seasonality(sparse, "2022-12-31", 90, champion.FORWARD)
    assert not decision.applied and decision.factor == 1.0
    assert "no revenue in the same window a year earlier" in decision.reason  # not "history shorter"
    # Not open now (no sale in the last 90 days): nothing repeats.
    assert champion.closed_season(christmas_revenue(last_day="2022-10-31"), "2023-01-30", 90) is None
    assert champion.closed_season(christmas_revenue(), "2022-12-31", 365) is None  # a year holds every season


def a_third_repeats(revenue: pd.Series) -> pd.Series:
    """Repeat orders' revenue: a third of every day's (the rest first orders, acquisitions)."""
    return revenue / 3


@pytest.mark.parametrize("mode", [champion.FORWARD, champion.SHORT_HISTORY])
def test_a_season_ahead_is_forecast_at_the_year_earlier_windows_repeat_revenue(mode):
    # Regression (pre-registered, bench/results/clv_seasonal_shop.md): the Christmas shop scored on 2022-10-02 for
    # 90 days was forecast 739 for a season of 42,898: the window before the year-earlier season lies before the
    # shop's first order (no step), and the candidates' level is that of an empty quarter.
    revenue = christmas_revenue(last_day="2022-10-02")
    decision = champion.decide_seasonality(revenue, "2022-10-02", 90, mode, a_third_repeats(revenue))
    assert decision.applied and decision.factor == 1.0 and decision.backtest_step == 1.0
    assert decision.season_total == pytest.approx(61 * 100 / 3)  # W's repeat orders, growth 1
    assert "season ahead" in decision.reason and "growth 1: not measurable" in decision.reason
    assert "history starts inside it" in decision.reason
    # Without repeat revenue (a caller that does not pass it) nothing changes.
    assert not champion.decide_seasonality(revenue, "2022-10-02", 90, mode).applied


def test_a_season_ahead_grows_with_the_shops_repeat_revenue_when_two_years_measure_it():
    revenue = christmas_revenue("2021-09-01", last_day="2023-10-02")
    revenue.iloc[0] = 100.0  # a first sale before both years: the history covers them
    repeats = a_third_repeats(revenue) * np.where(pd.to_datetime(revenue.index).year == 2022, 2.0, 1.0)
    decision = champion.decide_seasonality(revenue, "2023-10-02", 90, champion.FORWARD, repeats)
    assert decision.applied and "growth 2.000" in decision.reason
    assert decision.season_total == pytest.approx(61 * 200 / 3 * 2.0)


def test_no_season_ahead_for_a_flat_sparse_closed_or_barely_covered_shop():
    def ahead(revenue, as_of, horizon=90):
        return champion.decide_seasonality(revenue, as_of, horizon, champion.FORWARD, a_third_repeats(revenue))

    # A shop that sells every day (the season x 2): the year-earlier window is not 10 x the last one.
    flat = seasonal_revenue(2)
    assert ahead(flat, "2022-10-02").season_total is None
    # Six selling days in the year-earlier window: a few stray orders are not a season.
    sparse = christmas_revenue(last_day="2022-10-02", every=10)
    assert ahead(sparse, "2022-10-02").season_total is None
    # A closed season: the closed rule decides (factor 0), not this one.
    closed = ahead(christmas_revenue(), "2022-12-31")
    assert closed.factor == 0.0 and closed.season_total is None
    # Under half of the year-earlier window inside the history (first order 2021-12-01, the window opens 2021-10-03).
    young = christmas_revenue("2021-12-01", last_day="2022-10-02")
    assert ahead(young, "2022-10-02").season_total is None
    assert "shorter than a year" in ahead(young, "2022-10-02").reason  # the existing refusal, as before
    # A shop that sold the same every day until it collapsed six months ago: the year-earlier window sold 20 x the
    # last 90 days, but it was a plateau, not a season (its neighbours sold as much): not forecast at its old level.
    for first in ("2021-01-01", "2020-01-01"):
        days = pd.date_range(first, "2022-10-02", freq="D")
        collapsed = pd.Series(np.where(days < pd.Timestamp("2022-04-01"), 100.0, 5.0), index=days)
        assert ahead(collapsed, "2022-10-02").season_total is None
    # A horizon of a year holds every season; no back-test stays refused upstream.
    assert ahead(christmas_revenue(last_day="2022-10-02"), "2022-10-02", 365).season_total is None
    revenue = christmas_revenue(last_day="2022-10-02")
    blocked = champion.decide_seasonality(revenue, "2022-10-02", 90, champion.NO_BACKTEST, a_third_repeats(revenue))
    assert blocked.season_total is None


def test_repeat_revenue_by_day_leaves_out_each_customers_first_order_day():
    repeats = champion.repeat_revenue_by_day(["a", "a", "a", "b", "b"], [1, 1, 3, 2, 5], [10.0, 5.0, 7.0, 3.0, 4.0])
    assert repeats.to_dict() == {3: 7.0, 5: 4.0}


def test_a_sub_year_horizon_does_not_carry_the_back_tests_seasonal_step_into_production(
    evaluation_rows, selection_rows, scoring_rows
):
    # A planted season whose back-test step is x1.5 and production step x1/1.5 (as in the test above, moved to the
    # simulated shop's calendar): the back-test metrics are those without season (the step is taken out of the
    # calibration and put back), and production's forecast moves by 1/1.5 / 1.5, not by the back-test's step.
    as_of = pd.Timestamp(evaluation_rows["cutoff_date"].iloc[0]) + pd.Timedelta(days=HORIZON)
    days = pd.date_range(as_of - pd.Timedelta(days=4 * 365), as_of, freq="D")
    horizon = pd.Timedelta(days=HORIZON)
    ahead_of_e = ((days > as_of - horizon) & (days <= as_of)) | (
        (days > as_of - horizon - pd.Timedelta(days=365)) & (days <= as_of - pd.Timedelta(days=365))
    )
    revenue = pd.Series(np.where(ahead_of_e, 150.0, 100.0), index=days)
    candidates = (champion.BGNBD, champion.PAST_SPEND)
    plain = champion.champion_backtest(evaluation_rows, HORIZON, selection_rows, candidates=candidates)
    seasonal = champion.champion_backtest(
        evaluation_rows, HORIZON, selection_rows, candidates=candidates, daily_revenue=revenue
    )
    assert seasonal.evaluation["seasonality"].str.startswith("applied").all()
    assert seasonal.evaluation["calibration"].str.contains("season: x 1.500").all()
    metrics = ["spearman", "decile_mape", "calibration_ratio"]
    pd.testing.assert_frame_equal(plain.evaluation[metrics], seasonal.evaluation[metrics], rtol=1e-6)
    factor = float(seasonal.evaluation["seasonal_factor"].iloc[0])
    assert factor == pytest.approx(1 / 1.5, rel=0.01)
    with_season = champion.fit_champion(evaluation_rows, HORIZON, seasonal.evaluation)
    without = champion.fit_champion(evaluation_rows, HORIZON, plain.evaluation)
    assert with_season.name == without.name
    ratio = (
        champion.predict_champion(with_season, scoring_rows, explain=False)["predicted_clv"].sum()
        / champion.predict_champion(without, scoring_rows, explain=False)["predicted_clv"].sum()
    )
    assert ratio == pytest.approx(1 / 1.5 / 1.5, rel=0.01)


def test_a_label_free_champion_needs_a_btyd_fit_on_enough_customers():
    # After the merge with the shop-shape sweep: a BG/NBD fitted at as-of on a few dozen customers gave a total 57 x
    # too low (the structural level's floor); the label-free champion trusts a fit only on as many customers.
    few = btyd.FittedBTYD.__new__(btyd.FittedBTYD)
    few.n_customers = champion.STRUCTURAL_LEVEL_MIN_CUSTOMERS - 1
    enough = btyd.FittedBTYD.__new__(btyd.FittedBTYD)
    enough.n_customers = champion.STRUCTURAL_LEVEL_MIN_CUSTOMERS
    assert champion.label_free_champion({"bgnbd": few, "pareto_nbd": few}, "x")[0] == champion.PAST_SPEND
    assert champion.label_free_champion({"bgnbd": few, "pareto_nbd": enough}, "x")[0] == champion.PARETO_NBD


def test_few_buyers_at_the_training_cut_off_is_a_measurement_not_a_degenerate_window(evaluation_rows):
    # E clears the bar on history and customers alone (a shop where nobody comes back has no buyers there, and its
    # zero calibration is learned on exactly those rows); S also needs buyers to rank candidates on.
    spendless = evaluation_rows.assign(**{clv.VALUE_LABEL: 0.0, clv.BUY_LABEL: 0})
    assert champion.window_shortfall(spendless, HORIZON, champion.TRAINING_CUTOFF) is None
    assert "0 buyers" in champion.window_shortfall(spendless, HORIZON, champion.SELECTION_CUTOFF)
