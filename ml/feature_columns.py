"""Column names of the dbt feature marts that more than one model reads (one place, see docs/ARCHITECTURE.md)."""

# Per-visitor web behaviour ratios (each in [0, 1]: a dbt value_between test in customer_features.yml checks it).
BEHAVIOUR_RATIOS: tuple[str, ...] = (
    "research_share",
    "sale_share",
    "discount_event_share",
    "shipping_abandon_rate",
    "brand_share",
    "visual_share",
    "urgency_share",
)
# Per-visitor web behaviour, the same in customer_features, prospect_features and customer_prepurchase_behaviour.
BEHAVIOUR_SHARES: tuple[str, ...] = ("product_views_per_active_day", *BEHAVIOUR_RATIOS)

# The shop's N most frequent source event types become share columns (dbt var top_event_type_count, the same
# number; marts.top_event_types names the event type behind each column).
TOP_EVENT_TYPE_COUNT = 8
EVENT_TYPE_SHARES: tuple[str, ...] = tuple(f"event_type_share_{rank}" for rank in range(1, TOP_EVENT_TYPE_COUNT + 1))

# Vocabulary-free behaviour in customer_features (macro generic_behaviour_columns): signal from any shop's events,
# mapped or not. Clustering uses it when too few events map to segmint's vocabulary.
GENERIC_BEHAVIOUR: tuple[str, ...] = (
    "active_days",
    "sessions_per_active_day",
    "avg_session_minutes",
    "events_per_session",
    "mobile_share",
    "tablet_share",
    "desktop_share",
    "night_share",
    "morning_share",
    "afternoon_share",
    "evening_share",
    *EVENT_TYPE_SHARES,
)

# Share of a customer's events that map to segmint's vocabulary (raw.event_vocabulary).
MAPPED_EVENT_SHARE = "mapped_event_share"
