-- One row per customer known at the as-of date: predicted value with its p10-p90 interval, propensity, segments
-- and the maximum cost per acquisition a marketer can bid (CLV x margin / target ROAS, all three dbt vars:
-- max_cpa_basis 'mean' bids on predicted_clv, 'p10' on its conservative 10th percentile).
{%- set max_cpa_basis = var('max_cpa_basis') %}
{%- if max_cpa_basis not in ('mean', 'p10') %}
{{ exceptions.raise_compiler_error("max_cpa_basis must be 'mean' or 'p10', got '" ~ max_cpa_basis ~ "'") }}
{%- endif %}
{%- set cpa_value = 'predictions.predicted_clv' if max_cpa_basis == 'mean' else 'predictions.predicted_clv_p10' %}
with features as (
    select * from {{ ref('customer_features') }}
),

rfm as (
    select * from {{ source('ml', 'rfm_segments') }}
),

behaviour as (
    select * from {{ source('ml', 'behavioral_segments') }}
),

predictions as (
    select * from {{ source('ml', 'clv_predictions') }}
),

btyd as (
    select * from {{ source('ml', 'btyd_predictions') }}
),

final as (
    select
        features.customer_id,
        features.cutoff_date as as_of_date,
        predictions.predicted_clv,
        predictions.predicted_clv_p10,
        predictions.predicted_clv_p90,
        predictions.clv_model,
        predictions.purchase_propensity,
        rfm.rfm_segment,
        behaviour.behavioral_segment,
        rfm.recency_score,
        rfm.frequency_score,
        rfm.monetary_score,
        behaviour.cluster_id,
        round({{ cpa_value }} * {{ var('margin') }} / {{ var('target_roas') }}, 2) as max_cpa,
        predictions.top_drivers,
        btyd.p_alive,
        1 - btyd.p_alive as churn_risk,
        btyd.expected_orders,
        btyd.expected_days_to_next_order,
        btyd.expected_next_order_date,
        btyd.predicted_avg_order_value,
        features.total_revenue as historic_clv,
        features.total_revenue + predictions.predicted_clv as total_clv,
        features.order_count,
        features.total_revenue,
        features.recency_days,
        features.last_order_at,
        features.acquisition_channel,
        features.entry_offer,
        features.marketing_consent,
        features.has_email,
        features.has_phone
    from features
    left join rfm using (customer_id)
    left join behaviour using (customer_id)
    left join predictions using (customer_id)
    left join btyd using (customer_id)
)

select * from final
