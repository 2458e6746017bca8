-- One row per customer and segment kind: why the customer is in the segment (README "Explanations", "Privacy").
-- A view: each sentence and its JSON evidence are assembled when read, from the tables the scores already build
-- and three small tables of texts the Python asset ml/explanation_texts writes once per run (ml/explanations.py
-- has why: writing 3 text rows per customer each run cost ~84 s at 1 M customers, for rows mostly never read).
{{ config(materialized='view') }}
{%- set feature_columns = explain_columns(ref('customer_features')) %}
{%- set slots = [] %}
{%- for column in explain_columns(source('ml', 'explanation_clusters')) %}
    {%- set name = column.name | lower %}
    {%- if name.startswith('attribute_') and name.endswith('_feature') %}
        {%- do slots.append(name[10:-8] | int) %}
    {%- endif %}
{%- endfor %}
{%- set slots = slots | sort %}
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
    select customer_id, predicted_clv, purchase_propensity, clv_model,
        {{ explain_parse_drivers('top_drivers') }} as drivers
    from {{ source('ml', 'clv_predictions') }}
),

rules as (
    select * from {{ source('ml', 'explanation_rfm_rules') }}
),

clusters as (
    select * from {{ source('ml', 'explanation_clusters') }}
),

models as (
    select * from {{ source('ml', 'explanation_models') }}
),

horizon as (
    select
        case when horizon_days is null or horizon_days = 0 then ''
            else ' over the next ' || cast(horizon_days as string) || ' days' end as text
    from {{ source('raw', 'run_context') }}
),

rfm_reasons as (
    select
        features.customer_id,
        'rfm' as segment_kind,
        rfm.rfm_segment as segment,
        rfm.rfm_segment || ': recency score ' || cast(rfm.recency_score as string)
            || ' (last order ' || {{ explain_number('features.recency_days') }} || ' days before the as-of date), '
            || 'frequency score ' || cast(rfm.frequency_score as string)
            || ' (' || {{ explain_number('features.order_count') }} || ' order'
            || case when features.order_count = 1 then '' else 's' end
            || '), monetary score ' || cast(rfm.monetary_score as string)
            || ' (' || {{ explain_number('features.total_revenue') }} || ' net revenue). It matched rule '
            || rules.rule_text as explanation,
        rules.rule_evidence
            || ', "scores": {"recency_score": ' || cast(rfm.recency_score as string)
            || ', "frequency_score": ' || cast(rfm.frequency_score as string)
            || ', "monetary_score": ' || cast(rfm.monetary_score as string)
            || '}, "values": {"recency_days": ' || {{ explain_json_number('features.recency_days') }}
            || ', "order_count": ' || {{ explain_json_number('features.order_count') }}
            || ', "total_revenue": ' || {{ explain_json_number('features.total_revenue') }}
            || '}}' as evidence
    from features
    left join rfm on features.customer_id = rfm.customer_id
    left join rules
        on rfm.recency_score = rules.recency_score
        and rfm.frequency_score = rules.frequency_score
        and rfm.monetary_score = rules.monetary_score
),

behavioral_reasons as (
    select
        features.customer_id,
        'behavioral' as segment_kind,
        behaviour.behavioral_segment as segment,
        behaviour.behavioral_segment || coalesce(clusters.lead, no_profile.lead)
            || concat_ws('; ', cast(null as string)
            {%- for slot in slots %}
                {%- set feature = 'clusters.attribute_' ~ slot ~ '_feature' %},
                clusters.attribute_{{ slot }}_text
                    || coalesce('; this customer ' || {{ explain_feature_value(feature, 'features', feature_columns, false) }}, '')
                    || ')'
            {%- endfor %}
            ) || coalesce(clusters.tail, no_profile.tail) as explanation,
        '{"cluster_id": ' || coalesce(cast(behaviour.cluster_id as string), 'null') || ', "attributes": ['
            || concat_ws(', ', cast(null as string)
            {%- for slot in slots %}
                {%- set feature = 'clusters.attribute_' ~ slot ~ '_feature' %},
                clusters.attribute_{{ slot }}_evidence
                    || coalesce({{ explain_feature_value(feature, 'features', feature_columns, true) }}, 'null')
                    || '}'
            {%- endfor %}
            ) || ']}' as evidence
    from features
    left join behaviour on features.customer_id = behaviour.customer_id
    left join clusters on behaviour.cluster_id = clusters.cluster_id
    left join (select lead, tail from clusters where cluster_id is null) as no_profile on true
),

value_reasons as (
    select
        features.customer_id,
        'predicted_value' as segment_kind,
        coalesce(predictions.clv_model, 'None') as segment,
        'Predicted CLV ' || {{ explain_number('predictions.predicted_clv') }} || horizon.text
            || ' (purchase propensity ' || {{ explain_number('predictions.purchase_propensity') }}
            || '), model ' || coalesce(predictions.clv_model, 'None')
            || case when {{ explain_list_size('predictions.drivers') }} > 0
                then '; top drivers: ' || {{ explain_join_each(
                    'predictions.drivers',
                    "replace(driver.feature, '_', ' ')
                        || coalesce(' = ' || " ~ explain_feature_value('driver.feature', 'features', feature_columns, false) ~ ", '')
                        || case when coalesce(driver.contribution, 0) > 0 then ' raised it (' else ' lowered it (' end
                        || " ~ explain_format_signed('coalesce(driver.contribution, 0)', 2) ~ " || ')'",
                    '; ') }} || '.'
                else '; a population model without per-customer drivers: it rests on '
                    || coalesce(models.rests_on, other_model.rests_on) || '.'
            end as explanation,
        '{"model": ' || {{ explain_json_text('predictions.clv_model') }}
            || ', "predicted_clv": ' || {{ explain_json_number('predictions.predicted_clv') }}
            || ', "purchase_propensity": ' || {{ explain_json_number('predictions.purchase_propensity') }}
            || ', "drivers": [' || {{ explain_join_each(
                'predictions.drivers',
                "'{\"feature\": ' || " ~ explain_json_text('driver.feature')
                    ~ " || ', \"contribution\": ' || " ~ explain_json_number('coalesce(driver.contribution, 0)')
                    ~ " || ', \"customer_value\": ' || coalesce("
                    ~ explain_feature_value('driver.feature', 'features', feature_columns, true) ~ ", 'null') || '}'",
                ', ') }}
            || ']}' as evidence
    from features
    left join predictions on features.customer_id = predictions.customer_id
    left join models on predictions.clv_model = models.clv_model
    left join (select rests_on from models where clv_model is null) as other_model on true
    cross join horizon
),

final as (
    select customer_id, segment_kind, segment, explanation, evidence from rfm_reasons
    union all
    select customer_id, segment_kind, segment, explanation, evidence from behavioral_reasons
    union all
    select customer_id, segment_kind, segment, explanation, evidence from value_reasons
)

select * from final
