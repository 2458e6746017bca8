{#-
    prospect_features' rows: every prospect (scope=none: the full build), or only the visitors whose prospect_id is
    in the CTE named `scope` (the daily increment, feature_increment.sql). A visitor's row reads only its own event
    days (visitor_id = customer_id when known) and whether that customer is a buyer, so restricting the buyers to the
    scope as well gives each scoped visitor the same row as the full build.
-#}
{% macro prospect_features_sql(scope=none) %}
{%- set in_scope = (' and {} in (select prospect_id from ' ~ scope ~ ')') if scope else '' %}
with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
),

buyers as (
    select distinct orders.customer_id
    from {{ ref('stg_orders') }} as orders
    cross join cutoffs
    where orders.ordered_on <= cutoffs.scoring_cutoff{{ in_scope.format('orders.customer_id') }}
),

prospect_event_days as (
    select event_days.*, event_days.visitor_id as prospect_id, cutoffs.scoring_cutoff as cutoff_date
    from {{ ref('stg_visitor_event_days') }} as event_days
    cross join cutoffs
    where event_days.occurred_on <= cutoffs.scoring_cutoff
        -- not exists, not `not in (subquery)`: Spark runs a null-aware NOT IN as a nested-loop join (every
        -- event-day against every buyer: stuck for 10+ min at 100 k customers); an anti join is a hash join on both
        -- engines, and the same rows (a visitor without a customer_id is kept either way).
        and not exists (select 1 from buyers where buyers.customer_id = event_days.customer_id)
        and event_days.visitor_id is not null{{ in_scope.format('event_days.visitor_id') }}
),

behaviour as (
    select * from {{ behaviour_features('prospect_event_days', 'prospect_id') }}
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
{% endmacro %}
