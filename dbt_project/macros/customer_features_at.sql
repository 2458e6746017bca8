{#-
    CTEs that compute one row per customer as of a cut-off, ending in a CTE named `features`.
    `cutoff_column` is a column of int_cutoffs (scoring_cutoff or training_cutoff). Every row used is
    at or before the cut-off, so the training table (as_of - horizon) and the scoring table (as_of)
    are built by the very same SQL and the model cannot see the future.
-#}
{#- `scope`: the name of a CTE (defined before these) of customer_id's: only those customers are computed (the
    incremental build, feature_increment.sql). Per customer the values are the same as in a full build. -#}
{% macro customer_features_at(cutoff_column, scope=none) %}
{%- set in_scope = (' and {}.customer_id in (select customer_id from ' ~ scope ~ ')') if scope else '' %}
{#- Every model built from these CTEs keeps its written join plan (cross_engine.sql, spine_join_config). -#}
{{ config(**spine_join_config()) }}
cutoff as (
    select {{ cutoff_column }} as cutoff_date from {{ ref('int_cutoffs') }}
),

scoped_orders as (
    select orders.*, cutoff.cutoff_date
    from {{ ref('stg_orders') }} as orders
    cross join cutoff
    where orders.ordered_on <= cutoff.cutoff_date and not orders.is_cancelled{{ in_scope.format('orders') }}
),

scoped_event_days as (
    select event_days.*, cutoff.cutoff_date
    from {{ ref('stg_visitor_event_days') }} as event_days
    cross join cutoff
    where event_days.occurred_on <= cutoff.cutoff_date and event_days.customer_id is not null{{ in_scope.format('event_days') }}
),

scoped_event_type_days as (
    select type_days.*
    from {{ ref('stg_visitor_event_type_days') }} as type_days
    cross join cutoff
    where type_days.occurred_on <= cutoff.cutoff_date and type_days.customer_id is not null{{ in_scope.format('type_days') }}
),

customers as (
    select * from {{ ref('stg_customers') }}
),

-- No ordered window over the orders (at 1 M it sorted 5 M orders per customer for two values): the first
-- purchase's columns are first_by (ordered_at, order_id), and the mean gap between consecutive order days
-- telescopes to (last day - first day) / (orders - 1).
purchases as (
    -- The first order day for Gamma-Gamma's first transaction (an unordered window: no sort).
    select *, min(ordered_on) over (partition by customer_id) as first_ordered_on
    from scoped_orders
    where not is_refund
),

purchase_summary as (
    select
        customer_id,
        any_value(cutoff_date) as cutoff_date,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        min(ordered_on) as first_order_on,
        max(ordered_on) as last_order_on,
        count(*) as order_count,
        count(distinct ordered_on) - 1 as repeat_order_count,
        {{ money_sum('order_amount') }} as gross_revenue,
        max(order_amount) as max_order_value,
        -- The first purchase's amount, offer and channel in one aggregate (one ordering key compared, not three).
        {{ first_by(struct_of({
            'order_value': 'order_amount',
            'entry_offer': "case when discount_code is not null then upper(discount_code)"
                ~ " when has_discount then 'UNNAMED_DISCOUNT' else 'none' end",
            'channel': 'channel',
        }), ['ordered_at', 'order_id']) }} as first_purchase,
        {{ money_sum('order_amount', where='ordered_on = first_ordered_on') }} as first_order_day_revenue,  -- Gamma-Gamma's first transaction
        coalesce({{ money_sum('order_amount', where='ordered_on > cutoff_date - 90') }}, 0) as revenue_last_90d,
        count(*) filter (where ordered_on > cutoff_date - 90) as order_count_last_90d,
        coalesce({{ money_sum('order_amount', where='ordered_on > cutoff_date - 365') }}, 0) as revenue_last_365d,
        count(*) filter (where ordered_on > cutoff_date - 365) as order_count_last_365d,
        avg(cast(has_discount as double)) as discounted_order_share,  -- a double on both engines (1.0 is DECIMAL on Spark)
        {{ days_between('min(ordered_on)', 'max(ordered_on)') }} / nullif(count(*) - 1, 0) as mean_days_between_orders
    from purchases
    group by customer_id
),

refunds as (
    {{ refund_totals('scoped_orders') }}
),

behaviour as (
    select * from {{ behaviour_features('scoped_event_days', 'customer_id', generic=true, one_row_per_day=true) }}
),

event_type_counts as (
    select * from {{ top_event_type_counts('scoped_event_type_days') }}
),

features as (
    select
        purchase_summary.customer_id,
        purchase_summary.cutoff_date,
        purchase_summary.first_order_at,
        purchase_summary.last_order_at,
        purchase_summary.order_count,
        purchase_summary.repeat_order_count,
        {{ days_between('purchase_summary.last_order_on', 'purchase_summary.cutoff_date') }} as recency_days,
        {{ days_between('purchase_summary.first_order_on', 'purchase_summary.cutoff_date') }} as tenure_days,
        {{ days_between('purchase_summary.first_order_on', 'purchase_summary.last_order_on') }} as btyd_recency_days,
        purchase_summary.gross_revenue - coalesce(refunds.refund_amount, 0) as total_revenue,
        purchase_summary.gross_revenue,
        purchase_summary.gross_revenue / purchase_summary.order_count as avg_order_value,
        purchase_summary.max_order_value,
        purchase_summary.first_purchase.order_value as first_order_value,
        purchase_summary.first_order_day_revenue,
        purchase_summary.revenue_last_90d,
        purchase_summary.order_count_last_90d,
        purchase_summary.revenue_last_365d,
        purchase_summary.order_count_last_365d,
        coalesce(refunds.refund_count, 0) as refund_count,
        coalesce(refunds.refund_amount, 0) as refund_amount,
        purchase_summary.discounted_order_share,
        purchase_summary.mean_days_between_orders,
        purchase_summary.first_purchase.entry_offer,
        purchase_summary.first_purchase.channel as first_order_channel,
        coalesce(customers.acquisition_channel, purchase_summary.first_purchase.channel, 'unknown') as acquisition_channel,
        coalesce(customers.country, 'unknown') as country,
        customers.marketing_consent,
        coalesce(customers.has_email, false) as has_email,
        coalesce(customers.has_phone, false) as has_phone,
        customers.signed_up_at,
        {{ behaviour_columns('behaviour') }},
        {{ generic_behaviour_columns('behaviour', 'event_type_counts') }}
    from purchase_summary
    left join refunds using (customer_id)
    left join customers using (customer_id)
    left join behaviour using (customer_id)
    left join event_type_counts using (customer_id)
)
{% endmacro %}

{#- Per customer: refund rows and their exact total, from orders already scoped to the cut-off (no cancelled ones). -#}
{% macro refund_totals(scoped_orders) %}
    select customer_id, count(*) as refund_count, {{ money_sum('order_amount') }} as refund_amount
    from {{ scoped_orders }}
    where is_refund
    group by customer_id
{% endmacro %}

{#- customer_features' full build (its table comment records a hash of this SQL: feature_increment.sql). -#}
{% macro customer_features_full_sql() -%}
with {{ customer_features_at('scoring_cutoff') }}

select * from features
{%- endmacro %}
