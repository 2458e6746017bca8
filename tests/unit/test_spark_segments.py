"""Behavioural segments on Spark (orchestration/lib/spark_segments.py): the functions every Spark task runs, without
Spark. Each Arrow chunk goes through spark_compute.chunk_function exactly as mapInArrow hands it over, after a
cloudpickle round trip (how Spark ships the fitted model). The real Spark run is tests/integration/test_spark_engine.py
(behavioural segments equal to the DuckDB graph's for >= 99 % of the customers).
"""

from __future__ import annotations

import pickle
from functools import partial

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from ml import clustering
from ml.archetypes import label_segments, name_clusters
from orchestration.lib import spark_compute, spark_segments
from tests.unit.test_clustering import blob_features


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    frame = blob_features(1200, 5, seed=7, with_events=0.8)
    return frame[[column for column in clustering.INPUT_COLUMNS if column in frame.columns]]


@pytest.fixture(scope="module")
def on_duckdb(base):
    """What the DuckDB path writes: cluster_customers on the whole table, then the names."""
    result = clustering.cluster_customers(base, seed=0, k_range=range(3, 6), n_bootstrap=5)
    return result, label_segments(result.labels, name_clusters(result.profiles, result.mode))


def _run_chunks(fn, schema: pa.Schema, frame: pd.DataFrame, chunk_rows: int) -> pd.DataFrame:
    """`fn` as a Spark task runs it: pickled and back, over Arrow batches of `chunk_rows` rows."""
    cloudpickle = pytest.importorskip("pyspark.cloudpickle")
    task = pickle.loads(cloudpickle.dumps(spark_compute.chunk_function(fn, schema)))
    batches = pa.Table.from_pandas(frame, preserve_index=False).to_batches(max_chunksize=chunk_rows)
    return pa.Table.from_batches(list(task(iter(batches))), schema=schema).to_pandas()


def test_chunked_segments_and_profiles_equal_the_duckdb_path(base, on_duckdb):
    result, segments = on_duckdb
    fitted = clustering.fit_clusters(base, seed=0, k_range=range(3, 6), n_bootstrap=5)
    partials = _run_chunks(
        partial(spark_segments.chunk_profile_partials, fitted=fitted), spark_segments.PARTIALS_SCHEMA, base, 250
    )
    profiles = clustering.profiles_from_partials(partials)
    pd.testing.assert_frame_equal(profiles, result.profiles, check_exact=False, rtol=1e-9, atol=1e-12)
    names = name_clusters(profiles, fitted.mode)
    written = _run_chunks(
        partial(spark_segments.chunk_segments, fitted=fitted, names=names), spark_segments.SEGMENTS_SCHEMA, base, 250
    )
    pd.testing.assert_frame_equal(written, segments.reset_index(drop=True))
    assert (written["cluster_id"] == clustering.NO_WEB_ACTIVITY_CLUSTER).sum() == (~base["has_web_events"]).sum()


def test_the_segments_schema_is_the_duckdb_tables(on_duckdb):
    _, segments = on_duckdb
    conn = duckdb.connect()
    conn.execute("create table s as select * from segments")
    arrow = conn.sql("select * from s").to_arrow_table().schema
    assert arrow.names == spark_segments.SEGMENTS_SCHEMA.names
    assert [field.type for field in arrow] == [field.type for field in spark_segments.SEGMENTS_SCHEMA]
