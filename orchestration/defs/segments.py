"""Segment assets: RFM, behavioural clusters and lookalike prospects, written to schema `ml`."""

import dagster as dg
import pandas as pd

from ml.archetypes import label_segments, name_clusters
from ml.clustering import INPUT_COLUMNS as CLUSTERING_INPUT_COLUMNS
from ml.clustering import NO_WEB_ACTIVITY_CLUSTER, ClusteringResult, cluster_customers, clustering_result
from ml.lookalike import fit_lookalike, score_prospects
from ml.rfm import score_rfm, segment_rule_table
from orchestration.defs.resources import DUCKDB_TAG, SparkEngine, Warehouse
from orchestration.lib import groups, spark_segments
from orchestration.lib.keys import (
    BEHAVIORAL_SEGMENTS,
    CLUSTER_PROFILES,
    CUSTOMER_FEATURES,
    PREPURCHASE_BEHAVIOUR,
    PROSPECT_FEATURES,
    PROSPECT_SCORES,
    RFM_SEGMENTS,
    TOP_EVENT_TYPES,
)
from orchestration.lib.metadata import markdown_table
from orchestration.lib.warehouse_io import present_columns, read_table, write_table

FEATURES_CHECK = dg.AssetCheckKey(CUSTOMER_FEATURES, "gx_customer_features")


class ClusteringConfig(dg.Config):
    """Clustering knobs, editable in the launchpad; k itself is chosen from the data within this range."""

    min_clusters: int = 3
    max_clusters: int = 8
    bootstrap_resamples: int = 20
    seed: int = 0


@dg.asset(
    key=RFM_SEGMENTS,
    deps=[CUSTOMER_FEATURES],
    group_name=groups.SEGMENTS,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version="rfm-v1",
)
def rfm_segments(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per customer: recency, frequency and monetary scores (1-5) and the named RFM segment."""
    with warehouse.connect() as conn:
        features = read_table(
            conn,
            "marts.customer_features",
            ["customer_id", "recency_days", "order_count", "total_revenue"],
            order_by="customer_id",
        )
        scores = score_rfm(features)
        write_table(conn, "ml.rfm_segments", scores)
    sizes = scores["rfm_segment"].value_counts().rename_axis("rfm_segment").reset_index(name="customers")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(scores)),
            "segment_sizes": markdown_table(sizes),
            "rules": markdown_table(segment_rule_table(), max_rows=30),
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            BEHAVIORAL_SEGMENTS,
            deps=[CUSTOMER_FEATURES, TOP_EVENT_TYPES],
            description="One row per customer: behavioural cluster (k chosen from the data) and its archetype or descriptive name.",
            group_name=groups.SEGMENTS,
            kinds={"python", "scikitlearn", "duckdb"},
            code_version="clusters-v1",
        ),
        dg.AssetSpec(
            CLUSTER_PROFILES,
            deps=[CUSTOMER_FEATURES, TOP_EVENT_TYPES],
            description=(
                "One row per behavioural cluster: the mean of each clustering feature (the cluster's profile, which "
                "names it and draws the report's cluster chart)."
            ),
            group_name=groups.SEGMENTS,
            kinds={"python", "scikitlearn", "duckdb"},
            code_version="clusters-v1",
        ),
    ],
    # The op keeps the name it had as a single asset, so launchpad configs (ops: ml__behavioral_segments) still apply.
    name="ml__behavioral_segments",
    op_tags=DUCKDB_TAG,
)
def behavioral_segments(warehouse: Warehouse, spark: SparkEngine, config: ClusteringConfig):
    """Behavioural clusters of the customers and their profiles: one fit, two tables.

    SEGMINT_ENGINE=spark: fitted on a bounded sample and every customer assigned in Spark in chunks, with the same
    fit and the same assignment function as here (`_segments_on_spark`, orchestration/lib/spark_segments.py)."""
    if warehouse.resolved_engine() == "spark":
        yield from _segments_on_spark(warehouse, spark, config)
        return
    with warehouse.connect() as conn:
        # Only the columns clustering reads (the mart has ~30 more): the same result at a fraction of the memory.
        columns = present_columns(conn, "marts.customer_features", CLUSTERING_INPUT_COLUMNS)
        features = read_table(conn, "marts.customer_features", columns, order_by="customer_id")
        result = cluster_customers(
            features,
            seed=config.seed,
            k_range=range(config.min_clusters, config.max_clusters + 1),
            n_bootstrap=config.bootstrap_resamples,
        )
        # The shop's own event name behind each event_type_share_<rank> column: generic clusters are named by it.
        top_event_types = read_table(
            conn, "marts.top_event_types", ["feature_column", "source_event_type", "event_share"], order_by="type_rank"
        )
        labels = dict(zip(top_event_types["feature_column"], top_event_types["source_event_type"], strict=True))
        segments = label_segments(result.labels, name_clusters(result.profiles, result.mode, labels))
        write_table(conn, "ml.behavioral_segments", segments)
        write_table(conn, "ml.cluster_profiles", result.profiles)
    sizes = (
        segments["behavioral_segment"].value_counts().rename_axis("behavioral_segment").reset_index(name="customers")
    )
    yield from _segment_results(result, len(segments), sizes, top_event_types)


def _segment_results(result: ClusteringResult, rows: int, sizes: pd.DataFrame, top_event_types: pd.DataFrame):
    """The two materializations of ml__behavioral_segments (both engines)."""
    numbers = {key: dg.MetadataValue.text(str(value)) for key, value in result.metadata().items()}
    yield dg.MaterializeResult(
        asset_key=BEHAVIORAL_SEGMENTS,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(rows),
            **numbers,
            "segment_sizes": markdown_table(sizes),
            "k_scores": markdown_table(result.k_scores),
            "top_event_types": markdown_table(top_event_types),
        },
    )
    yield dg.MaterializeResult(
        asset_key=CLUSTER_PROFILES,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(result.profiles)),
            "mode": dg.MetadataValue.text(result.mode),
        },
    )


def _segments_on_spark(warehouse: Warehouse, spark: SparkEngine, config: ClusteringConfig):
    """SEGMINT_ENGINE=spark: ml.behavioral_segments written by Spark, ml.cluster_profiles from the chunks' partial
    sums (orchestration/lib/spark_segments.py); row count and sizes are read back from the Parquet table."""
    with warehouse.connect() as conn:
        top_event_types = read_table(
            conn, "marts.top_event_types", ["feature_column", "source_event_type", "event_share"], order_by="type_rank"
        )
    labels = dict(zip(top_event_types["feature_column"], top_event_types["source_event_type"], strict=True))
    done = spark_segments.cluster_on_spark(
        spark.session(),
        warehouse.spark_warehouse_dir(),
        lambda profiles, mode: name_clusters(profiles, mode, labels),
        seed=config.seed,
        k_range=range(config.min_clusters, config.max_clusters + 1),
        n_bootstrap=config.bootstrap_resamples,
    )
    with warehouse.connect() as conn:
        write_table(conn, "ml.cluster_profiles", done.profiles)
        warehouse.attach_engine_tables(conn, [spark_segments.SEGMENTS_TABLE])
        sizes = conn.execute(
            "select behavioral_segment, count(*) as customers from ml.behavioral_segments "
            "group by behavioral_segment order by customers desc, behavioral_segment"
        ).df()
        rows, clustered = conn.execute(
            f"select count(*), count(*) filter (where cluster_id <> {NO_WEB_ACTIVITY_CLUSTER}) "
            "from ml.behavioral_segments"
        ).fetchone()
    if rows != done.n_customers:  # counts reconcile: one segment row per customer
        raise ValueError(f"ml.behavioral_segments: {rows:,} rows for {done.n_customers:,} customers")
    # The labels stay in Spark: the result carries the fit, the profiles and the counts.
    no_labels = pd.DataFrame({"customer_id": pd.Series(dtype="object"), "cluster_id": pd.Series(dtype="int64")})
    result = clustering_result(done.fitted, no_labels, done.profiles, n_clustered=int(clustered))
    yield from _segment_results(result, rows, sizes, top_event_types)


@dg.asset(
    key=PROSPECT_SCORES,
    deps=[PROSPECT_FEATURES, PREPURCHASE_BEHAVIOUR, RFM_SEGMENTS],
    group_name=groups.SEGMENTS,
    kinds={"python", "lightgbm", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version="lookalike-v1",
)
def prospect_scores(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per prospect (events, no order): probability of becoming a high-value customer (lookalike score)."""
    with warehouse.connect() as conn:
        early = read_table(conn, "marts.customer_prepurchase_behaviour", order_by="customer_id")
        rfm = read_table(conn, "ml.rfm_segments", order_by="customer_id")
        prospects = read_table(conn, "marts.prospect_features", order_by="prospect_id")
        model = fit_lookalike(early, rfm)
        scores = score_prospects(model, prospects)
        write_table(conn, "ml.prospect_scores", scores)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(scores)),
            **{key: dg.MetadataValue.text(str(value)) for key, value in model.metadata().items()},
        }
    )
