{#-
    Per-visitor web behaviour from an events relation that carries a `cutoff_date` column.
    Returns a parenthesised subquery, one row per `key`. Shares are fractions of the visitor's events,
    so heavy and light browsers are comparable. Unknown event/page types simply count as "other".
-#}
{% macro behaviour_features(events, key) %}
(
    with visitor_days as (
        select
            {{ key }},
            occurred_on,
            bool_or(event_type = 'shipping_info_viewed') as saw_shipping,
            bool_or(event_type = 'purchase') as purchased
        from {{ events }}
        group by all
    ),

    shipping as (
        select
            {{ key }},
            coalesce(
                count(*) filter (where saw_shipping and not purchased)
                / nullif(count(*) filter (where saw_shipping), 0),
                0
            ) as shipping_abandon_rate
        from visitor_days
        group by all
    ),

    shares as (
        select
            {{ key }},
            count(*) as event_count,
            count(distinct occurred_on) as active_days,
            min(occurred_at) as first_event_at,
            max(occurred_at) as last_event_at,
            datediff('day', max(occurred_on), max(cutoff_date)) as days_since_last_event,
            count(*) filter (where occurred_on > cutoff_date - 30) as event_count_last_30d,
            count(*) filter (where event_type = 'product_view' or page_type = 'product')
                / count(distinct occurred_on) as product_views_per_active_day,
            avg(case when event_type in ('review_read', 'compare_used') or page_type in ('reviews', 'comparison')
                then 1.0 else 0.0 end) as research_share,
            avg(case when page_type = 'sale' then 1.0 else 0.0 end) as sale_share,
            avg(case when event_type = 'discount_code_applied' then 1.0 else 0.0 end) as discount_event_share,
            avg(case when page_type in ('about', 'brand') then 1.0 else 0.0 end) as brand_share,
            avg(case when event_type in ('gallery_view', 'video_play') or page_type = 'gallery'
                then 1.0 else 0.0 end) as visual_share,
            avg(case when event_type in ('countdown_view', 'low_stock_view') then 1.0 else 0.0 end) as urgency_share,
            count(*) filter (where event_type = 'add_to_cart' and occurred_on > cutoff_date - 90)
                as cart_add_count_last_90d
        from {{ events }}
        group by all
    )

    select shares.*, shipping.shipping_abandon_rate
    from shares
    inner join shipping using ({{ key }})
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
