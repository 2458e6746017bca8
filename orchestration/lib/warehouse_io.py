"""Reading and writing warehouse tables from Python assets (short-lived connection passed in)."""

from __future__ import annotations

import duckdb
import pandas as pd

# An order's amount is summed as this exact type, then read back as a DOUBLE (dbt_project/macros/money.sql,
# money_sum, says why and how wide): a DOUBLE sum depends on the order DuckDB's threads add the rows in, so the
# same orders could give totals differing in the last bits, and every fit downstream with them.
MONEY_DECIMAL = "decimal(18, 4)"
# Wider money values (customer totals).
MONEY_TOTAL_DECIMAL = "decimal(38, 4)"


def money_sum(amount: str, exact_type: str = MONEY_DECIMAL, where: str | None = None) -> str:
    """SQL for the exact, row-order-independent sum of the money expression `amount`, as a DOUBLE; `where` is an
    aggregate FILTER condition (the dbt macro money_sum's twin)."""
    condition = f" filter (where {where})" if where else ""
    return f"cast(sum(cast({amount} as {exact_type})){condition} as double)"


def read_table(
    conn: duckdb.DuckDBPyConnection, table: str, columns: list[str] | None = None, order_by: str | None = None
) -> pd.DataFrame:
    """A whole table (or some columns of it) as a DataFrame.

    Pass `order_by` for anything a model reads: DuckDB returns table rows in no guaranteed order, and model
    fits (LightGBM binning, KMeans sampling) depend on row order, so the same data must arrive in the same order.
    """
    cols = ", ".join(columns) if columns else "*"
    order = f" order by {order_by}" if order_by else ""
    return conn.execute(f"select {cols} from {table}{order}").df()


def present_columns(conn: duckdb.DuckDBPyConnection, table: str, wanted) -> list[str]:
    """The `wanted` columns that `table` has, in the order wanted: a narrow read of a mart whose optional columns
    (a shop without web events, without consent fields) may be missing."""
    present = {row[0] for row in conn.execute(f"describe {table}").fetchall()}
    return [column for column in wanted if column in present]


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    query = "select count(*) from information_schema.tables where table_schema = ? and table_name = ?"
    return conn.execute(query, [schema, name]).fetchone()[0] > 0


def is_base_table(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    """True when `table` exists and is a table (not a view)."""
    schema, name = table.split(".")
    query = "select count(*) from information_schema.tables where table_schema = ? and table_name = ? and table_type = 'BASE TABLE'"
    return conn.execute(query, [schema, name]).fetchone()[0] > 0


def write_table(conn: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame) -> int:
    """Replace `table` with `df` atomically (readers see the old or the new table, never half of one)."""
    schema = table.split(".")[0]
    conn.execute(f"create schema if not exists {schema}")
    conn.register("_segmint_frame", df)
    try:
        conn.execute(f"create or replace table {table} as select * from _segmint_frame")
    finally:
        conn.unregister("_segmint_frame")
    return len(df)
