"""SEGMINT_ENGINE=spark: behavioural segments with every customer assigned in Spark, in chunks (issue 19).

`ml__behavioral_segments` on Spark (orchestration/defs/segments.py dispatches here):
1. Fit: the clustering is fitted as on DuckDB (ml/clustering.py `fit_clusters`: mode, columns, gap fill, scaler,
   KMeans with k from silhouette + stability) on at most FIT_SAMPLE_ROWS customers pulled from Spark as Arrow,
   only the columns the clustering reads. Up to that size the sample is the whole table in DuckDB's order, so the
   fit is the DuckDB fit; above it, a fixed pseudo-random sample (hash of customer_id and the seed: the same rows
   whatever the partitioning). The KMeans itself already fits on at most FIT_SAMPLE_SIZE (50 k) customers with web
   events; 200 k customers leave 50 k with events whenever a quarter of the base browses, and the gap median, the
   scaler and the mode's shares estimated from 200 k rows are within a fraction of a percent of the whole table's.
   The DuckDB path keeps reading the whole table for these (its results stay exactly as they were).
2. Profiles: Spark assigns every customer (`assign_clusters`, the same pure function the DuckDB path uses) chunk by
   chunk with `spark_compute.map_table` (mapInArrow) and each chunk returns only its per-cluster partial sums
   (`profile_partials`: count, sum, m2 per feature); the driver merges those few rows into `ml.cluster_profiles`
   (`profiles_from_partials`) and names the clusters from them (ml/archetypes.py).
3. Segments: a second pass assigns and names every chunk and Spark writes the Parquet table
   `ml.db/behavioral_segments/` (customer_id, cluster_id, behavioral_segment: DuckDB's columns and types). Assigning
   twice costs one KMeans predict per row; it saves holding or shuffling the labels between the passes.

The fitted model (centres, scaler vectors, fill values, cluster names: a few kB) travels pickled inside the task
function, as CLV scoring's model does. No process holds more than one chunk of customers, except the driver's
bounded fit sample.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from ml.archetypes import label_segments, unprofiled_cluster_names
from ml.clustering import (
    INPUT_COLUMNS,
    NO_WEB_ACTIVITY_CLUSTER,
    FittedClusters,
    assign_clusters,
    fit_clusters,
    prepare_raw_features,
    profile_partials,
    profiles_from_partials,
)
from orchestration.lib import spark_compute

if TYPE_CHECKING:
    from orchestration.lib.spark_compute import SparkSession  # pyspark is imported in spark_compute only

FEATURES = "marts.customer_features"
SEGMENTS_TABLE = "ml.behavioral_segments"
FIT_SAMPLE_ROWS = 200_000  # customers pulled into the Dagster process for the fit (see the module docstring)

SEGMENTS_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("cluster_id", pa.int64()), ("behavioral_segment", pa.string())]
)
PARTIALS_SCHEMA = pa.schema(
    [
        ("cluster_id", pa.int64()),
        ("feature", pa.string()),
        ("n", pa.int64()),
        ("total", pa.float64()),
        ("m2", pa.float64()),
    ]
)


@dataclass(frozen=True)
class SparkClustering:
    """What the Spark path fitted and measured; the segments themselves are in SEGMENTS_TABLE's Parquet files."""

    fitted: FittedClusters
    profiles: pd.DataFrame
    names: dict[int, str]
    n_customers: int  # rows of the feature table
    sample_rows: int  # rows the fit saw


def chunk_profile_partials(chunk: pd.DataFrame, fitted: FittedClusters) -> pd.DataFrame:
    """One chunk assigned and reduced to its per-cluster partial sums (ml.clustering.profile_partials rows)."""
    cluster_ids = assign_clusters(chunk, fitted)["cluster_id"].to_numpy()
    clustered = cluster_ids != NO_WEB_ACTIVITY_CLUSTER
    raw = prepare_raw_features(chunk.loc[clustered], fitted.feature_columns, fitted.fill_values)
    return profile_partials(raw, cluster_ids[clustered])


def chunk_segments(chunk: pd.DataFrame, fitted: FittedClusters, names: dict[int, str]) -> pd.DataFrame:
    """One chunk assigned and named: ml.behavioral_segments rows."""
    return label_segments(assign_clusters(chunk, fitted), names)


def cluster_on_spark(
    session: SparkSession,
    warehouse_dir: Path,
    name_clusters,
    seed: int,
    k_range: range,
    n_bootstrap: int,
) -> SparkClustering:
    """Fit on the bounded sample, profile from the chunks' partial sums, write every customer's segment in Spark.

    `name_clusters(profiles, mode) -> {cluster_id: name}` names the clusters (the caller binds the shop's event
    labels), so the names come from the whole table's profiles, exactly as on DuckDB."""
    sample, total = spark_compute.sample_table(
        session, FEATURES, list(INPUT_COLUMNS), FIT_SAMPLE_ROWS, seed, order_by="customer_id"
    )
    fitted = fit_clusters(sample, seed=seed, k_range=k_range, n_bootstrap=n_bootstrap)
    if len(sample) < total:
        note = (
            f"Spark: fitted on a sample of {len(sample):,} of {total:,} customers (hash of customer_id); "
            "every customer was assigned in Spark."
        )
        fitted = replace(fitted, notes=[*fitted.notes, note])
    columns = [column for column in INPUT_COLUMNS if column in sample.columns]
    partials = spark_compute.map_table(
        session, FEATURES, partial(chunk_profile_partials, fitted=fitted), PARTIALS_SCHEMA, columns=columns
    ).toPandas()
    profiles = profiles_from_partials(partials)
    names = name_clusters(profiles, fitted.mode)
    names = names | unprofiled_cluster_names(names, fitted.k, fitted.mode)
    segments = spark_compute.map_table(
        session, FEATURES, partial(chunk_segments, fitted=fitted, names=names), SEGMENTS_SCHEMA, columns=columns
    )
    spark_compute.write_parquet_table(segments, SEGMENTS_TABLE, warehouse_dir)
    return SparkClustering(fitted, profiles, names, total, len(sample))
