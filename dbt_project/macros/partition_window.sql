{#-
    The daily partition window of an incremental model (tag `daily`). Dagster passes the run's partitions as
    vars `min_date` (inclusive) and `max_date` (exclusive); a run over every partition passes none.
    `partition_window_filter` selects the rows of the window; `delete_partition_window` is the model's pre-hook,
    removing those days first, so a re-run or backfill of a window replaces exactly its days.
    Without vars (a full run), or on the first build, the filter is `true`: the whole history is rebuilt.
-#}
{% macro partition_window_filter(day_column) %}
    {%- if is_incremental() and var('min_date', none) is not none -%}
        {{ day_column }} >= cast('{{ var("min_date") }}' as date) and {{ day_column }} < cast('{{ var("max_date") }}' as date)
    {%- else -%}
        true
    {%- endif -%}
{% endmacro %}

{% macro delete_partition_window(day_column) %}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ partition_window_filter(day_column) }}
    {%- endif -%}
{% endmacro %}
