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

{#- Select-list items giving one row per element of `list` (none for NULL/empty): `position` (from 1) and `driver`. -#}
{% macro explain_explode(list) -%}
    {{ return(adapter.dispatch('explain_explode')(list)) }}
{%- endmacro %}

{% macro default__explain_explode(list) -%}
    unnest({{ list }}) as driver, generate_subscripts({{ list }}, 1) as position
{%- endmacro %}

{% macro spark__explain_explode(list) -%}
    posexplode({{ list }}) as (position, driver)
{%- endmacro %}

{#- Aggregate: the `text`s of a group joined by `separator` in the order of `position`. -#}
{% macro explain_ordered_join(text, position, separator) -%}
    {{ return(adapter.dispatch('explain_ordered_join')(text, position, separator)) }}
{%- endmacro %}

{% macro default__explain_ordered_join(text, position, separator) -%}
    string_agg({{ text }}, '{{ separator }}' order by {{ position }})
{%- endmacro %}

{% macro spark__explain_ordered_join(text, position, separator) -%}
    array_join(transform(array_sort(collect_list(named_struct('position', {{ position }}, 'text', {{ text }}))), item -> item.text), '{{ separator }}')
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
    The customer's own value of the feature named by `feature` (an expression), looked up among `columns` (those
    of customer_features, row `alias`) as three select-list items `<name>_number` (a numeric feature, as double),
    `<name>_flag` (a boolean) and `<name>_text` (any other, as text): at most one is not NULL. customer_id is no
    feature. Three short CASEs instead of one per output format keep the view's SQL small.
-#}
{% macro explain_feature_lookup(feature, alias, columns, name) -%}
    {%- set kinds = {'number': [], 'boolean': [], 'text': []} %}
    {%- for column in columns if column.name | lower != 'customer_id' %}
        {%- set kind = explain_column_kind(column) | trim %}
        {%- do kinds['text' if kind in ('string', 'other') else kind].append(column) %}
    {%- endfor -%}
    case {{ feature }} when '' then null
        {%- for column in kinds['number'] %} when '{{ column.name }}' then cast({{ alias }}.{{ adapter.quote(column.name) }} as double){% endfor %}
        else cast(null as double) end as {{ name }}_number,
    case {{ feature }} when '' then null
        {%- for column in kinds['boolean'] %} when '{{ column.name }}' then {{ alias }}.{{ adapter.quote(column.name) }}{% endfor %}
        else cast(null as boolean) end as {{ name }}_flag,
    case {{ feature }} when '' then null
        {%- for column in kinds['text'] %} when '{{ column.name }}' then cast({{ alias }}.{{ adapter.quote(column.name) }} as string){% endfor %}
        else cast(null as string) end as {{ name }}_text
{%- endmacro %}

{#- The looked-up value (explain_feature_lookup's `name`) as the sentence writes it (Python `_number`; True/False
    for a flag), or as a JSON scalar (`as_json`: number rounded to 4 decimals, true/false, string); NULL when the
    customer has none (NULL or NaN), so the caller leaves it out or writes null. -#}
{% macro explain_feature_value(name, as_json) -%}
    case
        when {{ name }}_number is not null and not isnan({{ name }}_number) then
            {{ explain_json_number(name ~ '_number') if as_json else explain_number(name ~ '_number') }}
        when {{ name }}_flag then '{{ "true" if as_json else "True" }}'
        when not {{ name }}_flag then '{{ "false" if as_json else "False" }}'
        when {{ name }}_text is not null then {{ explain_json_text(name ~ '_text') if as_json else name ~ '_text' }}
    end
{%- endmacro %}
