"""RFM scores (1-5) and the classic named RFM segments, one segment per customer.

Input: `marts.customer_features` (one row per customer with >= 1 accepted order), columns `customer_id`,
`recency_days`, `order_count`, `total_revenue`. Output: `ml.rfm_segments` (same grain).

Scoring rules (why they are what they are):
- Recency and monetary are quintiles of the rank, not of the value: `pd.qcut` on tied values merges or fails
  (thousands of customers share a recency day or a spend). Customers are sorted by `customer_id` first and
  ranked with `method="first"`, so ties are broken by `customer_id` order: the same input always gives the
  same scores. Recency 5 = most recent (smallest `recency_days`), monetary 5 = highest net revenue.
- Frequency uses fixed bins on `order_count` (1 -> 1, 2 -> 2, 3 -> 3, 4-5 -> 4, 6+ -> 5). In most shops
  60-80 % of customers have exactly one order, so frequency quintiles would split identical one-order
  customers into scores 1-4 by their `customer_id`: arbitrary and misleading.

Naming rule (issue 13, why a young shop's names have a recency floor and scores do not): the scores are relative
by design, but a name is a promise a marketer acts on ("Lost" gets a win-back strategy and the win-back audience).
On a shop 60 days old the bottom recency quintile is a customer whose only order was 30-60 days ago, and quintiles
alone named them "Lost". A shop younger than one CLV horizon (its orders span fewer days than `horizon_days`, the
young shop of orchestration/defs/reporting.py) has not seen its customers' repurchase cycle yet, so the horizon
stands in for it (`repurchase_cycle`): its names are read from the quintile raised by RECENCY_NAME_FLOORS, so a
customer within one cycle of their last order is named as if their recency score were at least 4 (not yet due: New
Customers, Promising, Potential Loyalists, Loyal Customers or Champions, never a mid or lapsed name). Every customer
of a young shop ordered within its history, less than one horizon: nobody is named lapsing or due. (Its own median
gap would name customers lapsing too early: gaps longer than its history cannot be seen yet.) The floor only ever
raises the score a name is read from, and is monotone in recency, so a more recent customer never gets a more
lapsed name than an older one.
A shop at least one horizon old is named by its recency quintiles, as before issue 13 (`repurchase_cycle` is None):
it has seen at least one horizon of its customers' orders. The first take floored it too, by the median of its
repeat customers' mean gaps (and by two cycles, at least 3), and renamed no customer of the demo and bench shops,
but broke the small irregular shop (300 customers buying at random over two years, median gap 113 days): 90
customers 80-224 days since their last order were named from a raised score, "Can't Lose Them" fell from 73 to 29
(to "Loyal Customers" 81 -> 117 and Champions 90 -> 106), though those beyond one cycle have missed an order; two
actionable RFM segments were left and `make run` failed. The cost of the switch: the day a shop turns one horizon
old, its customers take their quintile names at once (one burst of transitions in marts.segment_membership_history).
`named_recency_score` is the score the name is read from (= `recency_score` where no floor applied);
`recency_score` stays the quintile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

RFM_OUTPUT_COLUMNS = [
    "customer_id",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "rfm_segment",
    "named_recency_score",
    "repurchase_cycle_days",
]
SCORE_LEVELS = 5

# (repurchase cycles since the last order, lowest recency score a name may be read from within them), tightest
# first: within one cycle a customer is not yet due (score 4+). A young shop's cycle is its horizon, longer than its
# history, so a second floor (say "not lapsing within two cycles") could never bite: there is none.
RECENCY_NAME_FLOORS: tuple[tuple[float, int], ...] = ((1.0, 4),)

# Upper bound (inclusive) of order_count for frequency scores 1..4; anything above is 5.
FREQUENCY_SCORE_UPPER_BOUNDS = (1, 2, 3, 5)

HIGH_VALUE_SEGMENTS = frozenset({"Champions", "Loyal Customers"})
CATCH_ALL_SEGMENT = "Hibernating"


@dataclass(frozen=True)
class SegmentRule:
    """One row of the RFM segment map: inclusive score ranges; a customer matching all three gets `segment`."""

    segment: str
    recency: tuple[int, int]
    frequency: tuple[int, int]
    monetary: tuple[int, int]
    meaning: str

    def matches(self, recency: np.ndarray, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
        """Boolean mask of customers whose three scores fall inside this rule's ranges."""
        return _within(recency, self.recency) & _within(frequency, self.frequency) & _within(monetary, self.monetary)


# The whole named map, read top to bottom: the FIRST matching rule wins, the last row catches everything,
# so every customer lands in exactly one segment. Ranges are (low, high) inclusive scores.
SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule("Champions", (4, 5), (4, 5), (3, 5), "bought recently, buy often and spend the most"),
    SegmentRule("Loyal Customers", (3, 5), (3, 5), (1, 5), "buy regularly and not long ago"),
    SegmentRule("Potential Loyalists", (4, 5), (2, 2), (1, 5), "recent customers with a second order"),
    SegmentRule("New Customers", (5, 5), (1, 1), (1, 5), "first and only order was very recent"),
    SegmentRule("Promising", (4, 4), (1, 1), (1, 5), "one fairly recent order"),
    SegmentRule("Need Attention", (3, 3), (1, 2), (3, 5), "mid recency, above-average spend, few orders"),
    SegmentRule("About to Sleep", (3, 3), (1, 2), (1, 2), "mid recency, low spend, few orders"),
    SegmentRule("Can't Lose Them", (1, 2), (4, 5), (1, 5), "used to buy often, but not for a long time"),
    SegmentRule("At Risk", (1, 2), (2, 3), (1, 5), "repeat buyers who have not come back for a long time"),
    SegmentRule("At Risk", (1, 2), (1, 1), (5, 5), "one big order a long time ago"),
    SegmentRule("Hibernating", (2, 2), (1, 1), (1, 4), "one modest order, a while ago"),
    SegmentRule("Lost", (1, 1), (1, 1), (1, 4), "one modest order, longest ago"),
    SegmentRule(CATCH_ALL_SEGMENT, (1, 5), (1, 5), (1, 5), "catch-all: nothing above matched"),
)

SEGMENT_NAMES: tuple[str, ...] = tuple(dict.fromkeys(rule.segment for rule in SEGMENT_RULES))


@dataclass(frozen=True)
class RepurchaseCycle:
    """The repurchase cycle in days a young shop's names assume (the yardstick of the recency floors), and why."""

    days: float
    source: str


def repurchase_cycle(history_days: int, horizon_days: int) -> RepurchaseCycle | None:
    """The cycle a young shop's names assume: its CLV horizon when its orders span fewer days than one horizon
    (`history_days` < `horizon_days`); None for an older shop, which is named by its recency quintiles."""
    if history_days >= horizon_days:
        return None
    return RepurchaseCycle(
        float(horizon_days),
        f"the CLV horizon of {horizon_days} days: a young shop ({history_days} days of orders) has not seen its "
        "customers' cycle yet",
    )


def named_recency_score(recency_score: np.ndarray, recency_days: np.ndarray, cycle_days: float) -> np.ndarray:
    """The recency score a segment name is read from: `recency_score` raised by RECENCY_NAME_FLOORS for customers
    whose last order is within that many repurchase cycles; a missing recency gets no floor."""
    named = np.asarray(recency_score, dtype="int64").copy()
    days = np.asarray(recency_days, dtype=float)
    for cycles, lowest_score in RECENCY_NAME_FLOORS:
        within = days <= cycles * cycle_days  # NaN compares False: no floor
        named[within] = np.maximum(named[within], lowest_score)
    return named


def score_rfm(features: pd.DataFrame, cycle: RepurchaseCycle | None = None) -> pd.DataFrame:
    """One row per customer (input order kept): recency/frequency/monetary scores 1-5 and the named segment.

    With a `cycle` the name is read from `named_recency_score` (the recency floors, module docstring); without
    one, from the quintile itself (named_recency_score = recency_score, repurchase_cycle_days NaN)."""
    if features.empty:
        return _empty_rfm_frame()
    features = features.reset_index(drop=True)  # positional identity, so a duplicated index cannot duplicate rows
    # Sorting by customer_id before ranking makes tie-breaking deterministic and independent of input order.
    ordered = features[["customer_id", "recency_days", "order_count", "total_revenue"]].sort_values(
        "customer_id", kind="stable"
    )
    recency_score = _rank_quintile(-ordered["recency_days"].astype(float).fillna(np.inf))
    monetary_score = _rank_quintile(ordered["total_revenue"].astype(float).fillna(0.0))
    frequency_score = frequency_bin(ordered["order_count"])
    scores = pd.DataFrame(
        {
            "customer_id": ordered["customer_id"].to_numpy(),
            "recency_score": recency_score.to_numpy(),
            "frequency_score": frequency_score.to_numpy(),
            "monetary_score": monetary_score.to_numpy(),
        },
        index=ordered.index,
    )
    scores["named_recency_score"] = (
        scores["recency_score"].to_numpy()
        if cycle is None
        else named_recency_score(
            scores["recency_score"].to_numpy(), ordered["recency_days"].astype(float).to_numpy(), cycle.days
        )
    )
    scores["repurchase_cycle_days"] = np.nan if cycle is None else cycle.days
    scores["rfm_segment"] = assign_segments(
        scores["named_recency_score"].to_numpy(),
        scores["frequency_score"].to_numpy(),
        scores["monetary_score"].to_numpy(),
    )
    return scores.loc[features.index, RFM_OUTPUT_COLUMNS].reset_index(drop=True)


def frequency_bin(order_count: pd.Series) -> pd.Series:
    """Frequency score 1-5 from fixed order-count bins (1, 2, 3, 4-5, 6+); 0 or missing orders count as 1."""
    counts = order_count.astype(float).fillna(1.0).to_numpy()
    scores = np.searchsorted(np.asarray(FREQUENCY_SCORE_UPPER_BOUNDS, dtype=float), counts, side="left") + 1
    return pd.Series(scores.astype("int64"), index=order_count.index)


def assign_segments(recency: np.ndarray, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
    """Segment name per customer from SEGMENT_RULES, first match wins; every score triple gets exactly one name."""
    segment = np.full(len(recency), None, dtype=object)
    for rule in SEGMENT_RULES:
        unassigned = pd.isna(segment)
        segment[unassigned & rule.matches(recency, frequency, monetary)] = rule.segment
    return segment


def segment_rule_table() -> pd.DataFrame:
    """The segment map as a readable table (for the report and docs): one row per rule, in priority order."""
    return pd.DataFrame(
        [
            {
                "priority": position + 1,
                "segment": rule.segment,
                "recency_score": _format_range(rule.recency),
                "frequency_score": _format_range(rule.frequency),
                "monetary_score": _format_range(rule.monetary),
                "meaning": rule.meaning,
            }
            for position, rule in enumerate(SEGMENT_RULES)
        ]
    )


def _rank_quintile(values: pd.Series) -> pd.Series:
    """Score 1-5 from rank(method="first") so ties never merge bins; higher value -> higher score."""
    ranks = values.rank(method="first").to_numpy()
    scores = np.ceil(ranks * SCORE_LEVELS / len(values)).astype("int64")
    return pd.Series(np.clip(scores, 1, SCORE_LEVELS), index=values.index)


def _within(scores: np.ndarray, bounds: tuple[int, int]) -> np.ndarray:
    return (scores >= bounds[0]) & (scores <= bounds[1])


def _format_range(bounds: tuple[int, int]) -> str:
    low, high = bounds
    return str(low) if low == high else f"{low}-{high}"


def _empty_rfm_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype="object"),
            "recency_score": pd.Series(dtype="int64"),
            "frequency_score": pd.Series(dtype="int64"),
            "monetary_score": pd.Series(dtype="int64"),
            "rfm_segment": pd.Series(dtype="object"),
            "named_recency_score": pd.Series(dtype="int64"),
            "repurchase_cycle_days": pd.Series(dtype="float64"),
        }
    )
