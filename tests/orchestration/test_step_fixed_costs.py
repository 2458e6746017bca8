"""The fixed cost of a step (issue 18): dbt run in the step's process on DuckDB, one DuckDB handle per run, and the
run history's SQLite engines made once. Each test runs the real thing (dbt on a small project, DuckDB, Dagster's
SQLite storage) and checks what the rest of the graph relies on: the same results, the file free afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from orchestration.defs import resources as resources_module
from orchestration.defs.resources import Warehouse
from orchestration.lib import dbt_cli, event_log
from orchestration.lib.dbt_cli import IN_PROCESS_ENV, SegmintDbtCliResource, dbt_in_process
from orchestration.lib.event_log import SegmintSqliteEventLogStorage, SegmintSqliteRunStorage
from orchestration.lib.memory import release_memory_hooks
from tests.conftest import PROJECT_ROOT


def _project(root: Path, warehouse: Path, model_sql: str = "select 1 as x") -> Path:
    """A one-model dbt project on DuckDB (with a test), its profile beside it."""
    project = root / "proj"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: tiny\nversion: '1.0'\nprofile: tiny\nflags:\n  send_anonymous_usage_stats: false\n"
    )
    (project / "profiles.yml").write_text(
        yaml.safe_dump(
            {
                "tiny": {
                    "target": "local",
                    "outputs": {"local": {"type": "duckdb", "path": str(warehouse), "threads": 1}},
                }
            }
        )
    )
    (project / "models" / "m.sql").write_text(model_sql)
    (project / "models" / "m.yml").write_text(
        textwrap.dedent("""\
        models:
          - name: m
            columns:
              - name: x
                data_tests: [not_null]
        """)
    )
    return project


def _resource(project: Path) -> SegmintDbtCliResource:
    dbt_executable = os.path.join(os.path.dirname(sys.executable), "dbt")
    return SegmintDbtCliResource(project_dir=str(project), profiles_dir=str(project), dbt_executable=dbt_executable)


@pytest.fixture
def no_subprocess(monkeypatch):
    """Records (and refuses) every start of a dbt process; other processes (Python's platform module) run."""
    started = []
    real_popen = subprocess.Popen

    class RefuseDbt(real_popen):
        def __init__(self, args, *rest, **kwargs):
            if isinstance(args, list | tuple) and args and str(args[0]).endswith("dbt"):
                started.append(args)
                raise AssertionError(f"started a dbt process: {args}")
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", RefuseDbt)
    return started


def test_dbt_runs_in_this_process_with_the_same_events_and_leaves_the_file_free(tmp_path, monkeypatch, no_subprocess):
    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)
    warehouse = tmp_path / "w.duckdb"
    project = _project(tmp_path, warehouse)
    dbt = _resource(project)
    cwd, environ = os.getcwd(), dict(os.environ)

    parsed = dbt.cli(["parse"], target_path=tmp_path / "target").wait()
    assert parsed.is_successful()
    manifest = tmp_path / "target" / "manifest.json"
    invocation = dbt.cli(["build"], manifest=manifest, target_path=tmp_path / "target")
    events = list(invocation.stream_raw_events())

    assert no_subprocess == []  # neither `dbt parse` nor `dbt build` started a process
    assert invocation.is_successful() and invocation.process.returncode == 0
    # The result lines dagster-dbt turns into Outputs and check results, as a dbt subprocess prints them.
    finished = sorted(e.raw_event["data"]["node_info"]["unique_id"] for e in events if e.is_result_event)
    assert finished[0] == "model.tiny.m" and finished[1].startswith("test.tiny.not_null_m_x") and len(finished) == 2
    assert (tmp_path / "target" / "run_results.json").exists()
    assert os.getcwd() == cwd and dict(os.environ) == environ  # the process is given back as it was
    # dbt-duckdb's connection is closed: another configuration (another process, a step's budget) opens the file.
    with duckdb.connect(str(warehouse), config={"memory_limit": "123MB"}) as conn:
        assert conn.execute("select x from m").fetchall() == [(1,)]


def test_a_failing_dbt_command_fails_as_the_subprocess_did(tmp_path, monkeypatch, no_subprocess):
    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)
    project = _project(tmp_path, tmp_path / "w.duckdb", model_sql="select * from no_such_table")
    dbt = _resource(project)
    assert dbt.cli(["parse"], target_path=tmp_path / "target").wait().is_successful()
    invocation = dbt.cli(
        ["build"], manifest=tmp_path / "target" / "manifest.json", target_path=tmp_path / "target", raise_on_error=False
    )
    assert not invocation.is_successful()
    assert invocation.process.returncode == 1
    error = invocation.get_error()
    assert error is not None and "no_such_table" in str(error.description)
    with pytest.raises(Exception, match="no_such_table"):
        dbt.cli(["build"], manifest=tmp_path / "target" / "manifest.json", target_path=tmp_path / "target").wait()


def test_spark_and_the_switch_keep_the_subprocess(monkeypatch):
    dbt = _resource(PROJECT_ROOT / "dbt_project")
    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)
    assert dbt_in_process() and dbt.runs_in_process(["build"])
    assert not dbt.runs_in_process(["build", "--target", "spark"])
    monkeypatch.setenv(IN_PROCESS_ENV, "0")
    assert not dbt_in_process() and not dbt.runs_in_process(["build"])
    # dagster-dbt still starts dbt with `subprocess.Popen` from its invocation module (the hook this relies on).
    from dagster_dbt.core import dbt_cli_invocation

    assert dbt_cli_invocation.subprocess is subprocess
    assert "subprocess.Popen(" in Path(dbt_cli_invocation.__file__).read_text()
    with dbt_cli._dbt_in_this_process():
        assert dbt_cli_invocation.subprocess.Popen is dbt_cli._InProcessDbt
        assert dbt_cli_invocation.subprocess.PIPE == subprocess.PIPE
    assert dbt_cli_invocation.subprocess is subprocess


def _assets(warehouse_path: str, fail: bool = False):
    @dg.asset
    def first(warehouse: Warehouse) -> None:
        with warehouse.connect() as conn:
            conn.execute("create or replace table t as select 1 as x")

    @dg.asset(deps=[first])
    def second(warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connect() as conn:
            conn.execute("create temp table scratch as select 2 as y")  # a cursor's own, gone with it
            n = conn.execute("select count(*) from t").fetchone()[0]
        if fail:
            raise ValueError("boom")
        return dg.MaterializeResult(metadata={"n": n})

    return [first, second]


def test_a_runs_steps_share_one_handle_and_the_run_leaves_the_file_free(tmp_path):
    path = str(tmp_path / "w.duckdb")
    opened = []
    real_connect = duckdb.connect

    def counting_connect(database, *args, **kwargs):
        if database == path:
            opened.append(database)
        return real_connect(database, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resources_module.duckdb, "connect", counting_connect)
        result = dg.materialize(_assets(path), resources={"warehouse": Warehouse(path=path)})
    assert result.success
    assert len(opened) == 1  # two steps, one open
    # Closed at the run's end: another configuration opens the file; the temp table went with its cursor.
    with real_connect(path, config={"memory_limit": "123MB"}) as conn:
        assert conn.execute("select x from t").fetchall() == [(1,)]
        assert conn.execute("select count(*) from duckdb_tables() where table_name = 'scratch'").fetchone()[0] == 0


def test_outside_a_run_every_connection_is_its_own(tmp_path):
    warehouse = Warehouse(path=str(tmp_path / "w.duckdb"))
    with warehouse.connect() as conn:
        conn.execute("create table t as select 1 as x")
    assert warehouse._kept is None
    with duckdb.connect(str(tmp_path / "w.duckdb"), config={"memory_limit": "123MB"}) as conn:
        assert conn.execute("select x from t").fetchall() == [(1,)]


@pytest.mark.parametrize("fail", [False, True])
def test_the_hook_closes_a_large_cache_and_after_a_failure(tmp_path, monkeypatch, fail):
    path = str(tmp_path / "w.duckdb")
    released = []
    real_release = Warehouse.release

    def recording_release(self):
        was_open = real_release(self)
        released.append(was_open)
        return was_open

    monkeypatch.setattr(Warehouse, "release", recording_release)
    # Below any real cache: every successful step closes the handle too.
    monkeypatch.setattr(resources_module, "KEPT_CACHE_BYTES", -1 if not fail else 2**40)
    job = dg.define_asset_job("j", hooks=release_memory_hooks, executor_def=dg.in_process_executor)
    defs = dg.Definitions(assets=_assets(path, fail=fail), jobs=[job], resources={"warehouse": Warehouse(path=path)})
    result = defs.resolve_job_def("j").execute_in_process(raise_on_error=False)
    assert result.success is (not fail)
    # success: both steps' hooks closed the handle; failure: the kept cache is small, only the failed step closed it.
    assert released.count(True) == (2 if not fail else 1)
    with duckdb.connect(path, config={"memory_limit": "123MB"}) as conn:
        assert conn.execute("select x from t").fetchall() == [(1,)]


def test_the_run_history_keeps_one_engine_per_file_and_reads_an_existing_history(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:  # an existing history in Dagster's default storage
        dg.materialize(_assets(str(tmp_path / "w0.duckdb")), instance=instance, resources={"warehouse": Warehouse()})
        first_run = instance.get_runs()[0].run_id

    made = []
    real_create_engine = event_log.create_engine

    def counting_create_engine(*args, **kwargs):
        made.append(args[0])
        return real_create_engine(*args, **kwargs)

    monkeypatch.setattr(event_log, "create_engine", counting_create_engine)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert sorted(event_log.keep_engines(instance)) == ["event_log", "runs"]
        assert isinstance(instance.event_log_storage, SegmintSqliteEventLogStorage)
        assert isinstance(instance.run_storage, SegmintSqliteRunStorage)
        assert instance.get_run_by_id(first_run) is not None  # the same files: the history reads on
        path = str(tmp_path / "w.duckdb")
        result = dg.materialize(_assets(path), instance=instance, resources={"warehouse": Warehouse(path=path)})
        assert result.success
        assert len(instance.get_records_for_run(result.run_id).records) > 10
        assert instance.get_latest_materialization_event(dg.AssetKey("second")).run_id == result.run_id
        assert event_log.keep_engines(instance) == []  # once is enough
    # Dozens of events written and read, one engine per database file touched (the run's shard, the index, runs.db).
    assert len(made) == len(set(made)) <= 4
    # The history reads back with Dagster's own classes.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == 2
        assert instance.get_latest_materialization_event(dg.AssetKey("second")).run_id == result.run_id


def _history(instance: dg.DagsterInstance, run_id: str) -> list[tuple]:
    """What a user reads back from a run's record: each event's type and step, the asset, metadata keys and tags
    (data versions) of materializations, and each check's outcome."""
    rows = []
    for record in instance.get_records_for_run(run_id).records:
        event = record.event_log_entry.dagster_event
        if event is None:
            rows.append(("log", record.event_log_entry.step_key, record.event_log_entry.user_message))
            continue
        row = [event.event_type_value, event.step_key, event.asset_key]
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            tags = {k: v for k, v in (materialization.tags or {}).items() if "data_version" in k or "code_version" in k}
            row += [sorted(materialization.metadata), sorted(tags)]
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            row += [event.event_specific_data.passed]
        rows.append(tuple(row))
    return rows


def _run_in(home: Path, warehouse: str, keep: bool) -> tuple[list[tuple], int]:
    """Materialize the two assets in a fresh history at `home`; (the run's history, SQLite connections opened)."""
    from sqlalchemy import event as sa_event
    from sqlalchemy.engine import Engine

    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    opened = []

    def count(dbapi_connection, _record):
        opened.append(dbapi_connection)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        if keep:
            event_log.keep_engines(instance)
        sa_event.listen(Engine, "connect", count)
        try:
            result = dg.materialize(
                _assets(warehouse), instance=instance, resources={"warehouse": Warehouse(path=warehouse)}
            )
        finally:
            sa_event.remove(Engine, "connect", count)
        assert result.success
        return _history(instance, result.run_id), len(opened)


def test_kept_connections_record_the_same_history_with_a_few_connections(tmp_path):
    kept, kept_opened = _run_in(tmp_path / "kept", str(tmp_path / "a.duckdb"), keep=True)
    dagster_default, default_opened = _run_in(tmp_path / "default", str(tmp_path / "b.duckdb"), keep=False)
    assert kept == dagster_default  # the same events, materializations (metadata keys, data versions) and order
    assert any(row[0] == "ASSET_MATERIALIZATION" and row[3] == ["n"] for row in kept)
    # Dagster's storage opens a connection for every read and write (dozens for two steps); kept: one per file
    # touched (the run's shard, the asset index, runs.db), and one more where a use overlapped another (a new
    # file's schema set-up, a schema check inside a write).
    assert default_opened > 20 and kept_opened <= 2 * 3
    # Disposed with the instance: the connections are closed and the WAL checkpointed into the files.
    wal = [path for path in (tmp_path / "kept").rglob("*-wal") if path.stat().st_size > 0]
    assert wal == []


def test_kept_connections_hold_no_lock_between_uses(tmp_path):
    import sqlite3

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    path = str(tmp_path / "w.duckdb")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event_log.keep_engines(instance)
        result = dg.materialize(_assets(path), instance=instance, resources={"warehouse": Warehouse(path=path)})
        assert result.success
        # The run's connections are still open; another process (the daemon, the webserver) writes at once.
        for database in home.rglob("*.db"):
            other = sqlite3.connect(database, timeout=0)
            try:
                other.execute("begin immediate")
                other.execute("commit")
            finally:
                other.close()
        # A table once seen is remembered: no new engine, no schema query for the next check event.
        storage = instance.event_log_storage
        assert storage.has_table("asset_check_executions") and ("table", "asset_check_executions") in storage._known
        assert not storage.has_table("no_such_table") and ("table", "no_such_table") not in storage._known
        assert instance.get_latest_materialization_event(dg.AssetKey("second")).run_id == result.run_id
