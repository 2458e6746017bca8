{#-
    The feature marts on a real next day (issue 18): bring customer_features, customer_prepurchase_behaviour and
    prospect_features from the as-of of their last build to today's by recomputing only the customers (visitors)
    whose rows can have changed, and carrying every other row over (its as-of-relative columns shifted by the days
    the as-of moved). Each mart's model says which rows can change and why; the argument below is customer_features'.
    Exact: the carried rows are the values a full build would compute (tests/integration/test_feature_increment.py
    compares every column of every customer with a full build at the same as-of).

    Why it is exact. A run re-stages the days of its window (partition_window.sql); every other staged day is as the
    last build saw it. Let `since` = the earlier of the window's first day and the day after the last build's as-of.
    A customer's features can differ from the last build's only through (1) a staged row on a day >= since, new or
    re-staged away, (2) a row leaving a trailing window (90/365-day orders, 30/90-day events) as the as-of moves,
    (3) the as-of itself (cutoff_date, recency_days, tenure_days, days_since_last_event: shifted), (4) the customer
    table (re-joined for everyone), (5) refunds (recomputed for everyone: cheap, and a refund leaves no date in the
    mart). Rows of (1) that the last build saw left a date in the mart (last order, last event day), so
    the customers affected are found from the staging and the previous table alone.

    Falls back to the full build (the same SQL as always) when it cannot be exact: the step asked for a full build
    (no window, --full-refresh, SEGMINT_FORCE_INGEST, or staging re-staged by a run that did not also build the
    marts: orchestration/defs/dbt_models.py decides and sets SEGMINT_FEATURE_INCREMENT), no previous table, a
    previous table built by other SQL or another ranking of the top event types (its basis, kept in the table's
    comment), the as-of moving backwards, or `since` more than var feature_increment_max_days before the as-of (a
    backfill: the affected customers are then most of them). Spark always builds in full (the incremental SQL is
    DuckDB's: REPLACE, comments). Each decision is logged as `feature build <model>: <path> (<why>)`.
-#}

{#- The basis a table was built on: the full-build SQL and (with_top_types: customer_features) the shop's top event
    types, whose ranks name columns. -#}
{% macro feature_basis(full_sql, with_top_types=true) -%}
    {#- Without the database name: DuckDB names it after the file, and a copied warehouse is the same build. -#}
    {%- set full_sql = full_sql | replace('"' ~ this.database ~ '".', '') -%}
    {%- if not with_top_types -%}
        {{ return(local_md5(full_sql)) }}
    {%- endif -%}
    {%- set types = run_query(
        "select coalesce(string_agg(type_rank || '=' || source_event_type, ',' order by type_rank), '') from "
        ~ ref('top_event_types')
    ).columns[0].values()[0] -%}
    {{ return(local_md5(full_sql ~ '|' ~ types)) }}
{%- endmacro %}

{#- The table comment recorded after a build: `segmint-feature-basis:<basis>:<as-of>` (a post-hook). -#}
{% macro record_feature_basis(full_sql, with_top_types=true) -%}
    {%- if execute and target.type == 'duckdb' -%}
        {%- set cutoff = run_query('select scoring_cutoff from ' ~ ref('int_cutoffs')).columns[0].values()[0] -%}
        comment on table {{ this }} is 'segmint-feature-basis:{{ feature_basis(full_sql, with_top_types) }}:{{ cutoff }}'
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#-
    None for a full build, else {'since': date, 'previous_cutoff': date, 'cutoff': date, 'shift': days}: the days
    from `since` on were (re-)staged or newly in scope since the previous build. Logs the path and why.
-#}
{% macro feature_increment(full_sql, with_top_types=true) -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set why = namespace(text='') -%}
    {%- set window = staging_window() -%}
    {%- set previous = adapter.get_relation(this.database, this.schema, this.identifier) -%}
    {%- if target.type != 'duckdb' -%}
        {%- set why.text = 'the Spark target always builds in full' -%}
    {%- elif flags.FULL_REFRESH -%}
        {%- set why.text = '--full-refresh' -%}
    {%- elif this.identifier not in env_var('SEGMINT_FEATURE_INCREMENT', '').split(',') -%}
        {%- set why.text = env_var('SEGMINT_FEATURE_INCREMENT_WHY', 'the step did not ask for an increment') -%}
    {%- elif window is none -%}
        {%- set why.text = 'no staging window: every day was re-staged' -%}
    {%- elif previous is none -%}
        {%- set why.text = 'no previous table' -%}
    {%- endif -%}
    {%- if why.text -%}
        {%- do log('feature build ' ~ this.identifier ~ ': full (' ~ why.text ~ ')', info=True) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set comment = run_query(
        "select coalesce(comment, '') from duckdb_tables() where database_name = '" ~ this.database
        ~ "' and schema_name = '" ~ this.schema ~ "' and table_name = '" ~ this.identifier ~ "'"
    ).columns[0].values()[0] -%}
    {%- set parts = comment.split(':') -%}
    {%- set cutoff = run_query('select scoring_cutoff from ' ~ ref('int_cutoffs')).columns[0].values()[0] -%}
    {%- if parts | length != 3 or parts[0] != 'segmint-feature-basis' -%}
        {%- set why.text = 'the previous table records no basis' -%}
    {%- elif parts[1] != feature_basis(full_sql, with_top_types) -%}
        {%- set why.text = 'the previous table was built by other SQL or another ranking of the top event types' -%}
    {%- else -%}
        {%- set previous_cutoff = modules.datetime.date.fromisoformat(parts[2]) -%}
        {%- set first = modules.datetime.date.fromisoformat(window[0]) -%}
        {%- set since = [first, previous_cutoff + modules.datetime.timedelta(days=1)] | min -%}
        {%- if cutoff < previous_cutoff -%}
            {%- set why.text = 'the as-of moved backwards (' ~ previous_cutoff ~ ' -> ' ~ cutoff ~ ')' -%}
        {%- elif (cutoff - since).days > var('feature_increment_max_days') -%}
            {%- set why.text = 'rows from ' ~ since ~ ' on changed, more than ' ~ var('feature_increment_max_days')
                ~ ' days before the as-of ' ~ cutoff -%}
        {%- endif -%}
    {%- endif -%}
    {%- if why.text -%}
        {%- do log('feature build ' ~ this.identifier ~ ': full (' ~ why.text ~ ')', info=True) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- do log('feature build ' ~ this.identifier ~ ': incremental (as-of ' ~ previous_cutoff ~ ' -> ' ~ cutoff
        ~ ', customers with rows from ' ~ since ~ ' on recomputed)', info=True) -%}
    {{ return({'since': since, 'previous_cutoff': previous_cutoff, 'cutoff': cutoff,
               'shift': (cutoff - previous_cutoff).days}) }}
{%- endmacro %}

{#- A date literal. -#}
{% macro date_literal(day) -%}
    cast('{{ day }}' as date)
{%- endmacro %}
