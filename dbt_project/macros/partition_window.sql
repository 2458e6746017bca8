{#-
    The staging window of an incremental model (tag `daily`): the days a run re-stages, `min_date` (inclusive) to
    `max_date` (exclusive). Dagster passes them in the environment of the dbt process (SEGMINT_STAGE_MIN_DATE /
    SEGMINT_STAGE_MAX_DATE, orchestration/lib/partitions.py), not as dbt vars: dbt re-parses the whole project
    whenever its `--vars` differ from the last run's (partial parsing keys on them), and the window moves every
    day. The environment is read only while a model runs (never while parsing: `is_incremental()` is false
    then), so a new window costs no parse. By hand, `--vars '{min_date: ..., max_date: ...}'` still works and wins.
    `partition_window_filter` selects the rows of the window; `delete_partition_window` is the model's pre-hook,
    removing those days first, so a re-run or backfill of a window replaces exactly its days.
    Without a window, or on the first build, the filter is `true`: the whole history is rebuilt (Dagster then
    passes `--full-refresh`, so the table is rebuilt as a new one rather than emptied and appended to).
-#}
{% macro staging_window() -%}
    {%- set first = var('min_date', none) or env_var('SEGMINT_STAGE_MIN_DATE', '') -%}
    {%- set last = var('max_date', none) or env_var('SEGMINT_STAGE_MAX_DATE', '') -%}
    {%- if first and not last -%}
        {%- do exceptions.raise_compiler_error('staging window: min_date ' ~ first ~ ' without max_date') -%}
    {%- endif -%}
    {{ return((first, last) if first else none) }}
{%- endmacro %}

{% macro partition_window_filter(day_column) %}
    {%- set window = staging_window() if is_incremental() else none -%}
    {%- if window is not none -%}
        {{ day_column }} >= cast('{{ window[0] }}' as date) and {{ day_column }} < cast('{{ window[1] }}' as date)
    {%- else -%}
        true
    {%- endif -%}
{% endmacro %}

{% macro delete_partition_window(day_column) %}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ partition_window_filter(day_column) }}
    {%- endif -%}
{% endmacro %}
