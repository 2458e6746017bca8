-- One row per visitor (customer_id, visitor_id) and UTC day: the counts the behaviour features are sums of.
-- Daily partitions by event date (macros/partition_window.sql): a daily run aggregates one day of events,
-- not the whole history, and the feature marts read this table instead of every event.
{{ config(tags=['daily'], **daily_partition_config('occurred_on')) }}

with events as (
    {{ stage_events(partition_window_filter('cast(events.occurred_at as date)')) }}
),

-- Sessions end after 30 minutes without an event. Gaps are measured within the visitor's day (the partition),
-- so a session that crosses midnight UTC counts as two: rare, and it keeps every day independent.
sequenced as (
    select
        *,
        {{ seconds_between(
            'lag(occurred_at) over (partition by visitor_id, occurred_on order by occurred_at, event_id)',
            'occurred_at'
        ) }} as seconds_since_previous
    from events
)

{{ event_day_counts('sequenced', ['customer_id', 'visitor_id'], generic=true) }}
