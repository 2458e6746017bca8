-- One row per customer, UTC day and source event type (the shop's own name): the counts the top event-type shares
-- of the customer feature marts are sums of (any vocabulary, mapped or not), and marts.top_event_types' shop totals.
-- Anonymous visitors' events are one row per day and type with a NULL customer_id: no reader needs them per
-- visitor (top_event_types sums every row, the customer marts only identified ones), and at 1 M customers keying
-- by visitor cost ~40 % more CPU for 3.5 M more rows (BENCHMARKS.md, issue 18).
-- Daily partitions by event date, like stg_visitor_event_days (macros/partition_window.sql).
{{ config(tags=['daily'], **daily_partition_config('occurred_on')) }}

with events as (
    {{ stage_events(partition_window_filter('cast(occurred_at as date)'), with_vocabulary=false) }}
),

final as (
    select
        customer_id,
        occurred_on,
        source_event_type,
        count(*) as event_count
    from events
    group by customer_id, occurred_on, source_event_type
)

select * from final
