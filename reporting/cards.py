"""Segment cards: one card per segment with size, value, defining attributes and the playbook's strategy.

Inputs: `marts.customer_scores` (one row per customer; the segment column, `predicted_clv`, `total_revenue`)
and `marts.customer_features` (one row per customer; attribute columns). The playbook is the parsed
`config/playbook.yaml` (see `load_playbook`).

Defining attributes are the ATTRIBUTE_COLUMNS with the largest standardized mean difference (SMD) between
the segment and the whole base: (segment mean - base mean) / base standard deviation. Only |SMD| >=
MIN_ABS_SMD (a "small" effect in Cohen's terms) is shown, at most MAX_DEFINING_ATTRIBUTES.

A card is actionable when the segment has at least `min_customers` customers AND at least
`min_share_of_customers` of the base (playbook `actionability`) AND its own playbook entry: the default
strategy is a placeholder, not a strategy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from landing.special_categories import Denylist, find_special_category, load_denylist

MIN_ABS_SMD = 0.2
MAX_DEFINING_ATTRIBUTES = 4
DEFAULT_MIN_CUSTOMERS = 50
DEFAULT_MIN_SHARE = 0.02
PLAYBOOK_FIELDS = ("strategy", "channel", "creative_angle")
STRATEGY_FROM_PLAYBOOK = "playbook"
STRATEGY_FROM_DEFAULT = "default"

# feature -> (label a marketer reads, unit used to format values)
ATTRIBUTE_COLUMNS: dict[str, tuple[str, str]] = {
    "recency_days": ("Days since last order", "days"),
    "order_count": ("Orders", "count"),
    "avg_order_value": ("Average order value", "money"),
    "total_revenue": ("Lifetime revenue", "money"),
    "tenure_days": ("Days since first order", "days"),
    "discounted_order_share": ("Orders with a discount", "percent"),
    "refund_count": ("Refunds", "count"),
    "event_count": ("Tracked web events", "count"),
    "product_views_per_active_day": ("Product pages viewed per active day", "count"),
    "research_share": ("Share of visits spent on reviews and comparisons", "percent"),
    "sale_share": ("Share of visits in the sale section", "percent"),
    "discount_event_share": ("Share of events that apply a discount code", "percent"),
    "shipping_abandon_rate": ("Checkouts abandoned once shipping is shown", "percent"),
    "brand_share": ("Share of visits on about-us and brand pages", "percent"),
    "visual_share": ("Share of visits on galleries and videos", "percent"),
    "urgency_share": ("Share of events on countdowns and low-stock notices", "percent"),
}


# What the cards read of `marts.customer_scores` besides customer_id and the segment columns (`_card_base`).
SCORE_COLUMNS = ("predicted_clv", "total_revenue")


@dataclass(frozen=True)
class DefiningAttribute:
    """One attribute where the segment differs from the whole base, with the numbers and a readable sentence."""

    feature: str
    label: str
    segment_mean: float
    base_mean: float
    standardized_difference: float  # (segment mean - base mean) / base standard deviation
    text: str


@dataclass(frozen=True)
class SegmentCard:
    """Everything a marketer needs about one segment: who, how many, how valuable, what to do."""

    segment_column: str
    name: str
    size: int
    share_of_customers: float  # 0..1
    share_of_revenue: float  # 0..1 of total net revenue; NaN when revenue is unknown
    mean_predicted_clv: float  # NaN when no CLV predictions were given
    defining_attributes: tuple[DefiningAttribute, ...]
    strategy: str
    channel: str
    creative_angle: str
    strategy_source: str  # STRATEGY_FROM_PLAYBOOK | STRATEGY_FROM_DEFAULT
    is_actionable: bool
    actionability_reason: str


def load_playbook(path: str | Path) -> dict[str, Any]:
    """Parse and validate the playbook YAML (a `version`, a complete `default`, a `segments` mapping)."""
    playbook = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    problems = playbook_problems(playbook)
    if problems:
        raise ValueError(f"invalid playbook {path}: " + "; ".join(problems))
    return playbook


def playbook_problems(playbook: Any, denylist: Denylist | None = None) -> list[str]:
    """Human-readable problems with a parsed playbook; empty when it is usable.

    A segment name or strategy field naming special-category data (GDPR art. 9, `denylist`; None: the shipped
    config/special_categories.yaml) is a problem: a playbook must not target people on it.
    """
    if not isinstance(playbook, dict):
        return ["the file is not a mapping"]
    problems = []
    if "version" not in playbook:
        problems.append("missing `version`")
    default = playbook.get("default")
    if not isinstance(default, dict) or any(not default.get(name) for name in PLAYBOOK_FIELDS):
        problems.append(f"`default` needs {', '.join(PLAYBOOK_FIELDS)}")
    segments = playbook.get("segments", {})
    if not isinstance(segments, dict):
        problems.append("`segments` must map segment names to entries")
        return problems
    for name, entry in segments.items():
        missing = [field for field in PLAYBOOK_FIELDS if not isinstance(entry, dict) or not entry.get(field)]
        if missing:
            problems.append(f"segment {name!r} lacks {', '.join(missing)}")
    problems += _special_category_problems(playbook, denylist or load_denylist())
    return problems


def _special_category_problems(playbook: dict[str, Any], denylist: Denylist) -> list[str]:
    """`segments.<name>.<field> names '<word>' ...` for every playbook text that names special-category data."""
    texts: list[tuple[str, str]] = []
    if isinstance(playbook.get("default"), dict):
        texts += [(f"default.{key}", str(value)) for key, value in playbook["default"].items()]
    for name, entry in (playbook.get("segments") or {}).items():
        texts.append((f"segments.{name!r} (name)", str(name)))
        if isinstance(entry, dict):
            texts += [(f"segments.{name!r}.{key}", str(value)) for key, value in entry.items()]
    problems = []
    for where, text in texts:
        found = find_special_category(text, denylist)
        if found is not None:
            problems.append(
                f"{where} names '{found[0]}', special-category data ({found[1]}, GDPR art. 9) never targeted on"
            )
    return problems


def build_cards_by_kind(
    scores: pd.DataFrame, features: pd.DataFrame, segment_columns: dict[str, str], playbook: dict[str, Any]
) -> dict[str, list[SegmentCard]]:
    """build_segment_cards for each kind -> segment column, on one card base (joined and converted once, not once
    per kind: at 1 M customers each base cost ~0.6 CPU s; issue 18)."""
    base = _card_base(scores, features, list(segment_columns.values()))
    return {
        kind: build_segment_cards(scores, features, column, playbook, base=base)
        for kind, column in segment_columns.items()
    }


def build_segment_cards(
    scores: pd.DataFrame,
    features: pd.DataFrame,
    segment_column: str,
    playbook: dict[str, Any],
    base: pd.DataFrame | None = None,
) -> list[SegmentCard]:
    """One card per value of `segment_column` in `scores`, largest segment first (ties by name).

    base: _card_base of these scores and features with this segment column among others (build_cards_by_kind)."""
    base = _card_base(scores, features, [segment_column]) if base is None else base
    if base.empty:
        return []
    attribute_columns = [column for column in ATTRIBUTE_COLUMNS if column in base.columns]
    base_means = base[attribute_columns].mean()
    base_stds = base[attribute_columns].std(ddof=0).replace(0.0, np.nan)
    total_revenue = base["_revenue"].sum() if base["_revenue"].notna().any() else np.nan
    thresholds = playbook.get("actionability", {}) or {}
    min_customers = min_customers_per_segment(playbook)
    min_share = float(thresholds.get("min_share_of_customers", DEFAULT_MIN_SHARE))

    cards = []
    # Only what a card reads of its members: grouping the whole base took every id and segment text per group.
    read = base[[segment_column, "_revenue", "_clv", *attribute_columns]]
    for name, members in read.groupby(segment_column, sort=False):
        entry, source = _playbook_entry(playbook, str(name))
        size = len(members)
        share = size / len(base)
        reason = _actionability_reason(size, share, source, min_customers, min_share)
        cards.append(
            SegmentCard(
                segment_column=segment_column,
                name=str(name),
                size=size,
                share_of_customers=share,
                share_of_revenue=float(members["_revenue"].sum() / total_revenue)
                if pd.notna(total_revenue) and total_revenue != 0
                else float("nan"),
                mean_predicted_clv=float(members["_clv"].mean()) if members["_clv"].notna().any() else float("nan"),
                defining_attributes=defining_attributes(members[attribute_columns], base_means, base_stds),
                strategy=entry["strategy"],
                channel=entry["channel"],
                creative_angle=entry["creative_angle"],
                strategy_source=source,
                is_actionable=not reason,
                actionability_reason=reason or "large enough and has its own strategy",
            )
        )
    return sorted(cards, key=lambda card: (-card.size, card.name))


def count_actionable(cards: list[SegmentCard]) -> int:
    """Number of actionable cards (the asset check wants at least three)."""
    return sum(card.is_actionable for card in cards)


def defining_attributes(
    members: pd.DataFrame, base_means: pd.Series, base_stds: pd.Series
) -> tuple[DefiningAttribute, ...]:
    """Top attributes by |standardized mean difference| vs the base, strongest first (ties by feature name)."""
    segment_means = members.mean()
    differences = ((segment_means - base_means) / base_stds).dropna()
    differences = differences[differences.abs() >= MIN_ABS_SMD]
    order = sorted(differences.index, key=lambda feature: (-abs(differences[feature]), feature))
    return tuple(
        _attribute(feature, float(segment_means[feature]), float(base_means[feature]), float(differences[feature]))
        for feature in order[:MAX_DEFINING_ATTRIBUTES]
    )


def format_value(value: float, unit: str) -> str:
    """A number the way a marketer reads it: 24%, 3.1, 128 days, 54.20."""
    if pd.isna(value):
        return "n/a"
    if unit == "percent":
        return f"{value:.0%}"
    if unit == "days":
        return f"{value:,.0f} days"
    if unit == "money":
        return f"{value:,.2f}"
    return f"{value:,.1f}"


def _card_base(scores: pd.DataFrame, features: pd.DataFrame, segment_columns: list[str]) -> pd.DataFrame:
    """One row per customer in `scores`: segments, revenue, CLV and the attribute columns (from features)."""
    base = scores[["customer_id", *segment_columns]].copy()
    for segment_column in segment_columns:
        base[segment_column] = base[segment_column].fillna("Unassigned")
    revenue_source = scores if "total_revenue" in scores.columns else features
    has_clv = "predicted_clv" in scores.columns
    base["_clv"] = pd.to_numeric(scores["predicted_clv"], errors="coerce") if has_clv else np.nan
    attribute_columns = [column for column in ATTRIBUTE_COLUMNS if column in features.columns]
    base = base.merge(features[["customer_id", *attribute_columns]], on="customer_id", how="left")
    if "total_revenue" in revenue_source.columns:
        revenue = revenue_source.set_index("customer_id")["total_revenue"]
        base["_revenue"] = pd.to_numeric(base["customer_id"].map(revenue), errors="coerce")
    else:
        base["_revenue"] = np.nan
    for column in attribute_columns:
        base[column] = pd.to_numeric(base[column], errors="coerce").astype(float)
    return base


def min_customers_per_segment(playbook: dict[str, Any]) -> int:
    """The playbook's `actionability.min_customers`: a smaller segment is never actionable."""
    thresholds = playbook.get("actionability", {}) or {}
    return int(thresholds.get("min_customers", DEFAULT_MIN_CUSTOMERS))


def _playbook_entry(playbook: dict[str, Any], name: str) -> tuple[dict[str, str], str]:
    entry = (playbook.get("segments") or {}).get(name)
    if isinstance(entry, dict) and all(entry.get(field) for field in PLAYBOOK_FIELDS):
        return entry, STRATEGY_FROM_PLAYBOOK
    return playbook["default"], STRATEGY_FROM_DEFAULT


def _actionability_reason(size: int, share: float, source: str, min_customers: int, min_share: float) -> str:
    """Empty when actionable, else why not, in plain words."""
    reasons = []
    if size < min_customers:
        reasons.append(f"fewer than {min_customers} customers")
    if share < min_share:
        reasons.append(f"less than {min_share:.0%} of customers")
    if source != STRATEGY_FROM_PLAYBOOK:
        reasons.append("no strategy in the playbook yet")
    return "; ".join(reasons)


def _attribute(feature: str, segment_mean: float, base_mean: float, difference: float) -> DefiningAttribute:
    label, unit = ATTRIBUTE_COLUMNS[feature]
    direction = "higher" if difference > 0 else "lower"
    text = (
        f"{label}: {format_value(segment_mean, unit)} vs {format_value(base_mean, unit)} for all customers "
        f"({direction})"
    )
    return DefiningAttribute(feature, label, segment_mean, base_mean, difference, text)
