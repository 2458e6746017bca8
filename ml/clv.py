"""Predicted customer value and purchase propensity over a horizon: LightGBM on customer_features.

This module is the `lightgbm` candidate (and, with the BTYD outputs as extra_features, `lightgbm_btyd`) of the CLV
champion in ml/champion.py, which picks per shop between them, BG/NBD, Pareto/NBD and the past-spend rate,
calibrates the winner and adds p10/p90. Champion back-test on the simulator of tests/unit/test_clv.py (5,000
customers, horizons 90 and 180, seeds 1-6 = 12 shops; forward: fitted at as_of - 2h, scored at as_of - h, metrics
on the evaluation half after calibration learned on the selection half; mean and [min, max]):

| candidate        | Spearman | decile MAPE        | sum(pred)/sum(actual) | raw decile MAPE | AUC   | p10-p90 coverage |
|------------------|----------|--------------------|-----------------------|-----------------|-------|------------------|
| champion (chosen)| 0.523    | 0.343 [0.21, 0.47] | 1.04 [0.93, 1.19]     | 0.77            | 0.896 | 0.945            |
| lightgbm         | 0.524    | 0.366 [0.28, 0.49] | 1.05 [0.94, 1.21]     | 0.48            | 0.897 | 0.944            |
| lightgbm_btyd    | 0.526    | 0.402 [0.21, 0.69] | 1.03 [0.93, 1.19]     | 0.52            | 0.898 | 0.945            |
| pareto_nbd       | 0.497    | 0.355 [0.10, 1.00] | 1.03 [0.94, 1.19]     | 0.45            | 0.872 | 0.941            |
| bgnbd            | 0.494    | 0.416 [0.23, 0.78] | 1.04 [0.96, 1.19]     | 2.11            | 0.871 | 0.939            |
| past_spend_rate  | 0.387    | 0.401 [0.15, 0.63] | 1.14 [0.94, 1.27]     | 4.73            | 0.780 | 0.916            |
Champions: lightgbm 6, lightgbm_btyd 5, bgnbd 1. Reproduce: for H in (90, 180) and seed in 1..6, shop =
simulate_shop(5000, 1100, seed), `champion_backtest(features_at(shop, 1099 - H, H), H, features_at(shop, 1099 - 2 * H,
H))` (helpers from tests/unit/test_clv.py), rows with backtest_window == "evaluation".
Re-measured 2026-11-26 with today's code (bench/results/clv_bagging.md, rows K=1 seed 0): the table predates the
blend candidate and Gamma-Gamma per order day. lightgbm unchanged (0.524, 0.366); lightgbm_btyd 0.526, decile MAPE
0.343 [0.19, 0.48]; lightgbm_btyd_blend 0.519, 0.399; champion 0.521, 0.409 [0.21, 0.92], sum ratio 1.04; champions
lightgbm_btyd_blend 6, lightgbm 3, lightgbm_btyd 3. LightGBM seeds 1 and 2 give champion decile MAPEs 0.50 and 0.52.
Seed bagging (tried 2026-11-26, not kept): each model as the average of K boosters with different
seeds (each already bags 0.8 of the rows and features per iteration), to lower the trees' variance. Protocol and
decision rule, written down before any run and before looking at CDNOW: variants (K, rate scale m) in (3, 1), (5, 1)
and the cost-neutral (3, 3), (5, 5) against today's (1, 1) at LightGBM seed 0, on the 12 shops above (same call,
evaluation half). Noise of a metric = the largest change of its 12-shop mean when today's model is refit with seed 1
or 2 instead of 0. A variant qualifies when, for both `lightgbm` and `lightgbm_btyd`, the mean Spearman rises by at
least 0.003 and by more than its noise, and no 12-shop mean of Spearman, AUC, decile MAPE or |sum ratio - 1| of
`lightgbm`, `lightgbm_btyd` or the chosen champion worsens by more than its noise. Ship the qualifying cost-neutral
variant with the larger mean Spearman gain (averaged over the two candidates); a (K, 1) variant only if no
cost-neutral one qualifies, with its cost measured; none: K stays 1 and the numbers stay here. CDNOW
(`python -m bench.clv --only cdnow`) is run once afterwards with the shipped setting and does not change it.
Result (bench/results/clv_bagging.md): nothing qualifies, so it is not shipped. Mean Spearman changes: `lightgbm`
+0.0002 (3, 3), +0.0000 (5, 5), +0.0002 (3, 1), +0.0003 (5, 1); `lightgbm_btyd` +0.0006, +0.0005, +0.0006, +0.0007
(seed noise 0.0002 and 0.0008; AUC within 0.0005). One shop's Spearman moves 0.0017 on average (max 0.0034) with the
seed, and the cost-neutral bags do not narrow that (0.0015-0.0023). Decile MAPE is the seed-sensitive metric (per-shop
range 0.17-0.28 over seeds 0-2, bagged or not). The code (average_boosters: K members merged into one Booster on the
raw scale) was removed with no user path running it; it is at commit 6293d9b, with its tests and bench/clv_bagging.py.
The table below is the older cross-sectional back-test of this module alone, measured with its former `backtest`
(a hash hold-out of the training cut-off; removed once ml/champion.py's back-test replaced it, see git history).

Grain: one row per customer. Training rows = `customer_features_train` (features at as_of - horizon, labels
`future_revenue` / `has_future_order` from (as_of - horizon, as_of]); scoring rows = `customer_features` at as_of.

Objective (measured, see the table): tweedie (variance power 1.5, log link) on future_revenue for the value,
a binary classifier on has_future_order for the propensity. Spend is zero-inflated (about 80 % of customers
buy nothing in the horizon) and heavy-tailed; both tweedie and the hurdle (P(buy) x E[spend | buy] with a gamma
spend model) handle that, and they rank equally well, but the hurdle's decile calibration is worse because its
spend model is fitted on the few buyers only (noisy in the low deciles). Poisson (tweedie power 1.0) keeps totals
exact but ranks poorly on money-scale labels. Only tweedie is implemented: the hurdle and Poisson rows record
that decision (their code was removed; no user path ran it). A lognormal hurdle was measured again as a champion
candidate in 2026-11 (fit_buyer_spend_model; ml/champion.py, `lightgbm_hurdle`, not kept). Back-test on the simulator of tests/unit/test_clv.py
(4,000-5,000 customers, hold-out 30 %, horizons 90 and 180 days, 6 seeds each = 12 shops; mean and [min, max]):

| model (value objective)                  | Spearman | decile MAPE        | sum(pred)/sum(actual) |
|------------------------------------------|----------|--------------------|-----------------------|
| tweedie 1.5, 7 leaves, L2 10, calibrated | 0.538    | 0.52 [0.29, 1.57]  | 0.92 [0.79, 1.00]     |
| hurdle (binary x gamma), same, calibrated| 0.537    | 0.86 [0.34, 1.97]  | 0.93 [0.78, 1.02]     |
| tweedie 1.5, not calibrated              | 0.538    | 0.41               | 0.77 [0.73, 0.88]     |
| poisson (tweedie 1.0), not calibrated*   | 0.521    | 4.41               | 0.98 [0.91, 1.07]     |
| baseline btyd (BG/NBD x Gamma-Gamma)     | 0.504    | 4.46 [0.76, 25.3]  | 1.02 [0.88, 1.12]     |
| baseline past_spend_rate                 | 0.403    | 5.60 [3.09, 9.66]  | 5.86 [3.94, 7.77]     |
(* 4 seeds.) Propensity ROC AUC: 0.898 (classifier) vs 0.867 (btyd expected purchases as a score) and 0.788
(past spend rate). Measured with the former `backtest(training_table(5000, H, seed), H, objective=...)` for H in
(90, 180) and seed in 1..6.

Calibration: tweedie with a log link is not sum-preserving, so hold-out totals come out ~23 % low; one factor
sum(actual)/sum(predicted) over the training rows (clipped to [0.5, 2]) brings them to ~0.92. It is learned
on the training rows only, so the back-test hold-out stays unseen.

Scale: top_drivers is LightGBM's exact TreeSHAP of the value model for every customer, whose cost is linear in the
number of trees. It is computed once per decision pattern of each tree (tree_shap_by_pattern), not per customer;
the paragraph below predates that and measured LightGBM's per-row TreeSHAP. At one learning rate of 0.03 the demo shop at SEGMINT_DEMO_CUSTOMERS=400000 (216 k training rows,
200 k sampled, horizon 365) needed 679 value and 998 buy trees (the cap is 1000). The rate now grows with the
fitting rows (learning_rate: 0.03 up to 10 k rows, 0.15 from 160 k) and the round cap shrinks in proportion (rate x
rounds <= 30): 200 value and 168 buy trees on that shop. Measured there on a loaded 2-core machine: fit_clv_models
58 -> 16 s, backtest 77 -> 28 s (its BTYD baseline is unchanged), predict of 100 k customers 79 -> 22 s (median of
3, interleaved). Back-test hold-out (65 k customers), before -> after: Spearman 0.443 -> 0.443, decile MAPE 0.075
[0.067, 0.084 over seeds 0-2] -> 0.084, sum(pred)/sum(actual) 0.988 -> 0.987, propensity AUC 0.811 -> 0.810 (btyd:
0.386, 0.290). On 100 k sampled training rows (rate 0.08 in the back-test), seeds 0-2: Spearman 0.444 in both,
decile MAPE 0.121 [0.112, 0.132] -> 0.133 [0.125, 0.139]. Shops below 10 k fitting rows, the table above and
`make bench-clv` keep 0.03 and 1000 rounds, so their models are unchanged.

Prediction (issue 18, identical outputs): a 7-leaf tree has 6 splits, so a row's path through it is one of 64
decision patterns. Every plain prediction (_best_predict) is read off those patterns (_pattern_predict): each split
is a vector comparison over the rows, the tree's leaf value per pattern is gathered, and the trees' outputs are
summed in LightGBM's order from 0.0, then LightGBM's output transform is applied with the C library's exp: the same
floats as Booster.predict, checked bit for bit in tests/unit/test_clv.py and on the 1 M bench shop, at a third of
its CPU (LightGBM walks each row through each tree one at a time). With explanations, the value model's patterns
are computed once for both the value and its TreeSHAP. The model matrix is converted to LightGBM's float array once
per chunk (model_array) and shared by both boosters and the explanation; pattern_trees are solved once per model,
not once per scored chunk. Trees with more than MAX_PATTERN_SPLITS splits, other objectives and pred_contrib go to
LightGBM. Figures: BENCHMARKS.md, "the LightGBM steps at 1 M". Since (same bits, tests/unit/test_clv.py): the
gathers from a tree's per-pattern tables, most of the explanation's CPU, skip numpy's per-index bounds check
(mode="wrap": a pattern never exceeds its table) and take all of a tree's columns in one call; solving a tree reuses
each subtree's value across the coalitions that agree on its features; and the rows of a predict are cut in blocks
scored on min(2, cores) threads (numpy's array operations release the GIL; a row's numbers depend on that row only).

top_drivers text (issue 18, same bytes): the per-row Python formatting of the JSON was ~25 % of scoring 1 M
customers. The top-k columns are now picked by k argmax passes (the first of equal maxima, as the stable sort did),
each distinct rounded contribution is formatted once with Python's repr (4 decimals of log-scale contributions
repeat a lot), and the rows are assembled column-wise by Arrow (_top_drivers), then passed to the table as Arrow
strings without Python objects. tests/unit/test_clv.py compares it with json.dumps on ties, half-way points, -0.0,
huge and non-finite values.

top_drivers on a daily run (issue 18, decision): still every customer, exact. Measured at 1 M (README "top_drivers
on a real next day"): explaining is ~3.6 of ~10.4 CPU s of ml/clv_predictions. Reusing yesterday's text where a
customer's decision patterns did not move (59 % of customers; same bytes, since the contributions are a function of
the patterns) did not pay once the previous texts had to be read back; explaining only the customers a reader reads
is a contract change (ml/clv_drivers, described there), not made here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml.feature_columns import BEHAVIOUR_SHARES

NUMERIC_FEATURES = (
    "order_count",
    "repeat_order_count",
    "recency_days",
    "tenure_days",
    "btyd_recency_days",
    "total_revenue",
    "gross_revenue",
    "avg_order_value",
    "max_order_value",
    "first_order_value",
    "revenue_last_90d",
    "order_count_last_90d",
    "revenue_last_365d",
    "order_count_last_365d",
    "refund_count",
    "refund_amount",
    "discounted_order_share",
    "mean_days_between_orders",
    "marketing_consent",
    "has_email",
    "has_phone",
    "has_web_events",
    "event_count",
    "active_days",
    "days_since_last_event",
    "event_count_last_30d",
    *BEHAVIOUR_SHARES,
    "cart_add_count_last_90d",
)
CATEGORICAL_FEATURES = ("acquisition_channel", "entry_offer", "first_order_channel", "country")
FEATURE_COLUMNS = NUMERIC_FEATURES + CATEGORICAL_FEATURES
# Ratios a tree cannot build from splits: the past spend/order rate per day of tenure (the naive forecast itself).
DERIVED_FEATURES = ("spend_per_tenure_day", "orders_per_tenure_day")
MODEL_FEATURES = FEATURE_COLUMNS + DERIVED_FEATURES

VALUE_LABEL = "future_revenue"
BUY_LABEL = "has_future_order"

# Vocabulary: categories seen at least this often on train, at most this many; the rest share OTHER_CATEGORY.
# Real shops have one-off discount codes and long country tails; a category per code would overfit.
MIN_CATEGORY_COUNT = 20
MAX_CATEGORIES = 30
OTHER_CATEGORY = "__other__"
MISSING_CATEGORY = "__missing__"

# Below these sizes a boosted model is noise: fall back to the calibrated past-spend rate (see fit_clv_models).
MIN_CUSTOMERS_FOR_MODEL = 50
MIN_BUYERS_FOR_MODEL = 10
# Share of the training rows held back (by hash) to choose the number of boosting rounds (early stopping).
VALIDATION_SHARE = 0.2
# The calibration factor only corrects drift; a larger correction means the model is wrong, not miscalibrated.
CALIBRATION_FACTOR_BOUNDS = (0.5, 2.0)
MAX_BOOST_ROUNDS = 1000  # at the slowest learning rate; see max_boost_rounds
EARLY_STOPPING_ROUNDS = 50
# Used instead of early stopping when the validation part has fewer rows than MIN_VALIDATION_ROWS.
FIXED_BOOST_ROUNDS = 200
MIN_VALIDATION_ROWS = 20
# The learning rate grows with the fitting rows, geometrically from LEARNING_RATE_BOUNDS[0] at
# LEARNING_RATE_ROWS[0] to [1] at [1]: small shops need the shrinkage, while at 200 k rows 0.03 ran into the
# MAX_BOOST_ROUNDS cap and every tree costs again in the TreeSHAP of top_drivers (see the module docstring).
LEARNING_RATE_BOUNDS = (0.03, 0.15)
LEARNING_RATE_ROWS = (10_000, 160_000)
# Small, heavily regularised trees: spend is heavy-tailed and bigger trees memorise the few large spenders
# (measured: 15 leaves / L2 1 under-predicted hold-out totals by ~30 % before calibration, 7 leaves / L2 10 by ~23 %).
NUM_LEAVES = 7
MIN_DATA_IN_LEAF = 20
MIN_LEAF_DIVISOR = 50  # min_data_in_leaf = max(MIN_DATA_IN_LEAF, rows / MIN_LEAF_DIVISOR)
LAMBDA_L2 = 10.0
TWEEDIE_VARIANCE_POWER = 1.5
VALUE_OBJECTIVE = "tweedie"
# Rows per TreeSHAP call in predict: the contributions of 100 k rows take 34 MB, whatever the shop size.
EXPLAIN_CHUNK_ROWS = 100_000

FALLBACK_PAST_SPEND = "past_spend_rate_fallback"


@dataclass
class ClvModels:
    """Fitted CLV and propensity models with everything predict() needs (vocabulary, calibration, fallback)."""

    objective: str
    categories: dict[str, list[str]]
    value_model: lgb.Booster | None = None
    buy_model: lgb.Booster | None = None
    calibration_factor: float = 1.0
    fallback_reason: str | None = None
    fallback_spend_rate_factor: float = 0.0
    fallback_buy_rate: float = 0.0
    # The labels' horizon: the fallback's past_spend_rate floors tenure at it (1.0 in models pickled before it was
    # kept, which is the floor they were fitted with).
    horizon_days: float = 1.0
    n_train_rows: int = 0
    notes: list[str] = field(default_factory=list)
    # Numeric columns beyond MODEL_FEATURES the caller adds to the rows (the stacked candidate's BTYD outputs).
    extra_features: tuple[str, ...] = ()


def _unit_hash(customer_ids: pd.Series, salt: str) -> np.ndarray:
    """A stable number in [0, 1) per customer_id (blake2b, so identical across runs, machines and versions).

    The 8-byte big-endian digests are read as one uint64 array: uint64 -> float64 rounds to nearest like Python's
    int / 2**64 does (a power of two), so the values are those of the per-id formula, 3x faster at 1 M ids."""
    values = customer_ids.astype(str).to_numpy()
    prefix = f"{salt}:"
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b((prefix + v).encode(), digest_size=8).digest() for v in values])
    return np.frombuffer(digests, dtype=">u8").astype(np.float64) / 2**64


def _labels(train: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Future value (>= 0; refunds are already clipped per order by dbt, clipped again for safety) and did-buy."""
    value = pd.to_numeric(train[VALUE_LABEL], errors="coerce").fillna(0.0).clip(lower=0.0).to_numpy(dtype=float)
    if BUY_LABEL in train:
        buy = train[BUY_LABEL].astype("boolean").fillna(False).to_numpy(dtype=bool) | (value > 0)
    else:
        buy = value > 0
    return value, buy


def past_spend_rate(features: pd.DataFrame, horizon_days: float) -> np.ndarray:
    """Naive forecast: total_revenue / max(tenure_days, horizon_days) x horizon_days (>= 0).

    Tenure is floored at the horizon: a customer younger than one horizon is expected to repeat their spend to date
    once. Dividing by a tenure of a few days instead extrapolates a first order over the whole horizon (50 spent on
    the first day was 18,250 over 365 days), the kind of number a young shop's report then showed."""
    revenue = pd.to_numeric(features["total_revenue"], errors="coerce").fillna(0.0).clip(lower=0.0)
    tenure = pd.to_numeric(features["tenure_days"], errors="coerce").fillna(0.0).clip(lower=max(horizon_days, 1.0))
    return (revenue / tenure * horizon_days).to_numpy(dtype=float)


def past_expected_orders(features: pd.DataFrame, horizon_days: float) -> np.ndarray:
    """Orders in the horizon of the model behind past_spend_rate: the customer's past order rate,
    order_count / max(tenure_days, horizon_days) x horizon_days (>= 0).

    past_spend_rate is this count x the customer's net spend per order, so the purchase propensity made of it
    (P(>= 1 order) of a Poisson count, ml.champion.count_propensity) agrees with the value: a young shop's champion
    used to ship a propensity of 0 (the base buy rate of a training cut that held nobody) next to a positive value."""
    orders = pd.to_numeric(features["order_count"], errors="coerce").fillna(0.0).clip(lower=0.0)
    tenure = pd.to_numeric(features["tenure_days"], errors="coerce").fillna(0.0).clip(lower=max(horizon_days, 1.0))
    return (orders / tenure * horizon_days).to_numpy(dtype=float)


def learn_categories(train: pd.DataFrame) -> dict[str, list[str]]:
    """Fixed vocabulary per categorical feature: frequent values (sorted) + OTHER_CATEGORY + MISSING_CATEGORY."""
    vocabulary = {}
    for column in CATEGORICAL_FEATURES:
        values = (
            train[column].astype("string").fillna(MISSING_CATEGORY) if column in train else pd.Series(dtype="string")
        )
        counts = values.value_counts()
        frequent = counts[counts >= MIN_CATEGORY_COUNT].index[:MAX_CATEGORIES]
        vocabulary[column] = sorted(set(frequent) - {MISSING_CATEGORY}) + [OTHER_CATEGORY, MISSING_CATEGORY]
    return vocabulary


def _as_float(values: pd.Series) -> np.ndarray:
    """A column as float64, non-numbers as NaN: to_numeric on the objects, or directly for numeric dtypes (the same
    values; converting 1 M rows to objects first cost ~0.3 s per column)."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        return values.to_numpy(dtype=float)
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):  # nullable Int64/Float64/boolean
        return values.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(values.astype("object"), errors="coerce").astype(float).to_numpy()


def _vocabulary_codes(values: pd.Series | None, vocabulary: list[str], n_rows: int) -> np.ndarray:
    """Codes into `vocabulary` of one categorical feature: missing -> MISSING_CATEGORY, unseen -> OTHER_CATEGORY."""
    if values is None:
        return np.full(n_rows, vocabulary.index(MISSING_CATEGORY), dtype=np.int64)
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        # Arrow strings (what DuckDB reads): looked up in Arrow, no Python string per row (~0.6 s per 1 M rows).
        # The same codes as below: a null is the missing category, a value outside the vocabulary the other one.
        strings = pa.chunked_array(values.array._pa_array) if hasattr(values.array, "_pa_array") else None
        if strings is not None:
            found = pc.index_in(strings, value_set=pa.array(vocabulary, type=strings.type))
            fallback = np.where(
                pc.is_null(strings).to_numpy(zero_copy_only=False),
                vocabulary.index(MISSING_CATEGORY),
                vocabulary.index(OTHER_CATEGORY),
            )
            codes = found.to_numpy(zero_copy_only=False)  # float with NaN where not found
            return np.where(np.isnan(codes), fallback, np.nan_to_num(codes)).astype(np.int64)
    codes = pd.Categorical(values.astype("string").fillna(MISSING_CATEGORY), categories=vocabulary).codes
    return np.where(codes < 0, vocabulary.index(OTHER_CATEGORY), codes)


def model_matrix(
    features: pd.DataFrame, categories: dict[str, list[str]], extra_features: tuple[str, ...] = ()
) -> pd.DataFrame:
    """MODEL_FEATURES (+ extra_features) as float / fixed-vocabulary category columns; missing ones become NaN."""
    columns: dict[str, object] = {}
    for column in NUMERIC_FEATURES + tuple(extra_features):
        columns[column] = _as_float(features[column]) if column in features else np.full(len(features), np.nan)
    tenure = np.clip(columns["tenure_days"], 1.0, None)
    columns["spend_per_tenure_day"] = np.clip(columns["total_revenue"], 0.0, None) / tenure
    columns["orders_per_tenure_day"] = columns["order_count"] / tenure
    for column in CATEGORICAL_FEATURES:
        vocabulary = categories[column]
        codes = _vocabulary_codes(features[column] if column in features else None, vocabulary, len(features))
        columns[column] = pd.Categorical.from_codes(codes, categories=vocabulary)
    order = list(MODEL_FEATURES) + list(extra_features)
    return pd.DataFrame({column: columns[column] for column in order}, index=features.index)


def model_array(matrix: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The float64 array LightGBM makes of a model_matrix (lightgbm.basic._data_from_pandas: category codes, -1 as
    NaN), C-ordered: built once per rows and shared by both boosters' predictions and the explanations, instead of
    LightGBM converting the frame again for every predict."""
    if isinstance(matrix, np.ndarray):
        return matrix
    columns = [
        np.where(values.cat.codes < 0, np.nan, values.cat.codes).astype(float)
        if isinstance(values.dtype, pd.CategoricalDtype)
        else values.to_numpy(dtype=float)
        for _, values in matrix.items()
    ]
    return np.ascontiguousarray(np.column_stack(columns) if columns else np.zeros((len(matrix), 0)))


def learning_rate(n_rows: int) -> float:
    """LEARNING_RATE_BOUNDS interpolated geometrically in the number of fitting rows (clamped at both ends)."""
    (low_rows, high_rows), (low, high) = LEARNING_RATE_ROWS, LEARNING_RATE_BOUNDS
    position = min(max(math.log(max(n_rows, 1) / low_rows) / math.log(high_rows / low_rows), 0.0), 1.0)
    return low * (high / low) ** position


def _lgb_params(objective: str, seed: int, n_rows: int) -> dict:
    """Shared LightGBM parameters: deterministic single-threaded training, leaves and rate sized to the data."""
    return {
        "objective": objective,
        "learning_rate": learning_rate(n_rows),
        "num_leaves": NUM_LEAVES,
        "min_data_in_leaf": max(MIN_DATA_IN_LEAF, n_rows // MIN_LEAF_DIVISOR),
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": LAMBDA_L2,
        "cat_smooth": 10.0,
        "min_data_per_group": 20,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }


def max_boost_rounds(rate: float) -> int:
    """MAX_BOOST_ROUNDS at the slowest learning rate and proportionally fewer at faster ones (same rate x rounds)."""
    return round(MAX_BOOST_ROUNDS * LEARNING_RATE_BOUNDS[0] / rate)


def _train_booster(
    params: dict, x_fit: pd.DataFrame, y_fit: np.ndarray, x_valid: pd.DataFrame, y_valid: np.ndarray
) -> lgb.Booster:
    """Boost with early stopping on the validation part (fixed rounds when it is too small to judge)."""
    fit_set = lgb.Dataset(x_fit, label=y_fit, categorical_feature=list(CATEGORICAL_FEATURES), free_raw_data=False)
    if len(y_valid) < MIN_VALIDATION_ROWS:
        return lgb.train(params, fit_set, num_boost_round=FIXED_BOOST_ROUNDS)
    valid_set = lgb.Dataset(x_valid, label=y_valid, reference=fit_set)
    return lgb.train(
        params,
        fit_set,
        num_boost_round=max_boost_rounds(params["learning_rate"]),
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )


def _best_predict(booster: lgb.Booster, matrix: pd.DataFrame | np.ndarray, **kwargs) -> np.ndarray:
    """Predictions at the early-stopping iteration; LightGBM refuses an empty frame, so that is handled here.

    matrix: a model_matrix, or its model_array (the same numbers LightGBM would make of the frame, converted once).
    Plain predictions of small trees are read off their decision patterns (_pattern_predict: LightGBM's numbers, at
    a few vector operations per split); anything else is LightGBM's own predict."""
    if len(matrix) == 0:
        return np.zeros(0)
    if not kwargs:
        predicted = _pattern_predict(booster, matrix)
        if predicted is not None:
            return predicted
    # Prediction uses every core (rows are independent, so the result does not depend on the thread count),
    # while training stays single-threaded for reproducibility.
    return booster.predict(matrix, num_iteration=booster.best_iteration or None, num_threads=0, **kwargs)


def _fallback(train: pd.DataFrame, categories: dict, reason: str, horizon_days: float) -> ClvModels:
    """Past-spend-rate model scaled so its total matches the training labels; constant propensity = base rate."""
    value, buy = _labels(train) if len(train) else (np.zeros(0), np.zeros(0, dtype=bool))
    rate = past_spend_rate(train, horizon_days) if len(train) else np.zeros(0)
    factor = float(value.sum() / rate.sum()) if rate.sum() > 0 else 0.0
    return ClvModels(
        objective=FALLBACK_PAST_SPEND,
        categories=categories,
        fallback_reason=reason,
        fallback_spend_rate_factor=factor,
        fallback_buy_rate=float(buy.mean()) if len(buy) else 0.0,
        horizon_days=horizon_days,
        n_train_rows=len(train),
        notes=[f"fallback to calibrated past-spend rate: {reason}"],
    )


def _sample_rows(train: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """The max_rows customers with the smallest stable hash: a deterministic uniform sample."""
    if len(train) <= max_rows:
        return train
    order = np.argsort(_unit_hash(train["customer_id"], "sample"), kind="stable")[:max_rows]
    return train.iloc[np.sort(order)]


def fit_clv_models(
    train: pd.DataFrame,
    seed: int = 0,
    max_train_rows: int = 200_000,
    extra_features: tuple[str, ...] = (),
    horizon_days: float = 1.0,
) -> ClvModels:
    """Fit the value model (tweedie) and the purchase classifier on customer_features_train.

    extra_features: numeric columns of `train` used on top of MODEL_FEATURES (predict needs them too).
    horizon_days: the labels' horizon; only the fallback reads it (past_spend_rate's tenure floor). The default,
    one day, is no floor beyond past_spend_rate's own.

    Larger tables are down-sampled to max_train_rows customers by a stable hash of customer_id.
    VALIDATION_SHARE of the rows (by hash) drive early stopping; the value prediction is then scaled by
    sum(actual) / sum(predicted) over all training rows, clipped to CALIBRATION_FACTOR_BOUNDS.
    With fewer than MIN_CUSTOMERS_FOR_MODEL rows or MIN_BUYERS_FOR_MODEL buyers the result is the
    calibrated past-spend-rate fallback (fallback_reason says why).
    """
    train = _sample_rows(train.reset_index(drop=True), max_train_rows)
    categories = learn_categories(train)
    value, buy = _labels(train) if len(train) else (np.zeros(0), np.zeros(0, dtype=bool))
    if len(train) < MIN_CUSTOMERS_FOR_MODEL:
        return _fallback(train, categories, f"{len(train)} customers < {MIN_CUSTOMERS_FOR_MODEL}", horizon_days)
    if int((value > 0).sum()) < MIN_BUYERS_FOR_MODEL:
        reason = f"{int((value > 0).sum())} future buyers < {MIN_BUYERS_FOR_MODEL}"
        return _fallback(train, categories, reason, horizon_days)

    matrix = model_matrix(train, categories, extra_features)
    is_valid = _unit_hash(train["customer_id"], "validation") < VALIDATION_SHARE
    fit, valid = ~is_valid, is_valid
    notes = []
    buy_model = _train_booster(_lgb_params("binary", seed, fit.sum()), matrix[fit], buy[fit], matrix[valid], buy[valid])

    params = _lgb_params(VALUE_OBJECTIVE, seed, fit.sum()) | {"tweedie_variance_power": TWEEDIE_VARIANCE_POWER}
    value_model = _train_booster(params, matrix[fit], value[fit], matrix[valid], value[valid])
    models = ClvModels(VALUE_OBJECTIVE, categories, value_model=value_model, buy_model=buy_model)
    models.n_train_rows = len(train)
    models.extra_features = tuple(extra_features)

    # Tweedie with a log link is not sum-preserving (only the canonical Poisson link is), so totals drift low;
    # one factor over all training rows restores them (measured: 0.77 -> 0.92 of hold-out totals on average).
    predicted = _raw_value(models, model_array(matrix))
    if value.sum() > 0 and predicted.sum() > 0:
        factor = float(value.sum() / predicted.sum())
        models.calibration_factor = float(np.clip(factor, *CALIBRATION_FACTOR_BOUNDS))
        notes.append(f"calibration factor {models.calibration_factor:.3f} (sum actual / sum predicted on train)")
    models.notes = notes
    return models


@dataclass
class BuyerSpendModel:
    """The spend part of the hurdle candidate (ml/champion.py, lightgbm_hurdle): log(future_revenue) of the buyers
    as a LightGBM regression, and one global residual variance for the lognormal mean exp(mu + sigma2 / 2)."""

    booster: lgb.Booster
    sigma2: float
    categories: dict[str, list[str]]
    extra_features: tuple[str, ...] = ()
    n_buyers: int = 0
    notes: list[str] = field(default_factory=list)


def fit_buyer_spend_model(
    train: pd.DataFrame,
    categories: dict[str, list[str]],
    seed: int = 0,
    max_train_rows: int = 200_000,
    extra_features: tuple[str, ...] = (),
) -> BuyerSpendModel | None:
    """log(spend) of the customers who spent in the horizon, with fit_clv_models's sample, vocabulary, parameters and
    validation split; None below MIN_BUYERS_FOR_MODEL buyers (the caller keeps fit_clv_models's fallback).

    sigma2 is the mean squared residual on the validation buyers (in-sample residuals of boosted trees understate
    the spread), or on the fitting buyers when fewer than MIN_VALIDATION_ROWS are held out. It is one global value:
    exp(sigma2 / 2) then scales every forecast alike, so no noise of a variance estimate reorders customers."""
    train = _sample_rows(train.reset_index(drop=True), max_train_rows)
    value, _ = _labels(train) if len(train) else (np.zeros(0), np.zeros(0, dtype=bool))
    is_buyer = value > 0
    if int(is_buyer.sum()) < MIN_BUYERS_FOR_MODEL:
        return None
    buyers = train[is_buyer].reset_index(drop=True)
    log_spend = np.log(value[is_buyer])
    matrix = model_matrix(buyers, categories, extra_features)
    valid = _unit_hash(buyers["customer_id"], "validation") < VALIDATION_SHARE
    fit = ~valid
    booster = _train_booster(
        _lgb_params("regression", seed, int(fit.sum())), matrix[fit], log_spend[fit], matrix[valid], log_spend[valid]
    )
    measured = valid if int(valid.sum()) >= MIN_VALIDATION_ROWS else fit
    residual = log_spend[measured] - _best_predict(booster, model_array(matrix[measured]))
    sigma2 = float(np.mean(residual**2))
    where = "validation" if measured is valid else "fitting"
    note = f"buyer spend: {len(buyers)} buyers, log-spend residual variance {sigma2:.3f} ({where} buyers)"
    return BuyerSpendModel(booster, sigma2, categories, tuple(extra_features), len(buyers), [note])


def expected_buyer_spend(model: BuyerSpendModel, features: pd.DataFrame) -> np.ndarray:
    """E[spend | buy] per row: the lognormal mean exp(mu + sigma2 / 2)."""
    if len(features) == 0:
        return np.zeros(0)
    matrix = model_array(model_matrix(features.reset_index(drop=True), model.categories, model.extra_features))
    return np.exp(_best_predict(model.booster, matrix) + model.sigma2 / 2.0)


def _raw_value(models: ClvModels, matrix: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Uncalibrated predicted value of the fitted model (not the fallback)."""
    return _best_predict(models.value_model, matrix)


def _rounded_texts(values: np.ndarray) -> pa.Array:
    """repr(round(v, 4)) of every value (Python's text: shortest repr of the correctly rounded float), as Arrow strings.

    Vectorized: away from a half-way point, round(v, 4) is rint(v * 1e4) / 1e4 (the integer is exact and the
    division correctly rounded, so it is the float nearest the 4-decimal number, as Python's round gives), and the
    rounded values repeat a lot (4 decimals of a log-scale contribution), so each distinct float is formatted once.
    Values near a half-way point, huge or not finite go through Python's round itself (one owner of the semantics)."""
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = values * 1e4
        rounded = np.rint(scaled) / 1e4
        exact = (
            np.isfinite(scaled) & (np.abs(scaled) < 2.0**52) & (np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) > 1e-6)
        )
    if not exact.all():
        rounded[~exact] = [round(v, 4) for v in values[~exact].tolist()]
    # Distinct by bit pattern: -0.0 and 0.0 print differently, and NaN (from Python's round) is one pattern each.
    distinct, inverse = np.unique(rounded.view(np.int64), return_inverse=True)
    texts = pa.array([repr(v) for v in distinct.view(np.float64).tolist()], type=pa.string())
    return texts.take(pa.array(inverse.reshape(-1), type=pa.int64()))


def _top_k_columns(contributions: np.ndarray, top_k: int) -> np.ndarray:
    """Per row, the columns of the top_k largest |contribution|, largest first, ties by lower column: the first top_k
    of a stable argsort of -|contribution|, by top_k argmax passes (argmax takes the first of equal maxima) instead
    of sorting every row's ~45 columns. NaN (which argmax would pick, argsort puts last) takes the sort."""
    magnitude = np.abs(contributions)
    k = min(top_k, contributions.shape[1])
    if np.isnan(magnitude).any() or k > 8:
        return np.argsort(-magnitude, axis=1, kind="stable")[:, :k]
    order = np.empty((len(magnitude), k), dtype=np.intp)
    rows = np.arange(len(magnitude))
    for rank in range(k):
        order[:, rank] = column = magnitude.argmax(axis=1)
        magnitude[rows, column] = -1.0  # below every |value|: never chosen again
    return order


def _top_drivers(contributions: np.ndarray, feature_names: list[str], top_k: int) -> pa.Array:
    """JSON text per row of the top_k features by |contribution|: [{"feature", "contribution"}, ...], as Arrow strings.

    The text json.dumps would write per row (tests/unit/test_clv.py compares them), assembled column-wise by Arrow:
    per rank, the feature's constant prefix, the rounded value's repr (_rounded_texts) and the closing brace."""
    feature_contributions = contributions[:, :-1]  # last column is the bias (expected value)
    order = _top_k_columns(feature_contributions, top_k)
    values = np.take_along_axis(feature_contributions, order, axis=1)
    rows, ranks = order.shape
    if rows == 0:
        return pa.array([], type=pa.string())
    if ranks == 0:
        return pa.array(["[]"] * rows, type=pa.string())
    prefixes = pa.array([f'{{"feature": {json.dumps(name)}, "contribution": ' for name in feature_names])
    numbers = _rounded_texts(values.reshape(-1))  # row-major: row i's ranks at i * ranks + r
    pieces: list = [pa.scalar("[")]
    for rank in range(ranks):
        if rank:
            pieces.append(pa.scalar("}, "))
        pieces.append(prefixes.take(pa.array(order[:, rank], type=pa.int64())))
        pieces.append(numbers.take(pa.array(np.arange(rank, rows * ranks, ranks), type=pa.int64())))
    pieces.append(pa.scalar("}]"))
    return pc.binary_join_element_wise(*pieces, "")


# Trees with more splits than this are explained by LightGBM row by row (2^splits patterns would not pay off).
MAX_PATTERN_SPLITS = 12


def _internal_nodes(node: dict) -> list[dict]:
    """The split nodes of one tree of LightGBM's dump_model(), depth first."""
    if "split_index" not in node:
        return []
    return [node, *_internal_nodes(node["left_child"]), *_internal_nodes(node["right_child"])]


def _count(node: dict) -> float:
    """Training rows through a node: the cover TreeSHAP weighs the two sides of a split by."""
    return float(node.get("internal_count", node.get("leaf_count", 0)))


def _goes_left(node: dict, values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """LightGBM's decision at one split for every row (tree.h NumericalDecision / CategoricalDecision).

    values: one feature column (categories as codes, NaN when missing); missing: its NaN mask. NaN <= t is False."""
    if node["decision_type"] == "==":  # categorical: listed categories left; NaN and negative codes right
        categories = np.array([int(c) for c in str(node["threshold"]).split("||")], dtype=float)
        return np.isin(values, categories)
    below = values <= node["threshold"]
    kind, default_left = node["missing_type"], bool(node["default_left"])
    if kind == "NaN":  # NaN takes the default side
        return below | missing if default_left else below
    if kind == "Zero":  # NaN counts as 0, and 0 takes the default side
        zero = missing | (np.abs(values) <= 1e-35)
        return (below & ~zero) | zero if default_left else below & ~zero
    return below | missing if 0.0 <= node["threshold"] else below  # "None": NaN is compared as 0


def _pattern_shap(root: dict, nodes: list[dict], patterns: np.ndarray, n_columns: int) -> np.ndarray:
    """Exact Shapley values of one tree for each decision pattern (bit k = goes left at nodes[k]): (patterns, n_columns).

    v(S) = the tree's output when the row's side is followed at splits on features in S and both sides are averaged
    by training cover elsewhere: the value function LightGBM's path-dependent TreeSHAP computes the Shapley values
    of. Enumerated over the subsets of the tree's (at most a handful of) features. Last column: v(empty set)."""
    bit = {id(node): k for k, node in enumerate(nodes)}
    left = ((patterns[:, None] >> np.arange(len(nodes))) & 1).astype(bool)
    features = sorted({node["split_feature"] for node in nodes})
    below = {id(node): frozenset(n["split_feature"] for n in _internal_nodes(node)) for node in nodes}
    # A subtree's value depends on the coalition only through the features split on inside it: each (subtree, its
    # part of the coalition) is computed once, by the same operations, so the same floats (issue 18: the recursion
    # per coalition was most of solving a model's trees, a fixed ~1 CPU s of every scoring run).
    solved: dict[tuple[int, frozenset], object] = {}

    def value(node: dict, subset: frozenset):
        if "split_index" not in node:
            return node["leaf_value"]
        key = (id(node), subset & below[id(node)])
        if key in solved:
            return solved[key]
        low, high = value(node["left_child"], subset), value(node["right_child"], subset)
        if node["split_feature"] in subset:
            result = np.where(left[:, bit[id(node)]], low, high)
        else:
            n_low, n_high = _count(node["left_child"]), _count(node["right_child"])
            result = (n_low * low + n_high * high) / (n_low + n_high)
        solved[key] = result
        return result

    m = len(features)
    values = [
        np.broadcast_to(value(root, frozenset(f for j, f in enumerate(features) if mask >> j & 1)), len(patterns))
        for mask in range(1 << m)
    ]
    table = np.zeros((len(patterns), n_columns))
    for j, feature in enumerate(features):
        for mask in range(1 << m):
            if not mask >> j & 1:
                size = bin(mask).count("1")
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                table[:, feature] += weight * (values[mask | 1 << j] - values[mask])
    table[:, -1] = values[0]
    return table


@dataclass
class _PatternTree:
    nodes: list[dict]  # split nodes; bit k of a row's pattern = goes left at nodes[k]
    columns: list[int]  # the features it splits on, and the expected-value column
    table: np.ndarray  # (2^splits, features + 1): Shapley values per pattern
    output: np.ndarray  # (2^splits,): the tree's output (its leaf value) per pattern
    by_column: np.ndarray = field(init=False)  # table's columns of `columns`, each contiguous: rows gather from it

    def __post_init__(self) -> None:
        self.by_column = np.ascontiguousarray(self.table[:, self.columns].T)


def _pattern_output(node: dict, bit: dict[int, int], patterns: np.ndarray) -> np.ndarray:
    """The leaf value each decision pattern reaches (bit bit[id(node)] of a pattern = goes left at that node)."""
    if "split_index" not in node:
        return np.full(len(patterns), float(node["leaf_value"]))
    left = (patterns >> bit[id(node)]) & 1 == 1
    return np.where(
        left, _pattern_output(node["left_child"], bit, patterns), _pattern_output(node["right_child"], bit, patterns)
    )


def pattern_trees(booster: lgb.Booster, num_iteration: int | None = None) -> list[_PatternTree] | None:
    """Every tree of the model solved for every decision pattern (None when a tree has too many splits)."""
    n_columns = booster.num_feature() + 1
    trees = []
    for tree in booster.dump_model()["tree_info"][: num_iteration or None]:
        nodes = _internal_nodes(tree["tree_structure"])
        if len(nodes) > MAX_PATTERN_SPLITS:
            return None
        patterns = np.arange(1 << len(nodes))
        table = _pattern_shap(tree["tree_structure"], nodes, patterns, n_columns)
        output = _pattern_output(tree["tree_structure"], {id(node): k for k, node in enumerate(nodes)}, patterns)
        columns = sorted({node["split_feature"] for node in nodes}) + [n_columns - 1]
        trees.append(_PatternTree(nodes, columns, table, output))
    return trees


def tree_shap_by_pattern(trees: list[_PatternTree], matrix: pd.DataFrame | np.ndarray) -> np.ndarray:
    """LightGBM's exact (path-dependent) TreeSHAP contributions from per-pattern solutions (pattern_trees).

    A tree's contributions to a row depend on the row only through its decisions at that tree's splits (TreeSHAP
    follows the row's side of every split whose feature is in the coalition, on or off the row's path). A 7-leaf
    tree has 6 splits, so at most 64 patterns: each tree is solved once per pattern (_pattern_shap) and every row
    gets its pattern's values, summed over trees. Equal to LightGBM's predict(pred_contrib=True) up to float
    rounding (~1e-14; tests/unit/test_clv.py), at a few vector comparisons per split instead of a walk per row.
    matrix: a model_matrix or its model_array (LightGBM encodes a category by its code).
    Returns that array: (rows, features + 1), the last column being the expected value.
    """
    return _by_pattern(trees, matrix)[0]


def _by_pattern(
    trees: list[_PatternTree], matrix: pd.DataFrame | np.ndarray, contributions: bool = True, bias: bool = True
) -> tuple[np.ndarray | None, np.ndarray]:
    """(tree_shap_by_pattern's contributions, the model's raw score) from one pass over every row's patterns.

    bias=False leaves the last column (the expected value) at 0: top_drivers never reads it, and adding it was a
    seventh of the additions (every tree has one).

    The raw score (log scale for tweedie) is the sum of the trees' outputs, added tree after tree from 0.0 in the
    model's order: the additions LightGBM's PredictRaw makes, so the same float (tests/unit/test_clv.py checks it
    bit for bit against Booster.predict(raw_score=True))."""
    values = np.asfortranarray(model_array(matrix))  # column slices are contiguous
    missing = np.isnan(values)
    shap = np.zeros((values.shape[1] + 1, len(values)) if contributions else (0, 0))  # transposed: rows = columns
    raw = np.zeros(len(values))
    gathered = np.empty(len(values))
    # One tree's gathered contributions, a row per column it touches: taken at once (one pass over the index).
    stacked = np.empty((max((len(tree.columns) for tree in trees), default=0) if contributions else 0, len(values)))
    bias_column = values.shape[1]
    for tree in trees:
        pattern = np.zeros(len(values), dtype=np.uint16)  # MAX_PATTERN_SPLITS <= 16 bits
        for k, node in enumerate(tree.nodes):
            f = node["split_feature"]
            pattern |= _goes_left(node, values[:, f], missing[:, f]).astype(np.uint16) << k
        index = pattern.astype(np.intp)  # once per tree, not once per gather; gathers and adds reuse their buffers
        # mode="wrap": a pattern is always below its table's 2^splits rows, so nothing wraps, and numpy skips the
        # per-element bounds check of mode="raise" (the gathers were ~80 % of scoring at 1 M; issue 18).
        if contributions:
            columns, tables = tree.columns, tree.by_column
            if not bias and columns[-1] == bias_column:  # the expected-value column comes last (pattern_trees)
                columns, tables = columns[:-1], tables[:-1]
            block = np.take(tables, index, axis=1, out=stacked[: len(columns)], mode="wrap")
            for column, contribution in zip(columns, block):
                np.add(shap[column], contribution, out=shap[column])
        np.add(raw, np.take(tree.output, index, out=gathered, mode="wrap"), out=raw)
    return (shap.T if contributions else None), raw


# pattern_trees of the boosters predict() explained last: a table scored in chunks (ml/clv_predictions) reads the
# model's dump and solves its trees once, not once per chunk. Keyed by the booster object (weakly: a model that is
# gone takes its entry with it) and the iteration.
_PATTERN_TREES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _booster_pattern_trees(booster: lgb.Booster) -> list[_PatternTree] | None:
    return _booster_patterns(booster)[0]


def _booster_patterns(booster: lgb.Booster) -> tuple[list[_PatternTree] | None, str]:
    """pattern_trees of the booster at its best iteration (cached) and its objective line (dump_model's)."""
    key = (booster.best_iteration or None, MAX_PATTERN_SPLITS)
    cached = _PATTERN_TREES.get(booster)
    if cached is None or cached[0] != key:
        cached = (key, pattern_trees(booster, key[0]), str(booster.dump_model(num_iteration=1).get("objective", "")))
        _PATTERN_TREES[booster] = cached
    return cached[1], cached[2]


def _output(objective: str, raw: np.ndarray) -> np.ndarray | None:
    """LightGBM's prediction from its raw score for the objectives this module trains (ObjectiveFunction::
    ConvertOutput, with the C library's exp as LightGBM's std::exp rather than numpy's, which may differ in the last
    bit); None for any other objective."""
    name, *options = objective.split()
    if name == "regression" and "sqrt" not in options:  # L2 regression (the buyer-spend model): the raw score
        return raw
    if name == "tweedie":  # log link
        return np.fromiter(map(math.exp, raw.tolist()), dtype=float, count=len(raw))
    if name == "binary":  # 1 / (1 + exp(-sigmoid * raw))
        settings = dict(option.split(":", 1) for option in options if ":" in option)
        sigmoid = float(settings.get("sigmoid", "nan"))
        if not math.isfinite(sigmoid):
            return None
        return np.fromiter((1.0 / (1.0 + math.exp(-sigmoid * r)) for r in raw.tolist()), dtype=float, count=len(raw))
    return None


# Threads scoring the blocks of rows of one predict (issue 18): the work per block is numpy comparisons, gathers and
# additions over whole arrays, which release the GIL, so two blocks use two cores; every row's numbers depend on
# that row only, so how the rows are cut and which thread scores them cannot change a value.
SCORING_THREADS = max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
# Below this many rows a block is not split for the threads (their start-up would cost more than they save).
MIN_THREADED_BLOCK_ROWS = 10_000


def _map_row_blocks(score, matrix: pd.DataFrame | np.ndarray, threads: int | None = None) -> list:
    """[score(block) for each block of rows], in row order: blocks of at most EXPLAIN_CHUNK_ROWS (so the contribution
    matrices stay small), at least `threads` of them when the rows allow, scored on `threads` threads."""
    threads = SCORING_THREADS if threads is None else threads
    n = len(matrix)
    blocks = max(-(-n // EXPLAIN_CHUNK_ROWS), min(threads, n // MIN_THREADED_BLOCK_ROWS), 1)
    size = -(-n // blocks) if n else 0
    pieces = [matrix[start : start + size] for start in range(0, n, size)] if n else [matrix[:0]]
    if threads <= 1 or len(pieces) == 1:
        return [score(piece) for piece in pieces]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(score, pieces))


def _pattern_predict(booster: lgb.Booster, matrix: pd.DataFrame | np.ndarray) -> np.ndarray | None:
    """booster.predict(matrix) at the best iteration, from the trees' decision patterns: the same raw score
    (_by_pattern) and output transform; None when the trees are too large for patterns or the objective unknown."""
    trees, objective = _booster_patterns(booster)
    if trees is None:
        return None
    raw = np.concatenate(_map_row_blocks(lambda block: _by_pattern(trees, block, contributions=False)[1], matrix))
    return _output(objective, raw)


def _explain(
    models: ClvModels, matrix: pd.DataFrame | np.ndarray, top_k: int, feature_names: list[str]
) -> tuple[pd.Series, np.ndarray | None]:
    """top_drivers for every row (a "str" Series of Arrow strings, index 0..n-1), EXPLAIN_CHUNK_ROWS at a time so the contribution matrix stays small, and the value
    model's raw score of every row when the patterns gave it (None when LightGBM explained row by row).

    Exact TreeSHAP by decision pattern (tree_shap_by_pattern); LightGBM's own per-row TreeSHAP for trees too large
    for it."""
    booster = models.value_model
    trees = _booster_pattern_trees(booster)

    def explain_block(block) -> tuple[pa.Array, np.ndarray | None]:
        if trees is None:
            contributions, raw = np.asarray(_best_predict(booster, block, pred_contrib=True)), None
        else:
            contributions, raw = _by_pattern(trees, block, bias=False)  # _top_drivers drops the bias column
        return _top_drivers(contributions, feature_names, top_k), raw

    # LightGBM's own TreeSHAP uses every core already: its blocks go one after the other.
    explained = _map_row_blocks(explain_block, matrix, threads=1 if trees is None else SCORING_THREADS)
    texts = pd.Series(pa.chunked_array([drivers for drivers, _ in explained], type=pa.string()), dtype="str")
    if trees is None:
        return texts, None
    return texts, np.concatenate([raw for _, raw in explained]) if explained else np.zeros(0)


def contributions(booster: lgb.Booster, matrix: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Exact TreeSHAP of the booster's raw score per row (columns: the model's features, then the bias), by decision
    pattern when the trees allow (tree_shap_by_pattern), else LightGBM's pred_contrib."""
    trees = _booster_pattern_trees(booster)
    if trees is None:
        return np.asarray(_best_predict(booster, matrix, pred_contrib=True))
    return np.concatenate(_map_row_blocks(lambda block: _by_pattern(trees, block)[0], matrix))


def _binary_sigmoid(booster: lgb.Booster) -> float:
    """The binary objective's sigmoid parameter (P = 1 / (1 + exp(-sigmoid x raw))); LightGBM's default 1."""
    _, objective = _booster_patterns(booster)
    settings = dict(option.split(":", 1) for option in objective.split()[1:] if ":" in option)
    return float(settings.get("sigmoid", 1.0))


def hurdle_log_contributions(
    models: ClvModels, spend: BuyerSpendModel, features: pd.DataFrame
) -> tuple[np.ndarray, list[str]]:
    """Per row, each feature's contribution to log(P(buy) x E[spend | buy]) (the hurdle forecast's log; its
    table-wide factors are constants there), and the feature names; the last column is the bias (the log forecast
    of the models' expected raw scores).

    log forecast = log P(buy) + mu + sigma2 / 2. The buyer-spend model's TreeSHAP is exact on the mu scale. The
    purchase classifier's TreeSHAP is in logit units (z = its bias z0 + the features' contributions); each is scaled
    by the customer's secant slope of log P over the logit, (log P(z) - log P(z0)) / (z - z0) (positive: log P rises
    with z; its limit at z = z0 is d log P / d z = sigmoid x (1 - P)), so the scaled contributions sum exactly to
    log P - log P(z0) and keep their signs and their order within the classifier. The one approximation: a feature's
    share of the log-P move is its share of the logit move (log P is not linear in z). Summed per feature with the
    spend model's, the features' contributions add up to log forecast - the bias column, exactly (float rounding)."""
    rows = features.reset_index(drop=True)
    buy_matrix = model_matrix(rows, models.categories, models.extra_features)
    spend_matrix = model_matrix(rows, spend.categories, spend.extra_features)
    buy = contributions(models.buy_model, model_array(buy_matrix))
    on_mu = contributions(spend.booster, model_array(spend_matrix))
    sigmoid = _binary_sigmoid(models.buy_model)
    z0 = buy[:, -1]
    z = buy.sum(axis=1)  # TreeSHAP is additive: the features' contributions + the bias = the raw score
    log_p, log_p0 = -np.logaddexp(0.0, -sigmoid * z), -np.logaddexp(0.0, -sigmoid * z0)
    moved = np.abs(z - z0) > 1e-9
    slope = sigmoid * (1.0 - np.exp(log_p))  # the limit where the customer's logit is the bias
    slope[moved] = (log_p[moved] - log_p0[moved]) / (z[moved] - z0[moved])
    names = list(dict.fromkeys([*buy_matrix.columns, *spend_matrix.columns]))
    where = {name: i for i, name in enumerate(names)}
    combined = np.zeros((len(rows), len(names) + 1))
    combined[:, [where[name] for name in buy_matrix.columns]] += buy[:, :-1] * slope[:, None]
    combined[:, [where[name] for name in spend_matrix.columns]] += on_mu[:, :-1]
    combined[:, -1] = log_p0 + on_mu[:, -1] + spend.sigma2 / 2.0
    return combined, names


def hurdle_drivers(
    models: ClvModels, spend: BuyerSpendModel, features: pd.DataFrame, top_k_drivers: int = 3
) -> pd.api.extensions.ExtensionArray:
    """top_drivers of the hurdle forecast P(buy) x E[spend | buy] (hurdle_log_contributions, on the log scale as
    predict's top_drivers), as Arrow strings."""
    if len(features) == 0:
        return pd.Series(pa.array([], type=pa.string()), dtype="str").array
    contribution, names = hurdle_log_contributions(models, spend, features)
    return pd.Series(_top_drivers(contribution, names, top_k_drivers), dtype="str").array


def predict(models: ClvModels, features: pd.DataFrame, top_k_drivers: int = 3, explain: bool = True) -> pd.DataFrame:
    """One row per customer: predicted_clv (currency over the training horizon), purchase_propensity, top_drivers.

    top_drivers: JSON list of the features that move this customer's prediction most, with their LightGBM
    contribution on the value model's log scale. Empty list for the fallback.
    explain=False skips the contributions (the back-test needs none).
    """
    result = pd.DataFrame({"customer_id": features["customer_id"].to_numpy()})
    if models.fallback_reason is not None:
        result["predicted_clv"] = past_spend_rate(features, models.horizon_days) * models.fallback_spend_rate_factor
        result["purchase_propensity"] = models.fallback_buy_rate
        result["top_drivers"] = "[]"
        return result
    matrix = model_matrix(features.reset_index(drop=True), models.categories, models.extra_features)
    names = list(matrix.columns)
    matrix = model_array(matrix)  # converted once for both boosters and the explanations
    drivers, raw = _explain(models, matrix, top_k_drivers, names) if explain else (None, None)
    # The explanation walked every row through the value model's trees already: its value is read off the same
    # patterns (equal to LightGBM's predict) instead of a second walk by LightGBM.
    value = _output(_booster_patterns(models.value_model)[1], raw) if raw is not None else None
    value = _raw_value(models, matrix) if value is None else value
    result["predicted_clv"] = np.clip(value * models.calibration_factor, 0.0, None)
    result["purchase_propensity"] = np.clip(_best_predict(models.buy_model, matrix), 0.0, 1.0)
    result["top_drivers"] = drivers.array if drivers is not None else None  # the Arrow strings, not copied
    return result


def feature_importance(models: ClvModels) -> pd.Series:
    """Total gain per feature of the value model, as a share of the total, sorted descending."""
    booster = models.value_model
    if booster is None:
        return pd.Series(dtype=float, name="gain_share")
    iteration = booster.best_iteration or None
    gain = pd.Series(booster.feature_importance("gain", iteration=iteration), index=booster.feature_name())
    total = gain.sum()
    return (gain / total if total > 0 else gain).sort_values(ascending=False).rename("gain_share")


def holdout_mask(customer_ids: pd.Series, holdout_share: float) -> np.ndarray:
    """True for customers in the back-test hold-out: a stable hash of customer_id below holdout_share."""
    return _unit_hash(customer_ids, "holdout") < holdout_share
