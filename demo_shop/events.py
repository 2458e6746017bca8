"""Web events of one block of visitors (buyers or prospects): sessions first, then the events inside them.

A visitor's browse events are drawn from a personal mix (Dirichlet around the archetype's profile), so archetypes
are separable by event shares yet noisy. Buyers browse while alive and (mostly) stop after they churn; they also
browse before each order (researchers for days, urgency buyers the same day), and every order ends a session with
the checkout tail (add_to_cart, begin_checkout, shipping_info_viewed, discount_code_applied, purchase).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from demo_shop import config as c
from demo_shop.clock import ShopWindow, at_shopping_hour
from demo_shop.orders import Orders
from demo_shop.population import Buyers, Prospects, archetype_trait
from demo_shop.text import from_vocabulary, hex_text, zero_padded

_KIND_EVENT_TYPE = np.array([c.EVENT_TYPES.index(kind[0]) for kind in c.EVENT_KINDS])
_KIND_PAGE_TYPE = np.array([c.PAGE_TYPES.index(kind[1]) for kind in c.EVENT_KINDS])
_KIND_HAS_PRODUCT = np.array([kind[2] for kind in c.EVENT_KINDS])
_UTM_PAIRS = tuple(pair for pairs in c.UTM_PAIRS_BY_CHANNEL for pair in pairs)
_UTM_FIRST_PAIR = np.cumsum([0] + [len(pairs) for pairs in c.UTM_PAIRS_BY_CHANNEL])[:-1]
_UTM_PAIR_COUNT = np.array([len(pairs) for pairs in c.UTM_PAIRS_BY_CHANNEL])
_PRODUCT_IDS = tuple(f"P{number:05d}" for number in range(1, c.N_PRODUCTS + 1))
_ANONYMOUS_ID_HEX_DIGITS = 12
_ANONYMOUS_ID_MASK = np.uint64(2**48 - 1)
_ANONYMOUS_ID_MULTIPLIER = np.uint64(0x9E3779B97F4B)  # odd: a bijection modulo 2**48, so ids never collide


@dataclass(frozen=True)
class Sessions:
    """One entry per session of a block's visitors (visitor = position within the block)."""

    visitor: np.ndarray  # int64
    anchor_at: np.ndarray  # int64 epoch s: start of a browse session, the purchase time of an order session
    browse_events: np.ndarray  # int64: events drawn from the visitor's mix
    is_order: np.ndarray  # bool: ends with the checkout tail and a purchase at anchor_at
    discounted: np.ndarray  # bool: the order used a code (discount_code_applied in the tail)


@dataclass(frozen=True)
class Visitors:
    """What events need to know about a block of visitors."""

    archetype: np.ndarray  # int8
    channel: np.ndarray  # int8 acquisition (or traffic) channel: drives utm tags
    preferred_device: np.ndarray  # int8
    anonymous_key: np.ndarray  # int64, unique over buyers and prospects of a shop
    customer_number: np.ndarray | None  # int64 customer_id number per visitor; None for prospects


def anonymous_ids(keys: np.ndarray, seed: int) -> pa.StringArray:
    """Cookie-like visitor ids ("a3f09c21b7d4e"), unique per key, scrambled so they do not reveal the key."""
    offset = np.uint64((seed * 0x2545F4914F6CDD1D) & (2**48 - 1))
    scrambled = (np.asarray(keys, dtype=np.uint64) * _ANONYMOUS_ID_MULTIPLIER + offset) & _ANONYMOUS_ID_MASK
    return hex_text(scrambled, _ANONYMOUS_ID_HEX_DIGITS, prefix="a")


def _run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """True where a run of equal keys begins (the first entry of each group in a sorted array)."""
    starts = np.ones(len(sorted_keys), dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return starts


def _poisson_times(
    rate_per_year: np.ndarray, start: np.ndarray, end: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(visitor, time) of a Poisson process per visitor on [start, end); empty windows give nothing."""
    span = np.maximum(end - start, 0)
    counts = rng.poisson(rate_per_year * span / c.SECONDS_PER_YEAR)
    visitor = np.repeat(np.arange(len(start), dtype=np.int64), counts)
    times = start[visitor] + (rng.random(len(visitor)) * span[visitor]).astype(np.int64)
    return visitor, at_shopping_hour(times, rng)


def _browse_event_counts(archetype: np.ndarray, mult: float, rng: np.random.Generator) -> np.ndarray:
    mean = np.maximum(archetype_trait("events_per_session")[archetype] * mult - 1.0, 0.0)
    return 1 + rng.poisson(mean)


def _browse_sessions(
    visitor: np.ndarray, at: np.ndarray, archetype: np.ndarray, mult: float, rng: np.random.Generator
) -> Sessions:
    n = len(visitor)
    return Sessions(
        visitor, at, _browse_event_counts(archetype[visitor], mult, rng), np.zeros(n, bool), np.zeros(n, bool)
    )


def _concat(parts: list[Sessions]) -> Sessions:
    return Sessions(*(np.concatenate([getattr(p, f) for p in parts]) for f in Sessions.__dataclass_fields__))


def buyer_sessions(
    buyers: Buyers, orders: Orders, params: c.ProfileParams, window: ShopWindow, rng: np.random.Generator
) -> Sessions:
    """Sessions of a block of buyers (orders: that block's rows, customer = position in the block), before cutoff."""
    tracked = buyers.web_tracked
    archetype = buyers.archetype
    alive_until = np.where(tracked, np.minimum(buyers.died_at, window.cutoff), 0)
    alive_v, alive_t = _poisson_times(buyers.session_rate, buyers.first_order_at, alive_until, rng)
    churned_from = np.where(tracked, buyers.died_at, window.cutoff)
    churned_v, churned_t = _poisson_times(
        buyers.session_rate * c.CHURNED_SESSION_RATE_MULT, churned_from, np.full(len(buyers), window.cutoff), rng
    )

    purchases = orders.select(~orders.is_refund & (orders.ordered_at < window.cutoff) & tracked[orders.customer])
    is_first_order = _run_starts(purchases.customer)  # purchases are sorted by customer then time
    order_archetype = archetype[purchases.customer]
    pre_mean = archetype_trait("pre_order_sessions")[order_archetype] * params.pre_order_session_mult
    pre_counts = rng.poisson(pre_mean) + is_first_order
    pre_order = np.repeat(np.arange(len(purchases)), pre_counts)
    lag_days = rng.exponential(archetype_trait("pre_order_lag_days")[order_archetype[pre_order]])
    lead = (lag_days * c.SECONDS_PER_DAY).astype(np.int64) + c.PRE_ORDER_MIN_LEAD_SECONDS
    pre_t = purchases.ordered_at[pre_order] - lead

    # Web tracking sees the checkout of web orders only; an app order leaves no checkout events.
    web_purchases = purchases.select(purchases.channel == c.ORDER_CHANNELS.index("web"))
    n_orders = len(web_purchases)
    order_sessions = Sessions(
        visitor=web_purchases.customer,
        anchor_at=web_purchases.ordered_at,
        browse_events=rng.poisson(c.ORDER_SESSION_BROWSE_EVENTS * params.events_per_session_mult, n_orders),
        is_order=np.ones(n_orders, bool),
        discounted=web_purchases.discount_code >= 0,
    )
    mult = params.events_per_session_mult
    return _concat(
        [
            _browse_sessions(alive_v, alive_t, archetype, mult, rng),
            _browse_sessions(churned_v, churned_t, archetype, mult, rng),
            _browse_sessions(purchases.customer[pre_order], pre_t, archetype, mult, rng),
            order_sessions,
        ]
    )


def prospect_sessions(
    prospects: Prospects, params: c.ProfileParams, window: ShopWindow, rng: np.random.Generator
) -> Sessions:
    """Sessions of a block of prospects: one at first sight, the rest spread over their interest period."""
    n = len(prospects)
    interest_until = np.minimum(prospects.interest_ends_at, window.cutoff)
    extra = np.repeat(np.arange(n, dtype=np.int64), prospects.extra_sessions)
    span = np.maximum(interest_until - prospects.first_seen_at, 0)[extra]
    extra_t = at_shopping_hour(prospects.first_seen_at[extra] + (rng.random(len(extra)) * span).astype(np.int64), rng)
    visitor = np.concatenate([np.arange(n, dtype=np.int64), extra])
    at = np.concatenate([prospects.first_seen_at, extra_t])
    return _browse_sessions(visitor, at, prospects.archetype, params.events_per_session_mult, rng)


def draw_event_mix(archetype: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Personal browse-event mix per visitor: Dirichlet around the archetype profile, shape (n, N_BROWSE_KINDS)."""
    alpha = c.MIX_CONCENTRATION * c.archetype_event_mix()[archetype]
    weights = rng.standard_gamma(alpha)
    return weights / weights.sum(axis=1, keepdims=True)


def _draw_kinds(mix: np.ndarray, visitor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One event kind per entry, drawn from that visitor's mix (inverse CDF on one flattened, shifted table)."""
    n_visitors, n_kinds = mix.shape
    cumulative = np.cumsum(mix, axis=1)
    cumulative[:, -1] = 1.0
    # Row v's CDF shifted by v is globally increasing, so one searchsorted serves every visitor.
    shifted = (cumulative + np.arange(n_visitors)[:, None]).ravel()
    position = np.searchsorted(shifted, visitor + rng.random(len(visitor)) * (1 - 1e-12), side="right")
    return np.minimum(position - visitor * n_kinds, n_kinds - 1)


def _checkout_tails(sessions: Sessions, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(session, kind) of the checkout events that end each order session, in page order."""
    order_sessions = np.flatnonzero(sessions.is_order)
    n = len(order_sessions)
    tail = np.column_stack(
        [
            np.full(n, c.KIND_ADD_TO_CART),
            np.full(n, c.KIND_BEGIN_CHECKOUT),
            np.where(rng.random(n) < c.SHIPPING_INFO_IN_ORDER_PROB, c.KIND_SHIPPING_INFO, -1),
            np.where(sessions.discounted[order_sessions], c.KIND_DISCOUNT_APPLIED, -1),
            np.full(n, c.KIND_PURCHASE),
        ]
    )
    present = tail >= 0
    return np.repeat(order_sessions, present.sum(axis=1)), tail[present]


def _product_numbers(n: int, rng: np.random.Generator) -> np.ndarray:
    """Product numbers 1..N_PRODUCTS with a long-tailed (Zipf-like) popularity."""
    weights = 1.0 / (np.arange(c.N_PRODUCTS) + 10.0) ** c.PRODUCT_POPULARITY_EXPONENT
    cdf = np.cumsum(weights) / weights.sum()
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), c.N_PRODUCTS - 1) + 1


@dataclass(frozen=True)
class BlockEvents:
    """Events of one block, sorted by visitor then time; only events before the cutoff."""

    visitor: np.ndarray
    occurred_at: np.ndarray
    kind: np.ndarray
    device: np.ndarray
    product: np.ndarray  # 0 = no product
    utm_pair: np.ndarray  # index into the flattened utm pairs, -1 = untagged


def events_from_sessions(
    sessions: Sessions, visitors: Visitors, window: ShopWindow, rng: np.random.Generator
) -> BlockEvents:
    """Expand sessions into timed events (browse events first, the checkout tail last, purchase at the anchor)."""
    mix = draw_event_mix(visitors.archetype, rng)
    browse_session = np.repeat(np.arange(len(sessions.visitor)), sessions.browse_events)
    browse_kind = _draw_kinds(mix, sessions.visitor[browse_session], rng)
    tail_session, tail_kind = _checkout_tails(sessions, rng)
    session = np.concatenate([browse_session, tail_session])
    kind = np.concatenate([browse_kind, tail_kind])
    in_page_order = np.argsort(session, kind="stable")  # stable: browse events before the tail, tail in order
    session, kind = session[in_page_order], kind[in_page_order]

    # Seconds since the session's first event: cumulative gaps (>= 1 s, so page order survives sorting by time),
    # restarted at every session.
    gaps = 1 + rng.exponential(c.SECONDS_BETWEEN_EVENTS, len(session)).astype(np.int64)
    session_first = _run_starts(session)
    gaps[session_first] = 0
    elapsed = np.cumsum(gaps)
    elapsed -= np.maximum.accumulate(np.where(session_first, elapsed, 0))
    # An order session ends at the purchase: shift it back by its own length (every session has >= 1 event).
    session_last = np.r_[session_first[1:], True][: len(session)]
    duration = np.zeros(len(sessions.visitor), dtype=np.int64)
    duration[session[session_last]] = elapsed[session_last]
    start = np.where(sessions.is_order, sessions.anchor_at - duration, sessions.anchor_at)
    occurred_at = start[session] + elapsed

    n_sessions = len(sessions.visitor)
    keeps_device = rng.random(n_sessions) < c.PREFERRED_DEVICE_PROB
    other_device = rng.integers(0, len(c.DEVICES), n_sessions)
    session_device = np.where(keeps_device, visitors.preferred_device[sessions.visitor], other_device)

    channel = visitors.channel[sessions.visitor]
    tagged = (rng.random(n_sessions) < c.UTM_TAGGED_SESSION_PROB) & (_UTM_PAIR_COUNT[channel] > 0)
    pair = _UTM_FIRST_PAIR[channel] + rng.integers(0, np.maximum(_UTM_PAIR_COUNT[channel], 1))
    session_utm = np.where(tagged, pair, -1)

    # Products only where the page shows one; half the time it is the session's focus product.
    session_product = _product_numbers(n_sessions, rng)
    has_product = np.flatnonzero(_KIND_HAS_PRODUCT[kind])
    same_product = rng.random(len(has_product)) < c.SAME_PRODUCT_IN_SESSION_PROB
    product = np.zeros(len(session), dtype=np.int64)
    product[has_product] = np.where(
        same_product, session_product[session[has_product]], _product_numbers(len(has_product), rng)
    )

    # Keep events before the cutoff, ordered by visitor then time (one stable sort on a combined key).
    kept = np.flatnonzero(occurred_at < window.cutoff)
    visitor = sessions.visitor[session[kept]]
    seconds = occurred_at[kept] - occurred_at[kept].min(initial=window.cutoff)
    order = kept[np.argsort((visitor << 32) | seconds, kind="stable")]
    ordered_session = session[order]
    return BlockEvents(
        visitor=sessions.visitor[ordered_session],
        occurred_at=occurred_at[order],
        kind=kind[order],
        device=session_device[ordered_session],
        product=product[order],
        utm_pair=session_utm[ordered_session],
    )


def event_table(
    events: BlockEvents, visitors: Visitors, first_event_number: int, customer_id_width: int, seed: int
) -> pa.Table:
    """The landing `events` columns for one block; event_id numbers continue from first_event_number."""
    n = len(events.visitor)
    visitor = pa.array(events.visitor)
    # Format each visitor's ids once and repeat them per event: far cheaper than formatting per event.
    if visitors.customer_number is None:
        customer_id = pa.nulls(n, pa.string())
    else:
        customer_id = zero_padded(visitors.customer_number, customer_id_width).take(visitor)
    utm_sources = [pair[0] for pair in _UTM_PAIRS]
    utm_campaigns = [pair[1] for pair in _UTM_PAIRS]
    product_missing = events.product == 0
    return pa.table(
        {
            "event_id": zero_padded(np.arange(first_event_number, first_event_number + n), c.EVENT_ID_WIDTH, "E"),
            "customer_id": customer_id,
            "anonymous_id": anonymous_ids(visitors.anonymous_key, seed).take(visitor),
            "occurred_at": pa.array(events.occurred_at, pa.timestamp("s")),
            "event_type": from_vocabulary(c.EVENT_TYPES, _KIND_EVENT_TYPE[events.kind]),
            "page_type": from_vocabulary(c.PAGE_TYPES, _KIND_PAGE_TYPE[events.kind]),
            "product_id": from_vocabulary(_PRODUCT_IDS, events.product - 1, missing=product_missing),
            "device": from_vocabulary(c.DEVICES, events.device),
            "utm_source": from_vocabulary(utm_sources, events.utm_pair),
            "utm_campaign": from_vocabulary(utm_campaigns, events.utm_pair),
        }
    )
