{#-
    One row per value of `dimension` in customer_scores: how much future value its customers are predicted to
    bring. The interval is a normal approximation of the 95 % confidence interval of the mean
    (mean +/- 1.96 standard errors); with one customer it collapses to the mean.
    Sums, means and the standard deviation are exact (money_sum, exact_sum: the same scores give the same bits
    whatever order DuckDB's threads add them in); the standard deviation is the sample one, from the squared
    deviations from the exact mean (two passes: DuckDB's one-pass stddev_samp merges thread states in no fixed order).
-#}
{% macro clv_by_dimension(dimension) %}
with scores as (
    select * from {{ ref('customer_scores') }}
),

sums as (
    select
        {{ dimension }},
        count(*) as customer_count,
        {{ money_sum('predicted_clv', exact_type='decimal(38, 4)') }} as total_predicted_clv,
        {{ exact_sum('purchase_propensity', exact_type='decimal(38, 12)') }} as total_purchase_propensity,
        {{ money_sum('total_revenue', exact_type='decimal(38, 4)') }} as total_past_revenue
    from scores
    group by {{ dimension }}
),

spread as (
    select
        sums.{{ dimension }},
        {{ money_sum('(scores.predicted_clv - sums.total_predicted_clv / sums.customer_count)'
            ~ ' * (scores.predicted_clv - sums.total_predicted_clv / sums.customer_count)', exact_type='decimal(38, 4)') }}
            as squared_deviations
    from scores
    inner join sums on scores.{{ dimension }} is not distinct from sums.{{ dimension }}
    group by sums.{{ dimension }}
),

final as (
    select
        sums.{{ dimension }},
        sums.customer_count,
        sums.total_predicted_clv / sums.customer_count as mean_predicted_clv,
        sums.total_predicted_clv / sums.customer_count
            - 1.96 * coalesce(sqrt(spread.squared_deviations / nullif(sums.customer_count - 1, 0)), 0)
            / sqrt(sums.customer_count) as mean_predicted_clv_low,
        sums.total_predicted_clv / sums.customer_count
            + 1.96 * coalesce(sqrt(spread.squared_deviations / nullif(sums.customer_count - 1, 0)), 0)
            / sqrt(sums.customer_count) as mean_predicted_clv_high,
        sums.total_predicted_clv,
        sums.total_purchase_propensity / sums.customer_count as mean_purchase_propensity,
        sums.total_past_revenue / sums.customer_count as mean_past_revenue
    from sums
    inner join spread on sums.{{ dimension }} is not distinct from spread.{{ dimension }}
)

select * from final order by mean_predicted_clv desc
{% endmacro %}
