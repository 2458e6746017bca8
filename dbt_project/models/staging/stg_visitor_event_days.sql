-- One row per visitor (customer_id, visitor_id) and UTC day: the counts the behaviour features are sums of.
-- Daily partitions by event date (macros/partition_window.sql): a daily run aggregates one day of events,
-- not the whole history, and the feature marts read this table instead of every event.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    tags=['daily'],
    pre_hook="{{ delete_partition_window('occurred_on') }}"
) }}

with events as (
    {{ stage_events(partition_window_filter('cast(occurred_at as date)')) }}
)

{{ event_day_counts('events', ['customer_id', 'visitor_id']) }}
