-- One row per customer_id from customers.csv (the first row wins when an id repeats). This is the only place
-- that rule lives: source_file/source_row name the winning raw row, and edge.customer_contacts (the sync edge)
-- reads the contact fields of exactly that row. No e-mail, phone or names here: PII stays in raw.customers and at
-- the sync edge (README "Privacy"); only whether the customer has an e-mail or a phone travels on.
with source as (
    select * from {{ source('raw', 'customers') }}
),

ranked as (
    select *, row_number() over (partition by customer_id order by source_row) as row_rank
    from source
),

final as (
    select
        customer_id,
        postal_code,
        upper(nullif(trim(country), '')) as country,
        signed_up_at,
        nullif(lower(trim(acquisition_channel)), '') as acquisition_channel,
        marketing_consent,
        nullif(trim(email), '') is not null as has_email,
        nullif(trim(phone), '') is not null as has_phone,
        source_file,
        source_row
    from ranked
    where row_rank = 1
)

select * from final
