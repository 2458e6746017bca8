{{ config(materialized='view') }}
-- Two rows per CLV candidate (selection and evaluation halves). Written by the Python asset ml/clv_model_evaluation;
-- this view keeps the contract name marts.clv_model_evaluation (issue 13) while dbt stays the only owner of marts.
select * from {{ source('ml', 'clv_model_evaluation') }}
