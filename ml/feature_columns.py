"""Column names of the dbt feature marts that more than one model reads (one place, see docs/ARCHITECTURE.md)."""

# Per-visitor web behaviour ratios (each in [0, 1]; the GX feature suite checks the range).
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
