-- One row per customer with web events strictly before their first order: the early behaviour that the
-- lookalike model learns from, comparable with what a prospect shows today.
with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
),

first_orders as (
    select orders.customer_id, min(orders.ordered_at) as first_order_at
    from {{ ref('stg_orders') }} as orders
    cross join cutoffs
    where not orders.is_refund and not orders.is_cancelled and orders.ordered_on <= cutoffs.scoring_cutoff
    group by orders.customer_id
),

-- Finer than a day (events before the first order's timestamp), so this mart counts its own event days.
early_events as (
    select events.*, cast(first_orders.first_order_at as date) as cutoff_date
    from {{ ref('stg_events') }} as events
    inner join first_orders using (customer_id)
    where events.occurred_at < first_orders.first_order_at
),

early_event_days as (
    {{ event_day_counts('early_events', ['customer_id', 'cutoff_date']) }}
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
