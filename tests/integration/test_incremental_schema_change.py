"""A column added to an incremental model arrives without a --full-refresh (issue 15, "changes in one place").

The rehearsal is the change docs/ARCHITECTURE.md describes for a new behaviour column: one more count in the macro
`event_day_counts`, which the incremental `stg_visitor_event_days` stores per visitor and day. It runs real dbt on a
copy of the project and a two-day shop: build, add the column, run one day (the daily schedule), run every day
(`make run`). Only that model is built, not the whole graph.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from landing import ingest_landing
from landing.event_mapping import map_event_vocabulary, parse_event_mapping
from orchestration.defs.vocabulary import EVENT_VOCABULARY_TABLE, read_event_keys, read_source_format
from orchestration.lib.warehouse_io import write_table
from tests.conftest import PROJECT_ROOT, VENV_BIN, segmint_env

SCHEMA_CHANGE_MODES = {"sync_all_columns", "append_new_columns"}  # dbt's modes that add a new column
MODEL = "stg_visitor_event_days"
ORDERS = """order_id,customer_id,ordered_at,order_total
o1,alice,2026-03-02 12:00:00,50
o2,bob,2026-03-02 13:00:00,20
"""
EVENTS = """event_id,customer_id,occurred_at,event_type
e1,alice,2026-03-01 09:00:00,search
e2,alice,2026-03-01 09:05:00,product_view
e3,bob,2026-03-01 10:00:00,search
e4,alice,2026-03-02 11:00:00,search
e5,alice,2026-03-02 11:02:00,search
e6,bob,2026-03-02 12:00:00,product_view
"""
# The developer's change: one more per-day count next to the last vocabulary count of the macro.
LAST_COUNT = "count(*) filter (where is_mapped) as mapped_event_count"
NEW_COUNT = "count(*) filter (where event_type = 'search') as search_event_count"


def test_every_incremental_model_adds_a_new_column_without_a_full_refresh(dbt_manifest):
    nodes = json.loads(dbt_manifest.read_text())["nodes"].values()
    incremental = {
        node["name"]: node["config"].get("on_schema_change")
        for node in nodes
        if node["resource_type"] == "model" and node["config"]["materialized"] == "incremental"
    }
    assert MODEL in incremental
    assert {name for name, mode in incremental.items() if mode not in SCHEMA_CHANGE_MODES} == set()


def _dbt(project: Path, root: Path, warehouse: Path, *args: str) -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "dbt"),
            "run",
            "--profiles-dir",
            ".",
            "--target-path",
            str(root / "target"),
            "--select",
            MODEL,
            *args,
        ],
        cwd=project,
        env=segmint_env(root, SEGMINT_WAREHOUSE=str(warehouse)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:]


def _searches(warehouse: Path) -> dict[tuple[str, str], int | None]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        columns = [row[0] for row in conn.execute(f"describe staging.{MODEL}").fetchall()]
        assert "search_event_count" in columns, f"the new column did not reach staging.{MODEL}: {columns}"
        rows = conn.execute(f"select visitor_id, cast(occurred_on as varchar), search_event_count from staging.{MODEL}")
        return {(visitor, day): count for visitor, day, count in rows.fetchall()}


@pytest.mark.slow  # three dbt runs: 155 s wall on a loaded 2-core machine (about 30 s of CPU)
def test_a_new_count_column_reaches_the_incremental_daily_staging_without_a_full_refresh(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "orders.csv").write_text(ORDERS)
    (landing / "events.csv").write_text(EVENTS)
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        ingest_landing(conn, landing, None, 365, False)
        mapping = parse_event_mapping({"version": 1})  # the built-in vocabulary: `search` maps to itself
        vocabulary = map_event_vocabulary(read_event_keys(conn), mapping, read_source_format(conn))
        write_table(conn, EVENT_VOCABULARY_TABLE, vocabulary)
    _dbt(project, tmp_path, warehouse)  # the table as it is today, built over every day

    macro = project / "macros" / "behaviour_features.sql"
    text = macro.read_text()
    assert text.count(LAST_COUNT) == 1
    macro.write_text(text.replace(LAST_COUNT, f"{LAST_COUNT},\n        {NEW_COUNT}"))

    # The daily schedule stages one day: the column is added, that day filled, the other day waits for a full run.
    _dbt(project, tmp_path, warehouse, "--vars", '{"min_date": "2026-03-02", "max_date": "2026-03-03"}')
    assert _searches(warehouse) == {
        ("alice", "2026-03-01"): None,
        ("bob", "2026-03-01"): None,
        ("alice", "2026-03-02"): 2,
        ("bob", "2026-03-02"): 0,
    }
    # `make run` covers every day (no window vars): every day is filled, still without --full-refresh.
    _dbt(project, tmp_path, warehouse)
    assert _searches(warehouse) == {
        ("alice", "2026-03-01"): 1,
        ("bob", "2026-03-01"): 1,
        ("alice", "2026-03-02"): 2,
        ("bob", "2026-03-02"): 0,
    }
