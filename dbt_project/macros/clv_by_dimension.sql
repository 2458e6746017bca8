{#-
    One row per value of `dimension` in customer_scores: how much future value its customers are predicted to
    bring. The interval is a normal approximation of the 95 % confidence interval of the mean
    (mean +/- 1.96 standard errors); with one customer it collapses to the mean.
-#}
{% macro clv_by_dimension(dimension) %}
with scores as (
    select * from {{ ref('customer_scores') }}
),

final as (
    select
        {{ dimension }},
        count(*) as customer_count,
        avg(predicted_clv) as mean_predicted_clv,
        avg(predicted_clv) - 1.96 * coalesce(stddev_samp(predicted_clv), 0) / sqrt(count(*)) as mean_predicted_clv_low,
        avg(predicted_clv) + 1.96 * coalesce(stddev_samp(predicted_clv), 0) / sqrt(count(*)) as mean_predicted_clv_high,
        sum(predicted_clv) as total_predicted_clv,
        avg(purchase_propensity) as mean_purchase_propensity,
        avg(total_revenue) as mean_past_revenue
    from scores
    group by {{ dimension }}
)

select * from final order by mean_predicted_clv desc
{% endmacro %}
