"""Back-test metrics against hand-computed values on tiny arrays, and the quality gate on its passing and failing paths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml import evaluation as ev

# Five customers; the model ranks them in row order. Actual revenue 100 in total.
Y_TRUE = [0.0, 10.0, 0.0, 30.0, 60.0]
Y_PRED = [1.0, 2.0, 3.0, 4.0, 5.0]


def test_normalized_gini_matches_the_hand_computed_lorenz_areas():
    # By prediction (desc): 60, 30, 0, 10, 0 -> cumulative shares .6 .9 .9 1 1 minus .2 .4 .6 .8 1 -> 1.4 / 5 = 0.28.
    # Perfect order: 60, 30, 10, 0, 0 -> .6 .9 1 1 1 -> 1.5 / 5 = 0.30.
    assert ev.normalized_gini(Y_TRUE, Y_PRED) == pytest.approx(0.28 / 0.30)


def test_normalized_gini_is_one_for_a_perfect_ranking_and_negative_for_a_reversed_one():
    assert ev.normalized_gini(Y_TRUE, Y_TRUE) == pytest.approx(1.0)
    assert ev.normalized_gini(Y_TRUE, [-p for p in Y_PRED]) < 0


def test_spearman_matches_the_hand_computed_rank_correlation():
    # Ranks of actual with ties averaged: 1.5 3 1.5 4 5 against 1..5: cov 8, variances 9.5 and 10.
    assert ev.spearman(Y_TRUE, Y_PRED) == pytest.approx(8 / math.sqrt(95))


def test_calibration_ratio_is_total_predicted_over_total_actual():
    assert ev.calibration_ratio(Y_TRUE, Y_PRED) == pytest.approx(15 / 100)


def test_top_share_capture_counts_the_revenue_of_the_highest_predictions():
    assert ev.top_share_capture(Y_TRUE, Y_PRED) == pytest.approx(0.6)  # top 1 of 5
    assert ev.top_share_capture(Y_TRUE, Y_PRED, share=0.4) == pytest.approx(0.9)  # top 2 of 5


def test_ties_in_predictions_are_broken_by_row_order():
    # All predictions equal: later rows rank higher, so the top 25 % is the last row.
    assert ev.top_share_capture([40.0, 30.0, 20.0, 10.0], [1.0, 1.0, 1.0, 1.0], share=0.25) == pytest.approx(0.1)
    table = ev.decile_table([40.0, 30.0, 20.0, 10.0], [1.0, 1.0, 1.0, 1.0])
    assert table["decile"].tolist() == [1, 3, 6, 8]
    assert table["sum_actual"].tolist() == [40.0, 30.0, 20.0, 10.0]


def test_decile_table_has_ten_equal_deciles_ordered_by_prediction():
    y_pred = np.arange(20, 0, -1, dtype=float)  # highest prediction first
    y_true = np.arange(20, dtype=float)
    table = ev.decile_table(y_true, y_pred)
    assert table["decile"].tolist() == list(range(1, 11))
    assert (table["n_customers"] == 2).all()
    # Decile 10 holds the two highest predictions (20 and 19), i.e. the first two rows, actual 0 + 1.
    top = table.set_index("decile").loc[10]
    assert (top["sum_predicted"], top["sum_actual"], top["mean_actual"]) == (39.0, 1.0, 0.5)


def test_decile_mape_averages_relative_errors_over_deciles_with_revenue():
    # n = 5: the customers fall in deciles 1, 3, 5, 7, 9. Deciles with revenue: 3 (10 vs 2), 7 (30 vs 4), 9 (60 vs 5).
    expected = (8 / 10 + 26 / 30 + 55 / 60) / 3
    assert ev.decile_mape(Y_TRUE, Y_PRED) == pytest.approx(expected)
    assert ev.decile_mape(Y_TRUE, Y_TRUE) == pytest.approx(0.0)


def test_roc_and_pr_auc_match_the_hand_computed_values():
    y_buy, score = [0, 1, 0, 1], [0.1, 0.4, 0.5, 0.8]
    # Positive-negative pairs ordered right: 3 of 4.
    assert ev.roc_auc(y_buy, score) == pytest.approx(0.75)
    # Precision 1 at recall .5, then 2/3 at recall 1.
    assert ev.pr_auc(y_buy, score) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_undefined_metrics_are_nan_instead_of_errors():
    zeros = [0.0, 0.0, 0.0]
    assert math.isnan(ev.normalized_gini(zeros, [1.0, 2.0, 3.0]))
    assert math.isnan(ev.calibration_ratio(zeros, [1.0, 2.0, 3.0]))
    assert math.isnan(ev.decile_mape(zeros, [1.0, 2.0, 3.0]))
    assert math.isnan(ev.top_share_capture(zeros, [1.0, 2.0, 3.0]))
    assert math.isnan(ev.spearman([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
    assert math.isnan(ev.roc_auc([1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(ev.pr_auc([0, 1, 1], None))
    assert math.isnan(ev.calibration_ratio([1.0, 2.0], [np.nan, 1.0]))
    assert math.isnan(ev.spearman([], []))


def test_metrics_refuse_arrays_of_different_lengths():
    with pytest.raises(ValueError):
        ev.spearman([1.0, 2.0], [1.0, 2.0, 3.0])


def test_evaluate_returns_one_row_with_every_metric_and_nan_auc_without_a_score():
    row = ev.evaluate("past_spend_rate", Y_TRUE, Y_PRED, [False, True, False, True, True], None)
    assert tuple(row) == ev.EVALUATION_COLUMNS
    assert row["model"] == "past_spend_rate" and row["n_customers"] == 5
    assert row["calibration_ratio"] == pytest.approx(0.15)
    assert math.isnan(row["propensity_auc"]) and math.isnan(row["propensity_pr_auc"])
    scored = ev.evaluate("model", Y_TRUE, Y_PRED, [False, True, False, True, True], Y_PRED)
    assert scored["propensity_auc"] == pytest.approx(5 / 6)


def candidates_table(**rows: dict) -> pd.DataFrame:
    """Evaluation-window rows for the gate, one per candidate; metrics not given are irrelevant."""
    return pd.DataFrame(
        [{"model": name, "backtest_window": "evaluation", "n_customers": 5000, **row} for name, row in rows.items()]
    )


GOOD = {"spearman": 0.5, "calibration_ratio": 1.05, "decile_mape": 0.3}
NAIVE = {"spearman": 0.4, "calibration_ratio": 3.0, "decile_mape": 2.0}


def test_gate_passes_when_one_candidate_passes_and_shows_actual_vs_threshold():
    gate = ev.quality_gate(
        candidates_table(lightgbm=GOOD | {"is_champion": True}, past_spend_rate=NAIVE | {"is_champion": False})
    )
    assert gate.passed and gate.reasons == []
    assert gate.actual["spearman"] == 0.5 and gate.actual["passing_candidates"] == ["lightgbm"]
    assert gate.thresholds["spearman_min"] == ev.DEFAULT_RANKING_FLOOR_SPEARMAN


def test_gate_passes_on_a_peer_when_the_first_candidate_fails():
    gate = ev.quality_gate(
        candidates_table(lightgbm=GOOD | {"spearman": 0.1}, bgnbd=GOOD | {"calibration_ratio": 0.95})
    )
    assert gate.passed and gate.actual["passing_candidates"] == ["bgnbd"]


def test_gate_fails_with_one_line_naming_every_candidate_when_none_passes():
    gate = ev.quality_gate(candidates_table(lightgbm=GOOD | {"spearman": 0.1}, past_spend_rate=NAIVE))
    assert not gate.passed and len(gate.reasons) == 1
    assert gate.reasons[0] == (
        "no CLV candidate passes the gate: lightgbm Spearman 0.100 < 0.2; past_spend_rate calibration 3.000 outside 0.7-1.3"
    )


def test_gate_on_a_shop_too_young_to_measure_says_so_in_one_reason():
    # Regression: a two-customer shop's line repeated "Spearman not measurable, calibration not measurable" for
    # each of the six candidates.
    nothing = {"spearman": math.nan, "calibration_ratio": math.nan, "decile_mape": math.nan, "n_customers": 0}
    gate = ev.quality_gate(candidates_table(lightgbm=nothing, past_spend_rate=nothing))
    assert not gate.passed
    assert gate.reasons == [
        "no CLV candidate could be measured: the back-test had no customer to evaluate on (a forecast is measured on "
        "customers who ordered before the as-of date minus one CLV horizon)"
    ]


def test_gate_reads_only_the_evaluation_window():
    table = pd.concat(
        [
            candidates_table(lightgbm=GOOD | {"spearman": 0.05}),
            candidates_table(lightgbm=GOOD).assign(backtest_window="selection"),
        ]
    )
    assert not ev.quality_gate(table).passed


def test_gate_fails_when_no_candidate_could_be_measured():
    unmeasured = {"spearman": math.nan, "calibration_ratio": math.nan, "decile_mape": math.nan}
    gate = ev.quality_gate(candidates_table(lightgbm=unmeasured))
    assert not gate.passed and "not measurable" in gate.reasons[0]
    assert not ev.quality_gate(candidates_table()).passed


def test_gate_enforces_the_absolute_calibration_band_only_on_a_large_enough_holdout():
    off_band = GOOD | {"calibration_ratio": 1.5}
    assert ev.quality_gate(candidates_table(lightgbm=off_band | {"n_customers": 120})).passed
    large = ev.quality_gate(candidates_table(lightgbm=off_band | {"n_customers": 5000}))
    assert not large.passed and "outside" in large.reasons[0]


def test_interval_coverage_counts_actuals_inside_the_closed_interval():
    assert ev.interval_coverage([0, 5, 10, 20], [0, 0, 0, 0], [5, 5, 10, 10]) == 0.75
    assert math.isnan(ev.interval_coverage([], [], []))
