-- One row per visitor (customer_id, visitor_id) and UTC day: the counts the behaviour features are sums of.
-- Daily partitions by event date (macros/partition_window.sql): a daily run aggregates one day of events,
-- not the whole history, and the feature marts read this table instead of every event.
{{ config(tags=['daily'], **daily_partition_config('occurred_on')) }}

with events as (
    {{ stage_events(partition_window_filter('cast(events.occurred_at as date)')) }}

)

{{ visitor_event_days('events') }}
