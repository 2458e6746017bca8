-- One row per visitor with web events and no order at or before the as-of date (prospect_id = customer_id
-- when the visitor is a registered customer, else the anonymous id).
with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
),

buyers as (
    select distinct customer_id from {{ ref('stg_orders') }}
),

prospect_events as (
    select events.*, events.visitor_id as prospect_id, cutoffs.scoring_cutoff as cutoff_date
    from {{ ref('stg_events') }} as events
    cross join cutoffs
    where events.occurred_on <= cutoffs.scoring_cutoff
        and (events.customer_id is null or events.customer_id not in (select customer_id from buyers))
        and events.visitor_id is not null
),

behaviour as (
    select * from {{ behaviour_features('prospect_events', 'prospect_id') }}
),

final as (
    select
        prospect_id,
        first_event_at,
        last_event_at,
        event_count,
        active_days,
        days_since_last_event,
        event_count_last_30d,
        {{ behaviour_shares() }},
        cart_add_count_last_90d
    from behaviour
)

select * from final
