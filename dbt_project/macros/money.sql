{#-
    The sum of a money column, exact and independent of row order, as a DOUBLE (the marts' column type).
    A DOUBLE sum is not: DuckDB's threads add partial sums in no fixed order, so two builds of the same orders
    differed in the last bits of a few customers' revenue, which moved every fit downstream (Gamma-Gamma, LightGBM,
    the calibration). Each amount is rounded once to 4 decimal places (a hundredth of a cent, as SQL Server's `money`)
    and summed as a DECIMAL, which DuckDB adds in 128-bit integers and Spark in exact decimals: any order gives the
    same total. DECIMAL(18, 4) is 64 bits per row, as cheap as the DOUBLE sum (a 38-digit cast cost 60 % more CPU on
    the 1 M shop's 5 M orders); it holds amounts below 1e14, one order in the reporting currency even at the ingest's
    absurd-amount limit (1e9) times an exchange rate of 1e5. Wider values (customer totals, predictions) pass
    exact_type='decimal(38, 4)'. MONEY_DECIMAL in orchestration/lib/warehouse_io.py is the same for the SQL Python runs.
    `where`: an aggregate FILTER condition (summed rows only), or none.
-#}
{% macro money_sum(amount, where=none, exact_type='decimal(18, 4)') -%}
    {{ exact_sum(amount, where, exact_type) }}
{%- endmacro %}

{#- The same for any DOUBLE `value`, rounded to the scale of `exact_type` (a probability wants more places). -#}
{% macro exact_sum(value, where=none, exact_type='decimal(38, 6)') -%}
    cast(sum(cast({{ value }} as {{ exact_type }})){% if where %} filter (where {{ where }}){% endif %} as double)
{%- endmacro %}
