"""Issue 18's memory budget: one DuckDB budget for dbt and the Python steps, and freed memory given back per step."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb

from bench.model_budget import SCRATCH, scratch_statement, setting_hooks
from orchestration.defs.jobs import refresh_job
from orchestration.defs.resources import (
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DUCKDB_MEMORY_LIMIT_ENV,
    duckdb_config,
    duckdb_memory_limit,
)
from orchestration.lib.memory import release_memory_hooks, resident_bytes
from orchestration.lib.settings import DBT_PROJECT_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_the_dbt_profile_falls_back_to_the_same_budget_as_the_python_steps():
    # resources.py owns the number; the profile repeats it only for dbt run by hand without the variable.
    profile = (DBT_PROJECT_DIR / "profiles.yml").read_text(encoding="utf-8")
    found = re.findall(r"memory_limit:\s*\"\{\{\s*env_var\('(\w+)',\s*'([^']+)'\)\s*\}\}\"", profile)
    assert found == [(DUCKDB_MEMORY_LIMIT_ENV, DEFAULT_DUCKDB_MEMORY_LIMIT)]


def test_the_budget_is_the_setting_when_given_and_the_default_when_blank(monkeypatch):
    monkeypatch.setenv(DUCKDB_MEMORY_LIMIT_ENV, " 900MB ")
    assert duckdb_memory_limit() == "900MB"
    monkeypatch.setenv(DUCKDB_MEMORY_LIMIT_ENV, "  ")
    assert duckdb_memory_limit() == DEFAULT_DUCKDB_MEMORY_LIMIT
    monkeypatch.delenv(DUCKDB_MEMORY_LIMIT_ENV)
    assert duckdb_config("/srv/shop/warehouse.duckdb") == {
        "memory_limit": DEFAULT_DUCKDB_MEMORY_LIMIT,
        "temp_directory": "/srv/shop/warehouse.duckdb.tmp",
    }


def test_duckdb_spills_past_the_budget_to_the_temp_folder_and_removes_it_at_close(tmp_path, monkeypatch):
    monkeypatch.delenv(DUCKDB_MEMORY_LIMIT_ENV, raising=False)
    path = str(tmp_path / "warehouse.duckdb")
    conn = duckdb.connect(path, config=duckdb_config(path) | {"memory_limit": "32MB", "threads": "1"})
    try:
        # A sort of ~2 M rows under a 32 MB budget spills rather than fails.
        query = "select count(*) from (select hash(i) as h, i from range(2000000) t(i) order by h)"
        assert conn.execute(query).fetchone()[0] == 2_000_000
        assert Path(path + ".tmp").is_dir()
        conn.execute(f"set memory_limit = '{DEFAULT_DUCKDB_MEMORY_LIMIT}'")  # the default parses
    finally:
        conn.close()
    assert not Path(path + ".tmp").exists()


def test_the_refresh_job_gives_freed_memory_back_after_every_step():
    assert refresh_job.hooks == release_memory_hooks
    assert {hook.name for hook in release_memory_hooks} == {
        "release_freed_memory",
        "release_freed_memory_after_failure",
    }


def test_freed_heap_memory_goes_back_to_the_os():
    # 64 KiB blocks live in glibc's heap (below its mmap threshold); keeping every tenth pins the heap's top, so
    # the freed ones stay resident until malloc_trim hands their pages back.
    code = (
        "from orchestration.lib.memory import release_freed_memory, resident_bytes\n"
        "blocks = [bytearray(64 * 1024) for _ in range(3000)]\n"
        "kept = blocks[::10]\n"
        "del blocks\n"
        "before = resident_bytes()\n"
        "released = release_freed_memory()\n"
        "print(before, released, resident_bytes())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    before, released, after = map(int, out.stdout.split())
    assert released >= 100 * 2**20  # of the ~170 MiB freed
    assert after <= before - 100 * 2**20


def test_resident_bytes_reads_vmrss(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t  999 kB\nVmRSS:\t  2048 kB\n")
    assert resident_bytes(status) == 2048 * 1024
    assert resident_bytes(tmp_path / "missing") is None


def test_the_model_budget_bench_re_aims_dbts_statement_at_a_scratch_table(tmp_path):
    compiled = '\n  create  table\n    "warehouse"."marts"."features__dbt_tmp"\n  as (\n    select 1 as x\n  );\n'
    statement = scratch_statement(compiled, "features")
    assert statement.strip().startswith(f"create table {SCRATCH}") and "__dbt_tmp" not in statement
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    conn.execute(statement)
    assert conn.execute(f"select x from {SCRATCH}").fetchall() == [(1,)]
    conn.close()
    try:
        scratch_statement(compiled, "other")
    except ValueError as error:
        assert "other__dbt_tmp" in str(error)
    else:
        raise AssertionError("a statement for another model must be refused")


def test_every_model_built_from_the_customer_feature_ctes_keeps_its_written_join_plan():
    # At 1 M customers DuckDB's build/probe-side optimizer made the accumulated join result every next join's hash
    # table (it misjudges the cut-off-scoped pieces as tiny), which could not spill under a 1.5GB budget.
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text(encoding="utf-8"))
    hooked = {
        node["name"]: (
            [hook["sql"] for hook in node["config"]["pre-hook"]],
            [hook["sql"] for hook in node["config"]["post-hook"]],
        )
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and "customer_features_at(" in node["raw_code"]
    }
    assert set(hooked) == {"customer_features", "customer_features_train", "customer_features_selection"}
    for name, (pre, post) in hooked.items():
        assert pre == ["set disabled_optimizers = 'build_side_probe_side'"]
        # customer_features also records the basis of its daily increment (macros/feature_increment.sql).
        assert [hook for hook in post if "record_feature_basis(" not in hook] == ["reset disabled_optimizers"], name


def test_the_model_budget_bench_runs_a_models_set_hooks_as_dbt_does():
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text(encoding="utf-8"))
    assert setting_hooks(manifest, "customer_features") == ["set disabled_optimizers = 'build_side_probe_side'"]
    # Templated hooks (the daily staging's partition delete) need dbt to render them: not run.
    assert setting_hooks(manifest, "stg_orders") == []
