-- One row per visitor (customer_id, visitor_id), UTC day and source event type (the shop's own name): the counts
-- the top event-type shares of customer_features are sums of (any vocabulary, mapped or not).
-- Daily partitions by event date, like stg_visitor_event_days (macros/partition_window.sql).
{{ config(tags=['daily'], **daily_partition_config('occurred_on')) }}

with events as (
    {{ stage_events(partition_window_filter('cast(occurred_at as date)'), with_vocabulary=false) }}
),

final as (
    select
        customer_id,
        visitor_id,
        occurred_on,
        source_event_type,
        count(*) as event_count
    from events
    group by all
)

select * from final
