{% test columns_between(model, columns, min_value, max_value) %}
-- Rows with a value of any of `columns` outside [min_value, max_value] (NULLs pass): value_between for many columns
-- with the same bounds in one test, so one dbt node and one scan instead of one per column (each node costs dbt
-- ~40-100 ms of its own time besides the query; customer_features has 24 shares).
select * from {{ model }}
where
{%- for column in columns %}
    ({{ column }} is not null and ({{ column }} < {{ min_value }} or {{ column }} > {{ max_value }})){{ ' or' if not loop.last }}
{%- endfor %}
{% endtest %}
