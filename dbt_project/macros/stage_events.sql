{#-
    Accepted raw web events with segmint's vocabulary: one row per event, visitor_id = customer_id when known,
    else the anonymous id. `source_event_type`/`source_page_type` are the shop's own names (lower-cased);
    `event_type`/`page_type` are what they mean in segmint's vocabulary (raw.event_vocabulary, written by the
    asset raw/event_vocabulary from config/event_mapping.yaml; '' when unmapped, `other` when known but
    meaningless), so raw stays raw and every staging model maps the same way. Shared by stg_events (every event)
    and the daily staging models (one day-window of them).
-#}
{% macro stage_events(where='true', with_vocabulary=true) %}
    {%- set page_path = page_path('events.page_url') if raw_events_have('page_url') else "''" %}
    select
        events.event_id,
        events.customer_id,
        events.anonymous_id,
        coalesce(events.customer_id, events.anonymous_id) as visitor_id,
        events.occurred_at,
        cast(events.occurred_at as date) as occurred_on,
        lower(trim(coalesce(events.event_type, ''))) as source_event_type,
        lower(trim(coalesce(events.page_type, ''))) as source_page_type,
        {%- if with_vocabulary %}
        coalesce(vocabulary.event_type, '') as event_type,
        coalesce(vocabulary.page_type, '') as page_type,
        coalesce(vocabulary.is_mapped, false) as is_mapped,
        {%- endif %}
        events.product_id,
        lower(trim(events.device)) as device,
        events.utm_source,
        events.utm_campaign
    from {{ source('raw', 'events') }} as events
    {%- if with_vocabulary %}
    left join {{ source('raw', 'event_vocabulary') }} as vocabulary
        on vocabulary.source_event_type = lower(trim(coalesce(events.event_type, '')))
        and vocabulary.source_page_type = lower(trim(coalesce(events.page_type, '')))
        and vocabulary.source_page_path = {{ page_path }}
    {%- endif %}
    where {{ where }}
{% endmacro %}

{#- The lower-cased URL path of a page_url (no scheme, host, query or fragment): the vocabulary's page key.
    landing/event_mapping.py PAGE_PATH_PATTERN is the same pattern (a unit test pins the two together). -#}
{% macro page_path(column) -%}
    lower(regexp_extract(coalesce({{ column }}, ''), '^(?:[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*)?([^?#]*)', 1))
{%- endmacro %}

{#- Whether raw.events has an optional column (e.g. page_url, written only by some source formats). -#}
{% macro raw_events_have(column) %}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set relation_columns = adapter.get_columns_in_relation(source('raw', 'events')) -%}
    {%- set columns = relation_columns | map(attribute='name') | map('lower') | list -%}
    {{ return(column | lower in columns) }}
{% endmacro %}
