-- One row per customer with web events strictly before their first order: the early behaviour that the
-- lookalike model learns from, comparable with what a prospect shows today.
{#- The visitor-day counts behaviour_features reads (event_day_counts' names), selected by name from both sources. -#}
{%- set day_columns = [
    'customer_id', 'cutoff_date', 'occurred_on', 'event_count', 'first_event_at', 'last_event_at',
    'product_view_count', 'research_event_count', 'sale_event_count', 'discount_event_count', 'brand_event_count',
    'visual_event_count', 'urgency_event_count', 'cart_add_count', 'saw_shipping', 'purchased', 'mapped_event_count',
] %}
with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
),

first_orders as (
    select orders.customer_id, min(orders.ordered_at) as first_order_at, min(orders.ordered_on) as first_order_on
    from {{ ref('stg_orders') }} as orders
    cross join cutoffs
    where not orders.is_refund and not orders.is_cancelled and orders.ordered_on <= cutoffs.scoring_cutoff
    group by orders.customer_id
),

-- "Before the first order" is finer than a day only on the first order's own day: the whole days before it are
-- the staged visitor-days (a customer's visitor_id is the customer_id, so one row per customer and day), and only
-- that one day is counted from its events. At 1 M customers this reads ~1 M event rows instead of aggregating
-- every event before every first order (BENCHMARKS.md, issue 18).
days_before as (
    select event_days.*, first_orders.first_order_on as cutoff_date
    from {{ ref('stg_visitor_event_days') }} as event_days
    inner join first_orders using (customer_id)
    where event_days.occurred_on < first_orders.first_order_on
),

first_order_day_events as (
    select events.*, first_orders.first_order_on as cutoff_date
    from {{ ref('stg_events') }} as events
    inner join first_orders
        on events.customer_id = first_orders.customer_id and events.occurred_on = first_orders.first_order_on
    where events.occurred_at < first_orders.first_order_at
),

first_order_day as (
    {{ event_day_counts('first_order_day_events', ['customer_id', 'cutoff_date']) }}
),

early_event_days as (
    select {{ day_columns | join(', ') }} from days_before
    union all
    select {{ day_columns | join(', ') }} from first_order_day
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
