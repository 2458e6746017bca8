"""Behavioural clusters of customers (KMeans, k chosen from the data) with quality numbers and profiles.

Input: `marts.customer_features` (one row per customer). Output: `ClusteringResult`, whose `labels` feed
`ml.behavioral_segments` (after `ml.archetypes.name_clusters`).

How it works, and why:
- Mode. Only customers with web events are clustered in the two event modes; customers without events get
  cluster NO_WEB_ACTIVITY_CLUSTER (-1), because all-zero behaviour is "unknown", not a behaviour.
  1. Behaviour mode (BEHAVIOUR_COLUMNS, segmint's vocabulary) when the shop's events map to it: at least
     MIN_MAPPED_COVERAGE of the clustered customers' events are mapped (config/event_mapping.yaml) and at least
     MIN_INFORMATIVE_COLUMNS event-based columns vary.
  2. Otherwise generic mode (GENERIC_COLUMNS): shares of the shop's own top event types, sessions, active days,
     device and time-of-day mix, which any vocabulary has.
  3. Purchase mode (PURCHASE_COLUMNS, everyone) only when (almost) nobody has events (fewer than
     MIN_BEHAVIOUR_CUSTOMERS or MIN_BEHAVIOUR_SHARE of the base) or no event columns carry signal.
  Which mode, and the mapped-event coverage, are in `notes` and the metadata.
- Scaling. Counts, money and day spans are heavy-tailed: log1p first; then everything is standardised so no
  feature dominates by its unit. Constant columns are dropped (they carry nothing and break z-scores).
- k. For every k in k_range a KMeans (fixed seed) is fitted on a sample of at most FIT_SAMPLE_SIZE customers;
  silhouette is measured on SILHOUETTE_SAMPLE_SIZE of them. Every k within SILHOUETTE_TOLERANCE of the best
  silhouette is a candidate; the candidate with the highest bootstrap stability wins (then the smaller k).
- Stability. n_bootstrap resamples (with replacement) of the fit sample; KMeans is re-fitted on each and its
  labels compared with the reference model's labels on the same rows by adjusted Rand index (ARI).
- Everyone is assigned with the reference model's `predict`, so a 1 M-customer base costs one fit on 50 k rows.
  Fit and assignment are separate (`fit_clusters` -> `FittedClusters`, `assign_clusters`): the assignment is a pure
  per-row function of the fitted model (gap fill, log, scaler and KMeans all fixed at fit time), so any chunk of the
  customers gets the labels the whole table would get. On SEGMINT_ENGINE=spark the fit runs on a bounded sample and
  Spark assigns every customer chunk by chunk (orchestration/lib/spark_segments.py); the profiles then come from
  per-chunk partial sums (`profile_partials` -> `profiles_from_partials`).
- Cadence. The fit (mode, columns, fills, scaler, KMeans and the choice of k) is the costly part; a caller may pin it
  and refit it on the model cadence (orchestration/defs/segments.py, ml/cadence.py), applying the pinned fit to
  each day's customers with `apply_clusters` (assignment and profiles only).
- Native code runs single-threaded (NATIVE_THREADS): predictable on a shared machine, see the constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, silhouette_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ml.feature_columns import BEHAVIOUR_SHARES, GENERIC_BEHAVIOUR, MAPPED_EVENT_SHARE

BEHAVIOUR_COLUMNS: tuple[str, ...] = (
    *BEHAVIOUR_SHARES,
    "discounted_order_share",
)
GENERIC_COLUMNS: tuple[str, ...] = GENERIC_BEHAVIOUR
PURCHASE_COLUMNS: tuple[str, ...] = (
    "recency_days",
    "order_count",
    "avg_order_value",
    "discounted_order_share",
    "mean_days_between_orders",
)
# Heavy-tailed, non-negative columns: log1p before standardising so a few extreme customers do not set the scale.
LOG_SCALED_COLUMNS = frozenset(
    {
        "product_views_per_active_day", "recency_days", "order_count", "avg_order_value", "mean_days_between_orders",
        "active_days", "sessions_per_active_day", "avg_session_minutes", "events_per_session",
    }
)  # fmt: skip

# Every customer_features column cluster_customers can look at: a caller reads these (those the table has) rather
# than the whole mart, whose other ~30 columns only cost memory (1 M customers: issue 18). Keep it in step with the
# columns read below: modes, the web-events test, the mapped-event coverage, the censored order gap.
INPUT_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            "customer_id",
            "has_web_events",
            "event_count",
            MAPPED_EVENT_SHARE,
            "tenure_days",
            *BEHAVIOUR_COLUMNS,
            *GENERIC_COLUMNS,
            *PURCHASE_COLUMNS,
        )
    )
)

BEHAVIOUR_MODE = "behaviour"
GENERIC_MODE = "generic"
PURCHASE_MODE = "purchase"
MODE_COLUMNS = {BEHAVIOUR_MODE: BEHAVIOUR_COLUMNS, GENERIC_MODE: GENERIC_COLUMNS, PURCHASE_MODE: PURCHASE_COLUMNS}
NO_WEB_ACTIVITY_CLUSTER = -1

MIN_BEHAVIOUR_CUSTOMERS = 50
MIN_BEHAVIOUR_SHARE = 0.05
MIN_INFORMATIVE_COLUMNS = 2
# The complement of the unmapped-events warning (landing/event_mapping.py UNMAPPED_WARN_SHARE = 20 %).
MIN_MAPPED_COVERAGE = 0.8
FIT_SAMPLE_SIZE = 50_000
SILHOUETTE_SAMPLE_SIZE = 5_000
STABILITY_SAMPLE_SIZE = 5_000
SILHOUETTE_TOLERANCE = 0.02
KMEANS_N_INIT = 4
# Native thread pools (OpenMP/BLAS) are held to one thread: on a busy machine (Dagster steps, dbt, tests side by
# side) OpenMP busy-waiting made KMeans 6-8x slower than single-threaded (measured: 18 s vs 2.4 s, 4 k customers).
NATIVE_THREADS = 1
DEFAULT_K_RANGE = range(3, 9)
MIN_BOOTSTRAP = 20

K_SCORE_COLUMNS = ["k", "silhouette", "davies_bouldin", "inertia", "stability_ari_mean", "is_candidate", "is_chosen"]
PROFILE_COLUMNS = ["cluster_id", "n_customers", "feature", "mean", "base_mean", "z_score"]


@dataclass(frozen=True)
class ClusteringResult:
    """Cluster labels (one row per input customer) plus how k was chosen, quality numbers and cluster profiles."""

    labels: pd.DataFrame  # customer_id, cluster_id (int; NO_WEB_ACTIVITY_CLUSTER = not clustered)
    k: int
    mode: str  # BEHAVIOUR_MODE | GENERIC_MODE | PURCHASE_MODE
    feature_columns: list[str]
    silhouette: float  # -1..1, higher = better separated; NaN when k < 2
    davies_bouldin: float  # >= 0, lower = better separated; NaN when k < 2
    stability_ari_mean: float  # 0..1 mean adjusted Rand index over bootstrap re-fits; NaN when k < 2
    k_scores: pd.DataFrame  # one row per k tried (K_SCORE_COLUMNS)
    profiles: pd.DataFrame  # long: one row per cluster x feature (PROFILE_COLUMNS), raw-unit means and z-scores
    notes: list[str] = field(default_factory=list)
    n_clustered: int = 0
    fit_sample_size: int = 0
    mapped_event_coverage: float = float("nan")  # share of the clustered customers' events that map; NaN: unknown

    def metadata(self) -> dict[str, float | int | str]:
        """Flat numbers and texts for asset metadata."""
        return {
            "mode": self.mode,
            "mapped_event_coverage": _round(self.mapped_event_coverage),
            "k": self.k,
            "silhouette": _round(self.silhouette),
            "davies_bouldin": _round(self.davies_bouldin),
            "stability_ari_mean": _round(self.stability_ari_mean),
            "n_clustered": self.n_clustered,
            "fit_sample_size": self.fit_sample_size,
            "feature_columns": ", ".join(self.feature_columns),
            "notes": " ".join(self.notes),
        }


@dataclass(frozen=True)
class FittedClusters:
    """Everything the assignment of a customer needs, fixed at fit time, plus how the fit chose k.

    Picklable and small (the KMeans centres and the scaler's two vectors): Spark ships it to every task."""

    mode: str
    feature_columns: list[str]
    fill_values: dict[str, float]  # per column: the value a missing one gets (median gap, else 0)
    scaler: StandardScaler | None  # None: nothing to scale (everyone clustered is in cluster 0)
    model: KMeans | None  # None: too few distinct customers, everyone clustered is in cluster 0
    k: int
    k_scores: pd.DataFrame
    notes: list[str]
    fit_sample_size: int
    mapped_event_coverage: float = float("nan")


def cluster_customers(
    features: pd.DataFrame,
    seed: int = 0,
    k_range: range = DEFAULT_K_RANGE,
    n_bootstrap: int = MIN_BOOTSTRAP,
) -> ClusteringResult:
    """Cluster customers on mapped or generic behaviour (purchase behaviour as a fallback); k from silhouette +
    stability. The result records the mode and the mapped-event coverage."""
    return apply_clusters(features, fit_clusters(features, seed, k_range, n_bootstrap))


def apply_clusters(features: pd.DataFrame, fitted: FittedClusters) -> ClusteringResult:
    """The ClusteringResult of a fit (made today, or pinned on the model cadence) applied to today's customers:
    every customer assigned (assign_clusters) and the profiles of today's clusters. cluster_customers is exactly
    fit_clusters then apply_clusters, so a refit day gives the same result as before the split."""
    labels = assign_clusters(features, fitted)
    cluster_ids = labels["cluster_id"].to_numpy()
    clustered = cluster_ids != NO_WEB_ACTIVITY_CLUSTER
    raw = prepare_raw_features(features.loc[clustered], fitted.feature_columns, fitted.fill_values)
    profiles = cluster_profiles(raw, cluster_ids[clustered])
    return clustering_result(fitted, labels, profiles, n_clustered=int(clustered.sum()))


def fit_clusters(
    features: pd.DataFrame,
    seed: int = 0,
    k_range: range = DEFAULT_K_RANGE,
    n_bootstrap: int = MIN_BOOTSTRAP,
) -> FittedClusters:
    """Mode, columns, gap fill, scaler and KMeans (k chosen from silhouette + stability), fitted on `features`."""
    fitted = _fit_clusters(features, seed, k_range, n_bootstrap)
    coverage = mapped_event_coverage(features.loc[_has_web_events(features)])
    return replace(fitted, mapped_event_coverage=coverage)


@threadpool_limits.wrap(limits=NATIVE_THREADS)
def assign_clusters(features: pd.DataFrame, fitted: FittedClusters) -> pd.DataFrame:
    """customer_id, cluster_id for every row of `features` (any chunk of the customers): the fitted model's cluster,
    NO_WEB_ACTIVITY_CLUSTER for customers without web events in the event modes. Row by row, so chunks of a table
    get exactly the labels of the whole table."""
    cluster_ids = np.full(len(features), NO_WEB_ACTIVITY_CLUSTER, dtype="int64")
    clustered = _clustered_mask(features, fitted.mode)
    if clustered.any():
        if fitted.model is None or fitted.scaler is None:
            cluster_ids[clustered] = 0
        else:
            raw = prepare_raw_features(features.loc[clustered], fitted.feature_columns, fitted.fill_values)
            cluster_ids[clustered] = fitted.model.predict(fitted.scaler.transform(_log_scaled(raw)))
    return pd.DataFrame({"customer_id": features["customer_id"].to_numpy(), "cluster_id": cluster_ids})


def clustering_result(
    fitted: FittedClusters, labels: pd.DataFrame, profiles: pd.DataFrame, n_clustered: int
) -> ClusteringResult:
    """The ClusteringResult of a fit, its labels and its profiles (both engines build theirs here)."""
    k_scores = fitted.k_scores
    chosen = k_scores[k_scores["is_chosen"]] if not k_scores.empty else k_scores
    metrics = chosen.iloc[0] if len(chosen) else None
    return ClusteringResult(
        labels=labels,
        k=fitted.k,
        mode=fitted.mode,
        feature_columns=fitted.feature_columns,
        silhouette=float(metrics["silhouette"]) if metrics is not None else np.nan,
        davies_bouldin=float(metrics["davies_bouldin"]) if metrics is not None else np.nan,
        stability_ari_mean=float(metrics["stability_ari_mean"]) if metrics is not None else np.nan,
        k_scores=k_scores.reset_index(drop=True),
        profiles=profiles,
        notes=list(fitted.notes),
        n_clustered=n_clustered,
        fit_sample_size=fitted.fit_sample_size,
        mapped_event_coverage=fitted.mapped_event_coverage,
    )


@threadpool_limits.wrap(limits=NATIVE_THREADS)
def _fit_clusters(features: pd.DataFrame, seed: int, k_range: range, n_bootstrap: int) -> FittedClusters:
    notes: list[str] = []
    mode, clustered_mask = choose_mode(features, notes)
    candidate_columns = list(MODE_COLUMNS[mode])
    clustered = features.loc[clustered_mask]
    fill_values = raw_fill_values(clustered, candidate_columns)
    raw = prepare_raw_features(clustered, candidate_columns, fill_values)
    feature_columns = [column for column in candidate_columns if raw[column].std(ddof=0) > 0]
    dropped = sorted(set(candidate_columns) - set(feature_columns))
    if dropped:
        notes.append(f"Dropped columns with no variation: {', '.join(dropped)}.")
    fill_values = {column: fill_values[column] for column in feature_columns}

    transformed = _log_scaled(raw[feature_columns])
    scaler = StandardScaler().fit(transformed) if len(transformed) and feature_columns else None
    matrix = scaler.transform(transformed) if scaler is not None else np.zeros((len(raw), len(feature_columns)))
    n_distinct = len(np.unique(matrix, axis=0)) if len(matrix) else 0
    usable_k = [k for k in k_range if 2 <= k < n_distinct]
    if not usable_k or not feature_columns:
        notes.append(
            f"Too few distinct customers ({n_distinct}) for k in {list(k_range)}: everyone clustered is in cluster 0."
        )
        return FittedClusters(mode, feature_columns, fill_values, None, None, 1, _empty_k_scores(), notes, 0)

    rng = np.random.default_rng(seed)
    fit_rows = _sample_rows(len(matrix), FIT_SAMPLE_SIZE, rng)
    fit_matrix = matrix[fit_rows]
    if len(fit_rows) < len(matrix):
        notes.append(f"Fitted on a random sample of {len(fit_rows):,} of {len(matrix):,} customers; all were assigned.")
    models, k_scores = _score_k_range(fit_matrix, usable_k, seed)
    chosen_k = _choose_k(k_scores, models, fit_matrix, seed, n_bootstrap)
    k_scores["is_chosen"] = k_scores["k"] == chosen_k
    notes.append(_k_choice_note(k_scores, chosen_k))
    return FittedClusters(
        mode, feature_columns, fill_values, scaler, models[chosen_k], chosen_k, k_scores, notes, len(fit_rows)
    )


def _clustered_mask(features: pd.DataFrame, mode: str) -> np.ndarray:
    """Who is clustered: everyone in purchase mode, customers with web events in the event modes (choose_mode)."""
    if mode == PURCHASE_MODE:
        return np.ones(len(features), dtype=bool)
    return _has_web_events(features)


def choose_mode(features: pd.DataFrame, notes: list[str]) -> tuple[str, np.ndarray]:
    """Behaviour mode when the events map to segmint's vocabulary, generic mode when they do not, purchase mode
    when there are (almost) no events or none of the event columns vary."""
    has_events = _has_web_events(features)
    n_with_events = int(has_events.sum())
    everyone = np.ones(len(features), dtype=bool)
    enough = n_with_events >= MIN_BEHAVIOUR_CUSTOMERS and n_with_events >= MIN_BEHAVIOUR_SHARE * len(features)
    if not enough:
        notes.append(
            f"Purchase mode: only {n_with_events:,} of {len(features):,} customers have web events "
            f"(need {MIN_BEHAVIOUR_CUSTOMERS} and {MIN_BEHAVIOUR_SHARE:.0%}); clustered on orders only."
        )
        return PURCHASE_MODE, everyone
    with_events = features.loc[has_events]
    clustered_note = (
        f"{n_with_events:,} of {len(features):,} customers have web events and were clustered; "
        f"the other {len(features) - n_with_events:,} get cluster {NO_WEB_ACTIVITY_CLUSTER} (no web activity)."
    )
    coverage = mapped_event_coverage(with_events)
    coverage_text = "unknown" if np.isnan(coverage) else f"{coverage:.0%}"
    # discounted_order_share comes from orders; web signal needs at least two varying event-based columns.
    event_columns = [column for column in BEHAVIOUR_COLUMNS if column != "discounted_order_share"]
    mapped_signal = _informative_columns(with_events, list(BEHAVIOUR_COLUMNS), event_columns)
    if (np.isnan(coverage) or coverage >= MIN_MAPPED_COVERAGE) and mapped_signal >= MIN_INFORMATIVE_COLUMNS:
        notes.append(f"Behaviour mode (mapped events: {coverage_text}): {clustered_note}")
        return BEHAVIOUR_MODE, has_events
    generic_signal = _informative_columns(with_events, list(GENERIC_COLUMNS), list(GENERIC_COLUMNS))
    if generic_signal >= MIN_INFORMATIVE_COLUMNS:
        why = (
            f"only {coverage_text} of the events map to segmint's vocabulary (need {MIN_MAPPED_COVERAGE:.0%})"
            if not np.isnan(coverage) and coverage < MIN_MAPPED_COVERAGE
            else "the mapped behaviour columns do not vary"
        )
        notes.append(
            f"Generic mode: {why}, so customers are clustered on their mix of the shop's own event types, "
            f"sessions, active days, device and time of day. {clustered_note}"
        )
        return GENERIC_MODE, has_events
    notes.append(
        "Purchase mode: web events exist but the behaviour columns do not vary "
        "(event names probably differ from the expected vocabulary); clustered on orders only."
    )
    return PURCHASE_MODE, everyone


def mapped_event_coverage(features: pd.DataFrame) -> float:
    """Share of these customers' events that map to segmint's vocabulary (event-weighted); NaN when unknown."""
    if MAPPED_EVENT_SHARE not in features.columns or "event_count" not in features.columns:
        return float("nan")
    events = pd.to_numeric(features["event_count"], errors="coerce").fillna(0.0).astype(float)
    mapped = pd.to_numeric(features[MAPPED_EVENT_SHARE], errors="coerce").fillna(0.0).astype(float) * events
    return float(mapped.sum() / events.sum()) if events.sum() > 0 else float("nan")


def _informative_columns(features: pd.DataFrame, columns: list[str], counted: list[str]) -> int:
    """How many of `counted` vary among these customers; 0 when any of `columns` is missing."""
    if any(column not in features.columns for column in columns):
        return 0
    raw = prepare_raw_features(features, columns)
    return int((raw[counted].std(ddof=0) > 0).sum())


def raw_fill_values(frame: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    """The value a missing feature gets: the median gap for mean_days_between_orders (after the tenure fill), else 0."""
    fills = {}
    for column in columns:
        fill_value = _gap_filled(frame, column).median() if column == "mean_days_between_orders" else 0.0
        fills[column] = 0.0 if pd.isna(fill_value) else float(fill_value)
    return fills


def prepare_raw_features(
    frame: pd.DataFrame, columns: list[str], fill_values: dict[str, float] | None = None
) -> pd.DataFrame:
    """Feature values in their own units with gaps filled: the values profiles describe (before log and scaling).

    `fill_values` (raw_fill_values of the fitted customers) keeps a chunk's fill equal to the whole table's; by
    default they are computed from `frame` itself."""
    fills = fill_values if fill_values is not None else raw_fill_values(frame, columns)
    raw = pd.DataFrame(index=frame.index)
    for column in columns:
        raw[column] = _gap_filled(frame, column).fillna(fills[column])
    return raw


def _gap_filled(frame: pd.DataFrame, column: str) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    if column == "mean_days_between_orders" and "tenure_days" in frame.columns:
        # One-order customers have no gap (NULL): their gap is at least their tenure (censored), not 0,
        # which would make them look like the most frequent buyers.
        values = values.fillna(pd.to_numeric(frame["tenure_days"], errors="coerce").astype(float))
    return values


def _has_web_events(features: pd.DataFrame) -> np.ndarray:
    if "has_web_events" in features.columns:
        return features["has_web_events"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if "event_count" in features.columns:
        return (pd.to_numeric(features["event_count"], errors="coerce").fillna(0) > 0).to_numpy()
    return np.zeros(len(features), dtype=bool)


def _log_scaled(raw: pd.DataFrame) -> np.ndarray:
    """Heavy-tailed columns through log1p (the step before standardising)."""
    transformed = raw.copy()
    for column in transformed.columns:
        if column in LOG_SCALED_COLUMNS:
            transformed[column] = np.log1p(transformed[column].clip(lower=0))
    return transformed.to_numpy()


def _sample_rows(count: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    if count <= limit:
        return np.arange(count)
    return np.sort(rng.choice(count, size=limit, replace=False))


def _kmeans(k: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed)


def _score_k_range(matrix: np.ndarray, ks: list[int], seed: int) -> tuple[dict[int, KMeans], pd.DataFrame]:
    models: dict[int, KMeans] = {}
    rows = []
    silhouette_size = min(SILHOUETTE_SAMPLE_SIZE, len(matrix))
    for k in ks:
        model = _kmeans(k, seed).fit(matrix)
        models[k] = model
        rows.append(
            {
                "k": k,
                "silhouette": float(
                    silhouette_score(matrix, model.labels_, sample_size=silhouette_size, random_state=seed)
                ),
                "davies_bouldin": float(davies_bouldin_score(matrix, model.labels_)),
                "inertia": float(model.inertia_),
                "stability_ari_mean": np.nan,
                "is_candidate": False,
                "is_chosen": False,
            }
        )
    return models, pd.DataFrame(rows, columns=K_SCORE_COLUMNS)


def _choose_k(
    k_scores: pd.DataFrame, models: dict[int, KMeans], matrix: np.ndarray, seed: int, n_bootstrap: int
) -> int:
    """Highest stability among ks within SILHOUETTE_TOLERANCE of the best silhouette; ties -> smaller k."""
    best = k_scores["silhouette"].max()
    k_scores["is_candidate"] = k_scores["silhouette"] >= best - SILHOUETTE_TOLERANCE
    for position in k_scores.index[k_scores["is_candidate"]]:
        k = int(k_scores.at[position, "k"])
        k_scores.at[position, "stability_ari_mean"] = bootstrap_stability(models[k], matrix, seed, n_bootstrap)
    candidates = k_scores[k_scores["is_candidate"]].sort_values(
        ["stability_ari_mean", "k"], ascending=[False, True], kind="stable"
    )
    return int(candidates.iloc[0]["k"])


@threadpool_limits.wrap(limits=NATIVE_THREADS)
def bootstrap_stability(reference: KMeans, matrix: np.ndarray, seed: int, n_bootstrap: int = MIN_BOOTSTRAP) -> float:
    """Mean ARI between the reference model and KMeans re-fitted on bootstrap resamples, on the resampled rows."""
    rng = np.random.default_rng(seed + 1)
    size = min(len(matrix), STABILITY_SAMPLE_SIZE)
    scores = []
    for replicate in range(n_bootstrap):
        rows = rng.choice(len(matrix), size=size, replace=True)
        resample = matrix[rows]
        refit = _kmeans(reference.n_clusters, seed + 1 + replicate).fit(resample)
        scores.append(adjusted_rand_score(reference.predict(resample), refit.labels_))
    return float(np.mean(scores))


def cluster_profiles(raw: pd.DataFrame, cluster_ids: np.ndarray) -> pd.DataFrame:
    """Long table, one row per cluster x feature: mean in raw units, base mean and z-score vs the clustered base."""
    if raw.empty or raw.shape[1] == 0:
        return pd.DataFrame(columns=PROFILE_COLUMNS)
    grouped = raw.groupby(cluster_ids)
    return _profile_table(grouped.mean(), grouped.size(), raw.mean(), raw.std(ddof=0))


PARTIAL_COLUMNS = ["cluster_id", "feature", "n", "total", "m2"]


def profile_partials(raw: pd.DataFrame, cluster_ids: np.ndarray) -> pd.DataFrame:
    """One chunk's contribution to the profiles: per cluster x feature the count, the sum and the sum of squared
    deviations from the chunk's cluster mean (m2). `profiles_from_partials` merges any number of them."""
    if raw.empty or raw.shape[1] == 0:
        return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in _PARTIAL_DTYPES.items()})
    grouped = raw.groupby(cluster_ids)
    sizes = grouped.size()
    partial = grouped.sum().stack().rename("total").to_frame()
    partial["m2"] = (grouped.var(ddof=0).fillna(0.0).mul(sizes, axis=0)).stack()
    partial = partial.reset_index(names=["cluster_id", "feature"])
    partial["n"] = partial["cluster_id"].map(sizes)
    return partial[PARTIAL_COLUMNS].astype(_PARTIAL_DTYPES).reset_index(drop=True)


_PARTIAL_DTYPES = {"cluster_id": "int64", "feature": "object", "n": "int64", "total": "float64", "m2": "float64"}


def profiles_from_partials(partials: pd.DataFrame) -> pd.DataFrame:
    """cluster_profiles of the whole table from its chunks' profile_partials (Chan et al.'s pairwise merge of
    count, mean and m2, so the spread is exact without a second pass and without the whole table in one place)."""
    if partials.empty:
        return pd.DataFrame(columns=PROFILE_COLUMNS)
    features = list(dict.fromkeys(partials["feature"]))  # the fitted column order, as cluster_profiles keeps it
    clusters = _merge_moments(partials, ["cluster_id", "feature"])
    base = _merge_moments(clusters.reset_index(), ["feature"])
    means = (clusters["total"] / clusters["n"]).unstack("feature")[features]
    sizes = clusters["n"].groupby(level="cluster_id").first()
    base_mean = base["total"] / base["n"]
    base_std = np.sqrt(base["m2"] / base["n"])
    return _profile_table(means, sizes, base_mean, base_std)


def _merge_moments(partials: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Merge (n, total, m2) rows sharing `keys`: m2 = sum of m2 + sum of n * (part mean - merged mean)^2."""
    frame = partials.assign(part_mean=partials["total"] / partials["n"])
    merged = frame.groupby(keys)[["n", "total"]].sum()
    merged_mean = (merged["total"] / merged["n"]).rename("merged_mean")
    frame = frame.join(merged_mean, on=keys)
    frame["spread"] = frame["m2"] + frame["n"] * (frame["part_mean"] - frame["merged_mean"]) ** 2
    merged["m2"] = frame.groupby(keys)["spread"].sum()
    return merged


def _profile_table(means: pd.DataFrame, sizes: pd.Series, base_mean: pd.Series, base_std: pd.Series) -> pd.DataFrame:
    """PROFILE_COLUMNS from per-cluster means (cluster x feature), sizes and the clustered base's mean and spread."""
    base_std = base_std.replace(0.0, np.nan)
    z_scores = (means - base_mean) / base_std
    profile = means.stack().rename("mean").to_frame()
    profile["z_score"] = z_scores.stack()
    profile = profile.reset_index(names=["cluster_id", "feature"])
    profile["base_mean"] = profile["feature"].map(base_mean)
    profile["n_customers"] = profile["cluster_id"].map(sizes).astype("int64")
    profile["cluster_id"] = profile["cluster_id"].astype("int64")
    return profile[PROFILE_COLUMNS].reset_index(drop=True)


def profile_matrix(profiles: pd.DataFrame, value: str = "z_score") -> pd.DataFrame:
    """Wide view of profiles: one row per cluster_id, one column per feature (z-scores by default)."""
    return profiles.pivot(index="cluster_id", columns="feature", values=value)


def _k_choice_note(k_scores: pd.DataFrame, chosen_k: int) -> str:
    candidates = k_scores[k_scores["is_candidate"]]
    chosen = k_scores[k_scores["k"] == chosen_k].iloc[0]
    if len(candidates) == 1:
        return f"k={chosen_k}: best silhouette ({chosen['silhouette']:.3f}) of k in {k_scores['k'].tolist()}."
    return (
        f"k={chosen_k}: most stable (ARI {chosen['stability_ari_mean']:.3f}) of the ks within "
        f"{SILHOUETTE_TOLERANCE} of the best silhouette ({candidates['k'].tolist()})."
    )


def _empty_k_scores() -> pd.DataFrame:
    return pd.DataFrame(columns=K_SCORE_COLUMNS)


def _round(value: float) -> float:
    return float(round(value, 4)) if pd.notna(value) else float("nan")
