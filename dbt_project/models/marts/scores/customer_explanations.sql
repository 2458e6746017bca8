-- One row per customer and segment kind: why the customer is in the segment (README "Privacy", "Explanations").
-- Written by the Python asset ml/customer_explanations (the sentences come from ml/explanations.py); exposed in
-- marts because dbt owns that schema, and so that docs, tests and lineage cover it like every other mart.
with explanations as (
    select * from {{ source('ml', 'customer_explanations') }}
),

final as (
    select
        customer_id,
        segment_kind,
        segment,
        explanation,
        evidence
    from explanations
)

select * from final
