{#-
    customer_prepurchase_behaviour's rows, for every customer (since=none: the full build) or only those whose first
    order is on or after `since` (a date literal: the daily increment, feature_increment.sql). Nothing else moves a
    customer's row: it holds only rows before the first order, and the staged days before `since` are unchanged.
-#}
{% macro customer_prepurchase_sql(since=none) %}
-- The first order (not refunded, not cancelled, at or before the as-of) is customer_features' first_order_at: one
-- owner for the rule, and no second aggregation of every order.
with first_orders as (
    select customer_id, first_order_at, cast(first_order_at as date) as first_order_on
    from {{ ref('customer_features') }}
    {%- if since is not none %}
    where first_order_at >= cast({{ since }} as timestamp)
    {%- endif %}
),

-- "Before the first order" is finer than a day only on the first order's own day: the whole days before it are
-- the staged visitor-days (a customer's visitor_id is the customer_id: one row per customer and day), and only that
-- day's events before the order are counted here, by the macro that stages the visitor-days (the same columns).
-- At 1 M customers this aggregates ~1 M events instead of every event before every first order (BENCHMARKS.md).
first_order_day_events as (
    select events.*
    from {{ ref('stg_events') }} as events
    inner join first_orders
        on events.customer_id = first_orders.customer_id and events.occurred_on = first_orders.first_order_on
    where events.occurred_at < first_orders.first_order_at
),

first_order_day as (
    with early_events as (select * from first_order_day_events)
    {{ visitor_event_days('early_events') }}
),

{#- By name on both sides of the union: a column added by a window run (on_schema_change) sits at the table's end. -#}
{%- set day_columns = staged_visitor_day_columns() %}
early_visitor_days as (
    select {% for column in day_columns %}event_days.{{ column }}{{ ", " if not loop.last }}{% endfor %}
    from {{ ref('stg_visitor_event_days') }} as event_days
    inner join first_orders using (customer_id)
    where event_days.occurred_on < first_orders.first_order_on
    union all
    select {{ day_columns | join(', ') }}
    from first_order_day
),

early_event_days as (
    select early_visitor_days.*, first_orders.first_order_on as cutoff_date
    from early_visitor_days
    inner join first_orders using (customer_id)
),

behaviour as (
    select * from {{ behaviour_features('early_event_days', 'customer_id', one_row_per_day=true) }}
),

final as (
    select
        customer_id,
        event_count,
        active_days,
        days_since_last_event,
        {{ behaviour_shares() }},
        cart_add_count_last_90d
    from behaviour
)

select * from final
{% endmacro %}
