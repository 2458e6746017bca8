-- One row per customer and segment kind: why the customer is in the segment (README "Explanations", "Privacy").
-- A view: each sentence and its JSON evidence are assembled when read, from the tables the scores already build
-- and three small tables of texts the Python asset ml__explanation_texts writes once per run (ml/explanations.py
-- has why: writing 3 text rows per customer each run cost ~84 s at 1 M customers, for rows mostly never read).
-- Every relation is read where it is used (no CTE read twice): DuckDB would materialize such a CTE whole, and a
-- read of one customer would no longer be a filtered read.
-- On Spark a table: the local Derby metastore stores a view's SQL in at most 32,700 characters (this one is ~40 k);
-- there the explanations are computed by Spark once per run, as every Spark mart is.
{{ config(materialized='table' if target.type == 'spark' else 'view') }}
{%- set feature_columns = explain_columns(ref('customer_features')) %}
{%- set slots = [] %}
{%- for column in explain_columns(source('ml', 'explanation_clusters')) %}
    {%- set name = column.name | lower %}
    {%- if name.startswith('attribute_') and name.endswith('_feature') %}
        {%- do slots.append(name[10:-8] | int) %}
    {%- endif %}
{%- endfor %}
{%- set slots = slots | sort %}
with rfm_reasons as (
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
            || ' (' || {{ explain_number('features.total_revenue') }} || ' net revenue)'
            -- The name reads the recency score raised by a young shop's floor (its CLV horizon as the cycle, ml/rfm.py): say so.
            || case when rfm.named_recency_score > rfm.recency_score
                then ', named as recency score ' || cast(rfm.named_recency_score as string)
                    || ' (the last order is too recent to name lapsing in a shop younger than its CLV horizon of '
                    || {{ explain_number('rfm.repurchase_cycle_days') }} || ' days)'
                else '' end
            || '. It matched rule ' || rules.rule_text as explanation,
        rules.rule_evidence
            || ', "scores": {"recency_score": ' || cast(rfm.recency_score as string)
            || ', "frequency_score": ' || cast(rfm.frequency_score as string)
            || ', "monetary_score": ' || cast(rfm.monetary_score as string)
            || ', "named_recency_score": ' || cast(rfm.named_recency_score as string)
            || '}, "values": {"recency_days": ' || {{ explain_json_number('features.recency_days') }}
            || ', "order_count": ' || {{ explain_json_number('features.order_count') }}
            || ', "total_revenue": ' || {{ explain_json_number('features.total_revenue') }}
            || ', "repurchase_cycle_days": ' || {{ explain_json_number('rfm.repurchase_cycle_days') }}
            || '}}' as evidence
    from {{ ref('customer_features') }} as features
    left join {{ source('ml', 'rfm_segments') }} as rfm on features.customer_id = rfm.customer_id
    left join {{ source('ml', 'explanation_rfm_rules') }} as rules
        on rfm.named_recency_score = rules.recency_score
        and rfm.frequency_score = rules.frequency_score
        and rfm.monetary_score = rules.monetary_score
),

-- The customer's cluster, its texts (or those of a cluster without a profile) and the customer's own value of each
-- of the cluster's attributes.
behavioral_values as (
    select
        features.customer_id,
        behaviour.behavioral_segment,
        behaviour.cluster_id,
        coalesce(clusters.lead, no_profile.lead) as lead,
        coalesce(clusters.tail, no_profile.tail) as tail
        {%- for slot in slots %},
        clusters.attribute_{{ slot }}_text,
        clusters.attribute_{{ slot }}_evidence,
        {{ explain_feature_lookup('clusters.attribute_' ~ slot ~ '_feature', 'features', feature_columns, 'value_' ~ slot) }}
        {%- endfor %}
    from {{ ref('customer_features') }} as features
    left join {{ source('ml', 'behavioral_segments') }} as behaviour on features.customer_id = behaviour.customer_id
    left join {{ source('ml', 'explanation_clusters') }} as clusters on behaviour.cluster_id = clusters.cluster_id
    left join (
        select lead, tail from {{ source('ml', 'explanation_clusters') }} where cluster_id is null
    ) as no_profile on true
),

behavioral_reasons as (
    select
        customer_id,
        'behavioral' as segment_kind,
        behavioral_segment as segment,
        coalesce(behavioral_segment, 'None') || lead
            || concat_ws('; ', cast(null as string)
            {%- for slot in slots %},
                attribute_{{ slot }}_text
                    || coalesce('; this customer ' || {{ explain_feature_value('value_' ~ slot, false) }}, '') || ')'
            {%- endfor %}
            ) || tail as explanation,
        '{"cluster_id": ' || coalesce(cast(cluster_id as string), 'null') || ', "attributes": ['
            || concat_ws(', ', cast(null as string)
            {%- for slot in slots %},
                attribute_{{ slot }}_evidence || coalesce({{ explain_feature_value('value_' ~ slot, true) }}, 'null') || '}'
            {%- endfor %}
            ) || ']}' as evidence
    from behavioral_values
),

-- One row per driver of a prediction (top_drivers, in its order) with the customer's own value of the feature.
drivers as (
    select customer_id, {{ explain_explode(explain_parse_drivers('top_drivers')) }}
    from {{ source('ml', 'clv_predictions') }}
),

driver_values as (
    select
        drivers.customer_id,
        drivers.position,
        drivers.driver.feature as feature,
        coalesce(drivers.driver.contribution, 0) as contribution,
        {{ explain_feature_lookup('drivers.driver.feature', 'features', feature_columns, 'value') }}
    from drivers
    inner join {{ ref('customer_features') }} as features on drivers.customer_id = features.customer_id
),

driver_lists as (
    select
        customer_id,
        {{ explain_ordered_join(
            "replace(feature, '_', ' ') || coalesce(' = ' || " ~ explain_feature_value('value', false) ~ ", '')
                || case when contribution > 0 then ' raised it (' else ' lowered it (' end
                || " ~ explain_format_signed('contribution', 2) ~ " || ')'",
            'position', '; ') }} as text,
        {{ explain_ordered_join(
            "'{\"feature\": ' || " ~ explain_json_text('feature')
                ~ " || ', \"contribution\": ' || " ~ explain_json_number('contribution')
                ~ " || ', \"customer_value\": ' || coalesce(" ~ explain_feature_value('value', true) ~ ", 'null') || '}'",
            'position', ', ') }} as evidence
    from driver_values
    group by customer_id
),

value_reasons as (
    select
        features.customer_id,
        'predicted_value' as segment_kind,
        coalesce(predictions.clv_model, 'None') as segment,
        'Predicted CLV ' || {{ explain_number('predictions.predicted_clv') }} || horizon.text
            || ' (purchase propensity ' || {{ explain_number('predictions.purchase_propensity') }}
            || '), model ' || coalesce(predictions.clv_model, 'None')
            || case when driver_lists.text is not null then '; top drivers: ' || driver_lists.text || '.'
                else '; a population model without per-customer drivers: it rests on '
                    || coalesce(models.rests_on, other_model.rests_on) || '.'
            end as explanation,
        '{"model": ' || {{ explain_json_text('predictions.clv_model') }}
            || ', "predicted_clv": ' || {{ explain_json_number('predictions.predicted_clv') }}
            || ', "purchase_propensity": ' || {{ explain_json_number('predictions.purchase_propensity') }}
            || ', "drivers": [' || coalesce(driver_lists.evidence, '') || ']}' as evidence
    from {{ ref('customer_features') }} as features
    left join {{ source('ml', 'clv_predictions') }} as predictions on features.customer_id = predictions.customer_id
    left join driver_lists on features.customer_id = driver_lists.customer_id
    left join {{ source('ml', 'explanation_models') }} as models on predictions.clv_model = models.clv_model
    left join (
        select rests_on from {{ source('ml', 'explanation_models') }} where clv_model is null
    ) as other_model on true
    cross join (
        select
            case when horizon_days is null or horizon_days = 0 then ''
                else ' over the next ' || cast(horizon_days as string) || ' days' end as text
        from {{ source('raw', 'run_context') }}
    ) as horizon
)

select customer_id, segment_kind, segment, explanation, evidence from rfm_reasons
union all
select customer_id, segment_kind, segment, explanation, evidence from behavioral_reasons
union all
select customer_id, segment_kind, segment, explanation, evidence from value_reasons
