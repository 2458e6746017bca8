-- One row per customer known at the training cut-off (as-of minus the CLV horizon): the same features as
-- customer_features, computed only from rows at or before that cut-off, plus labels from (cut-off, as-of].
with {{ customer_features_at('training_cutoff') }},

cutoffs as (
    select * from {{ ref('int_cutoffs') }}
),

future_orders as (
    select orders.*
    from {{ ref('stg_orders') }} as orders
    cross join cutoffs
    where orders.ordered_on > cutoffs.training_cutoff
        and orders.ordered_on <= cutoffs.scoring_cutoff
        and not orders.is_cancelled
),

labels as (
    select
        customer_id,
        -- Refund rows count as 0, not negative: the label is spend, and tweedie needs it non-negative.
        sum(case when is_refund then 0 else order_amount end) as future_revenue,
        count(*) filter (where not is_refund) as future_order_count,
        min(ordered_on) filter (where not is_refund) as next_order_on
    from future_orders
    group by customer_id
),

final as (
    select
        features.*,
        coalesce(labels.future_revenue, 0) as future_revenue,
        coalesce(labels.future_order_count, 0) as future_order_count,
        coalesce(labels.future_order_count, 0) > 0 as has_future_order,
        -- Back-test label of expected_days_to_next_order: null when no order came in the horizon.
        datediff('day', features.cutoff_date, labels.next_order_on) as days_to_next_order
    from features
    left join labels using (customer_id)
)

select * from final
