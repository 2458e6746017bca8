"""Idempotent, crash-safe, single writer: the guarantees a scheduled run relies on."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import dagster as dg
import duckdb
import pandas as pd
import pytest

from demo_shop import generate_shop
from ml.archetypes import PURCHASE_ARCHETYPES
from tests.conftest import PROJECT_ROOT, make_run, segmint_env
from tests.integration.multiprocess_job import refresh_job_multiprocess
from tests.integration.test_make_run import with_foreign_event_names

pytestmark = pytest.mark.slow

# Every table whose content must not depend on how many times, or how, the graph ran (sync.* logs wall-clock times).
COMPARED_TABLES = [
    "raw.orders",
    "raw.customers",
    "raw.events",
    "raw.quarantine",
    "raw.ingest_log",
    "raw.event_vocabulary",
    "marts.top_event_types",
    "marts.customer_features",
    "marts.customer_features_train",
    "ml.rfm_segments",
    "ml.behavioral_segments",
    "ml.clv_predictions",
    "marts.customer_scores",
    "marts.clv_model_evaluation",
    "marts.segment_membership_history",
    "marts.segment_cards",
]


def _snapshot(warehouse) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return {table: conn.execute(f"select * from {table} order by all").df() for table in COMPARED_TABLES}


def _assert_same(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    for table in COMPARED_TABLES:
        pd.testing.assert_frame_equal(left[table], right[table], obj=table)


def _assert_foreign_events_are_clustered_on_their_own_names(warehouse, output: str) -> None:
    """Events named in another vocabulary (none of them mapped): the generic features carry the clusters."""
    assert "check_unmapped_event_share FAILED (warn): 100.0% of events unmapped" in output
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        generic = conn.execute(
            "select count(*), avg(event_type_share_1), min(sessions_per_active_day), "
            "max(research_share) from marts.customer_features where has_web_events"
        ).fetchone()
        segments = conn.execute("select distinct behavioral_segment from ml.behavioral_segments").fetchall()
        names = [row[0] for row in segments]
        top = conn.execute("select source_event_type from marts.top_event_types where type_rank = 1").fetchone()[0]
    n_with_events, mean_top_share, min_sessions, max_research = generic
    assert n_with_events > 300
    assert min_sessions > 0 and max_research == 0  # nothing mapped, yet every customer with events has signal
    assert mean_top_share > 0.1 and top == "catalog"
    clustered = [name for name in names if name != "No Web Activity"]
    # Not the orders-only fallback (which names no "No Web Activity" cluster and uses purchase names), and named
    # from the shop's own event types.
    assert len(clustered) >= 2 and "No Web Activity" in names
    assert not set(clustered) & {archetype.name for archetype in PURCHASE_ARCHETYPES}
    assert any(" events" in name for name in clustered), names


def _wait_until_the_group_is_gone(pgid: int, timeout: float = 60.0) -> None:
    """make is reaped first; its killed children (the Python run holding DuckDB's file lock) die a moment later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of the killed run (group {pgid}) still alive after {timeout} s")


def test_two_runs_are_identical_and_a_killed_run_leaves_the_last_good_tables_readable(tmp_path):
    # The shop's events use a third-party tool's names (the issue's `catalog`, `product1`, `cart`, ...).
    demo = tmp_path / "shop" / "demo"
    generate_shop(demo, tmp_path / "shop" / "truth", n_customers=700, seed=5)
    landing = with_foreign_event_names(demo, tmp_path / "shop" / "landing")
    work = tmp_path / "work"
    warehouse = work / "data" / "warehouse.duckdb"

    first = make_run(work, SEGMINT_LANDING_DIR=str(landing))
    assert first.returncode == 0, first.stderr[-3000:]
    _assert_foreign_events_are_clustered_on_their_own_names(warehouse, first.stdout + first.stderr)
    good = _snapshot(warehouse)
    second = make_run(work, SEGMINT_LANDING_DIR=str(landing))
    assert second.returncode == 0, second.stderr[-3000:]
    _assert_same(good, _snapshot(warehouse))

    # Kill a third run in the middle (after ingest, while dbt or the models run), the way an OOM kill would.
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=PROJECT_ROOT,
        env=segmint_env(work, SEGMINT_LANDING_DIR=str(landing)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    for line in process.stdout:
        if "ok      raw_tables" in line or time.monotonic() > deadline:
            break
    time.sleep(2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    _wait_until_the_group_is_gone(process.pid)

    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("select count(*) from marts.customer_scores").fetchone()[0] == len(
            good["marts.customer_scores"]
        )

    recovered = make_run(work, SEGMINT_LANDING_DIR=str(landing))
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    _assert_same(good, _snapshot(warehouse))


def test_the_multiprocess_job_runs_with_one_duckdb_writer_at_a_time(tmp_path, monkeypatch):
    """One process per step, as on a scheduled run with that executor: no `Could not set lock on file` errors."""
    landing = tmp_path / "shop" / "landing"
    generate_shop(landing, tmp_path / "shop" / "truth", n_customers=500, seed=3)
    env = segmint_env(tmp_path / "work", SEGMINT_LANDING_DIR=str(landing), PYTHONPATH=str(PROJECT_ROOT))
    for key in [k for k in os.environ if k.startswith("SEGMINT_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "work" / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    from orchestration.definitions import defs
    from orchestration.lib.keys import BEHAVIORAL_SEGMENTS, RFM_SEGMENTS

    # Everything upstream of the segments: landing, raw tables, every dbt staging/feature model, their checks.
    targets = dg.AssetSelection.assets(RFM_SEGMENTS, BEHAVIORAL_SEGMENTS).upstream().required_multi_asset_neighbors()
    selection = list(targets.resolve(defs.resolve_asset_graph()))
    with dg.DagsterInstance.get() as instance:
        # No staging window: every day is staged, as `make run` does.
        result = dg.execute_job(
            dg.reconstructable(refresh_job_multiprocess), instance=instance, asset_selection=selection
        )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        step_starts = [e for e in result.all_events if e.event_type_value == "STEP_WORKER_STARTED"]
    assert len(step_starts) >= 4  # really one process per step
    with duckdb.connect(env["SEGMINT_WAREHOUSE"], read_only=True) as conn:
        assert conn.execute("select count(*) from ml.behavioral_segments").fetchone()[0] > 0
