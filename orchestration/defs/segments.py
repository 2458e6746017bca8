"""Segment assets: RFM, behavioural clusters and lookalike prospects, written to schema `ml`."""

import dagster as dg

from ml.archetypes import label_segments, name_clusters
from ml.clustering import INPUT_COLUMNS as CLUSTERING_INPUT_COLUMNS
from ml.clustering import cluster_customers
from ml.lookalike import fit_lookalike, score_prospects
from ml.rfm import score_rfm, segment_rule_table
from orchestration.defs.resources import DUCKDB_TAG, Warehouse
from orchestration.lib import groups
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
from orchestration.lib.warehouse_io import read_table, write_table

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
def behavioral_segments(warehouse: Warehouse, config: ClusteringConfig):
    """Behavioural clusters of the customers and their profiles: one fit, two tables."""
    with warehouse.connect() as conn:
        # Only the columns clustering reads (the mart has ~30 more): the same result at a fraction of the memory.
        present = {row[0] for row in conn.execute("describe marts.customer_features").fetchall()}
        columns = [column for column in CLUSTERING_INPUT_COLUMNS if column in present]
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
    numbers = {key: dg.MetadataValue.text(str(value)) for key, value in result.metadata().items()}
    yield dg.MaterializeResult(
        asset_key=BEHAVIORAL_SEGMENTS,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(segments)),
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
