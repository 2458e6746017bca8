"""Buy-till-you-die baselines: BG/NBD purchase counts x Gamma-Gamma spend, fitted by maximum likelihood.

BG/NBD: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", Marketing Science 24(2).
Gamma-Gamma: Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (brucehardie.com note 025).
Implemented on numpy/scipy because `lifetimes` is unmaintained and does not install cleanly with pandas 3.
Time is in whatever unit the caller passes (days in segmint, weeks in the CDNOW tests); parameters follow it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

# Parameters are optimised on log scale so they stay positive; these bounds keep exp() finite on degenerate data.
LOG_PARAM_BOUNDS = (-12.0, 12.0)
# Below this many repeat buyers a Gamma-Gamma fit is noise; callers then use the observed mean spend.
MIN_REPEAT_BUYERS_FOR_SPEND_MODEL = 10


class BTYDFitError(ValueError):
    """Raised when the data cannot identify the model (e.g. no customers, or no repeat buyers at all)."""


@dataclass(frozen=True)
class BGNBDParams:
    """BG/NBD population parameters: purchase rate ~ Gamma(r, alpha), dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma spend parameters: spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, v)."""

    p: float
    q: float
    v: float


def _as_float_array(values) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _check_summary(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> None:
    """Reject inputs that break the likelihood (negative counts, recency beyond the observation window)."""
    if not (frequency.shape == recency.shape == T.shape):
        raise ValueError("frequency, recency and T must have the same length")
    if frequency.size == 0:
        raise BTYDFitError("no customers to fit")
    if not np.all(np.isfinite(frequency) & np.isfinite(recency) & np.isfinite(T)):
        raise ValueError("frequency, recency and T must be finite")
    if np.any(frequency < 0) or np.any(recency < 0) or np.any(recency > T + 1e-9):
        raise ValueError("need frequency >= 0 and 0 <= recency <= T")


def bgnbd_log_likelihood(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (FHL 2005, eq. 6), written in logs to avoid overflow."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = _as_float_array(frequency), _as_float_array(recency), _as_float_array(T)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    has_repeat = x > 0
    # The second term exists only for repeat buyers (the customer may have died right after the last purchase).
    a4 = np.where(
        has_repeat,
        np.log(a) - np.log(np.where(has_repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return a1 + a2 + np.logaddexp(a3, a4)


def fit_bgnbd(frequency, recency, T) -> BGNBDParams:
    """Maximum-likelihood BG/NBD fit on repeat frequency, recency (t_x) and age (T), all in one time unit."""
    x, t_x, age = _as_float_array(frequency), _as_float_array(recency), _as_float_array(T)
    _check_summary(x, t_x, age)
    if not np.any(x > 0):
        raise BTYDFitError("no repeat buyers: BG/NBD is not identified")
    # Start alpha near the typical age so the optimiser begins in the right order of magnitude for any time unit.
    start = np.log([1.0, max(float(np.mean(age)), 1e-3), 1.0, 1.0])

    def negative_log_likelihood(log_params: np.ndarray) -> float:
        value = -np.sum(bgnbd_log_likelihood(BGNBDParams(*np.exp(log_params)), x, t_x, age))
        return float(value) if np.isfinite(value) else 1e300

    result = minimize(
        negative_log_likelihood, start, method="L-BFGS-B", bounds=[LOG_PARAM_BOUNDS] * 4
    )
    # Nelder-Mead polish: the likelihood is flat along a/b for some data and L-BFGS-B can stop early there.
    result = minimize(
        negative_log_likelihood,
        result.x,
        method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000},
    )
    return BGNBDParams(*(float(v) for v in np.exp(result.x)))


def expected_purchases(params: BGNBDParams, t: float, frequency, recency, T) -> np.ndarray:
    """Expected number of purchases in the next t periods given each customer's history (FHL 2005, eq. 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, age = _as_float_array(frequency), _as_float_array(recency), _as_float_array(T)
    if t <= 0:
        return np.zeros_like(x)
    z = t / (alpha + age + t)
    hyper = hyp2f1(r + x, b + x, a + b + x - 1, z)
    numerator = (a + b + x - 1) / (a - 1) * (1 - ((alpha + age) / (alpha + age + t)) ** (r + x) * hyper)
    denominator = 1 + np.where(
        x > 0, a / np.where(x > 0, b + x - 1, 1.0) * ((alpha + age) / (alpha + t_x)) ** (r + x), 0.0
    )
    expected = numerator / denominator
    # hyp2f1 can lose precision near z -> 1 for extreme parameters; an expectation is never negative.
    return np.clip(np.nan_to_num(expected, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)


def gamma_gamma_log_likelihood(params: GammaGammaParams, frequency, monetary) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of the mean spend over x transactions (FH 2013, eq. 3)."""
    p, q, v = params.p, params.q, params.v
    x, zbar = _as_float_array(frequency), _as_float_array(monetary)
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(zbar)
        + p * x * np.log(x)
        - (p * x + q) * np.log(x * zbar + v)
    )


def fit_gamma_gamma(frequency, monetary) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma fit on customers with >= 1 repeat transaction and positive mean spend."""
    x, zbar = _as_float_array(frequency), _as_float_array(monetary)
    usable = (x > 0) & np.isfinite(zbar) & (zbar > 0)
    if usable.sum() < 2:
        raise BTYDFitError("Gamma-Gamma needs at least two repeat buyers with positive spend")
    x, zbar = x[usable], zbar[usable]
    start = np.log([1.0, 1.0, max(float(np.mean(zbar)), 1e-3)])

    def negative_log_likelihood(log_params: np.ndarray) -> float:
        value = -np.sum(gamma_gamma_log_likelihood(GammaGammaParams(*np.exp(log_params)), x, zbar))
        return float(value) if np.isfinite(value) else 1e300

    result = minimize(
        negative_log_likelihood, start, method="L-BFGS-B", bounds=[LOG_PARAM_BOUNDS] * 3
    )
    result = minimize(
        negative_log_likelihood,
        result.x,
        method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000},
    )
    return GammaGammaParams(*(float(v) for v in np.exp(result.x)))


def population_mean_spend(params: GammaGammaParams) -> float:
    """Mean spend per transaction of a random customer, p*v/(q-1); infinite mean when q <= 1."""
    return params.p * params.v / (params.q - 1) if params.q > 1 else float("inf")


def expected_average_spend(params: GammaGammaParams, frequency, monetary) -> np.ndarray:
    """Expected spend per transaction given x transactions with mean zbar (FH 2013, eq. 5); population mean at x=0."""
    p, q, v = params.p, params.q, params.v
    x, zbar = _as_float_array(frequency), _as_float_array(monetary)
    zbar = np.where(np.isfinite(zbar) & (x > 0), zbar, 0.0)
    # Shrinks the customer's own mean towards the population mean; the weight on the own mean grows with x.
    return p * (v + x * zbar) / (p * x + q - 1)


def repeat_mean_spend(features: pd.DataFrame) -> pd.Series:
    """Mean spend per repeat order (gross revenue minus the first order, over the other orders); NaN without repeats.

    The features have no per-order history, so this is the closest the contract allows to the Gamma-Gamma input.
    """
    other_orders = (features["order_count"].astype(float) - 1).clip(lower=0)
    repeat_spend = (features["gross_revenue"].astype(float) - features["first_order_value"].astype(float)).clip(lower=0)
    mean_spend = repeat_spend / other_orders.where(other_orders > 0)
    has_repeat = features["repeat_order_count"].astype(float) > 0
    # Same-day multi-order customers have repeat_order_count 0 but order_count > 1: they count as non-repeaters.
    return mean_spend.where(has_repeat & (mean_spend > 0))


def btyd_clv_baseline(train: pd.DataFrame, horizon_days: float) -> pd.Series:
    """Predicted spend per customer over the next horizon_days: BG/NBD expected purchases x Gamma-Gamma spend.

    Index = train's index. frequency = repeat_order_count, recency = btyd_recency_days, T = tenure_days (days).
    Spend: Gamma-Gamma conditional mean for repeat buyers, population mean otherwise; with fewer than
    MIN_REPEAT_BUYERS_FOR_SPEND_MODEL repeat buyers the plain mean order value replaces the Gamma-Gamma model.
    Raises BTYDFitError when there is no repeat buyer at all (the purchase model is not identified).
    """
    frequency = train["repeat_order_count"].astype(float).fillna(0).to_numpy()
    age = train["tenure_days"].astype(float).fillna(0).clip(lower=0).to_numpy()
    recency = np.minimum(train["btyd_recency_days"].astype(float).fillna(0).clip(lower=0).to_numpy(), age)
    purchase_params = fit_bgnbd(frequency, recency, age)
    purchases = expected_purchases(purchase_params, horizon_days, frequency, recency, age)

    monetary = repeat_mean_spend(train).to_numpy()
    has_spend = np.isfinite(monetary)
    spend_params = None
    if has_spend.sum() >= MIN_REPEAT_BUYERS_FOR_SPEND_MODEL:
        try:
            spend_params = fit_gamma_gamma(frequency[has_spend], monetary[has_spend])
        except BTYDFitError:
            spend_params = None
    if spend_params is not None and np.isfinite(population_mean_spend(spend_params)):
        spend = np.where(
            has_spend,
            expected_average_spend(spend_params, frequency, np.nan_to_num(monetary)),
            population_mean_spend(spend_params),
        )
    else:
        fallback_spend = float(np.nanmean(monetary)) if has_spend.any() else float(train["avg_order_value"].mean())
        spend = np.full(len(train), fallback_spend if np.isfinite(fallback_spend) else 0.0)
    return pd.Series(purchases * spend, index=train.index, name="btyd_clv")
