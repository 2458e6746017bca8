{#-
    Events -> one row per `group_columns` and day, with the counts every behaviour feature is a sum of.
    stg_visitor_event_days stores this per visitor and day (daily partitions), so the feature marts read
    a table many times smaller than the events; a mart that needs a finer cut (events before the first
    order's timestamp) aggregates its own events with the same macro.
-#}
{% macro event_day_counts(events, group_columns) %}
    select
        {{ group_columns | join(', ') }},
        occurred_on,
        count(*) as event_count,
        min(occurred_at) as first_event_at,
        max(occurred_at) as last_event_at,
        count(*) filter (where event_type = 'product_view' or page_type = 'product') as product_view_count,
        count(*) filter (where event_type in ('review_read', 'compare_used') or page_type in ('reviews', 'comparison'))
            as research_event_count,
        count(*) filter (where page_type = 'sale') as sale_event_count,
        count(*) filter (where event_type = 'discount_code_applied') as discount_event_count,
        count(*) filter (where page_type in ('about', 'brand')) as brand_event_count,
        count(*) filter (where event_type in ('gallery_view', 'video_play') or page_type = 'gallery') as visual_event_count,
        count(*) filter (where event_type in ('countdown_view', 'low_stock_view')) as urgency_event_count,
        count(*) filter (where event_type = 'add_to_cart') as cart_add_count,
        bool_or(event_type = 'shipping_info_viewed') as saw_shipping,
        bool_or(event_type = 'purchase') as purchased
    from {{ events }}
    group by all
{% endmacro %}

{#-
    Per-visitor web behaviour from visitor-day counts (event_day_counts) that carry a `cutoff_date` column.
    Returns a parenthesised subquery, one row per `key`. Shares are fractions of the visitor's events,
    so heavy and light browsers are comparable. Unknown event/page types simply count as "other".
-#}
{% macro behaviour_features(event_days, key) %}
(
    select
        {{ key }},
        sum(event_count) as event_count,
        count(distinct occurred_on) as active_days,
        min(first_event_at) as first_event_at,
        max(last_event_at) as last_event_at,
        datediff('day', max(occurred_on), max(cutoff_date)) as days_since_last_event,
        coalesce(sum(event_count) filter (where occurred_on > cutoff_date - 30), 0) as event_count_last_30d,
        sum(product_view_count) / count(distinct occurred_on) as product_views_per_active_day,
        sum(research_event_count) / sum(event_count) as research_share,
        sum(sale_event_count) / sum(event_count) as sale_share,
        sum(discount_event_count) / sum(event_count) as discount_event_share,
        sum(brand_event_count) / sum(event_count) as brand_share,
        sum(visual_event_count) / sum(event_count) as visual_share,
        sum(urgency_event_count) / sum(event_count) as urgency_share,
        coalesce(sum(cart_add_count) filter (where occurred_on > cutoff_date - 90), 0) as cart_add_count_last_90d,
        coalesce(
            count(*) filter (where saw_shipping and not purchased) / nullif(count(*) filter (where saw_shipping), 0),
            0
        ) as shipping_abandon_rate
    from {{ event_days }}
    group by {{ key }}
)
{% endmacro %}

{#- The behaviour columns with the value a visitor without events gets (0, or NULL for "days since"). -#}
{% macro behaviour_columns(alias) %}
    {{ alias }}.customer_id is not null as has_web_events,
    coalesce({{ alias }}.event_count, 0) as event_count,
    coalesce({{ alias }}.active_days, 0) as active_days,
    {{ alias }}.days_since_last_event,
    coalesce({{ alias }}.event_count_last_30d, 0) as event_count_last_30d,
    coalesce({{ alias }}.product_views_per_active_day, 0) as product_views_per_active_day,
    coalesce({{ alias }}.research_share, 0) as research_share,
    coalesce({{ alias }}.sale_share, 0) as sale_share,
    coalesce({{ alias }}.discount_event_share, 0) as discount_event_share,
    coalesce({{ alias }}.shipping_abandon_rate, 0) as shipping_abandon_rate,
    coalesce({{ alias }}.brand_share, 0) as brand_share,
    coalesce({{ alias }}.visual_share, 0) as visual_share,
    coalesce({{ alias }}.urgency_share, 0) as urgency_share,
    coalesce({{ alias }}.cart_add_count_last_90d, 0) as cart_add_count_last_90d
{% endmacro %}

{#- The eight behaviour shares every behaviour mart exposes (ml/feature_columns.py lists the same names). -#}
{% macro behaviour_shares() %}
        product_views_per_active_day,
        research_share,
        sale_share,
        discount_event_share,
        shipping_abandon_rate,
        brand_share,
        visual_share,
        urgency_share
{%- endmacro %}
