{#-
    Accepted raw web events with normalised types: one row per event, visitor_id = customer_id when known,
    else the anonymous id. Shared by stg_events (every event) and stg_visitor_event_days (one day-window of
    them), so both read the events the same way.
-#}
{% macro stage_events(where='true') %}
    select
        event_id,
        customer_id,
        anonymous_id,
        coalesce(customer_id, anonymous_id) as visitor_id,
        occurred_at,
        cast(occurred_at as date) as occurred_on,
        lower(coalesce(event_type, '')) as event_type,
        lower(coalesce(page_type, '')) as page_type,
        product_id,
        lower(device) as device,
        utm_source,
        utm_campaign
    from {{ source('raw', 'events') }}
    where {{ where }}
{% endmacro %}
