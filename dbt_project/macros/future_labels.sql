{#-
    CTEs `future_orders`, `labels` and `labelled`: the CLV labels of the customers in the CTE `features`, from
    their orders in (from_cutoff, to_cutoff] (columns of int_cutoffs). One rule for every labelled mart
    (customer_features_train, customer_features_selection), so training and selection learn the same target.
-#}
{% macro future_labels(from_cutoff, to_cutoff) %}
cutoffs as (
    select * from {{ ref('int_cutoffs') }}
),

future_orders as (
    select orders.*
    from {{ ref('stg_orders') }} as orders
    cross join cutoffs
    where orders.ordered_on > cutoffs.{{ from_cutoff }}
        and orders.ordered_on <= cutoffs.{{ to_cutoff }}
        and not orders.is_cancelled
),

labels as (
    select
        customer_id,
        -- Refund rows count as 0, not negative: the label is spend, and tweedie needs it non-negative.
        {{ money_sum('case when is_refund then 0 else order_amount end') }} as future_revenue,
        count(*) filter (where not is_refund) as future_order_count,
        min(ordered_on) filter (where not is_refund) as next_order_on
    from future_orders
    group by customer_id
),

labelled as (
    select
        features.*,
        coalesce(labels.future_revenue, 0) as future_revenue,
        coalesce(labels.future_order_count, 0) as future_order_count,
        coalesce(labels.future_order_count, 0) > 0 as has_future_order,
        -- Back-test label of expected_days_to_next_order: null when no order came in the horizon.
        {{ days_between('features.cutoff_date', 'labels.next_order_on') }} as days_to_next_order
    from features
    left join labels using (customer_id)
)
{% endmacro %}
