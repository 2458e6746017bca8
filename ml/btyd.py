"""Buy-till-you-die models: BG/NBD and Pareto/NBD purchase counts x Gamma-Gamma spend, fitted by maximum likelihood.

BG/NBD: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", Marketing Science 24(2); P(alive) from
Fader, Hardie & Lee (2008), "Computing P(alive) Using the BG/NBD Model" (brucehardie.com note 021).
Pareto/NBD: Schmittlein, Morrison & Colombo (1987); likelihood, P(alive) and conditional expectation in the form of
Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model and Related Expressions" (note 009).
Gamma-Gamma: Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (note 025).

Implemented on numpy/scipy: `lifetimes` is unmaintained and does not install with pandas 3, `btyd` (PyPI) is a
2022 beta, and pymc-marketing pulls in PyMC/PyTensor for what is a four-parameter likelihood here.
Time is in whatever unit the caller passes (days in segmint, weeks in the CDNOW tests); parameters follow it.

Speed: every fit runs on the distinct (frequency, recency, T) triples (distinct (x, mean spend) pairs for
Gamma-Gamma) with their counts as weights, so its cost follows the number of distinct histories, not customers.
BG/NBD and Gamma-Gamma use analytic gradients (L-BFGS-B with jac); Pareto/NBD's gradient is by finite differences
(its likelihood goes through 2F1, whose parameter derivatives have no closed form) on the same weighted triples.
Within a likelihood evaluation and in every prediction, each special function (gammaln, digamma, hyp2f1) is
computed once per distinct x, (x, t_x) or (x, T), the only arguments it takes, and gathered back (_Histories): at
1 M customers about 34,000 pairs instead of 547,000 triples or a million customers, with bit-for-bit the values a
per-customer computation gives. Fits run BLAS single-threaded (NATIVE_THREADS) and fit Gamma-Gamma once per
cut-off for both purchase models (fit_btyd_models).
Measured with `python -m bench.btyd_fit` (simulated from the CDNOW fit, in days, one core of a shared 2-core box):
see BENCHMARK below.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

BENCHMARK = """
1,000,000 simulated customers (CDNOW BG/NBD parameters in days, 540-day window; 388,952 repeat buyers,
262,447 distinct (x, t_x, T) triples, 22,681 distinct (x, t_x) and (x, T) pairs), `python -m bench.btyd_fit
--before`, one run on the shared 2-core machine at load 8-10, now vs ced45e4 (before the per-distinct-value
computation and single-threaded fits):
  BG/NBD fit (weighted distinct triples, analytic gradient)        1.9 s   (12.2 s before; estimates equal to 1e-12)
  Pareto/NBD fit (weighted distinct triples, finite differences)   6.6 s   (39.0 s before; see the note below)
  Gamma-Gamma fit on 388,952 repeat buyers (analytic gradient)     0.5 s   (3.7 s before)
  BG/NBD forecast of every customer                                0.36 s  (0.59 s before)
  Pareto/NBD forecast of every customer                            0.66 s  (2.18 s before; bit-for-bit equal)
On the 1 M bench shop (`python -m bench.btyd_step` on a copy of its warehouse, load 6-8): ml/btyd_models 24.7 s
and 0.85 GiB peak (259.2 s, 2.99 GiB before), ml/btyd_predictions 8.8 s and 1.04 GiB (32.2 s, 2.84 GiB).
Pareto/NBD's likelihood is flat along (s, beta): the summation order of the weighted sum alone (BLAS threads or
not) moves its estimates by up to 0.2 % at 1 M (log-likelihood equal to 1e-11), predictions by up to 2e-4.
The 22 minutes issue #13 quotes for the old BG/NBD fit were measured on demo-shop data, not this simulation.
"""

# Parameters are optimised on log scale so they stay positive; these bounds keep exp() finite on degenerate data.
LOG_PARAM_BOUNDS = (-12.0, 12.0)
# Below this many repeat buyers a Gamma-Gamma fit is noise; callers then use the observed mean spend.
MIN_REPEAT_BUYERS_FOR_SPEND_MODEL = 10
BTYD_MODELS = ("bgnbd", "pareto_nbd")
# The customer_features columns fit_btyd, FittedBTYD.forecast and btyd_prediction_table read, for readers that load
# only these (a tenth of the ~65 feature columns, and of the memory at 1 M customers). BACKTEST_LABEL_COLUMNS: what
# backtest_btyd reads on top, from customer_features_train.
FEATURE_COLUMNS = (
    "customer_id",
    "cutoff_date",
    "repeat_order_count",
    "btyd_recency_days",
    "tenure_days",
    "gross_revenue",
    "first_order_day_revenue",
    "avg_order_value",
)
BACKTEST_LABEL_COLUMNS = ("has_future_order", "future_order_count", "days_to_next_order")
# Iteration budget of every fit: L-BFGS-B iterations and likelihood evaluations, then (only when L-BFGS-B reports
# no convergence) Nelder-Mead iterations. On the weighted distinct summaries a BG/NBD fit converges in tens of
# iterations, so the budget only bounds pathological data; hitting it is reported, never silent.
FIT_BUDGET = {"lbfgsb_iterations": 2000, "lbfgsb_evaluations": 15000, "nelder_mead_iterations": 4000}
LBFGSB_TOLERANCE = {"ftol": 1e-13, "gtol": 1e-9}
# Fits run BLAS single-threaded (as ml/clustering.py does): the weighted sums are BLAS dot products, and on a busy
# 2-core machine OpenBLAS threads busy-waiting between them made the fits 2.7x slower (15.4 s vs 5.7 s for
# both models on the 1 M bench shop's selection cut-off, load 9). One thread also makes the summation order, hence
# the estimates of the flat Pareto/NBD likelihood, independent of the number of cores.
NATIVE_THREADS = 1


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
class ParetoNBDParams:
    """Pareto/NBD population parameters: purchase rate ~ Gamma(r, alpha), dropout rate ~ Gamma(s, beta)."""

    r: float
    alpha: float
    s: float
    beta: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma spend parameters: spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, v)."""

    p: float
    q: float
    v: float


def _as_float_array(values) -> np.ndarray:
    return np.atleast_1d(np.asarray(values, dtype=float))


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


def _summary_arrays(frequency, recency, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _as_float_array(frequency), _as_float_array(recency), _as_float_array(T)


def _weights(weights, size: int) -> np.ndarray:
    if weights is None:
        return np.ones(size)
    w = _as_float_array(weights)
    if w.shape != (size,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite, non-negative and one per customer")
    return w


# Dense integer keys (days) up to this many slots are grouped by a lookup table; beyond it, by sorting.
DENSE_KEY_SLOTS = 1 << 22


def _integer_codes(column: np.ndarray) -> np.ndarray | None:
    """The column as int64 when every value is a whole number in [0, 2^31) (days, counts); None otherwise."""
    if column.size and not (np.all(column >= 0) and np.all(column < 2**31) and np.all(column == np.floor(column))):
        return None
    return column.astype(np.int64)


def _group_rows(columns: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of equally long columns, in lexicographic order (as np.unique(axis=0)), and each row's index.

    np.unique(axis=0) sorts rows as structured records (3.8 s for a million triples); whole-number columns (days,
    counts) are combined into one integer key instead (a lookup table when the key range is small), and other
    columns fall back to np.lexsort. Equal rows are those equal in every column (NaN is never equal to anything)."""
    n = columns[0].size
    codes = [_integer_codes(c) for c in columns]
    if n and all(c is not None for c in codes):
        sizes = [int(c.max()) + 1 for c in codes]
        if np.prod([float(s) for s in sizes]) < 2**62:
            key = codes[0]
            for code, size in zip(codes[1:], sizes[1:], strict=True):
                key = key * size + code
            slots = int(np.prod([float(s) for s in sizes]))
            if slots <= max(DENSE_KEY_SLOTS, 4 * n):
                present = np.zeros(slots, dtype=bool)
                present[key] = True
                distinct_keys = np.flatnonzero(present)
                slot_index = np.cumsum(present) - 1
                inverse = slot_index[key]
            else:
                distinct_keys, inverse = np.unique(key, return_inverse=True)
            distinct, rest = [], distinct_keys
            for size in reversed(sizes):  # decode the key back into its columns, exactly (whole numbers < 2^53)
                rest, value = np.divmod(rest, size)
                distinct.append(value.astype(float))
            return distinct[::-1], inverse.ravel()
    order = np.lexsort(columns[::-1])
    ordered = [c[order] for c in columns]
    starts = np.zeros(n, dtype=bool)
    starts[:1] = True
    for column in ordered:
        starts[1:] |= column[1:] != column[:-1]
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.cumsum(starts) - 1
    return [c[starts] for c in ordered], inverse


def _distinct_rows(columns: list[np.ndarray], weights: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Collapse identical rows into one with the summed weight: the likelihood is a weighted sum over them."""
    keep = weights > 0
    unique, inverse = _group_rows([c[keep] for c in columns])
    summed = np.bincount(inverse, weights=weights[keep], minlength=len(unique[0]))
    return unique, summed


class _Histories:
    """Customer histories (x, t_x, T) with the distinct x, (x, t_x) and (x, T) values their likelihood terms use.

    Every special function of the BTYD likelihoods and predictions (gammaln, digamma, hyp2f1) depends on x alone,
    on (x, t_x) or on (x, T), never on the whole triple. Computed once per distinct value and gathered back with
    the `*_of` indices, it costs a few tens of thousands of evaluations at a million customers (about 34,000 pairs
    for 547,000 distinct triples) instead of millions, and every row gets bit for bit the value a per-row
    computation gives (the same function of the same numbers). Groupings are built on first use.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray):
        self.x, self.t_x, self.T = x, t_x, T

    @cached_property
    def _x_groups(self) -> tuple[np.ndarray, np.ndarray]:
        (xs,), x_of = _group_rows([self.x])
        return xs, x_of

    @property
    def xs(self) -> np.ndarray:
        """Distinct x."""
        return self._x_groups[0]

    @property
    def x_of(self) -> np.ndarray:
        """Each row's index in xs."""
        return self._x_groups[1]

    @cached_property
    def recency_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, t_x) of the distinct (x, t_x) pairs, and each row's index in them."""
        (xs, t_x), of = _group_rows([self.x, self.t_x])
        return xs, t_x, of

    @cached_property
    def age_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, T) of the distinct (x, T) pairs, and each row's index in them."""
        (xs, age), of = _group_rows([self.x, self.T])
        return xs, age, of


def _maximise(objective, start: np.ndarray, jac: bool, n_params: int, notes: list[str] | None = None) -> np.ndarray:
    """L-BFGS-B on log-parameters; a Nelder-Mead restart only when it reports no convergence (flat likelihoods).

    Both stop at their budget (FIT_BUDGET); a fit that used one up keeps its best point so far and says so in
    `notes` (FittedBTYD.notes, then the ml/btyd_models metadata) instead of running on."""
    with threadpool_limits(limits=NATIVE_THREADS):
        return _maximise_unthreaded(objective, start, jac, n_params, notes)


def _maximise_unthreaded(objective, start: np.ndarray, jac: bool, n_params: int, notes: list[str] | None) -> np.ndarray:
    bounds = [LOG_PARAM_BOUNDS] * n_params
    options = {"maxiter": FIT_BUDGET["lbfgsb_iterations"], "maxfun": FIT_BUDGET["lbfgsb_evaluations"]}
    result = minimize(objective, start, method="L-BFGS-B", jac=jac, bounds=bounds, options=options | LBFGSB_TOLERANCE)
    if result.status == 1 and notes is not None:  # 1: iteration or evaluation limit reached
        notes.append(f"L-BFGS-B stopped at its budget ({result.nit} iterations, {result.nfev} likelihood evaluations)")
    if not result.success or not np.all(np.isfinite(result.x)):
        value = (lambda z: objective(z)[0]) if jac else objective
        fallback = minimize(
            value,
            result.x,
            method="Nelder-Mead",
            options={"xatol": 1e-7, "fatol": 1e-12, "maxiter": FIT_BUDGET["nelder_mead_iterations"]},
        )
        if fallback.status in (1, 2) and notes is not None:  # 1: evaluations, 2: iterations exhausted
            notes.append(f"Nelder-Mead restart stopped at its budget ({fallback.nit} iterations)")
        if np.isfinite(fallback.fun) and fallback.fun <= (result.fun if np.isfinite(result.fun) else np.inf):
            result = fallback
    if not np.isfinite(result.fun) or result.fun >= 1e300:
        raise BTYDFitError("the likelihood could not be evaluated at any candidate parameters")
    return np.clip(result.x, *LOG_PARAM_BOUNDS)


# ---------------------------------------------------------------------------------------------------------- BG/NBD


def _bgnbd_terms(params: BGNBDParams, h: _Histories):
    """(a1 + a2) per distinct x, a3 per distinct (x, T), a4 per distinct (x, t_x): the BG/NBD log-likelihood is
    (a1 + a2)[x_of] + logaddexp(a3[age_of], a4[recency_of]) (FHL 2005, eq. 6, in logs)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    xs, (T_x, Ts, _), (tx_x, txs, _) = h.xs, h.age_pairs, h.recency_pairs
    a1 = gammaln(r + xs) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + xs) - gammaln(b) - gammaln(a + b + xs)
    a3 = -(r + T_x) * np.log(alpha + Ts)
    # The second term exists only for repeat buyers (the customer may have died right after the last purchase).
    has_repeat = tx_x > 0
    b_x = np.where(has_repeat, b + tx_x - 1, 1.0)
    a4 = np.where(has_repeat, np.log(a) - np.log(b_x) - (r + tx_x) * np.log(alpha + txs), -np.inf)
    return a1 + a2, a3, a4


def _bgnbd_log_likelihood(params: BGNBDParams, h: _Histories) -> np.ndarray:
    a12, a3, a4 = _bgnbd_terms(params, h)
    return a12[h.x_of] + np.logaddexp(a3[h.age_pairs[2]], a4[h.recency_pairs[2]])


def bgnbd_log_likelihood(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (FHL 2005, eq. 6), written in logs to avoid overflow."""
    return _bgnbd_log_likelihood(params, _Histories(*_summary_arrays(frequency, recency, T)))


def _bgnbd_log_likelihood_gradient(params: BGNBDParams, h: _Histories) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    xs, x_of, x = h.xs, h.x_of, h.x
    (_, Ts, age_of), (_, txs, recency_of) = h.age_pairs, h.recency_pairs
    _, a3, a4 = _bgnbd_terms(params, h)
    a3, a4 = a3[age_of], a4[recency_of]
    total = np.logaddexp(a3, a4)
    w3, w4 = np.exp(a3 - total), np.exp(a4 - total)  # shares of the two likelihood terms, w3 + w4 = 1
    has_repeat = x > 0
    b_x = np.where(has_repeat, b + x - 1, 1.0)
    r_x = (r + xs)[x_of]
    d_r = (digamma(r + xs) - digamma(r) + np.log(alpha))[x_of] - w3 * np.log(alpha + Ts)[age_of]
    d_r = d_r - w4 * np.log(alpha + txs)[recency_of]
    d_alpha = r / alpha - w3 * r_x / (alpha + Ts)[age_of] - w4 * r_x / (alpha + txs)[recency_of]
    d_a = (digamma(a + b) - digamma(a + b + xs))[x_of] + np.where(has_repeat, w4 / a, 0.0)
    d_b = (digamma(a + b) + digamma(b + xs) - digamma(b) - digamma(a + b + xs))[x_of]
    d_b = d_b - np.where(has_repeat, w4 / b_x, 0.0)
    return np.column_stack([d_r, d_alpha, d_a, d_b])


def bgnbd_log_likelihood_gradient(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """Per-customer gradient of the BG/NBD log-likelihood w.r.t. (r, alpha, a, b): shape (n, 4)."""
    return _bgnbd_log_likelihood_gradient(params, _Histories(*_summary_arrays(frequency, recency, T)))


def fit_bgnbd(frequency, recency, T, weights=None, notes: list[str] | None = None) -> BGNBDParams:
    """Maximum-likelihood BG/NBD fit on repeat frequency, recency (t_x) and age (T), all in one time unit.

    Fitted on the distinct (x, t_x, T) triples with their counts (times `weights`, if given) as weights.
    """
    x, t_x, age = _as_float_array(frequency), _as_float_array(recency), _as_float_array(T)
    _check_summary(x, t_x, age)
    w = _weights(weights, x.size)
    if not np.any((x > 0) & (w > 0)):
        raise BTYDFitError("no repeat buyers: BG/NBD is not identified")
    (x, t_x, age), w = _distinct_rows([x, t_x, age], w)
    histories = _Histories(x, t_x, age)
    total_weight = w.sum()
    # Start alpha near the typical age so the optimiser begins in the right order of magnitude for any time unit.
    start = np.log([1.0, max(float(np.average(age, weights=w)), 1e-3), 1.0, 1.0])

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = BGNBDParams(*np.exp(log_params))
        with np.errstate(all="ignore"):
            value = -np.dot(w, _bgnbd_log_likelihood(params, histories)) / total_weight
            gradient = -(w @ _bgnbd_log_likelihood_gradient(params, histories)) / total_weight * np.exp(log_params)
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            return 1e300, np.zeros(4)
        return float(value), gradient

    return BGNBDParams(*(float(v) for v in np.exp(_maximise(objective, start, jac=True, n_params=4, notes=notes))))


def _bgnbd_p_alive(params: BGNBDParams, h: _Histories) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, age = h.x, h.t_x, h.T
    has_repeat = x > 0
    b_x = np.where(has_repeat, b + x - 1, 1.0)
    log_odds = np.log(a) - np.log(b_x) + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
    # P(alive) = 1 / (1 + odds of having dropped out after the last purchase); odds are 0 without a repeat purchase.
    return np.where(has_repeat, 1.0 / (1.0 + np.exp(np.minimum(log_odds, 700.0))), 1.0)


def _bgnbd_expected_purchases(params: BGNBDParams, t: float, h: _Histories) -> np.ndarray:
    """FHL 2005, eq. 10; the 2F1 part (the numerator) depends on (x, T) only and is computed per distinct pair."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    T_x, Ts, age_of = h.age_pairs
    z = t / (alpha + Ts + t)
    hyper = hyp2f1(r + T_x, b + T_x, a + b + T_x - 1, z)
    numerator = (a + b + T_x - 1) / (a - 1) * (1 - ((alpha + Ts) / (alpha + Ts + t)) ** (r + T_x) * hyper)
    x, t_x, age = h.x, h.t_x, h.T
    denominator = 1 + np.where(
        x > 0, a / np.where(x > 0, b + x - 1, 1.0) * ((alpha + age) / (alpha + t_x)) ** (r + x), 0.0
    )
    return numerator[age_of] / denominator


# ------------------------------------------------------------------------------------------------------ Pareto/NBD


def _pareto_nbd_log_terms(params: ParetoNBDParams, h: _Histories):
    """log of the two terms of the likelihood bracket: alive at T, and dropped out in (t_x, T] (FH 2005 note 009).

    L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [ 1/((alpha+T)^(r+x) (beta+T)^s) + s/(r+s+x) * A0 ], with A0 a
    difference of two 2F1 terms; the argument of 2F1 is taken on the side (alpha >= beta or alpha < beta) that keeps
    it in [0, 1). Returns (log_constant, log_alive_term, log_dropout_term) per row. Each 2F1 term depends on (x, t_x)
    or on (x, T) only: it is computed once per distinct pair (h) and gathered back.
    """
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    gap = abs(alpha - beta)
    big = alpha if alpha >= beta else beta

    def log_f(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """log[2F1(k, b', k + 1; gap / (big + t)) / (big + t)^k], k = r + s + x."""
        k = r + s + x
        b_param = s + 1 if alpha >= beta else r + x
        return np.log(hyp2f1(k, b_param, k + 1, gap / (big + t))) - k * np.log(big + t)

    (tx_x, txs, recency_of), (T_x, Ts, age_of) = h.recency_pairs, h.age_pairs
    log_f_tx = log_f(tx_x, txs)[recency_of]
    log_f_T = log_f(T_x, Ts)[age_of]
    # A0 = exp(log_f_tx) - exp(log_f_T) > 0 (the dropout time lies in (t_x, T]); in logs to avoid underflow.
    with np.errstate(divide="ignore"):
        log_a0 = log_f_tx + np.log(-np.expm1(np.minimum(log_f_T - log_f_tx, 0.0)))
    xs, x_of = h.xs, h.x_of
    log_constant = (gammaln(r + xs) - gammaln(r) + r * np.log(alpha) + s * np.log(beta))[x_of]
    log_alive = (-(r + T_x) * np.log(alpha + Ts) - s * np.log(beta + Ts))[age_of]
    log_dropout = (np.log(s) - np.log(r + s + xs))[x_of] + log_a0
    return log_constant, log_alive, log_dropout


def _pareto_nbd_log_likelihood(params: ParetoNBDParams, h: _Histories) -> np.ndarray:
    log_constant, log_alive, log_dropout = _pareto_nbd_log_terms(params, h)
    return log_constant + np.logaddexp(log_alive, log_dropout)


def pareto_nbd_log_likelihood(params: ParetoNBDParams, frequency, recency, T) -> np.ndarray:
    """Per-customer Pareto/NBD log-likelihood (FH 2005 note 009, eq. 22), in logs."""
    return _pareto_nbd_log_likelihood(params, _Histories(*_summary_arrays(frequency, recency, T)))


def fit_pareto_nbd(frequency, recency, T, weights=None, notes: list[str] | None = None) -> ParetoNBDParams:
    """Maximum-likelihood Pareto/NBD fit on (x, t_x, T) in one time unit, on distinct triples with counts as weights."""
    x, t_x, age = _as_float_array(frequency), _as_float_array(recency), _as_float_array(T)
    _check_summary(x, t_x, age)
    w = _weights(weights, x.size)
    if not np.any((x > 0) & (w > 0)):
        raise BTYDFitError("no repeat buyers: Pareto/NBD is not identified")
    (x, t_x, age), w = _distinct_rows([x, t_x, age], w)
    histories = _Histories(x, t_x, age)
    total_weight = w.sum()
    typical_age = max(float(np.average(age, weights=w)), 1e-3)
    start = np.log([1.0, typical_age, 1.0, typical_age])

    def objective(log_params: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            value = -np.dot(w, _pareto_nbd_log_likelihood(ParetoNBDParams(*np.exp(log_params)), histories))
        return float(value / total_weight) if np.isfinite(value) else 1e300

    return ParetoNBDParams(*(float(v) for v in np.exp(_maximise(objective, start, jac=False, n_params=4, notes=notes))))


def _pareto_nbd_p_alive(params: ParetoNBDParams, h: _Histories) -> np.ndarray:
    _, log_alive, log_dropout = _pareto_nbd_log_terms(params, h)
    return np.exp(log_alive - np.logaddexp(log_alive, log_dropout))


def _pareto_nbd_expected_purchases(params: ParetoNBDParams, t: float, h: _Histories) -> np.ndarray:
    """E[Y(t) | x, t_x, T] = (r+x)(beta+T) / ((alpha+T)(s-1)) * [1 - ((beta+T)/(beta+T+t))^(s-1)] * P(alive)."""
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    T_x, Ts, age_of = h.age_pairs
    log_ratio = np.log(beta + Ts) - np.log(beta + Ts + t)
    # [1 - ratio^(s-1)] / (s-1) -> -log(ratio) as s -> 1; expm1 keeps it accurate near there.
    if abs(s - 1) < 1e-8:
        horizon_factor = -log_ratio
    else:
        horizon_factor = -np.expm1((s - 1) * log_ratio) / (s - 1)
    per_pair = (r + T_x) * (beta + Ts) / (alpha + Ts) * horizon_factor
    return per_pair[age_of] * _pareto_nbd_p_alive(params, h)


# -------------------------------------------------------------------------------------------- shared predictions


PurchaseParams = BGNBDParams | ParetoNBDParams


def p_alive(params: PurchaseParams, frequency, recency, T) -> np.ndarray:
    """Probability each customer is still alive at T (BG/NBD: FHL 2008 note 021; Pareto/NBD: FH 2005 note 009).

    Under BG/NBD a customer can only drop out right after a repeat purchase, so P(alive) is exactly 1 for every
    customer with no repeat purchase (x = 0), however long ago they bought: a known property of the model, not a
    prediction that one-time buyers will come back. Do not present 1 - P(alive) from BG/NBD as churn risk for
    one-time buyers; Pareto/NBD (dropout at any time) has no such property.
    """
    return _p_alive(params, _Histories(*_summary_arrays(frequency, recency, T)))


def _p_alive(params: PurchaseParams, h: _Histories) -> np.ndarray:
    with np.errstate(all="ignore"):
        if isinstance(params, BGNBDParams):
            alive = _bgnbd_p_alive(params, h)
        elif isinstance(params, ParetoNBDParams):
            alive = _pareto_nbd_p_alive(params, h)
        else:
            raise TypeError(f"p_alive needs BG/NBD or Pareto/NBD parameters, got {type(params).__name__}")
    return np.clip(np.nan_to_num(alive, nan=0.0), 0.0, 1.0)


def expected_purchases(params: PurchaseParams, t: float, frequency, recency, T) -> np.ndarray:
    """Expected number of purchases in the next t periods given each customer's history (x, t_x, T)."""
    return _expected_purchases(params, t, _Histories(*_summary_arrays(frequency, recency, T)))


def _expected_purchases(params: PurchaseParams, t: float, h: _Histories) -> np.ndarray:
    if t <= 0:
        return np.zeros_like(h.x)
    with np.errstate(all="ignore"):
        if isinstance(params, BGNBDParams):
            expected = _bgnbd_expected_purchases(params, t, h)
        elif isinstance(params, ParetoNBDParams):
            expected = _pareto_nbd_expected_purchases(params, t, h)
        else:
            raise TypeError(f"expected_purchases needs BG/NBD or Pareto/NBD parameters, got {type(params).__name__}")
    # hyp2f1 can lose precision near z -> 1 for extreme parameters; an expectation is never negative.
    return np.clip(np.nan_to_num(expected, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)


def expected_days_to_next_purchase(
    params: PurchaseParams, frequency, recency, T, within: float | None = None
) -> np.ndarray:
    """Median waiting time from T to the next purchase (in the time unit of T), given the customer is alive.

    For both models a customer alive at T has purchase rate lambda ~ Gamma(r + x, alpha + T) a posteriori, so
    F(w) = P(next purchase within w | alive) = 1 - ((alpha + T) / (alpha + T + w))^(r + x).
    within=None: the median, F(w) = 1/2, w = (alpha + T) (2^(1/(r + x)) - 1). Finite (unlike the mean E[1/lambda],
    infinite when r + x <= 1) but very long for one-time buyers (r is often < 0.5).
    within=H (what segmint ships, H = the CLV horizon): the median given that the next purchase falls within H,
    F(w) = F(H)/2, w = (alpha + T) ((1 - F(H)/2)^(-1/(r + x)) - 1), always in (0, H). It answers "if this customer
    orders in the horizon, when?", the exact quantity the back-test scores (days to the next order of customers who
    did order; the median minimises absolute error); whether they order at all is P(alive)'s and expected orders'
    job, so read them together. Dropout after T is ignored in both.
    """
    x, age = _as_float_array(frequency), _as_float_array(T)
    if not isinstance(params, BGNBDParams | ParetoNBDParams):
        raise TypeError(f"expected_days_to_next_purchase needs BTYD purchase parameters, got {type(params).__name__}")
    scale, shape = params.alpha + age, params.r + x
    if within is None:
        return scale * np.expm1(np.log(2.0) / shape)
    if within <= 0:
        raise ValueError("within must be positive")
    # log(1 - F(H)/2) with F(H) = -expm1(shape * log(scale / (scale + H))), kept in logs for tiny F(H).
    log_survive_h = shape * (np.log(scale) - np.log(scale + within))
    log_half_way = np.log1p(np.expm1(log_survive_h) / 2)
    return np.minimum(scale * np.expm1(-log_half_way / shape), within)


# ----------------------------------------------------------------------------------------------------- Gamma-Gamma


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


def gamma_gamma_log_likelihood_gradient(params: GammaGammaParams, frequency, monetary) -> np.ndarray:
    """Per-customer gradient of the Gamma-Gamma log-likelihood w.r.t. (p, q, v): shape (n, 3)."""
    p, q, v = params.p, params.q, params.v
    x, zbar = _as_float_array(frequency), _as_float_array(monetary)
    psi_total = digamma(p * x + q)
    log_total = np.log(x * zbar + v)
    d_p = x * (psi_total - digamma(p * x) + np.log(zbar) + np.log(x) - log_total)
    d_q = psi_total - digamma(q) + np.log(v) - log_total
    d_v = q / v - (p * x + q) / (x * zbar + v)
    return np.column_stack([d_p, d_q, d_v])


def fit_gamma_gamma(frequency, monetary, weights=None, notes: list[str] | None = None) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma fit on customers with >= 1 repeat transaction and positive mean spend.

    Fitted on the distinct (x, mean spend) pairs with their counts (times `weights`, if given) as weights.
    """
    x, zbar = _as_float_array(frequency), _as_float_array(monetary)
    w = _weights(weights, x.size)
    usable = (x > 0) & np.isfinite(zbar) & (zbar > 0) & (w > 0)
    if usable.sum() < 2:
        raise BTYDFitError("Gamma-Gamma needs at least two repeat buyers with positive spend")
    (x, zbar), w = _distinct_rows([x[usable], zbar[usable]], w[usable])
    total_weight = w.sum()
    start = np.log([1.0, 1.0, max(float(np.average(zbar, weights=w)), 1e-3)])

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = GammaGammaParams(*np.exp(log_params))
        with np.errstate(all="ignore"):
            value = -np.dot(w, gamma_gamma_log_likelihood(params, x, zbar)) / total_weight
            gradient = -(w @ gamma_gamma_log_likelihood_gradient(params, x, zbar)) / total_weight * np.exp(log_params)
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            return 1e300, np.zeros(3)
        return float(value), gradient

    return GammaGammaParams(*(float(v) for v in np.exp(_maximise(objective, start, jac=True, n_params=3, notes=notes))))


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
    """Gamma-Gamma's input: mean spend per repeat transaction as the purchase models count them; NaN without repeats.

    BG/NBD and Pareto/NBD count repeat order DAYS (repeat_order_count = distinct order days - 1), so a transaction
    is an order day (as lifetimes' summary_data_from_transaction_data and Fader-Hardie note 025 aggregate it):
    (gross_revenue - first_order_day_revenue) / repeat_order_count. A customer whose orders all fall on the first
    day is a non-repeater (NaN), and the first day's extra orders are not repeat spend.
    """
    repeat_days = features["repeat_order_count"].astype(float)
    repeat_spend = features["gross_revenue"].astype(float) - features["first_order_day_revenue"].astype(float)
    mean_spend = repeat_spend / repeat_days.where(repeat_days > 0)
    return mean_spend.where(mean_spend > 0)


# ------------------------------------------------------------------------------------------ customer_features API


def btyd_summary(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency, T) in days from customer_features columns, clipped to what the likelihood accepts."""
    frequency = features["repeat_order_count"].astype(float).fillna(0).clip(lower=0).to_numpy()
    age = features["tenure_days"].astype(float).fillna(0).clip(lower=0).to_numpy()
    recency = np.minimum(features["btyd_recency_days"].astype(float).fillna(0).clip(lower=0).to_numpy(), age)
    return frequency, recency, age


# Draws per customer of simulate_spend: the p10 / p90 of 200 draws are within about +-0.03 in probability of the true
# quantiles (binomial standard error sqrt(0.1 x 0.9 / 200) = 0.021).
PREDICTIVE_DRAWS = 200
PREDICTIVE_BATCH_ROWS = 10_000


@dataclass
class FittedBTYD:
    """A fitted purchase model (BG/NBD or Pareto/NBD) with its spend model, ready to score customer_features rows.

    spend_params is None when Gamma-Gamma was not usable (too few repeat buyers, failed fit, or q <= 1 so the
    population mean is infinite); fallback_spend (the observed mean repeat spend, else the mean order value) is then
    every customer's expected order value. notes say which fallbacks applied.
    """

    model: str
    purchase_params: PurchaseParams
    spend_params: GammaGammaParams | None
    fallback_spend: float
    notes: list[str] = field(default_factory=list)
    fit_seconds: float = 0.0  # wall time of the purchase fit and its (shared) spend fit, for metadata and bench
    budget_hit: bool = False  # a fit stopped at FIT_BUDGET (the note says which)
    n_customers: int | None = None  # rows fitted on (None: pickled before it was recorded)

    def spend_quantiles(
        self, features: pd.DataFrame, horizon_days: float, quantiles, draws: int = PREDICTIVE_DRAWS, seed: int = 0
    ) -> np.ndarray:
        """Quantiles of each customer's spend over the next horizon_days under the fitted models' own predictive
        distribution (rows = customers, columns = quantiles): simulate_spend's draws, `draws` per customer, drawn
        PREDICTIVE_BATCH_ROWS customers at a time (a few n x draws arrays at once: 100,000 customers would hold GBs)."""
        levels = np.asarray(quantiles, dtype=float)
        out = np.zeros((len(features), len(levels)))
        for start in range(0, len(features), PREDICTIVE_BATCH_ROWS):
            batch = features.iloc[start : start + PREDICTIVE_BATCH_ROWS]
            out[start : start + len(batch)] = np.quantile(
                simulate_spend(self, batch, horizon_days, draws, seed), levels, axis=1
            ).T
        return out

    def forecast(self, features: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
        """Per-customer predictions over the next horizon_days, index = features.index.

        Columns: p_alive (see p_alive() for BG/NBD's one-time-buyer property), expected_orders in the horizon,
        expected_avg_order_value (Gamma-Gamma conditional mean; population mean without repeat spend),
        predicted_clv = expected_orders x expected_avg_order_value, expected_days_to_next_order (median days to the
        next order given that it falls within the horizon: expected_days_to_next_purchase(..., within=horizon_days)).
        """
        frequency, recency, age = btyd_summary(features)
        histories = _Histories(frequency, recency, age)  # groupings shared by P(alive) and expected purchases
        purchases = _expected_purchases(self.purchase_params, horizon_days, histories)
        if self.spend_params is not None:
            monetary = repeat_mean_spend(features).to_numpy()
            has_spend = np.isfinite(monetary)
            spend = np.where(
                has_spend,
                expected_average_spend(self.spend_params, frequency, np.nan_to_num(monetary)),
                population_mean_spend(self.spend_params),
            )
        else:
            spend = np.full(len(features), self.fallback_spend)
        days = expected_days_to_next_purchase(self.purchase_params, frequency, recency, age, within=horizon_days)
        return pd.DataFrame(
            {
                "p_alive": _p_alive(self.purchase_params, histories),
                "expected_orders": purchases,
                "expected_avg_order_value": spend,
                "predicted_clv": purchases * spend,
                "expected_days_to_next_order": days,
            },
            index=features.index,
        )


def simulate_spend(
    fitted: FittedBTYD, features: pd.DataFrame, horizon_days: float, draws: int, seed: int
) -> np.ndarray:
    """Draws of each customer's spend over the next horizon_days from the posterior predictive distribution of the
    fitted purchase and spend models (rows = customers, `draws` columns; the mean is forecast()'s predicted_clv up to
    Monte Carlo noise).

    Given the history (x repeat order days, recency t_x, age T): alive at T with P(alive); if alive, the purchase rate
    lambda ~ Gamma(r + x, alpha + T) (both models). BG/NBD: dropout p ~ Beta(a, b + x), and the orders in the horizon
    are min(N, G), N ~ Poisson(lambda h) the purchase opportunities, G ~ Geometric(p) >= 1 the order after which the
    customer drops out. Pareto/NBD: dropout rate mu ~ Gamma(s, beta + T), remaining lifetime tau ~ Exp(mu), orders
    ~ Poisson(lambda min(tau, h)). Spend of X orders (Gamma-Gamma): nu ~ Gamma(p x + q, v + x zbar), spend ~
    Gamma(p X, nu); without a spend model, X x the fallback spend per order. The generator is seeded by `seed` and
    the rows' own count and histories, so the same rows give the same draws."""
    frequency, recency, age = btyd_summary(features)
    n = len(frequency)
    if n == 0:
        return np.zeros((0, draws))
    histories = _Histories(frequency, recency, age)
    alive_probability = _p_alive(fitted.purchase_params, histories)
    stamp = int(np.round(frequency.sum() + 7 * recency.sum() + 13 * age.sum())) % (2**32)
    rng = np.random.default_rng([seed, n, stamp])
    shape = (n, draws)
    alive = rng.random(shape) < alive_probability[:, None]
    params = fitted.purchase_params
    x, T = frequency[:, None], age[:, None]
    rate = rng.gamma(params.r + x, 1.0 / (params.alpha + T), size=shape)
    if isinstance(params, BGNBDParams):
        dropout = np.clip(rng.beta(params.a, params.b + x, size=shape), 1e-12, 1.0)
        orders = np.minimum(rng.poisson(rate * horizon_days), rng.geometric(dropout))
    else:
        lifetime = rng.exponential(1.0 / rng.gamma(params.s, 1.0 / (params.beta + T), size=shape))
        orders = rng.poisson(rate * np.minimum(lifetime, horizon_days))
    orders = np.where(alive, orders, 0).astype(float)
    if fitted.spend_params is None:
        return orders * fitted.fallback_spend
    gg = fitted.spend_params
    monetary = repeat_mean_spend(features).to_numpy(dtype=float)
    zbar = np.where(np.isfinite(monetary) & (frequency > 0), monetary, 0.0)[:, None]
    x_spend = np.where(np.isfinite(monetary), frequency, 0.0)[:, None]  # no repeat spend: the population's nu
    nu = rng.gamma(gg.p * x_spend + gg.q, 1.0 / (gg.v + x_spend * zbar), size=shape)
    spend = rng.gamma(np.maximum(gg.p * orders, 1e-300), 1.0 / nu)
    return np.where(orders > 0, spend, 0.0)


@dataclass(frozen=True)
class _SpendFit:
    """The Gamma-Gamma part of a fit: the same for every purchase model on the same rows, so fitted once."""

    params: GammaGammaParams | None
    notes: list[str]  # the fallback that applied, if any
    budget_notes: list[str]  # the spend fit stopped at FIT_BUDGET
    fallback_spend: float
    seconds: float


def _fit_spend(features: pd.DataFrame, frequency: np.ndarray) -> _SpendFit:
    started = time.perf_counter()
    notes: list[str] = []
    budget_notes: list[str] = []
    monetary = repeat_mean_spend(features).to_numpy()
    has_spend = np.isfinite(monetary)
    params = None
    if has_spend.sum() >= MIN_REPEAT_BUYERS_FOR_SPEND_MODEL:
        try:
            params = fit_gamma_gamma(frequency[has_spend], monetary[has_spend], notes=budget_notes)
        except BTYDFitError as error:
            notes.append(f"Gamma-Gamma not fitted ({error}): observed mean spend used")
        if params is not None and not np.isfinite(population_mean_spend(params)):
            notes.append(f"Gamma-Gamma q = {params.q:.3g} <= 1 (infinite mean spend): observed mean spend used")
            params = None
    else:
        notes.append(
            f"{int(has_spend.sum())} repeat buyers with spend (< {MIN_REPEAT_BUYERS_FOR_SPEND_MODEL}):"
            " observed mean spend used instead of Gamma-Gamma"
        )
    fallback = float(np.nanmean(monetary)) if has_spend.any() else float(features["avg_order_value"].mean())
    return _SpendFit(
        params, notes, budget_notes, fallback if np.isfinite(fallback) else 0.0, time.perf_counter() - started
    )


def fit_btyd(features: pd.DataFrame, model: str = "bgnbd") -> FittedBTYD:
    """Fit a BTYD purchase model ("bgnbd" or "pareto_nbd") and Gamma-Gamma spend on customer_features rows (days).

    frequency = repeat_order_count, recency = btyd_recency_days, T = tenure_days. Spend: Gamma-Gamma on the mean
    repeat-order spend of repeat buyers; with fewer than MIN_REPEAT_BUYERS_FOR_SPEND_MODEL of them, a failed fit or
    an infinite population mean (q <= 1), the plain observed mean spend replaces it (noted).
    Raises BTYDFitError when there is no repeat buyer at all (the purchase model is not identified).
    """
    return _fit_btyd(features, model, None)[0]


def _fit_btyd(features: pd.DataFrame, model: str, spend: _SpendFit | None) -> tuple[FittedBTYD, _SpendFit]:
    """fit_btyd and its spend part; `spend`, when given, is reused (fitted on the same rows for another model)."""
    if model not in BTYD_MODELS:
        raise ValueError(f"unknown BTYD model {model!r}; expected one of {BTYD_MODELS}")
    started = time.perf_counter()
    frequency, recency, age = btyd_summary(features)
    fit = fit_bgnbd if model == "bgnbd" else fit_pareto_nbd
    purchase_notes: list[str] = []
    purchase_params = fit(frequency, recency, age, notes=purchase_notes)
    purchase_seconds = time.perf_counter() - started
    spend = _fit_spend(features, frequency) if spend is None else spend
    fitted = FittedBTYD(
        model=model,
        purchase_params=purchase_params,
        spend_params=spend.params,
        fallback_spend=spend.fallback_spend,
        notes=[f"{model}: {note}" for note in purchase_notes]
        + spend.notes
        + [f"Gamma-Gamma: {note}" for note in spend.budget_notes],
        fit_seconds=purchase_seconds + spend.seconds,
        budget_hit=bool(purchase_notes or spend.budget_notes),
        n_customers=len(features),
    )
    return fitted, spend


def fit_btyd_models(features: pd.DataFrame) -> dict[str, FittedBTYD | str]:
    """Every BTYD_MODELS model fitted once on these rows: the FittedBTYD, or the one-line reason it could not be.

    The one place the graph fits BTYD at a cut-off (ml/btyd_models); every consumer reads these fits. Gamma-Gamma
    does not depend on the purchase model: it is fitted once and shared, and each model's fit_seconds counts it."""
    fits: dict[str, FittedBTYD | str] = {}
    spend = None
    for model in BTYD_MODELS:
        if features.empty:
            fits[model] = "no customers"
            continue
        try:
            fits[model], spend = _fit_btyd(features, model, spend)
        except (BTYDFitError, ValueError) as error:
            fits[model] = str(error)
    return fits


def btyd_clv_baseline(train: pd.DataFrame, horizon_days: float) -> pd.Series:
    """Predicted spend per customer over the next horizon_days: BG/NBD expected purchases x Gamma-Gamma spend.

    Index = train's index. frequency = repeat_order_count, recency = btyd_recency_days, T = tenure_days (days).
    Spend: Gamma-Gamma conditional mean for repeat buyers, population mean otherwise; with fewer than
    MIN_REPEAT_BUYERS_FOR_SPEND_MODEL repeat buyers the plain mean order value replaces the Gamma-Gamma model.
    Raises BTYDFitError when there is no repeat buyer at all (the purchase model is not identified).
    """
    fitted = fit_btyd(train, "bgnbd")
    return fitted.forecast(train, horizon_days)["predicted_clv"].rename("btyd_clv")


# ----------------------------------------------------------------------------------------- back-test and choice

# Written down before looking at results: the model whose churn risk (1 - P(alive)) best separates customers who
# ordered in the horizon from those who did not wins; within CHURN_AUC_TIE of each other, the lower MAE of
# expected orders wins. BG/NBD's P(alive) is 1 for every one-time buyer, and this rule is where that shows.
CHURN_AUC_TIE = 0.005
BACKTEST_COLUMNS = [
    "model",
    "churn_auc",
    "expected_orders_mae",
    "next_order_days_mae",
    "next_order_days_median_error",
    "n_customers",
    "n_churned",
    "n_with_next_order",
    "note",
]


def backtest_btyd(
    train: pd.DataFrame, horizon_days: float, fits: dict[str, FittedBTYD | str] | None = None
) -> tuple[pd.DataFrame, str | None]:
    """Back-test each BTYD model on customer_features_train rows; returns (one row per model, chosen model or None).

    Fitted on the training-cutoff features (no labels), scored against what happened in the next horizon_days:
    churn_auc = ROC AUC of 1 - p_alive for "no order in the horizon" (has_future_order false);
    expected_orders_mae = mean |expected_orders - future_order_count|; next_order_days_mae (and the median error)
    = |expected_days_to_next_order - days_to_next_order| over customers who did order (days_to_next_order is the
    label from customer_features_train, days from the training cut-off to the first later order). A model that
    cannot be fitted gets a row with its reason in `note` and NaN metrics; None is chosen when no model fits.
    fits: fit_btyd_models(train), when the caller has them already (fitted here otherwise).
    """
    from sklearn.metrics import roc_auc_score  # only the back-test needs it

    churned = ~train["has_future_order"].astype(bool).to_numpy()
    actual_orders = train["future_order_count"].astype(float).to_numpy()
    actual_days = train["days_to_next_order"].astype(float).to_numpy()
    ordered = np.isfinite(actual_days) & ~churned
    rows = []
    fits = fit_btyd_models(train) if fits is None else fits
    for model in BTYD_MODELS:
        row = {
            "model": model,
            "n_customers": len(train),
            "n_churned": int(churned.sum()),
            "n_with_next_order": int(ordered.sum()),
            "note": "",
        }
        try:
            fitted = fits.get(model, "not fitted")
            if not isinstance(fitted, FittedBTYD):
                raise BTYDFitError(fitted)
            forecast = fitted.forecast(train, horizon_days)
        except BTYDFitError as error:
            rows.append(
                {
                    **row,
                    "churn_auc": np.nan,
                    "expected_orders_mae": np.nan,
                    "next_order_days_mae": np.nan,
                    "next_order_days_median_error": np.nan,
                    "note": f"not fitted: {error}",
                }
            )
            continue
        both_classes = 0 < churned.sum() < len(churned)
        day_errors = np.abs(forecast["expected_days_to_next_order"].to_numpy()[ordered] - actual_days[ordered])
        rows.append(
            {
                **row,
                "churn_auc": float(roc_auc_score(churned, 1 - forecast["p_alive"])) if both_classes else np.nan,
                "expected_orders_mae": float(np.mean(np.abs(forecast["expected_orders"].to_numpy() - actual_orders))),
                "next_order_days_mae": float(day_errors.mean()) if ordered.any() else np.nan,
                "next_order_days_median_error": float(np.median(day_errors)) if ordered.any() else np.nan,
                "note": "" if both_classes else "churn AUC undefined: every customer in one class",
            }
        )
    evaluation = pd.DataFrame(rows, columns=BACKTEST_COLUMNS)
    return evaluation, choose_btyd_model(evaluation)


def choose_btyd_model(evaluation: pd.DataFrame) -> str | None:
    """The rule above: best churn AUC, ties (within CHURN_AUC_TIE) to the lower expected-orders MAE; None if none fit."""
    fitted = evaluation[evaluation["expected_orders_mae"].notna()]
    if fitted.empty:
        return None
    if fitted["churn_auc"].notna().any():
        fitted = fitted[fitted["churn_auc"] >= fitted["churn_auc"].max() - CHURN_AUC_TIE]
    return str(fitted.sort_values(["expected_orders_mae", "model"]).iloc[0]["model"])


PREDICTION_COLUMNS = [
    "customer_id",
    "p_alive",
    "expected_orders",
    "expected_days_to_next_order",
    "expected_next_order_date",
    "predicted_avg_order_value",
    "btyd_model",
]


def btyd_prediction_table(features: pd.DataFrame, fitted: FittedBTYD | None, horizon_days: float) -> pd.DataFrame:
    """One row per customer_features row: the peer predictions of ml.btyd_predictions (see PREDICTION_COLUMNS).

    expected_next_order_date = cutoff_date (the as-of date) + expected_days_to_next_order rounded to whole days.
    With fitted None (no BTYD model identified: nobody ever came back) every prediction is null and btyd_model
    says why, so the row count still matches customer_features.
    """
    table = pd.DataFrame({"customer_id": features["customer_id"].to_numpy()}, index=features.index)
    if fitted is None:
        for column in PREDICTION_COLUMNS[1:-1]:
            table[column] = np.nan
        table["expected_next_order_date"] = pd.NaT
        table["btyd_model"] = "none: no repeat buyers"
        return table[PREDICTION_COLUMNS].reset_index(drop=True)
    forecast = fitted.forecast(features, horizon_days)
    days = forecast["expected_days_to_next_order"]
    as_of = pd.to_datetime(features["cutoff_date"])
    table["p_alive"] = forecast["p_alive"]
    table["expected_orders"] = forecast["expected_orders"]
    table["expected_days_to_next_order"] = days
    table["expected_next_order_date"] = (as_of + pd.to_timedelta(days.round(), unit="D")).dt.date
    table["predicted_avg_order_value"] = forecast["expected_avg_order_value"]
    table["btyd_model"] = fitted.model
    return table[PREDICTION_COLUMNS].reset_index(drop=True)
