-- One row per customer with web events strictly before their first order: the early behaviour that the
-- lookalike model learns from, comparable with what a prospect shows today.
with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
),

first_orders as (
    select customer_id, min(ordered_at) as first_order_at
    from {{ ref('stg_orders') }}
    where not is_refund and not is_cancelled
    group by customer_id
),

early_events as (
    select events.*, cast(first_orders.first_order_at as date) as cutoff_date
    from {{ ref('stg_events') }} as events
    inner join first_orders using (customer_id)
    where events.occurred_at < first_orders.first_order_at
),

behaviour as (
    select * from {{ behaviour_features('early_events', 'customer_id') }}
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
