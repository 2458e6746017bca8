"""Deterministic, unique names for behavioural clusters, read off their profiles (z-scores vs the clustered base).

Rule, in order:
1. Each archetype has a signature: features with a direction (+1 high, -1 low). A cluster's match score for
   an archetype is the mean of direction x z-score over the signature features it has.
2. A cluster may take an archetype's name only when that score is >= ARCHETYPE_MIN_SCORE. Among eligible
   pairs, names are assigned by the Hungarian method (maximum total match), so one archetype names at most
   one cluster and each cluster gets at most one archetype.
3. Clusters left over get a descriptive name from their largest z-scores ("High sale share, little
   research"); duplicates get more features, then the cluster id, so names are always unique.
Behaviour mode uses the five seed archetypes, and only archetypes with at least one event-based signature
feature in the profile (a mapped feature that supports them); purchase mode (orders only) uses
PURCHASE_ARCHETYPES. Generic mode (the shop's events do not map to segmint's vocabulary) names no archetype:
clusters are named from their most distinguishing event types ("Many cart events, few catalog events"), with
`feature_labels` giving the shop's event name behind each event_type_share_<rank> column (marts.top_event_types);
sessions, device and time of day fill in when no event type stands out.
Customers who were not clustered (cluster NO_WEB_ACTIVITY_CLUSTER) are `No Web Activity`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from ml.clustering import (
    BEHAVIOUR_MODE,
    GENERIC_MODE,
    NO_WEB_ACTIVITY_CLUSTER,
    PURCHASE_COLUMNS,
    PURCHASE_MODE,
    profile_matrix,
)
from ml.feature_columns import EVENT_TYPE_SHARES

NO_WEB_ACTIVITY = "No Web Activity"
ARCHETYPE_MIN_SCORE = 0.5  # mean signed z-score: half a standard deviation in the signature direction
DESCRIPTIVE_MIN_ABS_Z = 0.3  # weaker differences are not worth naming a cluster after
DESCRIPTIVE_FEATURES = 2
SEGMENT_OUTPUT_COLUMNS = ["customer_id", "cluster_id", "behavioral_segment"]


@dataclass(frozen=True)
class Archetype:
    """A named behaviour pattern: signature features and their direction (+1 high, -1 low)."""

    name: str
    signature: dict[str, int]
    description: str


BEHAVIOUR_ARCHETYPES: tuple[Archetype, ...] = (
    Archetype(
        "High-Intent Researchers",
        {"product_views_per_active_day": 1, "research_share": 1},
        "view many product pages and read reviews and comparisons",
    ),
    Archetype(
        "Discount Seekers",
        {"sale_share": 1, "discount_event_share": 1, "shipping_abandon_rate": 1, "discounted_order_share": 1},
        "browse the sale section, use discount codes and drop out when shipping costs appear",
    ),
    Archetype("Brand-Focused Explorers", {"brand_share": 1}, "read about-us and brand pages"),
    Archetype("Visual Browsers", {"visual_share": 1}, "open galleries and play product videos"),
    Archetype("Urgency-Driven Buyers", {"urgency_share": 1}, "respond to countdowns and low-stock notices"),
)

PURCHASE_ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("Frequent high spenders", {"order_count": 1, "avg_order_value": 1}, "many orders with big baskets"),
    Archetype("Loyal regulars", {"order_count": 1, "recency_days": -1}, "many orders, the last one recent"),
    Archetype("Deal-driven buyers", {"discounted_order_share": 1}, "most orders use a discount"),
    Archetype("Big-basket one-timers", {"avg_order_value": 1, "order_count": -1}, "few orders, but big ones"),
    Archetype("Lapsed buyers", {"recency_days": 1}, "no order for a long time"),
    Archetype("Recent first-timers", {"recency_days": -1, "order_count": -1}, "one recent order so far"),
)

# How each feature reads in a name when the cluster is (high, low) on it.
FEATURE_PHRASES: dict[str, tuple[str, str]] = {
    "product_views_per_active_day": ("deep product browsing", "shallow product browsing"),
    "research_share": ("heavy research", "little research"),
    "sale_share": ("high sale share", "low sale share"),
    "discount_event_share": ("frequent discount codes", "rare discount codes"),
    "shipping_abandon_rate": ("shipping-cost drop-outs", "few shipping drop-outs"),
    "brand_share": ("brand-page reading", "little brand reading"),
    "visual_share": ("gallery and video use", "little gallery use"),
    "urgency_share": ("urgency responsive", "urgency indifferent"),
    "discounted_order_share": ("mostly discounted orders", "full-price orders"),
    "recency_days": ("long since last order", "recent order"),
    "order_count": ("many orders", "few orders"),
    "avg_order_value": ("big baskets", "small baskets"),
    "mean_days_between_orders": ("long gaps between orders", "short gaps between orders"),
    "active_days": ("many active days", "few active days"),
    "sessions_per_active_day": ("several sessions a day", "one session a day"),
    "avg_session_minutes": ("long sessions", "short sessions"),
    "events_per_session": ("busy sessions", "light sessions"),
    "mobile_share": ("mostly mobile", "rarely mobile"),
    "tablet_share": ("tablet users", "rarely on tablet"),
    "desktop_share": ("mostly desktop", "rarely desktop"),
    "night_share": ("night visits", "few night visits"),
    "morning_share": ("morning visits", "few morning visits"),
    "afternoon_share": ("afternoon visits", "few afternoon visits"),
    "evening_share": ("evening visits", "few evening visits"),
}


def name_clusters(
    profiles: pd.DataFrame,
    mode: str | None = None,
    feature_labels: dict[str, str] | None = None,
    n_clusters: int = 0,
) -> dict[int, str]:
    """Unique name per cluster_id from its profile z-scores; mode is inferred from the features when None.

    `feature_labels`: the shop's event name per event_type_share_<rank> column (generic mode names use them).
    `n_clusters`: the fit's k; clusters 0..k-1 without a profile get the fallback name (unprofiled_cluster_names).
    """
    names = _profiled_cluster_names(profiles, mode, feature_labels)
    return names | unprofiled_cluster_names(names, n_clusters, mode)


def unprofiled_cluster_names(names: dict[int, str], n_clusters: int, mode: str | None) -> dict[int, str]:
    """The fallback name for clusters 0..n_clusters-1 that `names` lacks.

    A fit on customers none of whose features vary (one customer; every customer with one order of the same
    amount) keeps no feature columns, so its one cluster has no profile to name it from: it is the average."""
    return {cluster_id: _fallback_name(mode) for cluster_id in range(n_clusters) if cluster_id not in names}


def _profiled_cluster_names(
    profiles: pd.DataFrame, mode: str | None, feature_labels: dict[str, str] | None
) -> dict[int, str]:
    if profiles.empty:
        return {}
    z_scores = profile_matrix(profiles).sort_index()
    if mode is None:
        mode = _infer_mode(set(z_scores.columns))
    if mode == GENERIC_MODE:
        names: dict[int, str] = {}  # no mapped features: no archetype is supported
    else:
        archetypes = PURCHASE_ARCHETYPES if mode == PURCHASE_MODE else BEHAVIOUR_ARCHETYPES
        purchase = mode == PURCHASE_MODE
        scores = archetype_match_scores(
            z_scores, archetypes, require_events=not purchase, require_every_feature=purchase
        )
        names = assign_archetypes(scores)
    taken = set(names.values())
    for cluster_id in z_scores.index:
        if cluster_id not in names:
            names[cluster_id] = _unique_descriptive_name(
                z_scores.loc[cluster_id], cluster_id, taken, mode, feature_labels or {}
            )
            taken.add(names[cluster_id])
    return {int(cluster_id): names[cluster_id] for cluster_id in z_scores.index}


def _infer_mode(features: set[str]) -> str:
    if features <= set(PURCHASE_COLUMNS):
        return PURCHASE_MODE
    if features & set(EVENT_TYPE_SHARES):
        return GENERIC_MODE
    return BEHAVIOUR_MODE


def archetype_match_scores(
    z_scores: pd.DataFrame,
    archetypes: tuple[Archetype, ...],
    require_events: bool = False,
    require_every_feature: bool = False,
) -> pd.DataFrame:
    """One row per cluster, one column per archetype name: mean signed z-score of its signature features.

    `require_events`: an archetype needs at least one event-based (not order-based) signature feature in the
    profile, so a behaviour name is never given on order columns alone.
    `require_every_feature`: an archetype needs all its signature features in the profile (purchase mode: every
    order column is profiled unless the shop's customers do not differ on it, and then a claim such as "many
    orders" holds for no cluster; a shop where everyone ordered once had its most recent buyers named "Loyal
    regulars" on recency alone).
    """
    scores = {}
    for archetype in archetypes:
        present = [feature for feature in archetype.signature if feature in z_scores.columns]
        if require_events and not [feature for feature in present if feature not in PURCHASE_COLUMNS]:
            present = []
        if require_every_feature and len(present) < len(archetype.signature):
            present = []
        if not present:
            scores[archetype.name] = pd.Series(-np.inf, index=z_scores.index)
            continue
        directions = pd.Series({feature: archetype.signature[feature] for feature in present})
        scores[archetype.name] = z_scores[present].fillna(0.0).mul(directions, axis=1).mean(axis=1)
    return pd.DataFrame(scores, index=z_scores.index)


def assign_archetypes(match_scores: pd.DataFrame) -> dict[int, str]:
    """Hungarian assignment of archetype names to clusters, only for pairs scoring >= ARCHETYPE_MIN_SCORE."""
    eligible = match_scores.to_numpy() >= ARCHETYPE_MIN_SCORE
    if not eligible.any():
        return {}
    # Ineligible pairs cost far more than any eligible one, so they are only chosen when nothing else is left.
    cost = np.where(eligible, -match_scores.to_numpy(), 1e6)
    rows, columns = linear_sum_assignment(cost)
    return {
        match_scores.index[row]: match_scores.columns[column]
        for row, column in zip(rows, columns, strict=True)
        if eligible[row, column]
    }


def describe_cluster(
    z_scores: pd.Series,
    n_features: int = DESCRIPTIVE_FEATURES,
    feature_labels: dict[str, str] | None = None,
    prefer: frozenset[str] = frozenset(),
) -> str:
    """Name from the features furthest from the base ("High sale share, little research"); ties by feature name.

    Features in `prefer` (the event-type shares in generic mode) come first, the others fill in.
    """
    ranked = z_scores.dropna()
    ranked = ranked[ranked.abs() >= DESCRIPTIVE_MIN_ABS_Z]
    order = sorted(ranked.index, key=lambda feature: (feature not in prefer, -abs(ranked[feature]), feature))[
        :n_features
    ]
    phrases = [_phrase(feature, ranked[feature], feature_labels or {}) for feature in order]
    if not phrases:
        return ""
    text = ", ".join(phrases)
    return text[0].upper() + text[1:]


def label_segments(labels: pd.DataFrame, names: dict[int, str]) -> pd.DataFrame:
    """`ml.behavioral_segments`: one row per customer with cluster_id and its name (`No Web Activity` for -1)."""
    segment_names = {**names, NO_WEB_ACTIVITY_CLUSTER: NO_WEB_ACTIVITY}
    segments = labels[["customer_id", "cluster_id"]].copy()
    segments["behavioral_segment"] = segments["cluster_id"].map(segment_names)
    unnamed = segments["behavioral_segment"].isna()
    if unnamed.any():
        missing = sorted(segments.loc[unnamed, "cluster_id"].unique().tolist())
        raise ValueError(f"clusters without a name: {missing}")
    return segments[SEGMENT_OUTPUT_COLUMNS]


def archetype_descriptions() -> dict[str, str]:
    """Plain-words meaning of every archetype name (for reports)."""
    return {archetype.name: archetype.description for archetype in (*BEHAVIOUR_ARCHETYPES, *PURCHASE_ARCHETYPES)} | {
        NO_WEB_ACTIVITY: "customers with orders but no tracked web visits"
    }


def _fallback_name(mode: str | None) -> str:
    """The name of a cluster with nothing notable (None: no features, so purchase mode)."""
    return "Average buyers" if mode in (None, PURCHASE_MODE) else "Average browsers"


def _unique_descriptive_name(
    z_scores: pd.Series, cluster_id: int, taken: set[str], mode: str, feature_labels: dict[str, str]
) -> str:
    fallback = _fallback_name(mode)
    prefer = frozenset(EVENT_TYPE_SHARES) if mode == GENERIC_MODE else frozenset()
    for n_features in range(DESCRIPTIVE_FEATURES, max(DESCRIPTIVE_FEATURES, len(z_scores)) + 1):
        name = describe_cluster(z_scores, n_features, feature_labels, prefer) or fallback
        if name not in taken:
            return name
    name = describe_cluster(z_scores, feature_labels=feature_labels, prefer=prefer) or fallback
    return f"{name} (cluster {cluster_id})"


def _phrase(feature: str, z_score: float, feature_labels: dict[str, str]) -> str:
    if feature in EVENT_TYPE_SHARES:
        # The shop's own event name: "many cart events" / "few catalog events".
        label = feature_labels.get(feature, feature.replace("event_type_share_", "event type #"))
        return f"many {label} events" if z_score > 0 else f"few {label} events"
    high, low = FEATURE_PHRASES.get(feature, (f"high {feature}", f"low {feature}"))
    return high if z_score > 0 else low
