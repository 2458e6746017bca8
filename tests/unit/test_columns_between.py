"""The generic dbt test columns_between (dbt_project/tests/generic/columns_between.sql) on its failing path: a value
out of bounds in any one of its columns fails it, NULLs and the bounds themselves pass. Rendered with plain Jinja (its
`{% test %}` block is a macro to dbt) and run on DuckDB."""

from __future__ import annotations

import duckdb
import jinja2
import pytest

from tests.conftest import PROJECT_ROOT

SQL = PROJECT_ROOT / "dbt_project" / "tests" / "generic" / "columns_between.sql"


def _failing_rows(rows: list[tuple]) -> list[tuple]:
    source = SQL.read_text().replace("{% test ", "{% macro ").replace("{% endtest %}", "{% endmacro %}")
    macro = jinja2.Environment().from_string(source).module.columns_between
    query = macro(model="shares", columns=["a_share", "b_share"], min_value=0, max_value=1)
    with duckdb.connect() as conn:
        conn.execute("create table shares (customer_id varchar, a_share double, b_share double)")
        conn.executemany("insert into shares values (?, ?, ?)", rows)
        return conn.execute(f"{query} order by customer_id").fetchall()


def test_values_in_bounds_and_nulls_pass():
    assert _failing_rows([("c1", 0.0, 1.0), ("c2", 0.5, None), ("c3", None, None)]) == []


@pytest.mark.parametrize("bad", [("c9", 0.2, 1.5), ("c9", -0.1, 0.3)], ids=["second column above", "first below"])
def test_a_value_out_of_bounds_in_any_column_fails_with_its_row(bad):
    assert _failing_rows([("c1", 0.0, 1.0), bad]) == [bad]
