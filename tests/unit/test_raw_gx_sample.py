"""The raw GX checks' sample (orchestration/defs/quality_checks.read_for_validation).

Above MAX_VALIDATION_ROWS the reservoir is drawn over row ids and the rows fetched afterwards: it must give the very
frame that sampling whole rows gives (same rows, same order, same dtypes), so the checks judge exactly what they did.
"""

from __future__ import annotations

import duckdb
import pytest

from orchestration.defs import quality_checks
from orchestration.defs.quality_checks import read_for_validation


@pytest.fixture
def conn(tmp_path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    connection.execute("CREATE SCHEMA raw")
    # Several row groups (122,880 rows each) and deleted rows, so row ids have gaps as after the ingest's DELETE.
    connection.execute(
        """CREATE TABLE raw.events AS SELECT 'e' || i AS event_id, TIMESTAMP '2025-01-01' + INTERVAL (i) SECOND
               AS occurred_at, CASE WHEN i % 3 = 0 THEN 'page_view' END AS event_type, i * 0.5 AS value,
               'events.parquet' AS source_file, i AS source_row
           FROM range(1, 300001) AS t(i)"""
    )
    connection.execute("DELETE FROM raw.events WHERE source_row % 17 = 0")
    yield connection
    connection.close()


def test_sample_is_the_whole_row_reservoir(conn, monkeypatch):
    monkeypatch.setattr(quality_checks, "MAX_VALIDATION_ROWS", 5000)
    df, total = read_for_validation(conn, "raw.events")
    whole_rows = conn.execute("select * from raw.events using sample reservoir(5000 rows) repeatable (42)").df()
    assert total == 300000 - 300000 // 17
    assert len(df) == 5000
    assert df.equals(whole_rows)


def test_small_table_is_read_whole(conn, monkeypatch):
    monkeypatch.setattr(quality_checks, "MAX_VALIDATION_ROWS", 10**6)
    df, total = read_for_validation(conn, "raw.events")
    assert total == len(df) == 300000 - 300000 // 17
    assert df["source_row"].tolist() == conn.execute("select source_row from raw.events").df()["source_row"].tolist()


def test_a_suite_reads_only_its_columns_and_the_row_locators_of_the_same_sample(conn, monkeypatch):
    from expectations.suites import raw_events_suite
    from orchestration.defs.quality_checks import suite_columns

    monkeypatch.setattr(quality_checks, "MAX_VALIDATION_ROWS", 5000)
    columns = suite_columns(raw_events_suite())
    assert columns == ["occurred_at", "event_type", "event_id"]
    df, total = read_for_validation(conn, "raw.events", columns)
    whole_rows = conn.execute("select * from raw.events using sample reservoir(5000 rows) repeatable (42)").df()
    assert list(df.columns) == [*columns, "source_file", "source_row"]  # `value` is not read
    assert df.equals(whole_rows[list(df.columns)])
    # Small tables too: only those columns, every row.
    monkeypatch.setattr(quality_checks, "MAX_VALIDATION_ROWS", 10**6)
    small, _ = read_for_validation(conn, "raw.events", ["event_type", "not_a_column"])
    assert list(small.columns) == ["event_type", "source_file", "source_row"] and len(small) == total


def test_a_view_is_sampled_without_row_ids(conn, monkeypatch):
    # Regression (issue 19, the 1 M Spark bench): on SEGMINT_ENGINE=spark the marts are DuckDB views over Parquet,
    # which have no rowid; above the sample size the check failed with "Referenced column rowid not found".
    conn.execute("CREATE VIEW raw.events_view AS SELECT * FROM raw.events")
    monkeypatch.setattr(quality_checks, "MAX_VALIDATION_ROWS", 5000)
    df, total = read_for_validation(conn, "raw.events_view", ["event_type"])
    again, _ = read_for_validation(conn, "raw.events_view", ["event_type"])
    assert total == 300000 - 300000 // 17
    assert list(df.columns) == ["event_type", "source_file", "source_row"] and len(df) == 5000
    assert df.equals(again)  # seeded: a re-run judges the same rows
    assert df["source_row"].nunique() == 5000
