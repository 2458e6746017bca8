{{ config(meta={'dagster': {'group': 'reporting'}}) }}
-- One row per segment (RFM and behavioural). Written by the Python asset ml/segment_cards (with the HTML report).
select * from {{ source('ml', 'segment_cards') }}
