"""Back-test metrics for value and propensity predictions, interval coverage and the model-quality gate.

Every metric takes one value per customer (y = actual, pred = predicted) and returns NaN, never raises,
when it is undefined (empty input, non-finite values, no revenue, a single class). Ranks break ties by
row order (`rank(method="first")`), so results never depend on a sort's whim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

N_DECILES = 10
TOP_SHARE = 0.2
# Row names the back-test writes and the gate reads.
MODEL_NAME = "lightgbm"
PAST_SPEND_BASELINE = "past_spend_rate"
BTYD_BASELINE = "btyd"
EVALUATION_COLUMNS = (
    "model",
    "n_customers",
    "normalized_gini",
    "spearman",
    "decile_mape",
    "calibration_ratio",
    "top20_capture",
    "propensity_auc",
    "propensity_pr_auc",
)
# Documented ranking floor: Spearman 0.2 is a weak but real ordering; below it a ranking is barely better than random.
DEFAULT_RANKING_FLOOR_SPEARMAN = 0.2
DEFAULT_CALIBRATION_BAND = (0.7, 1.3)
# Below this many held-out customers the sum ratio's sampling noise alone exceeds the band (a handful of big
# spenders decide it), so the absolute band is reported but only the comparisons with the baseline are enforced.
MIN_HOLDOUT_FOR_CALIBRATION_BAND = 500
# The champion's mode (ml.champion) when the training cut-off is too young or too small to train on labels: a
# label-free model ships unmeasured, and the gate blocks activation (quality_gate).
NO_BACKTEST_MODE = "no back-test"


def _clean_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray] | None:
    """Both arrays as float, or None when a metric is undefined (different lengths, empty, non-finite)."""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape:
        raise ValueError("y_true and y_pred must have the same length")
    if y_true.size == 0 or not (np.all(np.isfinite(y_true)) and np.all(np.isfinite(y_pred))):
        return None
    return y_true, y_pred


def prediction_rank(y_pred) -> np.ndarray:
    """1-based rank of each prediction, ascending, ties broken by row order (earlier row = lower rank)."""
    return pd.Series(np.asarray(y_pred, dtype=float)).rank(method="first").to_numpy()


def _gini_by_order(y_true: np.ndarray, rank: np.ndarray) -> float:
    """Area between the cumulative-actual curve (customers taken from the highest rank down) and the diagonal."""
    ordered = y_true[np.argsort(-rank, kind="stable")]
    cumulative_share = np.cumsum(ordered) / ordered.sum()
    population_share = np.arange(1, len(ordered) + 1) / len(ordered)
    return float(np.sum(cumulative_share - population_share) / len(ordered))


def normalized_gini(y_true, y_pred) -> float:
    """Gini of actual value ordered by prediction over the Gini of the perfect ordering (1 = perfect, 0 = random)."""
    pair = _clean_pair(y_true, y_pred)
    if pair is None or pair[0].sum() <= 0:
        return math.nan
    y_true, y_pred = pair
    perfect = _gini_by_order(y_true, prediction_rank(y_true))
    if perfect == 0:
        return math.nan
    return _gini_by_order(y_true, prediction_rank(y_pred)) / perfect


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation between actual and predicted value; NaN when either is constant."""
    pair = _clean_pair(y_true, y_pred)
    if pair is None or len(pair[0]) < 2 or np.ptp(pair[0]) == 0 or np.ptp(pair[1]) == 0:
        return math.nan
    return float(spearmanr(pair[0], pair[1]).statistic)


def decile_table(y_true, y_pred) -> pd.DataFrame:
    """One row per prediction decile (1 = lowest predictions, 10 = highest): n, sums and means of pred and actual.

    Decile of a customer = floor((rank - 1) * 10 / n) + 1 with rank from prediction_rank, so ties never merge bins
    and every decile exists once n >= 10.
    """
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    columns = ["decile", "n_customers", "sum_predicted", "sum_actual", "mean_predicted", "mean_actual"]
    if y_true.size == 0:
        return pd.DataFrame(columns=columns)
    decile = np.floor((prediction_rank(y_pred) - 1) * N_DECILES / len(y_pred)).astype(int) + 1
    frame = pd.DataFrame({"decile": decile, "predicted": y_pred, "actual": y_true})
    table = frame.groupby("decile", sort=True).agg(
        n_customers=("actual", "size"),
        sum_predicted=("predicted", "sum"),
        sum_actual=("actual", "sum"),
        mean_predicted=("predicted", "mean"),
        mean_actual=("actual", "mean"),
    )
    return table.reset_index()[columns]


def decile_mape(y_true, y_pred) -> float:
    """Mean over prediction deciles of |sum predicted - sum actual| / sum actual.

    Deciles whose actual sum is 0 have no defined relative error and are left out of the mean; NaN when all are.
    """
    if _clean_pair(y_true, y_pred) is None:
        return math.nan
    table = decile_table(y_true, y_pred)
    measurable = table[table["sum_actual"] > 0]
    if measurable.empty:
        return math.nan
    errors = (measurable["sum_predicted"] - measurable["sum_actual"]).abs() / measurable["sum_actual"]
    return float(errors.mean())


def calibration_ratio(y_true, y_pred) -> float:
    """sum(predicted) / sum(actual): 1 = totals right, 2 = twice the real revenue predicted."""
    pair = _clean_pair(y_true, y_pred)
    if pair is None or pair[0].sum() <= 0:
        return math.nan
    return float(pair[1].sum() / pair[0].sum())


def top_share_capture(y_true, y_pred, share: float = TOP_SHARE) -> float:
    """Share of actual revenue held by the ceil(share * n) customers with the highest predictions."""
    pair = _clean_pair(y_true, y_pred)
    if pair is None or pair[0].sum() <= 0:
        return math.nan
    y_true, y_pred = pair
    top_count = max(1, math.ceil(share * len(y_true) - 1e-9))
    top = prediction_rank(y_pred) > len(y_true) - top_count
    return float(y_true[top].sum() / y_true.sum())


def interval_coverage(y_true, low, high) -> float:
    """Share of customers whose actual value lies in [low, high] (a p10-p90 interval should cover about 80 %)."""
    y_true, low, high = (np.asarray(v, dtype=float) for v in (y_true, low, high))
    if not (y_true.shape == low.shape == high.shape):
        raise ValueError("y_true, low and high must have the same length")
    if y_true.size == 0:
        return math.nan
    return float(np.mean((y_true >= low - 1e-9) & (y_true <= high + 1e-9)))


def _clean_propensity(y_buy, p_buy) -> tuple[np.ndarray, np.ndarray] | None:
    if p_buy is None:
        return None
    pair = _clean_pair(np.asarray(y_buy, dtype=float), p_buy)
    if pair is None or len(np.unique(pair[0])) < 2:
        return None
    return pair


def roc_auc(y_buy, p_buy) -> float:
    """ROC AUC of a purchase score against did-buy (0/1); NaN when only one class or no score."""
    pair = _clean_propensity(y_buy, p_buy)
    return math.nan if pair is None else float(roc_auc_score(pair[0], pair[1]))


def pr_auc(y_buy, p_buy) -> float:
    """Average precision (area under the precision-recall curve) of a purchase score; NaN when undefined."""
    pair = _clean_propensity(y_buy, p_buy)
    return math.nan if pair is None else float(average_precision_score(pair[0], pair[1]))


def evaluate(name: str, y_value, pred_value, y_buy, p_buy=None) -> dict:
    """All metrics for one model as one row of the evaluation table (keys = EVALUATION_COLUMNS).

    p_buy is any purchase score (a probability, or the predicted value for a baseline); None gives NaN AUCs.
    """
    return {
        "model": name,
        "n_customers": int(len(np.asarray(y_value))),
        "normalized_gini": normalized_gini(y_value, pred_value),
        "spearman": spearman(y_value, pred_value),
        "decile_mape": decile_mape(y_value, pred_value),
        "calibration_ratio": calibration_ratio(y_value, pred_value),
        "top20_capture": top_share_capture(y_value, pred_value, TOP_SHARE),
        "propensity_auc": roc_auc(y_buy, p_buy),
        "propensity_pr_auc": pr_auc(y_buy, p_buy),
    }


@dataclass(frozen=True)
class GateResult:
    """Outcome of the model-quality gate: passed, why not, and the numbers compared (for asset metadata)."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    actual: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)


def _metric(evaluation: pd.DataFrame, model: str, column: str) -> float:
    rows = evaluation.loc[evaluation["model"] == model, column]
    return float(rows.iloc[0]) if len(rows) else math.nan


def _candidate_failures(
    row: pd.Series, ranking_floor: float, band: tuple[float, float], min_holdout_for_band: int
) -> list[str]:
    """Why one candidate fails the gate (empty = it passes): Spearman floor, then the calibration band."""
    spearman_value, ratio = float(row.get("spearman", math.nan)), float(row.get("calibration_ratio", math.nan))
    n_rows = float(row.get("n_customers", math.nan))
    failures = []
    if not np.isfinite(spearman_value):
        failures.append("Spearman not measurable")
    elif spearman_value < ranking_floor:
        failures.append(f"Spearman {spearman_value:.3f} < {ranking_floor}")
    band_enforced = not np.isfinite(n_rows) or n_rows >= min_holdout_for_band
    if not np.isfinite(ratio):
        failures.append("calibration not measurable")
    elif band_enforced and not band[0] <= ratio <= band[1]:
        failures.append(f"calibration {ratio:.3f} outside {band[0]}-{band[1]}")
    return failures


def quality_gate(
    evaluation: pd.DataFrame,
    ranking_floor_spearman: float = DEFAULT_RANKING_FLOOR_SPEARMAN,
    calibration_band: tuple[float, float] = DEFAULT_CALIBRATION_BAND,
    min_holdout_for_band: int = MIN_HOLDOUT_FOR_CALIBRATION_BAND,
) -> GateResult:
    """Pass when at least one candidate passes on the reported evaluation rows: Spearman at or above the floor and
    sum(predicted)/sum(actual) inside the band; otherwise one reason line naming every candidate's failure.

    Rows are those of marts.clv_model_evaluation with backtest_window = 'evaluation' (every row of a table without that
    column). The band is enforced only from min_holdout_for_band customers: below that a handful of big spenders
    decide the sum ratio. A metric that could not be measured (NaN) fails that candidate. In mode NO_BACKTEST_MODE
    nothing measured the shipped model: the gate blocks with one line saying so, whatever the record rows show.
    """
    rows = evaluation
    if "backtest_window" in evaluation:
        rows = evaluation[evaluation["backtest_window"] == "evaluation"]
    failures = {
        str(row["model"]): _candidate_failures(row, ranking_floor_spearman, calibration_band, min_holdout_for_band)
        for _, row in rows.iterrows()
    }
    passing = [name for name, reasons in failures.items() if not reasons]
    champion = None
    if "is_champion" in rows:
        named = rows.loc[rows["is_champion"].astype("boolean").fillna(False).astype(bool), "model"]
        champion = str(named.iloc[0]) if len(named) else None
    focus = champion or (passing[0] if passing else None)
    actual = {"passing_candidates": passing, "champion": champion}
    if focus is not None:
        focus_row = rows[rows["model"] == focus].iloc[0]
        actual |= {m: float(focus_row[m]) for m in ("spearman", "calibration_ratio", "decile_mape") if m in focus_row}
    thresholds = {
        "spearman_min": ranking_floor_spearman,
        "calibration_ratio_min": calibration_band[0],
        "calibration_ratio_max": calibration_band[1],
        "calibration_band_enforced_from_holdout_customers": min_holdout_for_band,
    }
    if "mode" in rows and (rows["mode"] == NO_BACKTEST_MODE).any():
        reason = (
            "calibration could not be measured: no back-test (the training cut-off, as-of minus one horizon, is too "
            f"young or too small to train on labels); the label-free champion {champion} scores every customer, "
            "activation waits until the shop has that history"
        )
        return GateResult(passed=False, reasons=[reason], actual=actual, thresholds=thresholds)
    if passing:
        return GateResult(passed=True, reasons=[], actual=actual, thresholds=thresholds)
    if not failures:
        reason = "no CLV candidate was evaluated"
    elif (pd.to_numeric(rows.get("n_customers", pd.Series(dtype=float)), errors="coerce").fillna(0) == 0).all():
        # A young or tiny shop: one reason, not "not measurable" repeated for every candidate.
        reason = (
            "no CLV candidate could be measured: the back-test had no customer to evaluate on "
            "(a forecast is measured on customers who ordered before the as-of date minus one CLV horizon)"
        )
    else:
        reason = "no CLV candidate passes the gate: " + "; ".join(
            f"{name} {', '.join(reasons)}" for name, reasons in failures.items()
        )
    return GateResult(passed=False, reasons=[reason], actual=actual, thresholds=thresholds)
