"""Every order of every buyer from the first order to the end of the truth horizon, plus refund rows.

Repeat orders are a Poisson process with the customer's purchase rate while alive (holiday seasonality by
thinning); a refund is its own row: negative order_total, status 'refunded', a few days after the order it undoes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demo_shop import config as c
from demo_shop.clock import ShopWindow, at_shopping_hour, seasonality
from demo_shop.population import Buyers, archetype_trait, draw_order_values


@dataclass(frozen=True)
class Orders:
    """One entry per order row (purchases and refunds), sorted by customer then time; money in USD."""

    customer: np.ndarray  # int64 buyer position
    ordered_at: np.ndarray  # int64 epoch seconds
    order_total: np.ndarray  # float64, negative for refunds
    discount_amount: np.ndarray  # float64, 0 when no code
    discount_code: np.ndarray  # int8 index into DISCOUNT_CODES, -1 = none
    channel: np.ndarray  # int8 index into ORDER_CHANNELS
    is_refund: np.ndarray  # bool
    order_number: np.ndarray  # int64: purchases numbered in time order; a refund carries its purchase's number

    def __len__(self) -> int:
        return len(self.customer)

    def select(self, mask: np.ndarray) -> Orders:
        """The rows where mask is true, same order."""
        return Orders(**{name: getattr(self, name)[mask] for name in self.__dataclass_fields__})


def _repeat_order_times(buyers: Buyers, window: ShopWindow, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(customer, time) of every repeat order in (first order, min(death, horizon end))."""
    active_until = np.minimum(buyers.died_at, window.horizon_end)
    active_years = np.maximum(active_until - buyers.first_order_at, 0) / c.SECONDS_PER_YEAR
    peak = c.MONTH_SEASONALITY.max()
    candidates = rng.poisson(buyers.purchase_rate * peak * active_years)
    customer = np.repeat(np.arange(len(buyers), dtype=np.int64), candidates)
    start, span = buyers.first_order_at[customer], (active_until - buyers.first_order_at)[customer]
    times = start + (rng.random(len(customer)) * span).astype(np.int64)
    kept = rng.random(len(times)) * peak < seasonality(times)
    customer, times = customer[kept], times[kept]
    # Shopping hours within the same day; never before the first order.
    times = np.maximum(at_shopping_hour(times, rng), start[kept] + 60)
    return customer, times


def _apply_discounts(gross: np.ndarray, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order_total, discount_amount), cents-rounded; a flat code never takes more than half the order."""
    share = np.array([offer[0] for offer in c.DISCOUNT_OFFERS.values()])
    flat = np.array([offer[1] for offer in c.DISCOUNT_OFFERS.values()])
    has_code = code >= 0
    safe_code = np.where(has_code, code, 0)
    discount = np.where(has_code, np.minimum(gross * share[safe_code] + flat[safe_code], gross / 2), 0.0)
    discount = np.round(discount, 2)
    return np.round(gross - discount, 2), discount


def _refund_rows(purchases: Orders, buyers: Buyers, rng: np.random.Generator) -> Orders:
    """A refund row for ~3 % of purchases (more for discount seekers): full or partial, days later."""
    probability = archetype_trait("refund_prob")[buyers.archetype[purchases.customer]]
    refunded = purchases.select(rng.random(len(purchases)) < probability)
    n = len(refunded)
    delay_days = rng.uniform(*c.REFUND_DELAY_DAYS, n)
    share = np.where(rng.random(n) < c.PARTIAL_REFUND_PROB, rng.uniform(0.2, 0.8, n), 1.0)
    return Orders(
        customer=refunded.customer,
        ordered_at=refunded.ordered_at + (delay_days * c.SECONDS_PER_DAY).astype(np.int64),
        order_total=-np.round(refunded.order_total * share, 2),
        discount_amount=np.zeros(n),
        discount_code=np.full(n, -1, np.int8),
        channel=refunded.channel,
        is_refund=np.ones(n, bool),
        order_number=refunded.order_number,
    )


def _concat(parts: list[Orders]) -> Orders:
    return Orders(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in Orders.__dataclass_fields__})


def simulate_orders(buyers: Buyers, window: ShopWindow, rng: np.random.Generator) -> Orders:
    """All purchases and refunds of all buyers up to the horizon end, sorted by customer then time."""
    n = len(buyers)
    repeat_customer, repeat_times = _repeat_order_times(buyers, window, rng)
    customer = np.concatenate([np.arange(n, dtype=np.int64), repeat_customer])
    ordered_at = np.concatenate([buyers.first_order_at, repeat_times])
    is_first = np.arange(len(customer)) < n

    archetype = buyers.archetype[customer]
    uses_repeat_code = ~is_first & (rng.random(len(customer)) < archetype_trait("repeat_discount_prob")[archetype])
    repeat_weights = c.REPEAT_OFFER_WEIGHTS / c.REPEAT_OFFER_WEIGHTS.sum()
    repeat_code_index = np.array([c.DISCOUNT_CODES.index(code) for code in c.REPEAT_OFFER_CODES])
    repeat_code = repeat_code_index[rng.choice(len(repeat_code_index), size=len(customer), p=repeat_weights)]
    code = np.where(is_first, buyers.entry_offer[customer], np.where(uses_repeat_code, repeat_code, -1))
    order_total, discount_amount = _apply_discounts(draw_order_values(buyers.mean_spend[customer], rng), code)
    channel = (rng.random(len(customer)) < archetype_trait("mobile_app_prob")[archetype]).astype(np.int8)

    # Purchases are numbered in time order (ties by customer), as a shop's order numbers are.
    time_rank = np.empty(len(customer), dtype=np.int64)
    time_rank[np.lexsort((customer, ordered_at))] = np.arange(1, len(customer) + 1)
    purchases = Orders(
        customer=customer,
        ordered_at=ordered_at,
        order_total=order_total,
        discount_amount=discount_amount,
        discount_code=code.astype(np.int8),
        channel=channel,
        is_refund=np.zeros(len(customer), bool),
        order_number=time_rank,
    )
    everything = _concat([purchases, _refund_rows(purchases, buyers, rng)])
    by_customer_then_time = np.lexsort((everything.order_number, everything.ordered_at, everything.customer))
    return everything.select(by_customer_then_time)
