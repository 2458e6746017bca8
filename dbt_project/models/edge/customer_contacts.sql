-- One row per customer of stg_customers: the contact fields a sync sends, from the raw.customers row that
-- stg_customers chose (its dedup rule is the only one; this view joins back on that row, it does not re-rank).
-- PII (e-mail, phone, names, postal code) lives in `raw` and here, at the sync edge, and in no other schema.
with customers as (
    select customer_id, country, marketing_consent, source_file, source_row
    from {{ ref('stg_customers') }}
),

contacts as (
    select source_file, source_row, email, phone, first_name, last_name, postal_code
    from {{ source('raw', 'customers') }}
),

final as (
    select
        customers.customer_id,
        contacts.email,
        contacts.phone,
        contacts.first_name,
        contacts.last_name,
        contacts.postal_code,
        customers.country,
        customers.marketing_consent
    from customers
    inner join contacts
        on customers.source_file = contacts.source_file
        and customers.source_row = contacts.source_row
)

select * from final
