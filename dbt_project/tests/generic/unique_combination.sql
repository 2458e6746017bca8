{% test unique_combination(model, columns) %}
-- Rows whose combination of `columns` repeats (the model's grain is that combination).
select {{ columns | join(', ') }}, count(*) as row_count
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
