{#-
    Events -> one row per `group_columns` and day, with the counts every behaviour feature is a sum of.
    stg_visitor_event_days stores this per visitor and day (daily partitions), so the feature marts read
    a table many times smaller than the events; a mart that needs a finer cut (events before the first
    order's timestamp) aggregates its own events with the same macro.
-#}
{#-
    `generic=true` adds the vocabulary-free counts (sessions, device and time-of-day mix). The session counts come
    from `sessions`: 'gaps' reads the column `seconds_since_previous` (gap to the visitor's previous event that
    day, a window); 'times' (DuckDB) puts the day's sorted event times there instead, which
    duckdb__visitor_event_days turns into the same counts (visitor_event_days picks one per engine).
-#}
{% macro event_day_counts(events, group_columns, generic=false, sessions='gaps') %}
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
        bool_or(event_type = 'purchase') as purchased,
        count(*) filter (where is_mapped) as mapped_event_count
        {%- if generic %},
        -- A session starts with the day's first event or after 30 minutes (1800 s) without one; its length is
        -- the sum of the gaps inside it, so summing in-session gaps gives the total session time.
        {%- if sessions == 'times' %}
        -- The day's sorted event times, in the session columns' place: visitor_event_days turns them into the counts.
        list_sort(list(occurred_at)) as session_count,
        null as session_seconds,
        {%- else %}
        count(*) filter (where seconds_since_previous is null or seconds_since_previous > 1800) as session_count,
        coalesce(sum(seconds_since_previous) filter (where seconds_since_previous <= 1800), 0) as session_seconds,
        {%- endif %}
        count(*) filter (where device in ('mobile', 'phone', 'smartphone')) as mobile_event_count,
        count(*) filter (where device = 'tablet') as tablet_event_count,
        count(*) filter (where device in ('desktop', 'computer', 'pc', 'laptop')) as desktop_event_count,
        -- Hours of the day in UTC (the events carry no shop time zone).
        count(*) filter (where hour(occurred_at) < 6) as night_event_count,
        count(*) filter (where hour(occurred_at) >= 6 and hour(occurred_at) < 12) as morning_event_count,
        count(*) filter (where hour(occurred_at) >= 12 and hour(occurred_at) < 18) as afternoon_event_count,
        count(*) filter (where hour(occurred_at) >= 18) as evening_event_count
        {%- endif %}
    from {{ events }}
    group by all
{% endmacro %}

{#-
    One row per visitor (customer_id, visitor_id) and day from `events` (stage_events rows): the table
    stg_visitor_event_days stores. Sessions end after 30 minutes without an event; gaps are measured within the
    visitor's day, so a session that crosses midnight UTC counts as two (rare, and it keeps every day independent).
    Ends a WITH list that `events` began (emits `, <ctes>` then the final select).
-#}
{% macro visitor_event_days(events) -%}
    {{ return(adapter.dispatch('visitor_event_days')(events)) }}
{%- endmacro %}

{#- Spark and the reference form: each event's gap to the visitor's previous event that day (a window), then sums. -#}
{% macro default__visitor_event_days(events) %}
, sequenced as (
    select
        *,
        {{ seconds_between(
            'lag(occurred_at) over (partition by visitor_id, occurred_on order by occurred_at, event_id)',
            'occurred_at'
        ) }} as seconds_since_previous
    from {{ events }}
)

{{ event_day_counts('sequenced', ['customer_id', 'visitor_id'], generic=true) }}
{% endmacro %}

{#-
    DuckDB: the same counts without the window. At 1 M customers the window (hash-partition 36 M events by visitor
    and day, sort each partition by time and event id) was most of the model's time; a visitor-day holds ~6 events,
    so the group-by collects their times as a list and the gaps are taken between neighbours of the sorted list
    (event_day_counts with sessions='times'). Ties in time give a 0-second gap in any order, so the event-id
    tie-break of the window changes nothing.
-#}
{% macro duckdb__visitor_event_days(events) %}
, day_counts as (
    {{ event_day_counts(events, ['customer_id', 'visitor_id'], generic=true, sessions='times') }}
),

day_gaps as (
    select *, {{ sorted_time_gaps('session_count') }} as gaps
    from day_counts
)

-- In place (same columns, same order as the window form): the first event has no gap, hence 1 +; a NULL gap
-- opens a session, as a NULL lag does.
select * exclude (gaps) replace (
    1 + len(list_filter(gaps, lambda gap: gap is null or gap > 1800)) as session_count,
    coalesce(list_sum(list_filter(gaps, lambda gap: gap <= 1800)), 0) as session_seconds
)
from day_gaps
{% endmacro %}

{#- The gaps in seconds between neighbours of a sorted list of timestamps (DuckDB lambdas), one fewer than its
    length; NULL where a timestamp is NULL. -#}
{% macro sorted_time_gaps(times) -%}
    list_transform(range(1, len({{ times }})), lambda i: {{ seconds_between(times ~ '[i]', times ~ '[i + 1]') }})
{%- endmacro %}

{#-
    Per-visitor web behaviour from visitor-day counts (event_day_counts) that carry a `cutoff_date` column.
    Returns a parenthesised subquery, one row per `key`. Shares are fractions of the visitor's events,
    so heavy and light browsers are comparable. Unknown event/page types simply count as "other".
-#}
{#-
    `generic=true` adds the vocabulary-free features (generic_behaviour_columns), from event days that carry the
    generic counts (stg_visitor_event_days).
-#}
{#-
    `one_row_per_day=true` when `event_days` has at most one row per key and day (the customer marts: a customer's
    visitor_id is the customer_id, and stg_visitor_event_days has one row per visitor and day): active days are
    then a count of rows, not a COUNT(DISTINCT), which DuckDB plans as a second aggregation joined back (at 1 M
    about a third of customer_features' CPU).
-#}
{% macro behaviour_features(event_days, key, generic=false, one_row_per_day=false) %}
{%- set active_days = 'count(*)' if one_row_per_day else 'count(distinct occurred_on)' %}
(
    select
        {{ key }},
        sum(event_count) as event_count,
        {{ active_days }} as active_days,
        min(first_event_at) as first_event_at,
        max(last_event_at) as last_event_at,
        {{ days_between('max(occurred_on)', 'max(cutoff_date)') }} as days_since_last_event,
        coalesce(sum(event_count) filter (where occurred_on > cutoff_date - 30), 0) as event_count_last_30d,
        sum(product_view_count) / {{ active_days }} as product_views_per_active_day,
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
        ) as shipping_abandon_rate,
        sum(mapped_event_count) / sum(event_count) as mapped_event_share
        {%- if generic %},
        sum(session_count) as session_count,
        sum(session_count) / {{ active_days }} as sessions_per_active_day,
        -- Doubles, not decimal literals: Spark keeps 60.0 a DECIMAL and rounds the quotient to its scale.
        sum(session_seconds) / cast(60 as double) / sum(session_count) as avg_session_minutes,
        sum(event_count) / sum(session_count) as events_per_session,
        sum(mobile_event_count) / sum(event_count) as mobile_share,
        sum(tablet_event_count) / sum(event_count) as tablet_share,
        sum(desktop_event_count) / sum(event_count) as desktop_share,
        sum(night_event_count) / sum(event_count) as night_share,
        sum(morning_event_count) / sum(event_count) as morning_share,
        sum(afternoon_event_count) / sum(event_count) as afternoon_share,
        sum(evening_event_count) / sum(event_count) as evening_share
        {%- endif %}
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
    coalesce({{ alias }}.cart_add_count_last_90d, 0) as cart_add_count_last_90d,
    coalesce({{ alias }}.mapped_event_share, 0) as mapped_event_share
{% endmacro %}

{#-
    The vocabulary-free behaviour columns (behaviour_features with generic=true) with their no-events value 0,
    and the shares of the shop's top event types (`type_counts`: top_event_type_<rank>_count per customer, ranks
    from marts.top_event_types). ml/feature_columns.py GENERIC_BEHAVIOUR lists the same names.
-#}
{% macro generic_behaviour_columns(alias, type_counts) %}
    coalesce({{ alias }}.session_count, 0) as session_count,
    coalesce({{ alias }}.sessions_per_active_day, 0) as sessions_per_active_day,
    coalesce({{ alias }}.avg_session_minutes, 0) as avg_session_minutes,
    coalesce({{ alias }}.events_per_session, 0) as events_per_session,
    coalesce({{ alias }}.mobile_share, 0) as mobile_share,
    coalesce({{ alias }}.tablet_share, 0) as tablet_share,
    coalesce({{ alias }}.desktop_share, 0) as desktop_share,
    coalesce({{ alias }}.night_share, 0) as night_share,
    coalesce({{ alias }}.morning_share, 0) as morning_share,
    coalesce({{ alias }}.afternoon_share, 0) as afternoon_share,
    coalesce({{ alias }}.evening_share, 0) as evening_share,
    {%- for rank in range(1, var('top_event_type_count') + 1) %}
    coalesce({{ type_counts }}.top_event_type_{{ rank }}_count / nullif({{ alias }}.event_count, 0), 0)
        as event_type_share_{{ rank }}{{ "," if not loop.last }}
    {%- endfor %}
{% endmacro %}

{#- Per customer: events of each of the shop's top event types (ranks of marts.top_event_types) at or before the
    cut-off. `type_days` = stg_visitor_event_type_days rows already scoped to the cut-off. -#}
{% macro top_event_type_counts(type_days) %}
(
    select
        customer_id,
        {%- for rank in range(1, var('top_event_type_count') + 1) %}
        coalesce(sum(event_count) filter (where type_rank = {{ rank }}), 0)
            as top_event_type_{{ rank }}_count{{ "," if not loop.last }}
        {%- endfor %}
    -- Summed per customer and rank first: the N filtered sums then run over a few rows per customer instead of
    -- every visitor-day-type row.
    from (
        select type_days.customer_id, top.type_rank, sum(type_days.event_count) as event_count
        from {{ type_days }} as type_days
        inner join {{ ref('top_event_types') }} as top using (source_event_type)
        group by type_days.customer_id, top.type_rank
    ) as rank_counts
    group by customer_id
)
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

{#- The column names of staging.stg_visitor_event_days as built; ['*'] (every column, in the macro's order) while dbt
    parses or when the table is not built yet (`dbt compile` / `docs generate` on a fresh warehouse). -#}
{% macro staged_visitor_day_columns() %}
    {%- if not execute -%}
        {{ return(['*']) }}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(ref('stg_visitor_event_days')) | map(attribute='name') | map('lower') | list -%}
    {{ return(columns or ['*']) }}
{% endmacro %}
