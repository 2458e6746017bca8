"""The incremental staging end to end: a full run stages every row, a backfill rebuilds exactly its days.

One small demo shop, then the real CLI and `make backfill` over chosen days, checked against the raw tables and
against the Dagster instance's record of what each run staged (one materialization per asset and run, whose
metadata names the days).
"""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.instance.ref import InstanceRef

from bench.feature_step import dbt_log_phases
from orchestration.lib.partitions import FEATURE_STEP, STAGED_DAYS_METADATA
from tests.conftest import PROJECT_ROOT, VENV_BIN, make_run, segmint_env

pytestmark = pytest.mark.slow

SHOP = {"SEGMINT_DEMO_CUSTOMERS": "400"}
DAILY_TABLES = ("staging.stg_orders", "staging.stg_visitor_event_days")
DAY_COLUMN = {"staging.stg_orders": "ordered_on", "staging.stg_visitor_event_days": "occurred_on"}


def _tail(result: subprocess.CompletedProcess) -> str:
    return result.stdout[-3000:] + "\n" + result.stderr[-4000:]


def _query(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def _execute(warehouse: Path, sql: str, params: list | None = None) -> None:
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute(sql, params or [])


def _snapshot(warehouse: Path, table: str) -> list[tuple]:
    """Every row of a staged table, in a stable order."""
    return _query(warehouse, f"select * from {table} order by all")


def _columns(warehouse: Path, table: str) -> list[str]:
    return [row[0] for row in _query(warehouse, f"describe {table}")]


def _staged_days_of_last_run(root: Path, asset: str) -> list[str]:
    """What the most recent run recorded for `asset`: the `segmint/staged_days` of each of its materializations."""
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(root / "dagster_home"))) as instance:
        run = instance.get_runs(limit=1)[0]
        records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        return [
            record.asset_materialization.metadata[STAGED_DAYS_METADATA].value
            for record in records
            if record.event_log_entry.dagster_event.asset_key == dg.AssetKey(asset.split("."))
        ]


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("backfill")
    result = make_run(root, **SHOP)
    assert result.returncode == 0, _tail(result)
    return root


@pytest.fixture(scope="module")
def warehouse(shop: Path) -> Path:
    return shop / "data" / "warehouse.duckdb"


@pytest.fixture(scope="module")
def two_busy_days(warehouse: Path) -> tuple[date, date]:
    """The two 2026 days with the most orders (both inside the partitions)."""
    rows = _query(
        warehouse,
        "select ordered_on from staging.stg_orders where ordered_on >= date '2026-01-01' "
        "group by ordered_on order by count(*) desc, ordered_on limit 2",
    )
    return rows[0][0], rows[1][0]


def test_a_full_run_stages_every_raw_row_and_records_one_materialization_per_asset(shop, warehouse):
    raw_orders, staged_orders = _query(
        warehouse, "select (select count(*) from raw.orders), (select count(*) from staging.stg_orders)"
    )[0]
    assert staged_orders == raw_orders
    for table in DAILY_TABLES:  # one record for the whole history, not one per day
        assert _staged_days_of_last_run(shop, table) == ["every day"]
    raw_events, staged_events = _query(
        warehouse,
        "select (select count(*) from raw.events), (select sum(event_count) from staging.stg_visitor_event_days)",
    )[0]
    assert staged_events == raw_events


def test_a_backfill_rebuilds_exactly_its_days_and_the_instance_records_them(shop, warehouse, two_busy_days):
    backfilled, left_alone = two_busy_days
    before = {table: _snapshot(warehouse, table) for table in DAILY_TABLES}
    # Lose both days from the staging (as after a bad load), then backfill only the first.
    for table in DAILY_TABLES:
        _execute(warehouse, f"delete from {table} where {DAY_COLUMN[table]} in (?, ?)", [backfilled, left_alone])

    result = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "orchestration.cli",
            "daily_staging",
            "--from",
            str(backfilled),
            "--to",
            str(backfilled),
        ],
        cwd=PROJECT_ROOT,
        env=segmint_env(shop, **SHOP),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, _tail(result)
    assert f"re-staging {backfilled}..{backfilled}" in result.stdout
    # The window reached dbt in its environment, not as --vars: dbt kept the parse state of the full run before.
    log = shop / "data" / "dbt_target" / FEATURE_STEP / "dbt.log"
    assert dbt_log_phases(log.read_text(encoding="utf-8").splitlines())["parse_kind"] == "partial"

    for table in DAILY_TABLES:
        day = DAY_COLUMN[table]
        after = _snapshot(warehouse, table)
        position = _columns(warehouse, table).index(day)
        expected = [row for row in before[table] if row[position] != left_alone]
        assert after == expected, f"{table}: the backfill changed more or less than {backfilled}"
        assert _staged_days_of_last_run(shop, table) == [f"{backfilled}..{backfilled}"]
        assert _query(warehouse, f"select count(*) from {table} where {day} = ?", [left_alone])[0][0] == 0


def test_make_backfill_restages_its_window_and_the_result_equals_a_full_build(shop, warehouse, two_busy_days):
    _, left_alone = two_busy_days  # still missing after the previous test
    scores_before = _query(warehouse, "select count(*) from marts.customer_scores")[0][0]
    result = subprocess.run(
        ["make", "--no-print-directory", "backfill", f"FROM={left_alone}", f"TO={left_alone}"],
        cwd=PROJECT_ROOT,
        env=segmint_env(shop, **SHOP),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, _tail(result)

    staged = {table: _snapshot(warehouse, table) for table in DAILY_TABLES}
    # A run over every day rebuilds the staging from scratch: the incremental result must be identical.
    full = make_run(shop, **SHOP)
    assert full.returncode == 0, _tail(full)
    for table in DAILY_TABLES:
        assert staged[table] == _snapshot(warehouse, table), f"{table}: backfilled days differ from a full build"
    assert _query(warehouse, "select count(*) from marts.customer_scores")[0][0] == scores_before


def test_make_backfill_without_a_window_says_how_to_call_it(shop):
    result = subprocess.run(
        ["make", "--no-print-directory", "backfill"],
        cwd=PROJECT_ROOT,
        env=segmint_env(shop, **SHOP),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "usage: make backfill FROM=YYYY-MM-DD" in result.stdout + result.stderr


def test_a_window_also_restages_raw_days_that_changed_outside_it(shop, warehouse, two_busy_days):
    # A corrected export re-ingested: an order before the window is now cancelled. The window alone left it staged
    # as revenue, silently (branch dailyred); the step widens the window to that day and says so.
    window_day, _ = two_busy_days
    order_id, ordered_on = _query(
        warehouse,
        "select order_id, ordered_on from staging.stg_orders where not is_cancelled and ordered_on < ? "
        "order by ordered_on, order_id limit 1",
        [window_day],
    )[0]
    _execute(warehouse, "update raw.orders set status = 'cancelled' where order_id = ?", [order_id])
    result = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "orchestration.cli",
            "daily_staging",
            "--from",
            str(window_day),
            "--to",
            str(window_day),
        ],
        cwd=PROJECT_ROOT,
        env=segmint_env(shop, **SHOP),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, _tail(result)
    said = result.stdout + result.stderr  # the step's warning is printed on stderr
    assert f"orders: 1 day, {ordered_on}" in said
    assert f"re-staging {ordered_on}..{window_day}" in said
    staged = "select is_cancelled from staging.stg_orders where order_id = ?"
    assert _query(warehouse, staged, [order_id]) == [(True,)]
    for table in DAILY_TABLES:
        assert _staged_days_of_last_run(shop, table) == [f"{ordered_on}..{window_day}"]
