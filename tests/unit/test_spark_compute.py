"""Scoring in chunks on Spark (orchestration/lib/spark_compute.py): the per-chunk function, without Spark.

The real mapInArrow over a Spark Connect server runs in tests/integration/test_spark_engine.py (the whole graph on
both engines gives the same predicted CLV); here the function every Spark task runs is checked on its own.
"""

from __future__ import annotations

import pickle
from functools import partial

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ml import champion
from orchestration.lib import spark_compute
from orchestration.lib.warehouse_io import read_table

SCHEMA = pa.schema([("customer_id", pa.string()), ("score", pa.float64()), ("first_order_on", pa.timestamp("us"))])


def _score(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.assign(score=chunk["spend"] * 2)


@pytest.fixture
def customers() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("create schema marts")
    conn.execute(
        "create table marts.customer_features as select 'c' || i as customer_id, (i * 1.5)::decimal(10, 2) as spend,"
        " date '2025-01-01' + i::integer as first_order_on, if(i % 3 = 0, null, i) as orders from range(10) t(i)"
    )
    return conn


def test_each_chunk_reaches_the_function_as_the_duckdb_path_reads_it(customers):
    seen = []

    def spy(chunk: pd.DataFrame) -> pd.DataFrame:
        seen.append(chunk)
        return _score(chunk)

    arrow = customers.sql("select * from marts.customer_features order by customer_id").to_arrow_table()
    out = list(spark_compute.chunk_function(spy, SCHEMA)(iter(arrow.to_batches(max_chunksize=4))))
    assert [len(chunk) for chunk in seen] == [4, 4, 2]
    expected = read_table(customers, "marts.customer_features", order_by="customer_id")
    together = pd.concat(seen, ignore_index=True)
    assert together.dtypes.to_dict() == expected.dtypes.to_dict()  # same dates, decimals, nullable ints
    pd.testing.assert_frame_equal(together, expected)
    result = pa.Table.from_batches(out)
    assert result.schema == SCHEMA
    assert result.column("score").to_pylist() == [float(v) * 2 for v in expected["spend"]]


def test_an_empty_batch_yields_nothing(customers):
    empty = customers.sql("select * from marts.customer_features where false").to_arrow_table()
    batches = [pa.RecordBatch.from_pylist([], schema=empty.schema)]
    assert list(spark_compute.chunk_function(_score, SCHEMA)(iter(batches))) == []


def test_the_chunk_function_travels_to_a_worker_by_pickle():
    # Spark ships the function (and the model inside it) to every task pickled: nothing in it may hold a
    # connection, a lock or the Dagster context. cloudpickle is what pyspark uses.
    cloudpickle = pytest.importorskip("pyspark.cloudpickle")
    run = spark_compute.chunk_function(
        partial(
            spark_compute.clv_predict_chunk, model=None, fits={}, version="v", table=champion.TableFactors(level=1.0)
        ),
        SCHEMA,
    )
    assert callable(pickle.loads(cloudpickle.dumps(run)))


def test_the_structural_level_of_chunks_is_the_level_of_the_whole_table():
    # Scoring in chunks must not rescale each chunk to its own total: summed totals give the one factor.
    predicted = np.array([1.0, 2.0, 3.0, 4.0])
    structural = np.array([2.0, 2.0, 2.0, 4.0])
    whole = champion.to_structural_level(predicted, structural)
    factor = champion.structural_level_factor(predicted.sum(), structural.sum())
    np.testing.assert_allclose(np.concatenate([predicted[:2] * factor, predicted[2:] * factor]), whole)
    assert champion.structural_level_factor(0.0, 5.0) == 1.0
    assert champion.structural_level_factor(5.0, 0.0) == 1.0


def test_the_table_totals_function_travels_with_its_table_factors():
    # A leveled hurdle's table factors are summed over the chunks in Spark too (clv_table_totals, one pass each).
    cloudpickle = pytest.importorskip("pyspark.cloudpickle")
    table = champion.TableFactors(leveling=1.2)
    run = partial(spark_compute.clv_table_totals, model=None, fits={}, table=table)
    assert pickle.loads(cloudpickle.dumps(run)).keywords["table"] == table
