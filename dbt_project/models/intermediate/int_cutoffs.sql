-- One row: the scoring cut-off (the as-of date), the training cut-off (as-of minus the CLV horizon) and the
-- selection cut-off (as-of minus two horizons), where the CLV champion is chosen (see ml/champion.py).
with run_context as (
    select * from {{ source('raw', 'run_context') }}
),

final as (
    select
        as_of as scoring_cutoff,
        {{ days_before('as_of', 'horizon_days') }} as training_cutoff,
        {{ days_before('as_of', '2 * horizon_days') }} as selection_cutoff,
        horizon_days
    from run_context
)

select * from final
