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
from tests.conftest import PROJECT_ROOT, segmint_env, make_run
from tests.integration.multiprocess_job import refresh_job_multiprocess

pytestmark = pytest.mark.slow

# Every table whose content must not depend on how many times, or how, the graph ran (sync.* logs wall-clock times).
COMPARED_TABLES = [
    "raw.orders", "raw.customers", "raw.events", "raw.quarantine", "raw.ingest_log", "marts.customer_features",
    "marts.customer_features_train", "ml.rfm_segments", "ml.behavioral_segments", "ml.clv_predictions",
    "marts.customer_scores", "marts.clv_model_evaluation", "marts.segment_membership_history", "marts.segment_cards",
]


def _snapshot(warehouse) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return {table: conn.execute(f"select * from {table} order by all").df() for table in COMPARED_TABLES}


def _assert_same(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    for table in COMPARED_TABLES:
        pd.testing.assert_frame_equal(left[table], right[table], obj=table)


def test_two_runs_are_identical_and_a_killed_run_leaves_the_last_good_tables_readable(tmp_path):
    landing = tmp_path / "shop" / "landing"
    generate_shop(landing, tmp_path / "shop" / "truth", n_customers=700, seed=5)
    work = tmp_path / "work"
    warehouse = work / "data" / "warehouse.duckdb"

    first = make_run(work, SEGMINT_LANDING_DIR=str(landing))
    assert first.returncode == 0, first.stderr[-3000:]
    good = _snapshot(warehouse)
    second = make_run(work, SEGMINT_LANDING_DIR=str(landing))
    assert second.returncode == 0, second.stderr[-3000:]
    _assert_same(good, _snapshot(warehouse))

    # Kill a third run in the middle (after ingest, while dbt or the models run), the way an OOM kill would.
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"], cwd=PROJECT_ROOT, env=segmint_env(work, SEGMINT_LANDING_DIR=str(landing)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 300
    for line in process.stdout:
        if "ok      raw_tables" in line or time.monotonic() > deadline:
            break
    time.sleep(2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)

    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("select count(*) from marts.customer_scores").fetchone()[0] == len(good["marts.customer_scores"])

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
    from orchestration.defs.dbt_models import DAILY_PARTITIONS
    from orchestration.lib.partitions import full_history

    # Everything upstream of the segments: landing, raw tables, every dbt staging/feature model, their checks.
    targets = dg.AssetSelection.assets(["ml", "rfm_segments"], ["ml", "behavioral_segments"]).upstream().required_multi_asset_neighbors()
    selection = list(targets.resolve(defs.resolve_asset_graph()))
    with dg.DagsterInstance.get() as instance:
        every_day = full_history(DAILY_PARTITIONS).run_tags  # the run's partition range, as `make run` gives it
        result = dg.execute_job(
            dg.reconstructable(refresh_job_multiprocess), instance=instance, asset_selection=selection, tags=every_day
        )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        step_starts = [e for e in result.all_events if e.event_type_value == "STEP_WORKER_STARTED"]
    assert len(step_starts) >= 4  # really one process per step
    with duckdb.connect(env["SEGMINT_WAREHOUSE"], read_only=True) as conn:
        assert conn.execute("select count(*) from ml.behavioral_segments").fetchone()[0] > 0
