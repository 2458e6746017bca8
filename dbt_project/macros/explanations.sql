{#-
    The pieces of marts.customer_explanations (a view: sentences and JSON evidence assembled when read; ml/explanations.py
    has why and the texts). Numbers are written as ml/explanations.py's `_number` writes them and JSON scalars as
    json.dumps does, through the dispatch macros below where DuckDB and Spark SQL differ.
-#}

{#- `_number`: NULL/NaN -> 'n/a'; an integer-valued number of at least 1 with thousands separators and no decimals;
    any other with two decimals (1,234.57). -#}
{% macro explain_number(value) -%}
    case
        when {{ value }} is null or isnan(cast({{ value }} as double)) then 'n/a'
        when cast({{ value }} as double) = floor(cast({{ value }} as double)) and abs(cast({{ value }} as double)) >= 1
            then {{ explain_format_decimals('cast(' ~ value ~ ' as double)', 0) }}
        else {{ explain_format_decimals('cast(' ~ value ~ ' as double)', 2) }}
    end
{%- endmacro %}

{#- `value` with `digits` decimals and thousands separators (Python f"{value:,.2f}"). -#}
{% macro explain_format_decimals(value, digits) -%}
    {{ return(adapter.dispatch('explain_format_decimals')(value, digits)) }}
{%- endmacro %}

{% macro default__explain_format_decimals(value, digits) -%}
    format('{:,.{{ digits }}f}', {{ value }})
{%- endmacro %}

{% macro spark__explain_format_decimals(value, digits) -%}
    format_number({{ value }}, {{ digits }})
{%- endmacro %}

{#- `value` signed with `digits` decimals (Python f"{value:+.2f}"). -#}
{% macro explain_format_signed(value, digits) -%}
    {{ return(adapter.dispatch('explain_format_signed')(value, digits)) }}
{%- endmacro %}

{% macro default__explain_format_signed(value, digits) -%}
    format('{:+.{{ digits }}f}', cast({{ value }} as double))
{%- endmacro %}

{% macro spark__explain_format_signed(value, digits) -%}
    format_string('%+.{{ digits }}f', cast({{ value }} as double))
{%- endmacro %}

{#- A number as a JSON scalar rounded to `digits` decimals; NULL and NaN -> null (Python json.dumps(round(v, 4))). -#}
{% macro explain_json_number(value, digits=4) -%}
    coalesce(
        case when not isnan(cast({{ value }} as double))
            then cast(round(cast({{ value }} as double), {{ digits }}) as string) end,
        'null'
    )
{%- endmacro %}

{#- A text as a JSON string, NULL -> null (escapes as the engine's JSON writer does). -#}
{% macro explain_json_text(value) -%}
    {{ return(adapter.dispatch('explain_json_text')(value)) }}
{%- endmacro %}

{% macro default__explain_json_text(value) -%}
    coalesce(cast(to_json(cast({{ value }} as string)) as string), 'null')
{%- endmacro %}

{#- Spark has no JSON of a scalar: the one element of a JSON array, brackets cut off. -#}
{% macro spark__explain_json_text(value) -%}
    regexp_extract(to_json(array(cast({{ value }} as string))), '^\\[(.*)\\]$', 1)
{%- endmacro %}

{#- The drivers of a top_drivers JSON text that name a feature, as a list of struct(feature, contribution);
    NULL, '' and malformed text -> NULL (no drivers). -#}
{% macro explain_parse_drivers(value) -%}
    {{ return(adapter.dispatch('explain_parse_drivers')(value)) }}
{%- endmacro %}

{% macro default__explain_parse_drivers(value) -%}
    list_filter(
        try(from_json(nullif({{ value }}, ''), '[{"feature": "VARCHAR", "contribution": "DOUBLE"}]')),
        lambda driver: driver.feature is not null
    )
{%- endmacro %}

{% macro spark__explain_parse_drivers(value) -%}
    filter(
        from_json(nullif({{ value }}, ''), 'array<struct<feature:string,contribution:double>>'),
        driver -> driver.feature is not null
    )
{%- endmacro %}

{#- `separator`-joined texts made by `body` (an expression of `driver`) for every element of `list`; '' when empty. -#}
{% macro explain_join_each(list, body, separator) -%}
    {{ return(adapter.dispatch('explain_join_each')(list, body, separator)) }}
{%- endmacro %}

{% macro default__explain_join_each(list, body, separator) -%}
    coalesce(array_to_string(list_transform({{ list }}, lambda driver: {{ body }}), '{{ separator }}'), '')
{%- endmacro %}

{% macro spark__explain_join_each(list, body, separator) -%}
    coalesce(array_join(transform({{ list }}, driver -> {{ body }}), '{{ separator }}'), '')
{%- endmacro %}

{#- Elements of a list, 0 for NULL. -#}
{% macro explain_list_size(list) -%}
    {{ return(adapter.dispatch('explain_list_size')(list)) }}
{%- endmacro %}

{% macro default__explain_list_size(list) -%}
    coalesce(len({{ list }}), 0)
{%- endmacro %}

{% macro spark__explain_list_size(list) -%}
    coalesce(size({{ list }}), 0)
{%- endmacro %}

{#- The columns of `relation` as the view finds them when it is built (none while dbt only parses). -#}
{% macro explain_columns(relation) -%}
    {%- if execute -%}
        {{ return(adapter.get_columns_in_relation(relation)) }}
    {%- endif -%}
    {{ return([]) }}
{%- endmacro %}

{#- The kind of a column for formatting: number, boolean, string or other. -#}
{% macro explain_column_kind(column) -%}
    {%- set type = column.dtype | lower -%}
    {%- if type in ('boolean', 'bool') -%}boolean
    {%- elif column.is_number() or type in ('tinyint', 'smallint', 'int', 'integer', 'bigint', 'hugeint', 'float', 'double', 'real') or type.startswith('decimal') -%}number
    {%- elif column.is_string() or type in ('string', 'varchar', 'text') -%}string
    {%- else -%}other
    {%- endif -%}
{%- endmacro %}

{#-
    The customer's own value of the feature named by `feature` (an expression), from the columns `columns` of the
    features row `alias`: as text (`as_json` false: Python `_number` of it; True/False for a flag) or as a JSON
    scalar (number rounded to 4 decimals, string, true/false). NULL when the value is NULL or NaN, the feature is not
    a column of customer_features, or it is customer_id: the caller writes the sentence without it or JSON null.
-#}
{% macro explain_feature_value(feature, alias, columns, as_json) -%}
    case
        when {{ feature }} is null then null
    {%- for column in columns if column.name | lower != 'customer_id' %}
        {%- set value = alias ~ '.' ~ adapter.quote(column.name) %}
        {%- set kind = explain_column_kind(column) | trim %}
        when {{ feature }} = '{{ column.name }}' then
        {%- if kind == 'number' %}
            case when not isnan(cast({{ value }} as double)) then
                {{ explain_json_number(value) if as_json else explain_number(value) }} end
        {%- elif kind == 'boolean' %}
            case when {{ value }} then '{{ "true" if as_json else "True" }}'
                 when not {{ value }} then '{{ "false" if as_json else "False" }}' end
        {%- elif kind == 'string' %}
            {{ "case when " ~ value ~ " is not null then " ~ explain_json_text(value) ~ " end" if as_json else value }}
        {%- else %}
            {{ "case when " ~ value ~ " is not null then " ~ explain_json_text("cast(" ~ value ~ " as string)") ~ " end" if as_json else "cast(" ~ value ~ " as string)" }}
        {%- endif %}
    {%- endfor %}
    end
{%- endmacro %}
