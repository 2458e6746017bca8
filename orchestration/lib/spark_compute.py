"""SEGMINT_ENGINE=spark: Python steps that scale out, run by Spark over a table in chunks (`mapInArrow`).

A step that scores every customer (CLV scoring, behavioural-segment assignment: spark_segments.py) does not pull
the table into its own process: Spark reads the table, hands each task's rows to a Python worker in chunks of
`chunk_rows`, the worker runs the same pure function as the DuckDB path on each chunk, and Spark writes the result
as the Parquet table of the step's output. The model travels inside the function (pickled once into the plan and
shipped to every task: Spark Connect's way of broadcasting, there is no SparkContext.broadcast through Connect); no
process holds more than one chunk.

Why `mapInArrow` rather than `mapInPandas`: each chunk becomes a DataFrame through DuckDB's own Arrow-to-pandas
conversion, the one `read_table` uses on the DuckDB path, so dates, decimals and nulls reach the model as the same
dtypes on both engines (Spark's own pandas conversion gives `datetime.date` objects and `Decimal`s).

The Spark session is a Spark Connect client of the run's server (orchestration/defs/resources.py, SparkEngine);
the Python workers are started by that server with this interpreter and this checkout on their path, so they
import the same `ml` code. On a cluster the workers need the project installed (a wheel on the cluster image or a
Databricks cluster library).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pyarrow as pa

from orchestration.lib.spark_tables import swapped_in, table_dir

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DEFAULT_CHUNK_ROWS = 50_000  # rows per Arrow batch a worker scores at once: bounds each worker's memory


def spark_session(remote: str) -> SparkSession:
    """A Spark Connect session on `remote` (`sc://...`); pyspark is imported here only (optional extra)."""
    from pyspark.sql import SparkSession

    return SparkSession.builder.remote(remote).getOrCreate()


def spark_error() -> type[Exception]:
    """pyspark's base exception: what a Spark query refused by Spark (analysis, parse, execution) raises."""
    from pyspark.errors import PySparkException

    return PySparkException


def chunk_function(
    fn: Callable[[pd.DataFrame], pd.DataFrame], schema: pa.Schema
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The `mapInArrow` function: every Arrow batch through DuckDB to pandas, `fn`, back to Arrow as `schema`.

    Pure and picklable (no Spark in it), so it is tested without Spark."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import duckdb

        for batch in batches:
            if batch.num_rows == 0:
                continue
            with duckdb.connect() as conn:
                frame = conn.from_arrow(pa.Table.from_batches([batch])).df()
            result = fn(frame)
            table = pa.Table.from_pandas(result[schema.names], schema=schema, preserve_index=False)
            yield from table.to_batches()

    return run


def map_table(
    spark: SparkSession,
    table: str,
    fn: Callable[[pd.DataFrame], pd.DataFrame],
    schema: pa.Schema,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    columns: list[str] | None = None,
) -> DataFrame:
    """`fn` over every chunk of the Spark table `table` (at most `chunk_rows` rows each), as a Spark DataFrame;
    `columns`: only these columns reach `fn` (Parquet reads only them, and a chunk holds only them)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_rows))
    frame = spark.table(table)
    if columns is not None:
        frame = frame.select(*columns)
    return frame.mapInArrow(chunk_function(fn, schema), from_arrow_schema(schema))


def sample_table(
    spark: SparkSession, table: str, columns: list[str], limit: int, seed: int, order_by: str
) -> tuple[pd.DataFrame, int]:
    """At most `limit` rows of `table` (these `columns`) pulled into this process as Arrow, with the table's row count.

    The whole table when it fits; else a fixed pseudo-random sample: the `limit` rows with the smallest hash of
    `order_by` and `seed`, the same rows whatever the partitioning. Ordered by `order_by` and converted to pandas by
    DuckDB, like the DuckDB path's `read_table(..., order_by=...)`, so a fit on it sees the same dtypes and order."""
    from pyspark.sql import functions as F

    frame = spark.table(table)
    frame = frame.select(*[column for column in columns if column in frame.columns])
    total = frame.count()
    if total > limit:
        frame = frame.orderBy(F.xxhash64(F.col(order_by), F.lit(seed))).limit(limit)
    arrow = frame.toArrow()
    with duckdb.connect() as conn:
        return conn.from_arrow(arrow).order(order_by).df(), total


def write_parquet_table(frame: DataFrame, table: str, warehouse_dir: Path) -> Path:
    """Write `frame` as the Parquet table `table` (`<schema>.db/<table>/`), swapped in whole like export_table:
    a reader sees the old files or the new ones. dbt registers the folder as its source table (on-run-start)."""
    with swapped_in(table_dir(warehouse_dir, table)) as staging:
        frame.write.mode("overwrite").parquet(str(staging))
    return table_dir(warehouse_dir, table)


# CLV scoring in chunks (orchestration/defs/clv.py, clv_predictions). Module-level, so a worker unpickles them by
# name from this light module (importing the Dagster definitions in every worker would be slow and pointless).
TOTALS_SCHEMA = pa.schema([("total", pa.float64()), ("target", pa.float64())])


def clv_table_totals(chunk: pd.DataFrame, model, fits, table) -> pd.DataFrame:
    """One row: this chunk's chunk_totals (summed over the chunks: the next of the whole table's factors). Each
    factor re-scores the chunk here: Spark keeps no chunk's scores between passes (DuckDB scoring does)."""
    from ml.champion import chunk_totals, score_chunk

    total, target = chunk_totals(model, score_chunk(model, chunk, explain=False, fits=fits), table)
    return pd.DataFrame({"total": [total], "target": [target]})


def clv_predict_chunk(chunk: pd.DataFrame, model, fits, version: str, table=None) -> pd.DataFrame:
    """predict_champion on one chunk, with the whole table's factors, as ml.clv_predictions rows."""
    from ml.champion import predict_champion

    return predict_champion(model, chunk, fits=fits, table=table).assign(model_version=version)
