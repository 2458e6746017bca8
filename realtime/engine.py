"""The pure core of the segment service: visitor state, rule evaluation and scoring. No I/O, no clock of its own.

Grain: one `Visitor` per id (the customer_id when an event carries one, else the anonymous_id). All the work per
event is O(1) in the number of visitors and known customers (dict lookups, a few counters, one heap push at most).

Time (decisions where the issue is silent):
- Sessions run on `occurred_at`: an event more than `session_timeout` after the visitor's latest event starts a
  new session (session counters reset; the cart is kept, carts persist in shops). An event older than the latest
  one (late arrival) is counted in the current session but does not move the session clock, the device or the
  local hour.
- On an event, segments are evaluated at that event's time, so the visitor is active and never a cart abandoner.
  `segments_at(now)` (profile reads) and `sweep(now)` evaluate against the receive clock `now`: after
  `session_timeout` without an event the session segments lapse, and after `cart_idle` a visitor whose cart holds
  items with no purchase since becomes `cart_abandoner`. The sweep turns those lapses into transitions, so
  cart abandoners reach the transitions log (and the event-triggered syncs) within a sweep interval.
- A visitor idle (receive clock) for `visitor_retention` is forgotten; duplicate detection of `event_id` is kept per
  visitor for as long as the visitor is remembered (client retries come within seconds).

Segments (realtime/rules.py has the parameters; the order below is the order of the `segments` lists):
general_interest, high_intent:<category>, premium_interest, cart_abandoner, device:<name>, late_night,
motivation:<keyword>. `segments` holds real-time segments only; known customers' batch segments and scores come
with their profile (rfm_segment, behavioral_segment, predicted_clv, purchase_propensity).

Lookalike: a visitor who is not a known customer gets `lookalike_score` (the prospect lookalike model of the
bundle) once it has `lookalike_min_events` events; its features are those of marts.prospect_features, computed
over the visitor's remembered events with the same definitions (shares of events, UTC days).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from realtime.bundle import Bundle
from realtime.events import Event
from realtime.rules import (
    CART_ABANDONER,
    GENERAL_INTEREST,
    HIGH_INTENT,
    LATE_NIGHT,
    PREMIUM_INTEREST,
    Rules,
)

RESEARCH_EVENTS = frozenset({"review_read", "compare_used"})
RESEARCH_PAGES = frozenset({"reviews", "comparison"})
VISUAL_EVENTS = frozenset({"gallery_view", "video_play"})
URGENCY_EVENTS = frozenset({"countdown_view", "low_stock_view"})
BRAND_PAGES = frozenset({"about", "brand"})
CART_ADD = "add_to_cart"
CART_REMOVE = "remove_from_cart"
PURCHASE = "purchase"
SWEEP_LIMIT = 5000  # visitors examined per sweep call, so one call never stalls the event loop for long


@dataclass(slots=True)
class Visitor:
    id: str
    is_customer: bool = False
    event_ids: set[str] = field(default_factory=set)
    last_event_id: str = ""
    last_ts: float = float("-inf")  # latest occurred_at (epoch seconds)
    last_received: float = 0.0  # receive clock of the latest event
    # session (reset when a new session starts)
    views: dict[str, int] = field(default_factory=dict)  # category -> weighted product views
    carted: set[str] = field(default_factory=set)  # categories added to the cart
    product_category: dict[str, str] = field(default_factory=dict)
    last_category: str | None = None
    premium: bool = False
    motivations: set[str] = field(default_factory=set)
    device: str | None = None
    local_hour: int = -1
    # across sessions
    cart: dict[str, None] = field(default_factory=dict)  # product ids in order of addition
    cart_pending: bool = False  # items added and no purchase since
    counts: dict[str, int] = field(default_factory=dict)
    days: set[int] = field(default_factory=set)
    shipping_days: set[int] = field(default_factory=set)
    purchase_days: set[int] = field(default_factory=set)
    lookalike_score: float | None = None
    lookalike_events: int = 0  # event count and bundle the cached score was computed at
    lookalike_version: str = ""
    aliases: list[str] = field(default_factory=list)
    published: tuple[str, ...] = ()  # segments as of the last transition written
    heap_due: float | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """The answer for one event (`entered`/`exited` relative to the visitor's previous segments)."""

    event_id: str
    id: str
    segments: list[str]
    entered: list[str]
    exited: list[str]
    duplicate: bool
    transitions: list[dict[str, Any]]

    def answer(self) -> dict[str, Any]:
        body = {
            "event_id": self.event_id,
            "id": self.id,
            "segments": self.segments,
            "entered": self.entered,
            "exited": self.exited,
        }
        if self.duplicate:
            body["duplicate"] = True
        return body


class Engine:
    """Visitor states under one bundle (swap `bundle` to hot-reload: states are kept)."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.visitors: dict[str, Visitor] = {}
        self.aliases: dict[str, str] = {}  # anonymous_id -> customer_id after an identified event carried both
        self._heap: list[tuple[float, str]] = []
        self.stats = {"accepted": 0, "duplicate": 0, "entered": 0, "exited": 0, "evicted": 0}

    @property
    def rules(self) -> Rules:
        return self.bundle.rules

    # --- events ---------------------------------------------------------------------------------------------

    def apply(self, event: Event, received_ts: float, emit: bool = True) -> Result:
        """Fold one validated event into its visitor's state; transitions are returned when `emit`."""
        visitor, renamed = self._visitor_for(event)
        visitor.last_received = max(visitor.last_received, received_ts)
        if event.event_id in visitor.event_ids:
            self.stats["duplicate"] += 1
            return Result(event.event_id, visitor.id, list(visitor.published), [], [], True, [])
        visitor.event_ids.add(event.event_id)
        self.stats["accepted"] += 1
        rules = self.rules
        ts = event.occurred_at.timestamp()
        latest = ts >= visitor.last_ts
        if ts - visitor.last_ts > rules.session_timeout_seconds:
            _new_session(visitor)
        if latest:
            visitor.last_ts = ts
            visitor.last_event_id = event.event_id
            if event.device:
                visitor.device = rules.devices.get(event.device.lower())
            visitor.local_hour = event.occurred_at.hour
        _count(visitor, event, rules)
        segments = self._evaluate(visitor, visitor.last_ts)
        entered, exited, transitions = self._publish(
            visitor, segments, event.event_id, event.occurred_at, event.received_at, emit
        )
        if renamed and emit:  # the anonymous id leaves its segments; the customer id entered them above
            occurred, received = event.occurred_at.isoformat(), event.received_at.isoformat()
            transitions[:0] = [
                {
                    "id": renamed[0],
                    "known_customer": False,
                    "segment": segment,
                    "change": "exited",
                    "event_id": event.event_id,
                    "occurred_at": occurred,
                    "received_at": received,
                    "source": "realtime",
                }
                for segment in renamed[1]
            ]
        self._schedule(visitor)
        return Result(event.event_id, visitor.id, list(segments), entered, exited, False, transitions)

    def unmark(self, event: Event) -> None:
        """Forget that `event_id` was seen (its log write failed): a retry is then processed and logged, not
        acknowledged as a duplicate of an event that is not in the log."""
        visitor = self.visitors.get(self.aliases.get(event.visitor_id, event.visitor_id)) or self.visitors.get(
            event.visitor_id
        )
        if visitor is not None:
            visitor.event_ids.discard(event.event_id)

    def _visitor_for(self, event: Event) -> tuple[Visitor, tuple[str, tuple[str, ...]] | None]:
        """The event's visitor, and (old id, its segments) when an anonymous visitor just became this customer."""
        renamed = None
        key = event.customer_id or event.anonymous_id
        key = self.aliases.get(key, key) if event.customer_id is None else key
        visitor = self.visitors.get(key)
        if visitor is None and event.customer_id and event.anonymous_id:
            # An anonymous visitor identifies itself: its session continues under the customer_id.
            visitor = self.visitors.pop(event.anonymous_id, None)
            if visitor is not None and not visitor.is_customer:
                renamed = (visitor.id, visitor.published)
                visitor.id = key
                visitor.published = ()
                visitor.heap_due = None
                self.visitors[key] = visitor
            elif visitor is not None:  # that anonymous id already belongs to another customer: leave it
                self.visitors[event.anonymous_id] = visitor
                visitor = None
        if visitor is None:
            visitor = Visitor(key)
            self.visitors[key] = visitor
        if event.customer_id:
            visitor.is_customer = True
            if event.anonymous_id and event.anonymous_id != key and self.aliases.get(event.anonymous_id) != key:
                self.aliases[event.anonymous_id] = key
                visitor.aliases.append(event.anonymous_id)
        return visitor, renamed

    def _is_known(self, visitor: Visitor) -> bool:
        return visitor.is_customer and visitor.id in self.bundle.customers

    def _lookalike(self, visitor: Visitor) -> float | None:
        """Scored on read, not per event (the answer to an event does not carry it); cached per event count."""
        n = visitor.counts.get("events", 0)
        if n < self.rules.lookalike_min_events:
            return None
        if visitor.lookalike_events != n or visitor.lookalike_version != self.bundle.version:
            visitor.lookalike_score = round(self.bundle.lookalike.score(lookalike_features(visitor)), 6)
            visitor.lookalike_events, visitor.lookalike_version = n, self.bundle.version
        return visitor.lookalike_score

    # --- evaluation -----------------------------------------------------------------------------------------

    def _evaluate(self, visitor: Visitor, now: float) -> tuple[str, ...]:
        rules = self.rules
        idle = now - visitor.last_ts
        segments: list[str] = []
        if idle < rules.session_timeout_seconds:
            intent = [
                f"{HIGH_INTENT}:{category}"
                for category, views in visitor.views.items()
                if views >= rules.min_product_views and (not rules.requires_add_to_cart or category in visitor.carted)
            ]
            if not intent and not visitor.premium:
                segments.append(GENERAL_INTEREST)
            segments.extend(sorted(intent))
            if visitor.premium:
                segments.append(PREMIUM_INTEREST)
        if visitor.cart_pending and visitor.cart and idle >= rules.cart_idle_seconds:
            segments.append(CART_ABANDONER)
        if idle < rules.session_timeout_seconds:
            if visitor.device:
                segments.append(f"device:{visitor.device}")
            start, end = rules.late_night_start_hour, rules.late_night_end_hour
            hour = visitor.local_hour
            if hour >= 0 and ((start <= hour or hour < end) if start > end else start <= hour < end):
                segments.append(LATE_NIGHT)
            segments.extend(f"motivation:{keyword}" for keyword in sorted(visitor.motivations))
        return tuple(segments)

    def _publish(
        self,
        visitor: Visitor,
        segments: tuple[str, ...],
        event_id: str,
        occurred_at: datetime,
        received_at: datetime,
        emit: bool,
    ) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        before = visitor.published
        if segments == before:
            return [], [], []
        old, new = set(before), set(segments)
        entered = [s for s in segments if s not in old]
        exited = [s for s in before if s not in new]
        visitor.published = segments
        self.stats["entered"] += len(entered)
        self.stats["exited"] += len(exited)
        if not emit:
            return entered, exited, []
        known = self._is_known(visitor)
        occurred, received = occurred_at.isoformat(), received_at.isoformat()
        transitions = [
            {
                "id": visitor.id,
                "known_customer": known,
                "segment": segment,
                "change": change,
                "event_id": event_id,
                "occurred_at": occurred,
                "received_at": received,
                "source": "realtime",
            }
            for change, names in (("exited", exited), ("entered", entered))
            for segment in names
        ]
        return entered, exited, transitions

    # --- reads and time -------------------------------------------------------------------------------------

    def segments_at(self, visitor_id: str, now: float) -> list[str] | None:
        visitor = self.visitors.get(self.aliases.get(visitor_id, visitor_id))
        return None if visitor is None else list(self._evaluate(visitor, now))

    def profile(self, visitor_id: str, now: float) -> dict[str, Any] | None:
        """`GET /v1/profiles/{id}`: real-time segments at `now`, batch scores for known customers, the cart. No PII."""
        key = self.aliases.get(visitor_id, visitor_id)
        visitor = self.visitors.get(key)
        batch = self.bundle.customers.get(key) if visitor is None or visitor.is_customer else None
        if visitor is None and batch is None:
            return None
        segments = list(self._evaluate(visitor, now)) if visitor is not None else []
        return {
            "id": key,
            "known_customer": batch is not None,
            "segments": segments,
            "rfm_segment": batch["rfm_segment"] if batch else None,
            "behavioral_segment": batch["behavioral_segment"] if batch else None,
            "predicted_clv": batch["predicted_clv"] if batch else None,
            "purchase_propensity": batch["purchase_propensity"] if batch else None,
            "recommended_action": self._action(segments, batch),
            "cart": list(visitor.cart) if visitor is not None else [],
            "lookalike_score": self._lookalike(visitor) if visitor is not None and batch is None else None,
        }

    def _action(self, segments: list[str], batch: dict[str, Any] | None) -> str | None:
        actions = self.rules.actions
        kinds = {segment.split(":", 1)[0] for segment in segments}
        for kind in (CART_ABANDONER, HIGH_INTENT, PREMIUM_INTEREST):
            if kind in kinds and kind in actions:
                return actions[kind]
        if batch and batch.get("recommended_action"):
            return batch["recommended_action"]
        return actions.get(GENERAL_INTEREST) if GENERAL_INTEREST in kinds else None

    def _schedule(self, visitor: Visitor) -> None:
        due = visitor.last_ts + min(self.rules.session_timeout_seconds, self.rules.cart_idle_seconds)
        if visitor.heap_due is None or due < visitor.heap_due:
            visitor.heap_due = due
            heapq.heappush(self._heap, (due, visitor.id))

    def sweep(self, now: float, limit: int = SWEEP_LIMIT) -> list[dict[str, Any]]:
        """Lapse idle sessions and enter cart abandoners against the receive clock `now`; forget old visitors.

        Returns the transitions to log. Each visitor has at most one live heap entry, so the heap stays as
        large as the number of visitors.
        """
        rules = self.rules
        transitions: list[dict[str, Any]] = []
        heap = self._heap
        examined = 0
        while heap and heap[0][0] <= now and examined < limit:
            due, key = heapq.heappop(heap)
            examined += 1
            visitor = self.visitors.get(key)
            if visitor is None or visitor.heap_due != due:
                continue  # stale entry: the visitor was renamed, forgotten or rescheduled
            visitor.heap_due = None
            idle_due = visitor.last_ts + min(rules.session_timeout_seconds, rules.cart_idle_seconds)
            forget_at = visitor.last_received + rules.visitor_retention_seconds
            if now >= forget_at and now >= visitor.last_ts + rules.visitor_retention_seconds:
                self._forget(visitor)
                continue
            if now < idle_due:  # an event moved the session on since this entry was pushed
                visitor.heap_due = idle_due
                heapq.heappush(heap, (idle_due, key))
                continue
            segments = self._evaluate(visitor, now)
            if segments != visitor.published:
                lapse = datetime.fromtimestamp(visitor.last_ts + rules.session_timeout_seconds, UTC)
                entered, exited, found = self._publish(
                    visitor, segments, visitor.last_event_id, lapse, datetime.fromtimestamp(now, UTC), True
                )
                if CART_ABANDONER in entered:  # it starts after cart_idle, not after the session timeout
                    stamp = datetime.fromtimestamp(visitor.last_ts + rules.cart_idle_seconds, UTC).isoformat()
                    for transition in found:
                        if transition["segment"] == CART_ABANDONER:
                            transition["occurred_at"] = stamp
                transitions.extend(found)
            # look again when the next idle threshold passes, else when the visitor is to be forgotten
            later = [
                t
                for t in (visitor.last_ts + rules.session_timeout_seconds, visitor.last_ts + rules.cart_idle_seconds)
                if t > now
            ]
            next_due = min(later) if later else max(forget_at, visitor.last_ts + rules.visitor_retention_seconds)
            visitor.heap_due = next_due
            heapq.heappush(heap, (next_due, key))
        return transitions

    def _forget(self, visitor: Visitor) -> None:
        del self.visitors[visitor.id]
        for alias in visitor.aliases:
            if self.aliases.get(alias) == visitor.id:
                del self.aliases[alias]
        self.stats["evicted"] += 1

    # --- recovery -------------------------------------------------------------------------------------------

    def restore_published(self, transitions: Iterable[dict[str, Any]]) -> None:
        """After replaying the log's events, set each visitor's published segments from the logged transitions,
        so a restart does not write transitions that were already written."""
        published: dict[str, list[str]] = {}
        for line in transitions:
            key = line.get("id")
            if key not in self.visitors:
                continue
            current = published.setdefault(key, [])
            segment = line.get("segment")
            if line.get("change") == "entered" and segment not in current:
                current.append(segment)
            elif line.get("change") == "exited" and segment in current:
                current.remove(segment)
        for key, segments in published.items():
            order = {name: i for i, name in enumerate(self._evaluate(self.visitors[key], self.visitors[key].last_ts))}
            self.visitors[key].published = tuple(sorted(segments, key=lambda s: (order.get(s, len(order)), s)))


def _new_session(visitor: Visitor) -> None:
    visitor.views = {}
    visitor.carted = set()
    visitor.product_category = {}
    visitor.last_category = None
    visitor.premium = False
    visitor.motivations = set()


def _count(visitor: Visitor, event: Event, rules: Rules) -> None:
    """Session counters (segments) and lifetime counters (lookalike features) for one event."""
    event_type, page_type = event.event_type, (event.page_type or "").lower()
    category = event.category.lower() if event.category else None
    if category and event.product_id:
        visitor.product_category[event.product_id] = category
    elif event.product_id:
        category = visitor.product_category.get(event.product_id)
    is_view = event_type == "product_view" or page_type == "product"
    if category is None and (event_type in rules.strong_signals or event_type == CART_ADD):
        category = visitor.last_category  # a video or cart add without a category is about the product just seen
    if is_view and category:
        visitor.views[category] = visitor.views.get(category, 0) + 1
        visitor.last_category = category
    elif event_type in rules.strong_signals and category:
        visitor.views[category] = visitor.views.get(category, 0) + rules.strong_signal_weight
    if event_type == CART_ADD:
        if category:
            visitor.carted.add(category)
        visitor.cart[event.product_id or "unknown"] = None
        visitor.cart_pending = True
    elif event_type == CART_REMOVE and event.product_id:
        visitor.cart.pop(event.product_id, None)
    elif event_type == PURCHASE:
        visitor.cart.clear()
        visitor.cart_pending = False
    if (
        event.utm_medium
        and event.utm_source
        and event.utm_medium.lower() == rules.affiliate_medium
        and event.utm_source.lower() in rules.premium_partners
    ):
        visitor.premium = True
    if event.utm_content:
        content = event.utm_content.lower()
        for keyword in rules.motivation_keywords:
            if keyword in content:
                visitor.motivations.add(keyword)
    # lifetime counters: the definitions of dbt's event_day_counts / behaviour_features (UTC days)
    counts = visitor.counts
    counts["events"] = counts.get("events", 0) + 1
    day = int(event.occurred_at.timestamp() // 86400)
    visitor.days.add(day)
    if is_view:
        counts["product_views"] = counts.get("product_views", 0) + 1
    if event_type in RESEARCH_EVENTS or page_type in RESEARCH_PAGES:
        counts["research"] = counts.get("research", 0) + 1
    if page_type == "sale":
        counts["sale"] = counts.get("sale", 0) + 1
    if event_type == "discount_code_applied":
        counts["discount"] = counts.get("discount", 0) + 1
    if page_type in BRAND_PAGES:
        counts["brand"] = counts.get("brand", 0) + 1
    if event_type in VISUAL_EVENTS or page_type == "gallery":
        counts["visual"] = counts.get("visual", 0) + 1
    if event_type in URGENCY_EVENTS:
        counts["urgency"] = counts.get("urgency", 0) + 1
    if event_type == "shipping_info_viewed":
        visitor.shipping_days.add(day)
    elif event_type == PURCHASE:
        visitor.purchase_days.add(day)


def lookalike_features(visitor: Visitor) -> dict[str, float]:
    """marts.prospect_features' behaviour columns from the visitor's remembered events."""
    counts = visitor.counts
    n = counts.get("events", 0) or 1
    days = len(visitor.days) or 1
    shipping = visitor.shipping_days
    return {
        "event_count": float(counts.get("events", 0)),
        "active_days": float(len(visitor.days)),
        "product_views_per_active_day": counts.get("product_views", 0) / days,
        "research_share": counts.get("research", 0) / n,
        "sale_share": counts.get("sale", 0) / n,
        "discount_event_share": counts.get("discount", 0) / n,
        "brand_share": counts.get("brand", 0) / n,
        "visual_share": counts.get("visual", 0) / n,
        "urgency_share": counts.get("urgency", 0) / n,
        "shipping_abandon_rate": len(shipping - visitor.purchase_days) / len(shipping) if shipping else 0.0,
    }
