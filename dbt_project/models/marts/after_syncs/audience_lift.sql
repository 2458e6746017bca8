{{ config(meta={'dagster': {'group': 'audiences'}}) }}
-- One row per audience: treated vs control after the first live sync. Written by the Python asset
-- activation/audience_lift.
select * from {{ source('activation', 'audience_lift') }}
