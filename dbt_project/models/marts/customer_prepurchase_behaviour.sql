-- One row per customer with web events strictly before their first order: the early behaviour that the
-- lookalike model learns from, comparable with what a prospect shows today (macros/prepurchase_behaviour.sql).
-- On a daily run only the customers whose first order is on a re-staged or new day are computed and the others
-- carried over (macros/feature_increment.sql: why that is exact, and when it falls back to the full build).
-- depends_on: {{ ref('int_cutoffs') }} (the as-of the table comment records: macros/feature_increment.sql)
{{ config(post_hook=["{{ record_feature_basis(customer_prepurchase_sql(), with_top_types=false) }}"]) }}
{%- set full_sql = customer_prepurchase_sql() %}
{%- set step = feature_increment(full_sql, with_top_types=false) %}
{%- if step is none %}
{{ full_sql }}
{%- else %}
with recomputed as (
    {{ customer_prepurchase_sql(since=date_literal(step.since)) }}
),

-- A customer whose first order is before `since` keeps the previous row: it reads only staged days before that order.
carried as (
    select previous.*
    from {{ this }} as previous
    inner join {{ ref('customer_features') }} as features using (customer_id)
    where features.first_order_at < cast({{ date_literal(step.since) }} as timestamp)
)

select * from recomputed
union all
select * from carried
{%- endif %}
