"""Every constant of the demo shop in one place: archetypes, event vocabulary, channels, profiles, column lists.

Rates are per year, times are epoch seconds, money is USD. The numbers were tuned (seed 42) so that profile "demo"
gives ~66 % single-order buyers, ~1.8 orders and ~32 events per buyer, top 10 % of buyers ~50 % of revenue, and
KMeans on event shares recovers the archetypes (ARI ~0.9); profile "bench" gives ~4.9 orders and ~36 events per
customer (prospects' events included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SECONDS_PER_DAY = 86_400
DAYS_PER_YEAR = 365.25
SECONDS_PER_YEAR = SECONDS_PER_DAY * DAYS_PER_YEAR

CURRENCY = "USD"
# Customers are generated and written in blocks of this many; fixed so that output does not depend on memory.
CUSTOMER_BLOCK_SIZE = 50_000
CUSTOMER_ID_MIN_WIDTH = 7  # "0004711": leading zeros that an int cast would destroy
EVENT_ID_WIDTH = 10
ORDER_ID_WIDTH = 8

# ---------------------------------------------------------------------------------------------------------------
# Landing and truth columns (docs/ARCHITECTURE.md, "Landing zone"; the files carry no source_file/source_row).
ORDER_COLUMNS = (
    "order_id",
    "customer_id",
    "ordered_at",
    "order_total",
    "currency",
    "discount_amount",
    "discount_code",
    "channel",
    "status",
)
CUSTOMER_COLUMNS = (
    "customer_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "postal_code",
    "country",
    "signed_up_at",
    "acquisition_channel",
    "marketing_consent",
)
EVENT_COLUMNS = (
    "event_id",
    "customer_id",
    "anonymous_id",
    "occurred_at",
    "event_type",
    "page_type",
    "product_id",
    "device",
    "utm_source",
    "utm_campaign",
)
CUSTOMER_TRUTH_COLUMNS = (
    "customer_id",
    "archetype",
    "is_alive_at_end_date",
    "purchase_rate",
    "dropout_rate",
    "future_revenue",
    "future_order_count",
)
PROSPECT_TRUTH_COLUMNS = ("anonymous_id", "archetype", "converts_in_future", "future_revenue")

STATUS_COMPLETED = "completed"
STATUS_REFUNDED = "refunded"
ORDER_CHANNELS = ("web", "mobile_app")
DEVICES = ("desktop", "mobile", "tablet")

# ---------------------------------------------------------------------------------------------------------------
# Archetypes. Index order is the code used in every array.
ARCHETYPES = (
    "High-Intent Researchers",
    "Discount Seekers",
    "Brand-Focused Explorers",
    "Visual Browsers",
    "Urgency-Driven Buyers",
)
RESEARCHER, DISCOUNT_SEEKER, BRAND_EXPLORER, VISUAL_BROWSER, URGENCY_BUYER = range(5)


@dataclass(frozen=True)
class ArchetypeTraits:
    """How one archetype shifts buying (multipliers on the base rates) and browsing."""

    buyer_share: float
    prospect_share: float
    purchase_rate_mult: float
    dropout_rate_mult: float
    spend_mult: float
    entry_offer_prob: float  # P(first order uses an entry offer)
    repeat_discount_prob: float  # P(a repeat order uses a code)
    refund_prob: float
    mobile_app_prob: float  # P(an order is placed in the app)
    mobile_device_prob: float  # P(preferred device is a phone)
    events_per_session: float  # mean events in a browse session
    pre_order_sessions: float  # mean extra browse sessions before each order
    pre_order_lag_days: float  # mean time from such a session to the order ("buy the same day" = small)
    prospect_conversion_logit: float


ARCHETYPE_TRAITS: tuple[ArchetypeTraits, ...] = (
    # High-Intent Researchers: research for days, spend more, rarely use codes
    ArchetypeTraits(
        buyer_share=0.20,
        prospect_share=0.18,
        purchase_rate_mult=1.15,
        dropout_rate_mult=0.75,
        spend_mult=1.55,
        entry_offer_prob=0.06,
        repeat_discount_prob=0.04,
        refund_prob=0.025,
        mobile_app_prob=0.20,
        mobile_device_prob=0.30,
        events_per_session=8.0,
        pre_order_sessions=1.2,
        pre_order_lag_days=6.0,
        prospect_conversion_logit=0.3,
    ),
    # Discount Seekers: sale pages, codes, abandon at shipping, spend less, churn fast
    ArchetypeTraits(
        buyer_share=0.25,
        prospect_share=0.28,
        purchase_rate_mult=0.90,
        dropout_rate_mult=1.60,
        spend_mult=0.70,
        entry_offer_prob=0.75,
        repeat_discount_prob=0.55,
        refund_prob=0.045,
        mobile_app_prob=0.30,
        mobile_device_prob=0.50,
        events_per_session=4.5,
        pre_order_sessions=0.4,
        pre_order_lag_days=3.0,
        prospect_conversion_logit=-0.3,
    ),
    # Brand-Focused Explorers: about/brand pages and the blog, loyal
    ArchetypeTraits(
        buyer_share=0.18,
        prospect_share=0.16,
        purchase_rate_mult=1.10,
        dropout_rate_mult=0.70,
        spend_mult=1.10,
        entry_offer_prob=0.12,
        repeat_discount_prob=0.06,
        refund_prob=0.025,
        mobile_app_prob=0.25,
        mobile_device_prob=0.40,
        events_per_session=5.0,
        pre_order_sessions=0.4,
        pre_order_lag_days=4.0,
        prospect_conversion_logit=0.0,
    ),
    # Visual Browsers: galleries and videos, on their phones
    ArchetypeTraits(
        buyer_share=0.20,
        prospect_share=0.22,
        purchase_rate_mult=0.90,
        dropout_rate_mult=1.00,
        spend_mult=0.90,
        entry_offer_prob=0.18,
        repeat_discount_prob=0.08,
        refund_prob=0.030,
        mobile_app_prob=0.55,
        mobile_device_prob=0.80,
        events_per_session=5.5,
        pre_order_sessions=0.4,
        pre_order_lag_days=2.0,
        prospect_conversion_logit=-0.1,
    ),
    # Urgency-Driven Buyers: countdowns and low-stock notices, buy the same day
    ArchetypeTraits(
        buyer_share=0.17,
        prospect_share=0.16,
        purchase_rate_mult=1.00,
        dropout_rate_mult=1.10,
        spend_mult=1.00,
        entry_offer_prob=0.22,
        repeat_discount_prob=0.10,
        refund_prob=0.030,
        mobile_app_prob=0.40,
        mobile_device_prob=0.60,
        events_per_session=4.0,
        pre_order_sessions=0.4,
        pre_order_lag_days=0.08,
        prospect_conversion_logit=0.4,
    ),
)

# ---------------------------------------------------------------------------------------------------------------
# Event vocabulary: each event kind is an (event_type, page_type, carries a product_id) triple.
EVENT_TYPES = (
    "page_view",
    "product_view",
    "add_to_cart",
    "begin_checkout",
    "shipping_info_viewed",
    "purchase",
    "review_read",
    "compare_used",
    "gallery_view",
    "video_play",
    "countdown_view",
    "low_stock_view",
    "discount_code_applied",
    "search",
)
PAGE_TYPES = (
    "home",
    "category",
    "product",
    "sale",
    "about",
    "brand",
    "reviews",
    "comparison",
    "gallery",
    "cart",
    "checkout",
    "blog",
    "search",
)
EVENT_KINDS: tuple[tuple[str, str, bool], ...] = (
    # common to everyone
    ("page_view", "home", False),  # 0
    ("page_view", "category", False),  # 1
    ("product_view", "product", True),  # 2
    ("search", "search", False),  # 3
    ("add_to_cart", "product", True),  # 4
    ("page_view", "cart", False),  # 5
    # High-Intent Researchers
    ("review_read", "reviews", True),  # 6
    ("compare_used", "comparison", True),  # 7
    ("page_view", "reviews", True),  # 8
    # Discount Seekers
    ("page_view", "sale", False),  # 9
    ("product_view", "sale", True),  # 10
    ("discount_code_applied", "checkout", False),  # 11
    ("shipping_info_viewed", "checkout", False),  # 12
    ("begin_checkout", "checkout", False),  # 13
    # Brand-Focused Explorers
    ("page_view", "about", False),  # 14
    ("page_view", "brand", False),  # 15
    ("page_view", "blog", False),  # 16
    # Visual Browsers
    ("gallery_view", "gallery", True),  # 17
    ("video_play", "product", True),  # 18
    ("page_view", "gallery", False),  # 19
    # Urgency-Driven Buyers
    ("countdown_view", "product", True),  # 20
    ("low_stock_view", "product", True),  # 21
    ("countdown_view", "sale", False),  # 22
    # only in order sessions
    ("purchase", "checkout", False),  # 23
)
KIND_ADD_TO_CART = 4
KIND_DISCOUNT_APPLIED = 11
KIND_SHIPPING_INFO = 12
KIND_BEGIN_CHECKOUT = 13
KIND_PURCHASE = 23
N_BROWSE_KINDS = 23  # kinds 0..22 can appear in browsing; purchase only closes an order session

_COMMON_MIX = {0: 0.06, 1: 0.07, 2: 0.10, 3: 0.03, 4: 0.02, 5: 0.01, 13: 0.005, 12: 0.005}
_SIGNATURE_MIX: dict[int, dict[int, float]] = {
    RESEARCHER: {2: 0.18, 6: 0.14, 7: 0.09, 8: 0.07, 3: 0.04},
    DISCOUNT_SEEKER: {9: 0.18, 10: 0.14, 11: 0.07, 12: 0.07},
    BRAND_EXPLORER: {14: 0.13, 15: 0.15, 16: 0.14},
    VISUAL_BROWSER: {17: 0.18, 18: 0.12, 19: 0.11},
    URGENCY_BUYER: {20: 0.16, 21: 0.14, 22: 0.08, 4: 0.04},
}
# A little of every other archetype's signature, so no feature is a perfect label.
_CROSS_TALK = 0.006
# Dirichlet concentration around the profile: lower = noisier customers.
MIX_CONCENTRATION = 60.0


def archetype_event_mix() -> np.ndarray:
    """Mean browse-event mix per archetype: array (n_archetypes, N_BROWSE_KINDS), rows sum to 1."""
    mix = np.full((len(ARCHETYPES), N_BROWSE_KINDS), 0.0)
    for archetype in _SIGNATURE_MIX:
        for kind, weight in _COMMON_MIX.items():
            mix[archetype, kind] += weight
        for other, other_signature in _SIGNATURE_MIX.items():
            for kind, weight in other_signature.items():
                mix[archetype, kind] += weight if other == archetype else _CROSS_TALK
    return mix / mix.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------------------------
# Acquisition channels differ in value: multipliers on purchase rate, dropout rate and spend.
ACQUISITION_CHANNELS = ("paid_search", "paid_social", "organic", "email", "referral", "affiliate")
ACQUISITION_SHARES = np.array([0.24, 0.22, 0.22, 0.12, 0.08, 0.12])
CHANNEL_PURCHASE_MULT = np.array([1.00, 0.80, 1.10, 1.25, 1.30, 0.85])
CHANNEL_DROPOUT_MULT = np.array([1.00, 1.35, 0.85, 0.80, 0.70, 1.25])
CHANNEL_SPEND_MULT = np.array([1.00, 0.85, 1.05, 1.05, 1.20, 0.90])
CHANNEL_ENTRY_OFFER_MULT = np.array([1.0, 1.4, 0.7, 1.2, 0.8, 1.8])
# Session attribution: (utm_source, utm_campaign) pairs a session of a customer from this channel may carry.
UTM_PAIRS_BY_CHANNEL: tuple[tuple[tuple[str, str], ...], ...] = (
    (("google", "brand_search"), ("google", "generic_search")),
    (("facebook", "retargeting"), ("instagram", "spring_collection")),
    (),
    (("newsletter", "weekly_digest"), ("newsletter", "flash_sale")),
    (("friend_referral", "refer_a_friend"), ("friend_referral", "refer_a_friend")),
    (("dealfinder", "coupon_partner"), ("cashbackhub", "cashback")),
)
UTM_TAGGED_SESSION_PROB = 0.35

# ---------------------------------------------------------------------------------------------------------------
# Discounts: code -> (share of the order value taken off, flat amount off in USD).
DISCOUNT_OFFERS: dict[str, tuple[float, float]] = {
    "WELCOME10": (0.10, 0.0),
    "SUMMER20": (0.20, 0.0),
    "FREESHIP": (0.0, 6.95),
    "SALE15": (0.15, 0.0),
    "FLASH25": (0.25, 0.0),
    "VIP10": (0.10, 0.0),
}
DISCOUNT_CODES = tuple(DISCOUNT_OFFERS)
ENTRY_OFFER_CODES = ("WELCOME10", "SUMMER20", "FREESHIP")  # only on a first order
ENTRY_OFFER_WEIGHTS = np.array([0.5, 0.25, 0.25])
SUMMER_MONTHS = (6, 7, 8)  # SUMMER20 is only valid then; otherwise the customer gets WELCOME10
REPEAT_OFFER_CODES = ("SALE15", "FLASH25", "VIP10", "FREESHIP")
REPEAT_OFFER_WEIGHTS = np.array([0.4, 0.2, 0.2, 0.2])
ENTRY_OFFER_DROPOUT_MULT = 1.5  # discount-acquired customers churn faster
ENTRY_OFFER_PURCHASE_MULT = 0.85

# Seasonality of buying by month (Jan..Dec), applied by thinning: holidays up, January down.
MONTH_SEASONALITY = np.array([0.80, 0.85, 0.95, 0.95, 1.00, 1.00, 0.95, 0.95, 1.00, 1.05, 1.45, 1.60])
# When in the day people shop (hour 0..23), relative weights.
HOUR_WEIGHTS = np.array(
    [
        0.8,
        0.5,
        0.3,
        0.2,
        0.2,
        0.3,
        0.6,
        1.0,
        1.5,
        2.0,
        2.3,
        2.5,
        2.8,
        2.7,
        2.5,
        2.5,
        2.6,
        2.8,
        3.2,
        3.8,
        4.2,
        4.0,
        3.0,
        1.8,
    ]
)

REFUND_DELAY_DAYS = (2, 30)
PARTIAL_REFUND_PROB = 0.2
BIG_SPENDER_PROB = 0.02
BIG_SPENDER_MULT = 4.0
ORDER_SPEND_SHAPE = 5.0  # gamma shape of one order around the customer's mean spend (gamma-gamma-like)
MIN_ORDER_VALUE = 5.0

# Web tracking and browsing
WEB_TRACKED_PROB = 0.85
SESSION_RATE_SHAPE = 2.0  # gamma shape of a customer's browsing intensity
CHURNED_SESSION_RATE_MULT = 0.04  # a churned customer (mostly) stops visiting
ORDER_SESSION_BROWSE_EVENTS = 3.0  # mean browse events before the checkout tail of an order session
SHIPPING_INFO_IN_ORDER_PROB = 0.5
SECONDS_BETWEEN_EVENTS = 40.0
PRE_ORDER_MIN_LEAD_SECONDS = 600  # a browse session before an order starts at least this long before it
PREFERRED_DEVICE_PROB = 0.8
TABLET_SHARE = 0.08
SAME_PRODUCT_IN_SESSION_PROB = 0.5
N_PRODUCTS = 1_500
PRODUCT_POPULARITY_EXPONENT = 1.1

# Sign-up and first order
SIGNUP_YEARS = 3.0
SIGNUP_GROWTH = np.log(3.0)  # new-customer rate at end_date is 3x the rate three years earlier
SIGNUP_AT_CHECKOUT_PROB = 0.7  # account created at the first checkout; others signed up earlier
EARLY_SIGNUP_MEAN_DAYS = 20.0

# Contact data
EMAIL_MISSING_PROB = 0.02
PHONE_MISSING_PROB = 0.35
MARKETING_CONSENT_PROB = 0.70
EMAIL_TITLE_CASE_PROB = 0.15
EMAIL_UPPER_CASE_PROB = 0.04
EMAIL_PADDED_PROB = 0.05
COUNTRY_SHARES = (("US", 0.95), ("CA", 0.05))
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com", "shop.example")
EMAIL_DOMAIN_WEIGHTS = np.array([0.40, 0.20, 0.15, 0.15, 0.10])
# Phone formats: separators around area code (AAA), exchange (555) and line (LLLL).
PHONE_FORMATS = (
    ("+1 (", ") ", "-"),
    ("(", ") ", "-"),
    ("", ".", "."),
    ("", "-", "-"),
    ("", "", ""),
    ("+1", "", ""),
    ("1-", "-", "-"),
)
PHONE_FORMAT_WEIGHTS = np.array([0.25, 0.20, 0.15, 0.20, 0.08, 0.07, 0.05])
FIRST_NAMES = (
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Sandra",
    "Mark",
    "Ashley",
    "Steven",
    "Emily",
    "Andrew",
    "Michelle",
    "Joshua",
    "Amanda",
    "Kevin",
    "Melissa",
    "Brian",
    "Laura",
    "Luis",
    "Sofia",
    "Wei",
    "Mei",
    "Aarav",
    "Priya",
    "Omar",
    "Fatima",
    "Noah",
    "Olivia",
    "Liam",
    "Emma",
    "Mateo",
    "Camila",
    "Yuki",
    "Hana",
    "Kofi",
    "Amara",
    "Ivan",
    "Elena",
    "Lucas",
    "Chloe",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Chen",
    "Patel",
    "Kim",
    "Singh",
    "O'Brien",
    "Müller",
    "Okafor",
    "Tanaka",
    "Kowalski",
    "Dubois",
)

# Prospects: anonymous visitors with events and no order before end_date.
PROSPECT_SHARE = 0.40  # of n_customers
PROSPECT_FIRST_SEEN_DAYS = 540
PROSPECT_INTEREST_MEAN_DAYS = 45.0
PROSPECT_SESSION_RATE = 20.0  # browse sessions per year while interested
PROSPECT_CONVERSION_INTERCEPT = -3.2
PROSPECT_CONVERSION_PER_LOG_SESSION = 0.6
PROSPECT_CONVERSION_IF_INTERESTED = 2.2  # still browsing at end_date: much more likely to buy


@dataclass(frozen=True)
class ProfileParams:
    """Base rates of one size profile; archetype and channel multipliers apply on top."""

    purchase_rate_shape: float  # Gamma shape of orders-per-year while alive (heterogeneity)
    purchase_rate_mean: float  # orders per year while alive
    dropout_rate_shape: float  # Gamma shape of the dropout rate
    dropout_rate_mean: float  # per year; lifetime after the first order ~ Exponential(dropout_rate)
    session_rate_mean: float  # browse sessions per year while alive
    events_per_session_mult: float  # scales the archetypes' events per browse session
    pre_order_session_mult: float  # scales the archetypes' browse sessions before each order
    spend_median: float  # USD, median of customers' mean order value
    spend_sigma: float  # lognormal sigma of customers' mean order value


PROFILES: dict[str, ProfileParams] = {
    # Most buyers buy once; ~1.8 orders and ~32 events per buyer.
    "demo": ProfileParams(
        purchase_rate_shape=0.8,
        purchase_rate_mean=1.1,
        dropout_rate_shape=1.2,
        dropout_rate_mean=0.8,
        session_rate_mean=6.0,
        events_per_session_mult=1.0,
        pre_order_session_mult=0.5,
        spend_median=55.0,
        spend_sigma=0.65,
    ),
    # A busier shop for benchmarks: ~5 orders and ~36 events per customer.
    "bench": ProfileParams(
        purchase_rate_shape=1.2,
        purchase_rate_mean=4.4,
        dropout_rate_shape=1.5,
        dropout_rate_mean=0.45,
        session_rate_mean=1.5,
        events_per_session_mult=0.9,
        pre_order_session_mult=0.2,
        spend_median=55.0,
        spend_sigma=0.65,
    ),
}
