-- One row per accepted order (line items already merged by the ingest). Refunds are rows with a negative total
-- or a refund status; cancelled/void orders never count as revenue. Amounts are in the reporting currency
-- (raw.run_context.reporting_currency): raw.orders keeps the amount and currency as given, and fx_rate converts them. Daily partitions by order date (see macros/partition_window.sql).
{{ config(tags=['daily'], **daily_partition_config('ordered_on')) }}

with source as (
    select * from {{ source('raw', 'orders') }}
    where {{ partition_window_filter('cast(ordered_at as date)') }}
),

final as (
    select
        order_id,
        customer_id,
        ordered_at,
        cast(ordered_at as date) as ordered_on,
        lower(coalesce(status, 'completed')) as status,
        coalesce(lower(status), '') in ('cancelled', 'canceled', 'void', 'voided') as is_cancelled,
        order_total < 0 or coalesce(lower(status), '') in ('refunded', 'refund', 'returned') as is_refund,
        abs(order_total * fx_rate) as order_amount,
        coalesce(discount_amount * fx_rate, 0) as discount_amount,
        nullif(trim(discount_code), '') as discount_code,
        nullif(trim(discount_code), '') is not null or coalesce(discount_amount, 0) > 0 as has_discount,
        coalesce(nullif(lower(trim(channel)), ''), 'unknown') as channel,
        upper(currency) as currency,
        abs(order_total) as original_amount,
        fx_rate,
        source_row
    from source
)

select * from final
