-- One row per accepted web event; visitor_id is the customer when known, else the anonymous id.
with source as (
    select * from {{ source('raw', 'events') }}
),

final as (
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
    from source
)

select * from final
