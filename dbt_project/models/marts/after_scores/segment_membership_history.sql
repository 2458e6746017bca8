{{ config(meta={'dagster': {'group': 'scores'}}) }}
-- One row per customer, segment kind and stretch of membership. Written by the Python asset
-- ml/segment_membership_history; this view keeps the contract name marts.segment_membership_history (issue 16).
select * from {{ source('ml', 'segment_membership_history') }}
