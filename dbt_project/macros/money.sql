{#-
    The sum of a money column, exact and independent of row order, as a DOUBLE (the marts' column type).
    A DOUBLE sum is not: DuckDB's threads add partial sums in no fixed order, so two builds of the same orders
    differed in the last bits of a few customers' revenue, which moved every fit downstream (Gamma-Gamma, LightGBM,
    the calibration). Each amount is rounded once to a millionth of the currency unit and summed as
    DECIMAL(38, 6): DuckDB sums DECIMAL in 128-bit integers and Spark in exact decimals, so any order gives the same
    total. MONEY_DECIMAL in orchestration/lib/warehouse_io.py is the same type for the SQL Python runs.
    `where`: an aggregate FILTER condition (summed rows only), or none.
-#}
{% macro money_sum(amount, where=none) -%}
    {{ exact_sum(amount, where, 'decimal(38, 6)') }}
{%- endmacro %}

{#- The same for any DOUBLE `value` rounded to the scale of `exact_type` (a probability wants more than 6 places). -#}
{% macro exact_sum(value, where=none, exact_type='decimal(38, 6)') -%}
    cast(sum(cast({{ value }} as {{ exact_type }})){% if where %} filter (where {{ where }}){% endif %} as double)
{%- endmacro %}
