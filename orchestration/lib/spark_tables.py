"""SEGMINT_ENGINE=spark: the tables of the Spark warehouse as Parquet folders, exchanged with the Python steps.

Layout (Spark's own, so a table is where Spark keeps it): `<SEGMINT_SPARK_WAREHOUSE>/<schema>.db/<table>/` holds
the snappy Parquet files of `<schema>.<table>`; `metastore_db/` beside them is the Derby Hive metastore.

Who does what on Spark (README "Past one machine"):
- dbt builds every model and test in Spark (target `spark`, profiles.yml); its tables land as Parquet above.
- The Python steps (landing, ML, activation) keep their tested code and its DuckDB SQL: they work on a local
  DuckDB database (SEGMINT_WAREHOUSE) in which every Spark table they read is a view over its Parquet folder
  (`attach_spark_tables`: read as Arrow, nothing copied), and what they write is exported as a Parquet table into
  the Spark warehouse before the dbt step that reads it (`export_tables`). dbt registers those folders as the
  external source tables of its run (macro `register_python_tables`, on-run-start).
- Why: no JVM in the Dagster process. The Derby metastore admits one JVM at a time, so dbt (its own process and
  JVM per step) never collides with a Python step, and the steps keep running under the in-process or
  multiprocess executor exactly as on DuckDB. On a cluster the same folders live on shared storage (S3, ABFS,
  HDFS) and the metastore is Hive's or Unity Catalog's.

No pyspark import here: DuckDB writes and reads the Parquet files, so the DuckDB path never loads Spark.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

PARQUET_GLOB = "**/*.parquet"  # Spark writes part-*.parquet, in day=... sub-folders for a partitioned table


def table_dir(warehouse_dir: Path, table: str) -> Path:
    """The Parquet folder of `schema.table` in the Spark warehouse (Spark's `<schema>.db/<table>/` layout)."""
    schema, name = table.split(".")
    return warehouse_dir / f"{schema}.db" / name


@contextmanager
def swapped_in(target: Path) -> Iterator[Path]:
    """A sibling folder to write a table's new files into; when the block succeeds it replaces `target` whole, so a
    reader sees the old files or the new ones (never a mix), and a failed write leaves the old table as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    try:
        yield staging
        retired = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
        if target.exists():
            target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_table(conn: duckdb.DuckDBPyConnection, table: str, warehouse_dir: Path) -> Path:
    """Write DuckDB's `schema.table` as the Parquet table of the same name in the Spark warehouse.

    Written into a sibling folder first and swapped in, so a reader sees the old files or the new ones. Naive
    TIMESTAMP columns stay naive (Parquet isAdjustedToUTC=false; Spark reads them as TIMESTAMP_NTZ).
    """
    with swapped_in(table_dir(warehouse_dir, table)) as staging:
        staging.mkdir()
        path = str(staging / "part-00000.parquet").replace("'", "''")
        conn.execute(f"copy (select * from {table}) to '{path}' (format parquet, compression snappy)")
    return table_dir(warehouse_dir, table)


def export_tables(conn: duckdb.DuckDBPyConnection, tables: Iterable[str], warehouse_dir: Path) -> list[str]:
    """Export every existing table of `tables` (those not written yet are skipped: dbt reports them by name).

    A view over the table's own Parquet folder (a table a step wrote in Spark, attached by attach_spark_table) is
    in Spark already: skipped, not copied onto itself."""
    exported = []
    for table in tables:
        schema, name = table.split(".")
        found = conn.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
        ).fetchone()[0]
        if found and not is_attached(conn, table, warehouse_dir):
            export_table(conn, table, warehouse_dir)
            exported.append(table)
    return exported


def is_attached(conn: duckdb.DuckDBPyConnection, table: str, warehouse_dir: Path) -> bool:
    """True when `schema.table` in DuckDB is attach_spark_table's view over its own Parquet folder in Spark."""
    schema, name = table.split(".")
    found = conn.execute(
        "select sql from duckdb_views() where schema_name = ? and view_name = ?", [schema, name]
    ).fetchall()
    return bool(found) and str(table_dir(warehouse_dir, table) / PARQUET_GLOB) in found[0][0]


def attach_spark_table(conn: duckdb.DuckDBPyConnection, table: str, warehouse_dir: Path) -> bool:
    """Make `schema.table` in DuckDB a view over Spark's Parquet folder of that table; False when it has none
    (a Spark view, or not built)."""
    folder = table_dir(warehouse_dir, table)
    if not folder.is_dir() or not any(folder.glob(PARQUET_GLOB)):
        return False
    schema, name = table.split(".")
    pattern = str(folder / PARQUET_GLOB).replace("'", "''")
    conn.execute(f"create schema if not exists {schema}")
    # A table of that name (a DuckDB run before the switch) gives way to the view.
    kind = conn.execute(
        "select table_type from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
    ).fetchall()
    if kind and kind[0][0] == "BASE TABLE":
        conn.execute(f"drop table {schema}.{name}")
    # hive_partitioning: a day-partitioned table keeps its day column in the folder names (day=2025-01-01/).
    conn.execute(
        f"create or replace view {schema}.{name} as "
        f"select * from read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
    )
    return True


def attach_spark_tables(conn: duckdb.DuckDBPyConnection, tables: Iterable[str], warehouse_dir: Path) -> list[str]:
    """Attach every table of `tables` that Spark holds as Parquet; returns those attached."""
    return [table for table in tables if attach_spark_table(conn, table, warehouse_dir)]
