"""A daily run's staging window widens to the raw days that changed since the staging last read them (branch
dailyred: an order corrected to cancelled before the window stayed revenue in stg_orders, silently; an as-of date
that jumped past the window never staged the days between)."""

from datetime import date

import duckdb
import pytest

from orchestration.lib.partitions import StagingWindow
from orchestration.lib.staged_days import (
    changed_days,
    raw_day_digests,
    record_day_digests,
    recorded_day_digests,
    widened_window,
)

WINDOW = StagingWindow(date(2026, 6, 19), date(2026, 6, 21))


@pytest.fixture
def conn():
    conn = duckdb.connect()
    conn.execute("create schema raw")
    conn.execute(
        "create table raw.orders as select * from (values "
        "('O1', timestamp '2026-06-01 19:05:17', 17.1, 'completed', 'orders.csv', 1), "
        "('O2', timestamp '2026-06-20 10:00:00', 18.3, 'completed', 'orders.csv', 2)) "
        "t(order_id, ordered_at, order_total, status, source_file, source_row)"
    )
    conn.execute(
        "create table raw.events as select * from (values "
        "('E1', timestamp '2026-06-01 19:00:00', 'page_view', 'events.csv', 1)) "
        "t(event_id, occurred_at, event_type, source_file, source_row)"
    )
    yield conn
    conn.close()


def test_a_correction_before_the_window_widens_it_to_that_day(conn):
    staged = raw_day_digests(conn)
    conn.execute("update raw.orders set status = 'cancelled' where order_id = 'O1'")
    window, why = widened_window(WINDOW, staged, raw_day_digests(conn))
    assert window == StagingWindow(date(2026, 6, 1), date(2026, 6, 21))
    assert "orders: 1 day, 2026-06-01" in why and "re-staging 2026-06-01..2026-06-21" in why


def test_removed_and_added_days_count_as_changed(conn):
    staged = raw_day_digests(conn)
    conn.execute("delete from raw.events")  # a deleted file
    conn.execute("insert into raw.orders values ('O3', timestamp '2026-06-15 08:00:00', 5.0, 'completed', 'b.csv', 1)")
    assert changed_days(staged, raw_day_digests(conn)) == {"events": [date(2026, 6, 1)], "orders": [date(2026, 6, 15)]}


def test_changes_inside_the_window_and_no_change_keep_it(conn):
    staged = raw_day_digests(conn)
    assert widened_window(WINDOW, staged, raw_day_digests(conn)) == (WINDOW, "")
    conn.execute("update raw.orders set order_total = 20 where order_id = 'O2'")
    assert widened_window(WINDOW, staged, raw_day_digests(conn)) == (WINDOW, "")


def test_a_row_moved_between_files_is_a_change(conn):
    """Lineage is part of a row's digest: the same values read from another file are another row."""
    staged = raw_day_digests(conn)
    conn.execute("update raw.orders set source_file = 'orders (1).csv' where order_id = 'O1'")
    assert changed_days(staged, raw_day_digests(conn)) == {"orders": [date(2026, 6, 1)]}


def test_nothing_recorded_restages_every_day_and_the_record_round_trips(conn, tmp_path):
    state = tmp_path / "dbt_target" / "dbt_feature_models" / "staged_raw_days.json"
    assert recorded_day_digests(state) is None
    window, why = widened_window(WINDOW, None, raw_day_digests(conn))
    assert window is None and "every day" in why
    record_day_digests(state, raw_day_digests(conn))
    assert recorded_day_digests(state) == raw_day_digests(conn)
    state.write_text("{not json")  # an unreadable record is no record: every day re-staged, never a traceback
    assert recorded_day_digests(state) is None
