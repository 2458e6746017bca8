{#-
    The few places where DuckDB and Spark SQL differ, dispatched on the adapter (SEGMINT_ENGINE picks the dbt
    target; README "Past one machine"). Models call these and are written once. dbt's own cross-database macros
    do not fit here: spark__datediff wraps its dates in assert_not_null (a NULL previous order would fail the
    query instead of giving NULL) and dbt.dateadd returns a timestamp on DuckDB.
-#}

{#- Whole days from `start` to `end` (dates), NULL when either is NULL. -#}
{% macro days_between(start, end) -%}
    {{ return(adapter.dispatch('days_between')(start, end)) }}
{%- endmacro %}

{% macro default__days_between(start, end) -%}
    datediff('day', {{ start }}, {{ end }})
{%- endmacro %}

{% macro spark__days_between(start, end) -%}
    datediff({{ end }}, {{ start }})
{%- endmacro %}

{#- Seconds from `start` to `end` (timestamps), NULL when either is NULL. -#}
{% macro seconds_between(start, end) -%}
    {{ return(adapter.dispatch('seconds_between')(start, end)) }}
{%- endmacro %}

{% macro default__seconds_between(start, end) -%}
    datediff('second', {{ start }}, {{ end }})
{%- endmacro %}

{% macro spark__seconds_between(start, end) -%}
    timestampdiff(SECOND, {{ start }}, {{ end }})
{%- endmacro %}

{#- The date `days` days before `day` (a DATE). -#}
{% macro days_before(day, days) -%}
    {{ return(adapter.dispatch('days_before')(day, days)) }}
{%- endmacro %}

{% macro default__days_before(day, days) -%}
    cast({{ day }} - {{ days }} * interval 1 day as date)
{%- endmacro %}

{% macro spark__days_before(day, days) -%}
    date_sub({{ day }}, {{ days }})
{%- endmacro %}

{#-
    How a daily model (tag `daily`, macros/partition_window.sql) replaces the days of its window.
    DuckDB: incremental; a pre-hook deletes the window's days, then the new rows are appended.
    Spark: plain Parquet tables cannot delete rows, and one Parquet partition per day (insert_overwrite by day)
    measured 66-76 s per model at 5,000 customers for 1,100 small files on local[2]; so there the model is
    rebuilt whole on every run (any window gives the same rows as a full run, only slower on a long history).
    Windowed re-staging on Spark wants a table format with MERGE/DELETE (Delta Lake, Iceberg), whose jars cannot
    load offline here (README "Past one machine").
-#}
{% macro daily_partition_config(day_column) -%}
    {{ return(adapter.dispatch('daily_partition_config')(day_column)) }}
{%- endmacro %}

{#-
    A run over every day (no window: `make run`, a changed landing file) is a `dbt build --full-refresh`
    (orchestration/defs/dbt_models.py): the table is rebuilt like a `table` model (a new table, then swapped in)
    instead of deleting every row, writing the rows to a temporary table and copying them over: at 1 M customers
    that was three passes over 25 M rows for stg_visitor_event_type_days. A window run stays incremental (its days
    deleted, then appended). Not a `full_refresh` config here: a config is fixed when dbt parses, and the window
    must not cost a parse (macros/partition_window.sql).
-#}
{% macro default__daily_partition_config(day_column) -%}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'append',
        'pre_hook': "{{ delete_partition_window('" ~ day_column ~ "') }}",
    }) }}
{%- endmacro %}

{% macro spark__daily_partition_config(day_column) -%}
    {{ return({'materialized': 'table', 'file_format': 'parquet'}) }}
{%- endmacro %}

{#-
    The config of a model that left-joins per-customer pieces onto its spine (customer_features_at: the purchase
    summary, then refunds, customers, web behaviour, event-type counts). DuckDB: its build/probe-side optimizer
    builds each hash join on the side it estimates smaller, and it estimates the cut-off-scoped aggregates at a
    few rows (the `<= cutoff_date` filter against a joined column is guessed very selective): so it built the
    accumulated 1 M-row, 60-column join result as the hash table of every next join, a chain of build sides
    that did not spill together (at 1 M customers "Out of Memory Error: failed to pin block" below a 1.75GB budget,
    sometimes at 1.75GB). With that optimizer off for the model the written left joins stand: each piece (one
    narrow row per customer) is a build side, the spine streams through. Measured at 1 M: builds under a 0.75GB
    budget, 2.24 instead of 2.92 GiB peak under 3GB, 20.6 vs 21.6 CPU s. The post-hook restores the default for
    the next model on the same connection. Spark plans its joins itself: nothing.
-#}
{% macro spine_join_config() -%}
    {{ return(adapter.dispatch('spine_join_config')()) }}
{%- endmacro %}

{% macro default__spine_join_config() -%}
    {{ return({
        'pre_hook': "set disabled_optimizers = 'build_side_probe_side'",
        'post_hook': "reset disabled_optimizers",
    }) }}
{%- endmacro %}

{#- Not {}: dbt rejects an empty inline config() ("Invalid inline model config"). -#}
{% macro spark__spine_join_config() -%}
    {{ return({'pre_hook': [], 'post_hook': []}) }}
{%- endmacro %}

{#-
    on-run-start: on Spark, the tables Python writes (raw.*, ml.*, activation.*) are Parquet folders under the
    Spark warehouse, `<schema>.db/<table>/` (orchestration/lib/spark_tables.py writes them). Each run registers
    the ones its selected models read as external tables of the metastore, afresh so a changed column list is
    picked up. Nothing to do on DuckDB, where Python writes into the same file.
-#}
{% macro register_python_tables() -%}
    {{ return(adapter.dispatch('register_python_tables')()) }}
{%- endmacro %}

{% macro default__register_python_tables() -%}
    select 1
{%- endmacro %}

{% macro spark__register_python_tables() -%}
    {%- if execute -%}
    {%- set wanted = [] -%}
    {%- for node in graph.nodes.values() if node.unique_id in selected_resources -%}
        {%- for parent in node.depends_on.nodes if parent.startswith('source.') and parent not in wanted -%}
            {%- do wanted.append(parent) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set warehouse = env_var('SEGMINT_SPARK_WAREHOUSE') -%}
    {%- for unique_id in wanted -%}
        {%- set source = graph.sources[unique_id] -%}
        {%- set location = warehouse ~ '/' ~ source.schema ~ '.db/' ~ source.identifier -%}
        {%- do run_query('create database if not exists ' ~ source.schema) -%}
        {%- do run_query('drop table if exists ' ~ source.schema ~ '.' ~ source.identifier) -%}
        {%- do run_query('create table ' ~ source.schema ~ '.' ~ source.identifier ~ " using parquet location '" ~ location ~ "'") -%}
    {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#-
    The value of `value` on the first row in the order of `order_columns` (ties broken by the later columns),
    as an aggregate: the first purchase's amount, offer and channel without a window over the orders.
    A NULL value on that row is returned as NULL (arg_min_null), as a row_number() = 1 filter would.
-#}
{% macro first_by(value, order_columns) -%}
    {{ return(adapter.dispatch('first_by')(value, order_columns)) }}
{%- endmacro %}

{% macro default__first_by(value, order_columns) -%}
    min_by({{ value }}, struct({{ order_columns | join(', ') }}))
{%- endmacro %}

{% macro duckdb__first_by(value, order_columns) -%}
    arg_min_null({{ value }}, row({{ order_columns | join(', ') }}))
{%- endmacro %}

{#- A struct with named fields (`fields`: name -> SQL expression, in order); read a field as `<struct>.<name>`. -#}
{% macro struct_of(fields) -%}
    {{ return(adapter.dispatch('struct_of')(fields)) }}
{%- endmacro %}

{% macro default__struct_of(fields) -%}
    named_struct({% for name, expression in fields.items() %}'{{ name }}', {{ expression }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro duckdb__struct_of(fields) -%}
    struct_pack({% for name, expression in fields.items() %}{{ name }} := {{ expression }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}
