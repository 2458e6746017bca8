-- One row per customer with at least one accepted order at or before the as-of date.
-- On a daily run, only the customers whose rows can have changed are recomputed and the others carried over
-- (macros/feature_increment.sql says why that is exact, and when it falls back to this full build).
{{ config(post_hook=["{{ record_feature_basis(customer_features_full_sql()) }}"]) }}
{%- set full_sql = customer_features_full_sql() %}
{%- set step = feature_increment(full_sql) %}
{%- if step is none %}
{{ full_sql }}
{%- else %}
{%- set since, previous_cutoff, cutoff = date_literal(step.since), step.previous_cutoff, step.cutoff %}
with previous as (
    select * from {{ this }}
),

-- Whose features can differ from the previous build's (feature_increment.sql): rows on the days from `since` on
-- (any status: a superset is still exact), the previous build's customers whose last order or event day was on
-- them (rows re-staged away), and rows leaving a trailing window: orders 90 and 365 days back, event days 30
-- (events) and 90 (cart adds) days back. Event-type days come from the same events as the event days.
affected as (
    select customer_id from {{ ref('stg_orders') }}
    where ordered_on >= {{ since }}
        or (ordered_on > {{ date_literal(previous_cutoff) }} - 90 and ordered_on <= {{ date_literal(cutoff) }} - 90)
        or (ordered_on > {{ date_literal(previous_cutoff) }} - 365 and ordered_on <= {{ date_literal(cutoff) }} - 365)
    union
    select customer_id from {{ ref('stg_visitor_event_days') }}
    where customer_id is not null and (
        occurred_on >= {{ since }}
        or (occurred_on > {{ date_literal(previous_cutoff) }} - 30 and occurred_on <= {{ date_literal(cutoff) }} - 30)
        or (occurred_on > {{ date_literal(previous_cutoff) }} - 90 and occurred_on <= {{ date_literal(cutoff) }} - 90)
    )
    union
    select customer_id from previous
    where cast(last_order_at as date) >= {{ since }}
        or days_since_last_event <= {{ (previous_cutoff - step.since).days }}
),

{{ customer_features_at('scoring_cutoff', scope='affected') }},

-- Everyone's refunds and customer-table columns, as the full build joins them (both change without a date the
-- mart keeps; both cost little).
scoped_orders_all as (
    select *
    from {{ ref('stg_orders') }}
    where ordered_on <= {{ date_literal(cutoff) }} and not is_cancelled
),

all_refunds as (
    {{ refund_totals('scoped_orders_all') }}
),

carried as (
    select previous.* replace (
        {{ date_literal(cutoff) }} as cutoff_date,
        previous.recency_days + {{ step.shift }} as recency_days,
        previous.tenure_days + {{ step.shift }} as tenure_days,
        previous.gross_revenue - coalesce(all_refunds.refund_amount, 0) as total_revenue,
        coalesce(all_refunds.refund_count, 0) as refund_count,
        coalesce(all_refunds.refund_amount, 0) as refund_amount,
        coalesce(customers.acquisition_channel, previous.first_order_channel, 'unknown') as acquisition_channel,
        coalesce(customers.country, 'unknown') as country,
        customers.marketing_consent as marketing_consent,
        coalesce(customers.has_email, false) as has_email,
        coalesce(customers.has_phone, false) as has_phone,
        customers.signed_up_at as signed_up_at,
        previous.days_since_last_event + {{ step.shift }} as days_since_last_event
    )
    from previous
    left join all_refunds using (customer_id)
    left join customers using (customer_id)
    where not exists (select 1 from affected where affected.customer_id = previous.customer_id)
)

select * from features
union all
select * from carried
{%- endif %}
