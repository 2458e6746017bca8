-- One row per customer with at least one accepted order at or before the as-of date.
with {{ customer_features_at('scoring_cutoff') }}

select * from features
