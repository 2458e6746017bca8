"""Resources: the warehouse (one DuckDB file, one writer at a time; or Spark, SEGMINT_ENGINE), dbt, and the run settings."""

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource
from pydantic import PrivateAttr

from activation.destinations.registry import env_var_names
from orchestration.lib import spark_connect, spark_tables
from orchestration.lib.dbt_cli import SegmintDbtCliResource
from orchestration.lib.settings import DBT_PROJECT_DIR, Settings, load_settings

# Every asset that opens the DuckDB file carries this tag; the executor runs at most one of them at a time,
# because DuckDB allows a single writer process (see shared/STACK.md).
DUCKDB_TAG = {"segmint/duckdb": "writer"}


DUCKDB_MEMORY_LIMIT_ENV = "SEGMINT_DUCKDB_MEMORY_LIMIT"
# 1.5GB: what keeps a 1 M-customer run's whole tree (the run's process plus dbt's DuckDB, which fills its budget in
# the feature build) under issue 18's 3 GiB with margin. 3GB until marts.customer_features could spill: DuckDB built
# the accumulated join result of its per-customer pieces as one hash table after another ("Out of Memory Error:
# failed to pin block" below ~1.75GB, once at 1.75GB in make bench's daily); with the written join plan kept
# (dbt_project/macros/cross_engine.sql, spine_join_config) it builds at 0.75GB, the staging (full refresh) at 1.25GB.
# A shop much larger than 1 M customers on a machine with the memory to spare may raise it.
DEFAULT_DUCKDB_MEMORY_LIMIT = "1.5GB"


def duckdb_memory_limit() -> str:
    """DuckDB's memory budget for every warehouse connection, the Python steps' and dbt's alike (profiles.yml reads
    the same variable, with this default: tests/unit/test_memory_budget.py keeps the two equal)."""
    return os.environ.get(DUCKDB_MEMORY_LIMIT_ENV, "").strip() or DEFAULT_DUCKDB_MEMORY_LIMIT


def duckdb_config(warehouse_path: str) -> dict[str, str]:
    """Connection settings shared by Python steps and dbt (profiles.yml reads the same variable)."""
    return {
        "memory_limit": duckdb_memory_limit(),
        "temp_directory": warehouse_path + ".tmp",
    }


class SegmintSettings(dg.ConfigurableResource):
    """Run settings; each field left empty falls back to its SEGMINT_* environment variable at run time."""

    landing_dir: str | None = None
    as_of: str | None = None
    horizon_days: int | None = None
    source_format: str | None = None

    def load(self) -> Settings:
        env = dict(os.environ)
        if self.landing_dir:
            env["SEGMINT_LANDING_DIR"] = self.landing_dir
        if self.as_of:
            env["SEGMINT_AS_OF"] = self.as_of
        if self.horizon_days:
            env["SEGMINT_CLV_HORIZON_DAYS"] = str(self.horizon_days)
        if self.source_format:
            env["SEGMINT_SOURCE_FORMAT"] = self.source_format
        return load_settings(env)


class Warehouse(dg.ConfigurableResource):
    """The warehouse: `engine` (empty: SEGMINT_ENGINE, default duckdb) decides where the SQL runs.

    DuckDB: one file (`path` empty means SEGMINT_WAREHOUSE or data/warehouse.duckdb); dbt and the Python steps
    share it. Spark: dbt builds the models as Parquet tables in the Spark warehouse (SEGMINT_SPARK_WAREHOUSE) and
    the DuckDB file is the Python steps' local side: `connect()` still gives them a DuckDB connection, in which
    the Spark tables a dbt step built are views over their Parquet files (`attach_engine_tables`), and the tables
    they write reach Spark before the dbt step that reads them (`publish_to_engine`); see
    orchestration/lib/spark_tables.py for why no JVM runs in the Python steps.
    """

    path: str | None = None
    engine: str | None = None

    def resolved_path(self) -> str:
        return self.path or str(load_settings().warehouse)

    def resolved_engine(self) -> str:
        return self.engine or load_settings().engine

    def spark_warehouse_dir(self) -> Path:
        return load_settings().spark_warehouse_dir

    def publish_to_engine(self, conn: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> list[str]:
        """Spark: write these tables (those that exist) as Parquet tables into the Spark warehouse. DuckDB: nothing."""
        if self.resolved_engine() != "spark":
            return []
        return spark_tables.export_tables(conn, tables, self.spark_warehouse_dir())

    def attach_engine_tables(self, conn: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> list[str]:
        """Spark: make these Spark tables readable in `conn` (views over their Parquet files). DuckDB: nothing."""
        if self.resolved_engine() != "spark":
            return []
        return spark_tables.attach_spark_tables(conn, tables, self.spark_warehouse_dir())

    # A run's steps share one DuckDB database handle (issue 18, the fixed cost of a step): opening the file loads
    # its catalog and replays its WAL, closing it checkpoints: 75-250 ms a time at 100 k customers here, paid by
    # every step and check (most open it once or twice for a few milliseconds of SQL). In a run (Dagster called
    # setup_for_execution) `connect()` gives a cursor of the kept handle; dbt and the warehouse compaction, which
    # open the file themselves, get it closed first (`release()`), and the run's end closes it. After each step the
    # job's hook gives DuckDB's buffers back by closing the handle when they hold more than KEPT_CACHE_BYTES (a
    # large step leaves memory as before) or when the step failed (a retry starts from a fresh handle).
    _kept: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    _keep: bool = PrivateAttr(default=False)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._keep = True

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.release()
        self._keep = False

    def release(self) -> bool:
        """Close the run's kept handle (DuckDB checkpoints what it wrote) so that another connection or process can
        open the file; the next `connect()` opens it again. Whether one was open."""
        kept, self._kept = self._kept, None
        if kept is None:
            return False
        kept.close()
        return True

    def cached_bytes(self) -> int:
        """Memory DuckDB holds in the kept handle (buffers, caches), 0 without one."""
        if self._kept is None:
            return 0
        return int(self._kept.execute("select coalesce(sum(memory_usage_bytes), 0) from duckdb_memory()").fetchone()[0])

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection: never hold it across a dbt call (dbt needs the write lock).

        DuckDB's default memory limit is 80 % of RAM; a budget (SEGMINT_DUCKDB_MEMORY_LIMIT, default 1.5GB) makes
        large ingests spill to a temp folder beside the warehouse instead (measured at 1 M customers: 17 GiB
        peak without it, 3.2 GiB with it). In a run it is a cursor of the run's kept handle (temporary tables,
        registered frames and an open transaction end with it, as with a connection of its own).
        """
        path = self.resolved_path()
        if not self._keep:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            conn = duckdb.connect(path, config=duckdb_config(path))
            try:
                yield conn
            finally:
                conn.close()
            return
        if self._kept is None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._kept = duckdb.connect(path, config=duckdb_config(path))
        cursor = self._kept.cursor()
        try:
            yield cursor
        finally:
            cursor.close()


# Above this, the hook after a step closes the run's kept DuckDB handle (orchestration/lib/memory.py): DuckDB's buffer
# cache would otherwise stay resident, up to the memory budget, while the next step's frames are built.
KEPT_CACHE_BYTES = 256 * 2**20


class SparkEngine(dg.ConfigurableResource):
    """SEGMINT_ENGINE=spark: the Spark every dbt step of the run talks to, as a Spark Connect URL (`remote()`), and
    the Connect sessions of the Python steps that run work in Spark (`session()`: CLV scoring, behavioural segments).

    `SPARK_REMOTE` set (a cluster's Connect endpoint, Databricks Connect): used as is. Otherwise the first step that
    asks starts one local Connect server over the Spark warehouse (SEGMINT_SPARK_MASTER, Derby metastore,
    orchestration/lib/spark_connect.py) and the end of the run stops it: one JVM and one metastore start per run
    instead of one per dbt step. Nothing starts on DuckDB or in a run without a Spark step. Under the in-process
    executor (`segmint_refresh`) the run shares one server; under the multiprocess executor each step process
    that asks starts its own, one at a time (the writer tag), which is still correct.
    """

    _server: spark_connect.ConnectServer | None = PrivateAttr(default=None)
    _sessions: list = PrivateAttr(default_factory=list)

    def remote(self) -> str:
        """The Connect URL (`sc://...`) the run's Spark steps use; starts the local server on first use."""
        given = os.environ.get(spark_connect.SPARK_REMOTE_ENV)
        if self._server is None and given:
            return given
        if self._server is None:
            settings = load_settings()
            self._server = spark_connect.start_server(settings.spark_warehouse_dir, settings.spark_master)
            # dbt (a child process) and pyspark in this process find the server through pyspark's own variable.
            os.environ[spark_connect.SPARK_REMOTE_ENV] = self._server.url
        return self._server.url

    def running(self) -> bool:
        """Whether this run already has a Spark to talk to (its server started, or SPARK_REMOTE given): a step that
        must not wait for a JVM to start (an event-triggered sync) uses Spark only then."""
        return self._server is not None or bool(os.environ.get(spark_connect.SPARK_REMOTE_ENV))

    def session(self):
        """A Spark Connect session (pyspark) on `remote()` for a Python step that runs work in Spark."""
        from orchestration.lib import spark_compute

        session = spark_compute.spark_session(self.remote())
        self._sessions.append(session)
        return session

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # Sessions first, while their server is up: pyspark's exit hook would otherwise retry a dead server for
        # about ten minutes (its Connect retry policy) before the process could exit.
        for session in self._sessions:
            session.stop()
        self._sessions.clear()
        if self._server is not None:
            if os.environ.get(spark_connect.SPARK_REMOTE_ENV) == self._server.url:
                del os.environ[spark_connect.SPARK_REMOTE_ENV]
            self._server.stop()
            self._server = None


class ActivationCredentials(dg.ConfigurableResource):
    """Destination tokens and base URLs, read from SEGMINT_* environment variables at run time, never logged.

    A destination whose variables are missing runs as a dry-run (request bodies written to files).
    """

    def values(self) -> dict[str, str | None]:
        return {name: os.environ.get(name) for name in env_var_names()}


def dbt_resource() -> DbtCliResource:
    # The dbt installed next to this Python, so `make run` works without activating the virtualenv. Without
    # dagster-dbt's `dbt --version` subprocess and in-process adapter (orchestration/lib/dbt_cli.py).
    dbt_executable = os.path.join(os.path.dirname(sys.executable), "dbt")
    return SegmintDbtCliResource(
        project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable
    )


def resources() -> dict[str, object]:
    return {
        "warehouse": Warehouse(),
        "settings": SegmintSettings(),
        "dbt": dbt_resource(),
        "spark": SparkEngine(),
        "credentials": ActivationCredentials(),
    }


@dg.definitions
def defs() -> dg.Definitions:
    """What the defs-folder loader picks up from this module: the resources every asset of the location binds."""
    return dg.Definitions(resources=resources())
