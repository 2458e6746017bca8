"""duplicate_keys_sql (landing/rules.py) finds the same duplicate keys as grouping every key by its values.

The SQL first groups records by a 64-bit hash of their key and only then by the key values; these tests compare it
with the plain grouping on keys that repeat, differ, hold NULLs and span two columns, and on rejected records.
"""

from __future__ import annotations

import duckdb
import pytest

from landing.contract import FX_RATES, ORDERS
from landing.rules import ROW_REASON, duplicate_keys_sql


def _reference_sql(keys: list[str], compared: list[str], table: str) -> str:
    row_hash = f"hash({', '.join(compared)})"
    return (
        f"SELECT {', '.join(f'{key} AS k{i}' for i, key in enumerate(keys))}, min(source_row) AS first_row, "
        f"count(*) AS copies, min({row_hash}) <> max({row_hash}) AS conflicting FROM {table} "
        f"WHERE {ROW_REASON} IS NULL GROUP BY ALL HAVING count(*) > 1"
    )


def _same_rows(conn: duckdb.DuckDBPyConnection, left: str, right: str) -> bool:
    one_way = conn.execute(f"SELECT count(*) FROM (({left}) EXCEPT ALL ({right}))").fetchone()[0]
    other_way = conn.execute(f"SELECT count(*) FROM (({right}) EXCEPT ALL ({left}))").fetchone()[0]
    return one_way == 0 and other_way == 0


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    yield connection
    connection.close()


def test_single_key_duplicates_match_plain_grouping(conn):
    # 200 k records over 150 k keys: unique keys, identical copies, conflicting copies, NULL keys, rejected rows.
    conn.execute(
        f"""CREATE TABLE parsed AS SELECT i AS source_row,
            CASE WHEN i % 997 = 0 THEN NULL ELSE 'o' || (i % 150000) END AS order_id,
            'c' || (i % 150000) AS customer_id,
            CASE WHEN i % 7 = 0 THEN 1.0 * i ELSE 1.0 * (i % 150000) END AS order_total,
            CASE WHEN i % 13 = 0 THEN 'rejected' END AS {ROW_REASON}
        FROM range(1, 200001) AS t(i)"""
    )
    compared = ("order_id", "customer_id", "order_total")
    found = duplicate_keys_sql(ORDERS, "parsed", compared)
    reference = _reference_sql(["order_id"], list(compared), "parsed")
    assert conn.execute(f"SELECT count(*), count(*) FILTER (WHERE conflicting) FROM ({found})").fetchone()[0] > 1000
    assert conn.execute(f"SELECT count(*) FROM ({found}) WHERE k0 IS NULL").fetchone()[0] == 1
    assert _same_rows(conn, found, reference)


def test_two_column_key_duplicates_match_plain_grouping(conn):
    # fx_rates' key is (date, currency): the hash covers both, NULLs included.
    conn.execute(
        f"""CREATE TABLE parsed AS SELECT i AS source_row,
            CASE WHEN i % 101 = 0 THEN NULL ELSE DATE '2025-01-01' + CAST(i % 300 AS INTEGER) END AS date,
            CASE WHEN i % 3 = 0 THEN 'USD' WHEN i % 3 = 1 THEN 'GBP' END AS currency,
            CASE WHEN i % 5 = 0 THEN 2.0 ELSE 1.0 END AS rate,
            NULL::VARCHAR AS {ROW_REASON}
        FROM range(1, 5001) AS t(i)"""
    )
    found = duplicate_keys_sql(FX_RATES, "parsed")
    reference = _reference_sql(["date", "currency"], ["date", "currency", "rate"], "parsed")
    assert conn.execute(f"SELECT count(*) FROM ({found})").fetchone()[0] > 100
    assert _same_rows(conn, found, reference)


def test_no_duplicates_gives_no_rows(conn):
    conn.execute(
        f"CREATE TABLE parsed AS SELECT i AS source_row, 'o' || i AS order_id, NULL::VARCHAR AS {ROW_REASON} "
        "FROM range(1, 1001) AS t(i)"
    )
    assert conn.execute(f"SELECT count(*) FROM ({duplicate_keys_sql(ORDERS, 'parsed', ('order_id',))})").fetchone() == (
        0,
    )
