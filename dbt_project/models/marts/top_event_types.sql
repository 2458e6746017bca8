-- One row per rank 1..N (var top_event_type_count): the shop's N most frequent source event types (its own names,
-- mapped or not) among all events at or before the as-of date, ties broken by name. Rank k names the column
-- event_type_share_k of customer_features AND customer_features_train (both use the as-of ranking, so a column
-- means the same event type in training and scoring).
with cutoffs as (
    select * from {{ ref('int_cutoffs') }}
),

type_totals as (
    select type_days.source_event_type, sum(type_days.event_count) as event_count
    from {{ ref('stg_visitor_event_type_days') }} as type_days
    cross join cutoffs
    where type_days.occurred_on <= cutoffs.scoring_cutoff
    group by type_days.source_event_type
),

ranked as (
    select
        source_event_type,
        event_count,
        event_count / sum(event_count) over () as event_share,
        row_number() over (order by event_count desc, source_event_type) as type_rank
    from type_totals
),

-- What the name means in segmint's vocabulary (its most frequent mapping), for reading the clusters.
vocabulary as (
    select source_event_type, max_by(event_type, event_count) as mapped_event_type
    from {{ source('raw', 'event_vocabulary') }}
    group by source_event_type
),

final as (
    select
        ranked.type_rank,
        'event_type_share_' || cast(ranked.type_rank as string) as feature_column,
        ranked.source_event_type,
        vocabulary.mapped_event_type,
        ranked.event_count,
        ranked.event_share
    from ranked
    left join vocabulary using (source_event_type)
    where ranked.type_rank <= {{ var('top_event_type_count') }}
)

select * from final
