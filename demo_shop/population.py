"""Who shops: the latent and observed attributes of every buyer and every anonymous prospect.

Buyers follow a Pareto/NBD-like story: a purchase rate ~ Gamma and a dropout rate ~ Gamma per customer, a lifetime
~ Exponential(dropout rate) after the first order, both shifted by archetype, acquisition channel and entry offer.
Arrays are indexed by customer position 0..n-1 in sign-up order (position i gets customer_id i + 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demo_shop import config as c
from demo_shop.clock import ShopWindow, at_shopping_hour, growing_arrivals, month_of


def archetype_trait(name: str) -> np.ndarray:
    """One ArchetypeTraits field as an array indexed by archetype code."""
    return np.array([getattr(traits, name) for traits in c.ARCHETYPE_TRAITS], dtype=np.float64)


def _gamma_with_mean(shape: float, mean: float, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.gamma(shape, mean / shape, n)


@dataclass(frozen=True)
class Buyers:
    """One entry per buyer (customer with a first order before the cutoff); times in epoch seconds, rates per year."""

    archetype: np.ndarray  # int8 index into config.ARCHETYPES
    acquisition_channel: np.ndarray  # int8 index into config.ACQUISITION_CHANNELS
    signed_up_at: np.ndarray  # int64
    first_order_at: np.ndarray  # int64, >= signed_up_at, < cutoff
    entry_offer: np.ndarray  # int8 index into config.DISCOUNT_CODES, -1 = no entry offer
    purchase_rate: np.ndarray  # repeat orders per year while alive
    dropout_rate: np.ndarray  # per year
    died_at: np.ndarray  # int64: first order + lifetime; may lie beyond the horizon
    mean_spend: np.ndarray  # USD, the customer's mean order value before discounts
    web_tracked: np.ndarray  # bool: has web events at all
    session_rate: np.ndarray  # browse sessions per year while alive
    preferred_device: np.ndarray  # int8 index into config.DEVICES
    marketing_consent: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.archetype)


@dataclass(frozen=True)
class Prospects:
    """One entry per anonymous visitor with events and no order before the cutoff."""

    archetype: np.ndarray  # int8
    traffic_channel: np.ndarray  # int8 index into config.ACQUISITION_CHANNELS (only drives utm tags)
    first_seen_at: np.ndarray  # int64, < cutoff: the first session starts here
    interest_ends_at: np.ndarray  # int64: browsing stops then (may be after the cutoff = still interested)
    extra_sessions: np.ndarray  # int64: sessions after the first one, spread over the interest period
    preferred_device: np.ndarray  # int8
    converts_in_future: np.ndarray  # bool
    future_revenue: np.ndarray  # USD, 0 when not converting

    def __len__(self) -> int:
        return len(self.archetype)


def draw_archetypes(n: int, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Archetype code per person, drawn with the given shares."""
    return rng.choice(len(shares), size=n, p=shares / shares.sum()).astype(np.int8)


def draw_preferred_device(archetype: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Preferred device per person: phone with the archetype's probability, else tablet or desktop."""
    n = len(archetype)
    on_mobile = rng.random(n) < archetype_trait("mobile_device_prob")[archetype]
    on_tablet = rng.random(n) < c.TABLET_SHARE
    return np.where(on_mobile, 1, np.where(on_tablet, 2, 0)).astype(np.int8)


def draw_entry_offers(
    archetype: np.ndarray, channel: np.ndarray, first_order_at: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Discount code of the first order (index into DISCOUNT_CODES) or -1; SUMMER20 only exists in summer."""
    n = len(archetype)
    probability = np.clip(archetype_trait("entry_offer_prob")[archetype] * c.CHANNEL_ENTRY_OFFER_MULT[channel], 0, 0.95)
    uses_offer = rng.random(n) < probability
    weights = c.ENTRY_OFFER_WEIGHTS / c.ENTRY_OFFER_WEIGHTS.sum()
    offer = rng.choice(len(c.ENTRY_OFFER_CODES), size=n, p=weights)
    codes = np.array([c.DISCOUNT_CODES.index(code) for code in c.ENTRY_OFFER_CODES])[offer]
    out_of_season = ~np.isin(month_of(first_order_at), c.SUMMER_MONTHS)
    codes = np.where(
        (codes == c.DISCOUNT_CODES.index("SUMMER20")) & out_of_season, c.DISCOUNT_CODES.index("WELCOME10"), codes
    )
    return np.where(uses_offer, codes, -1).astype(np.int8)


def draw_buyers(n: int, params: c.ProfileParams, window: ShopWindow, rng: np.random.Generator) -> Buyers:
    """n buyers with first orders over ~3 growing years before the cutoff, sorted by sign-up time."""
    first_order_at = at_shopping_hour(growing_arrivals(n, window.cutoff, c.SIGNUP_YEARS, c.SIGNUP_GROWTH, rng), rng)
    signed_up_early = rng.random(n) >= c.SIGNUP_AT_CHECKOUT_PROB
    signup_lead = np.where(
        signed_up_early,
        rng.exponential(c.EARLY_SIGNUP_MEAN_DAYS * c.SECONDS_PER_DAY, n),
        rng.uniform(60, 600, n),  # account created during the first checkout
    ).astype(np.int64)
    signed_up_at = first_order_at - signup_lead
    order = np.argsort(signed_up_at, kind="stable")
    first_order_at, signed_up_at = first_order_at[order], signed_up_at[order]

    archetype = draw_archetypes(n, archetype_trait("buyer_share"), rng)
    channel = rng.choice(len(c.ACQUISITION_CHANNELS), size=n, p=c.ACQUISITION_SHARES).astype(np.int8)
    entry_offer = draw_entry_offers(archetype, channel, first_order_at, rng)
    discount_acquired = entry_offer >= 0

    purchase_rate = (
        _gamma_with_mean(params.purchase_rate_shape, params.purchase_rate_mean, n, rng)
        * archetype_trait("purchase_rate_mult")[archetype]
        * c.CHANNEL_PURCHASE_MULT[channel]
        * np.where(discount_acquired, c.ENTRY_OFFER_PURCHASE_MULT, 1.0)
    )
    dropout_rate = (
        _gamma_with_mean(params.dropout_rate_shape, params.dropout_rate_mean, n, rng)
        * archetype_trait("dropout_rate_mult")[archetype]
        * c.CHANNEL_DROPOUT_MULT[channel]
        * np.where(discount_acquired, c.ENTRY_OFFER_DROPOUT_MULT, 1.0)
    )
    # Cap lifetimes far beyond the horizon so int64 seconds never overflow for tiny dropout rates.
    lifetime_years = np.minimum(rng.exponential(1.0, n) / np.maximum(dropout_rate, 1e-9), 1_000.0)
    died_at = first_order_at + (lifetime_years * c.SECONDS_PER_YEAR).astype(np.int64)

    big_spender = rng.random(n) < c.BIG_SPENDER_PROB
    mean_spend = (
        params.spend_median
        * np.exp(params.spend_sigma * rng.standard_normal(n))
        * archetype_trait("spend_mult")[archetype]
        * c.CHANNEL_SPEND_MULT[channel]
        * np.where(big_spender, c.BIG_SPENDER_MULT, 1.0)
    )
    # Engaged browsers buy more: browsing intensity shares part of the purchase-rate heterogeneity.
    session_rate = (
        _gamma_with_mean(c.SESSION_RATE_SHAPE, params.session_rate_mean, n, rng)
        * (purchase_rate / params.purchase_rate_mean) ** 0.3
    )
    consent_prob = np.where(channel == c.ACQUISITION_CHANNELS.index("email"), 0.95, c.MARKETING_CONSENT_PROB - 0.03)
    return Buyers(
        archetype=archetype,
        acquisition_channel=channel,
        signed_up_at=signed_up_at,
        first_order_at=first_order_at,
        entry_offer=entry_offer,
        purchase_rate=purchase_rate,
        dropout_rate=dropout_rate,
        died_at=died_at,
        mean_spend=mean_spend,
        web_tracked=rng.random(n) < c.WEB_TRACKED_PROB,
        session_rate=session_rate,
        preferred_device=draw_preferred_device(archetype, rng),
        marketing_consent=rng.random(n) < consent_prob,
    )


def draw_order_values(mean_spend: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gross value of one order per entry (USD, before discount): gamma around the customer's mean spend."""
    values = rng.gamma(c.ORDER_SPEND_SHAPE, mean_spend / c.ORDER_SPEND_SHAPE)
    return np.maximum(values, c.MIN_ORDER_VALUE)


def draw_prospects(n: int, params: c.ProfileParams, window: ShopWindow, rng: np.random.Generator) -> Prospects:
    """n anonymous visitors first seen over the last ~18 months; those still browsing at the cutoff convert more."""
    archetype = draw_archetypes(n, archetype_trait("prospect_share"), rng)
    first_seen_at = at_shopping_hour(
        growing_arrivals(n, window.cutoff, c.PROSPECT_FIRST_SEEN_DAYS / c.DAYS_PER_YEAR, c.SIGNUP_GROWTH, rng), rng
    )
    first_seen_at = np.minimum(first_seen_at, window.cutoff - 1)
    interest_ends_at = first_seen_at + (rng.exponential(c.PROSPECT_INTEREST_MEAN_DAYS, n) * c.SECONDS_PER_DAY).astype(
        np.int64
    )
    observed_years = (np.minimum(interest_ends_at, window.cutoff) - first_seen_at) / c.SECONDS_PER_YEAR
    session_rate = _gamma_with_mean(c.SESSION_RATE_SHAPE, c.PROSPECT_SESSION_RATE, n, rng)
    extra_sessions = rng.poisson(session_rate * observed_years)

    still_interested = interest_ends_at >= window.cutoff
    logit = (
        c.PROSPECT_CONVERSION_INTERCEPT
        + c.PROSPECT_CONVERSION_PER_LOG_SESSION * np.log1p(extra_sessions)
        + c.PROSPECT_CONVERSION_IF_INTERESTED * still_interested
        + archetype_trait("prospect_conversion_logit")[archetype]
    )
    converts = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    # A converting prospect places a first order and, at half the buyers' rate, some repeats within the horizon.
    spend_mult = archetype_trait("spend_mult")[archetype]
    mean_spend = params.spend_median * np.exp(params.spend_sigma * rng.standard_normal(n)) * spend_mult
    future_years = (window.horizon_end - window.cutoff) / c.SECONDS_PER_YEAR
    future_orders = 1 + rng.poisson(0.5 * params.purchase_rate_mean * future_years * rng.random(n))
    order_value = draw_order_values(mean_spend, rng) * future_orders
    return Prospects(
        archetype=archetype,
        traffic_channel=rng.choice(len(c.ACQUISITION_CHANNELS), size=n, p=c.ACQUISITION_SHARES).astype(np.int8),
        first_seen_at=first_seen_at,
        interest_ends_at=interest_ends_at,
        extra_sessions=extra_sessions,
        preferred_device=draw_preferred_device(archetype, rng),
        converts_in_future=converts,
        future_revenue=np.where(converts, np.round(order_value, 2), 0.0),
    )
