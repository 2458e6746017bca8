"""Segment assets: RFM, behavioural clusters and lookalike prospects, written to schema `ml`."""

import hashlib
import pickle
from dataclasses import dataclass
from datetime import date

import dagster as dg
import duckdb
import pandas as pd
import sklearn

from ml.archetypes import label_segments, name_clusters
from ml.cadence import TrainingSnapshot
from ml.clustering import INPUT_COLUMNS as CLUSTERING_INPUT_COLUMNS
from ml.clustering import (
    NO_WEB_ACTIVITY_CLUSTER,
    ClusteringResult,
    FittedClusters,
    apply_clusters,
    clustering_result,
    fit_clusters,
)
from ml.lookalike import (
    BEHAVIOUR_INPUT_COLUMNS,
    PROSPECT_INPUT_COLUMNS,
    RFM_INPUT_COLUMNS,
    LookalikeModel,
    fit_lookalike,
    score_prospects,
)
from ml.rfm import repurchase_cycle, score_rfm, segment_rule_table
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, SparkEngine, Warehouse
from orchestration.lib import groups, spark_segments
from orchestration.lib.cadence import cadence_line, decide_on_cadence
from orchestration.lib.code_versions import asset_code_versions
from orchestration.lib.keys import (
    BEHAVIORAL_SEGMENTS,
    CLUSTER_MODEL,
    CLUSTER_PROFILES,
    CUSTOMER_FEATURES,
    LOOKALIKE_MODEL,
    PREPURCHASE_BEHAVIOUR,
    PROSPECT_FEATURES,
    PROSPECT_SCORES,
    RAW_RUN_CONTEXT,
    RFM_SEGMENTS,
    TOP_EVENT_TYPES,
)
from orchestration.lib.metadata import markdown_table
from orchestration.lib.settings import Settings
from orchestration.lib.warehouse_io import present_columns, read_table, table_exists, write_table

FEATURES_CHECK = dg.AssetCheckKey(CUSTOMER_FEATURES, "gx_customer_features")


class ClusteringConfig(dg.Config):
    """Clustering knobs, editable in the launchpad; k itself is chosen from the data within this range."""

    min_clusters: int = 3
    max_clusters: int = 8
    bootstrap_resamples: int = 20
    seed: int = 0
    # Refit the clustering on this run whatever the cadence says (as SEGMINT_FORCE_REFIT=1 does for every model).
    force_refit: bool = False


# The step's code version, computed from its code (orchestration/lib/code_versions.py): part of the pinned fit's
# snapshot, so any code edit the step reaches refits the clustering once (ml/cadence.py rule 4), as a bump did.
CLUSTERS_CODE_VERSION = asset_code_versions()["behavioral_segments"]
CLUSTER_MODEL_TABLE = "ml.cluster_model"
# Training-window measures of the clustering (ml/cadence.py rule 6): SQL aggregates, nothing is loaded. Counts,
# not column means: a share whose mean is near 0 would "move" 100 % on noise; the weekly refit catches drift.
CLUSTER_MEASURES = {
    "customers": "count(*)",
    "customers_with_web_events": "count_if(has_web_events)",
    "events": "coalesce(sum(event_count), 0)",
    "orders": "coalesce(sum(order_count), 0)",
}
CLUSTER_MEASURE_COLUMNS = {
    "customers_with_web_events": "has_web_events",
    "events": "event_count",
    "orders": "order_count",
}


@dataclass(frozen=True)
class PinnedClusters:
    """The clustering fit ml/cluster_model holds: its key, when and why it was fitted, on what, and the fit."""

    key: str
    fitted_as_of: date | None
    reason: str
    snapshot: TrainingSnapshot
    blob: bytes  # the pickled FittedClusters, unpickled only when kept (a new scikit-learn refits before reading it)

    @property
    def fitted(self) -> FittedClusters:
        return pickle.loads(self.blob)


def clustering_snapshot(
    conn: duckdb.DuckDBPyConnection, settings: Settings, config: ClusteringConfig
) -> TrainingSnapshot:
    """What a clustering fit is made on, as ml/cadence.py compares it: customer/web/event/order counts of
    marts.customer_features, and the settings that shape the fit (input columns and their types, the shop's top
    event types behind the generic share columns, the k range, resamples and seed, the code and scikit-learn
    versions)."""
    as_of = (
        conn.execute("select as_of from raw.run_context").fetchone()[0]
        if table_exists(conn, "raw.run_context")
        else settings.as_of
    )
    present = set(present_columns(conn, "marts.customer_features", list(CLUSTER_MEASURE_COLUMNS.values())))
    selected = [
        f"{sql} as {name}"
        for name, sql in CLUSTER_MEASURES.items()
        if CLUSTER_MEASURE_COLUMNS.get(name) in present | {None}
    ]
    row = conn.execute(f"select {', '.join(selected)} from marts.customer_features").df().iloc[0]
    inputs = conn.execute(
        "select column_name, data_type from information_schema.columns where table_schema = 'marts' "
        "and table_name = 'customer_features' order by ordinal_position"
    ).fetchall()
    inputs = [column for column in inputs if column[0] in CLUSTERING_INPUT_COLUMNS]
    top_types = (
        conn.execute("select feature_column, source_event_type from marts.top_event_types order by all").fetchall()
        if table_exists(conn, "marts.top_event_types")
        else []
    )
    fit_config = (
        f"k={config.min_clusters}-{config.max_clusters},bootstrap={config.bootstrap_resamples},seed={config.seed}"
    )
    return TrainingSnapshot(
        as_of,
        {f"scoring.{name}": float(value) for name, value in row.items()},
        {
            "feature_columns": hashlib.sha256(repr((inputs, top_types)).encode()).hexdigest()[:12],
            "code_versions": f"behavioral_segments={CLUSTERS_CODE_VERSION},{fit_config}",
            "library_versions": f"scikit-learn={sklearn.__version__}",
        },
    )


def pinned_clusters(conn: duckdb.DuckDBPyConnection) -> PinnedClusters | None:
    """The clustering fit stored in ml.cluster_model (None on the first run)."""
    if not table_exists(conn, CLUSTER_MODEL_TABLE):
        return None
    row = conn.execute(
        f"select model_version, fitted_as_of, refit_reason, snapshot, model_blob from {CLUSTER_MODEL_TABLE} limit 1"
    ).fetchone()
    if row is None:
        return None
    return PinnedClusters(row[0], row[1], row[2], TrainingSnapshot.from_json(row[3]), bytes(row[4]))


@dg.asset(
    key=RFM_SEGMENTS,
    deps=[CUSTOMER_FEATURES],
    group_name=groups.SEGMENTS,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["rfm_segments"],
)
def rfm_segments(warehouse: Warehouse, settings: SegmintSettings) -> dg.MaterializeResult:
    """One row per customer: recency, frequency and monetary scores (1-5) and the named RFM segment."""
    horizon_days = settings.load().horizon_days
    with warehouse.connect() as conn:
        features = read_table(
            conn,
            "marts.customer_features",
            ["customer_id", "recency_days", "order_count", "total_revenue", "tenure_days"],
            order_by="customer_id",
        )
        history_days = int(features["tenure_days"].max()) if len(features) else 0
        cycle = repurchase_cycle(history_days, horizon_days)
        scores = score_rfm(features, cycle)
        write_table(conn, "ml.rfm_segments", scores)
    sizes = scores["rfm_segment"].value_counts().rename_axis("rfm_segment").reset_index(name="customers")
    floored = int((scores["named_recency_score"] != scores["recency_score"]).sum())
    cycle_metadata = (
        {
            "repurchase_cycle_days": dg.MetadataValue.float(cycle.days),
            "repurchase_cycle": dg.MetadataValue.text(cycle.source),
        }
        if cycle
        else {
            "repurchase_cycle": dg.MetadataValue.text(
                f"none: {history_days} days of orders, at least one CLV horizon of {horizon_days}: named by the "
                "recency quintiles"
            )
        }
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(scores)),
            "segment_sizes": markdown_table(sizes),
            **cycle_metadata,
            # Customers whose name was read from a raised recency score (a young shop's, not named lapsing).
            "named_above_recency_quintile": dg.MetadataValue.int(floored),
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
            code_version=CLUSTERS_CODE_VERSION,
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
            code_version=CLUSTERS_CODE_VERSION,
        ),
        dg.AssetSpec(
            CLUSTER_MODEL,
            deps=[CUSTOMER_FEATURES, TOP_EVENT_TYPES, RAW_RUN_CONTEXT],
            description=(
                "One row: the pinned clustering fit (mode, columns, scaler, KMeans, chosen k; pickled) with its "
                "model_version, fitted_as_of, refit_reason and training snapshot; refitted on the model cadence "
                "(ml/cadence.py), its data version is the fit key."
            ),
            group_name=groups.SEGMENTS,
            kinds={"python", "scikitlearn", "duckdb"},
            code_version=CLUSTERS_CODE_VERSION,
            # The Spark engine fits on every run and stores no pinned fit (orchestration/lib/spark_segments.py).
            skippable=True,
        ),
    ],
    # The op keeps the name it had as a single asset, so launchpad configs (ops: ml__behavioral_segments) still apply.
    name="ml__behavioral_segments",
    op_tags=DUCKDB_TAG,
)
def behavioral_segments(warehouse: Warehouse, spark: SparkEngine, settings: SegmintSettings, config: ClusteringConfig):
    """Behavioural clusters of the customers and their profiles; the clustering fit is pinned on the model cadence.

    The fit (mode, scaler, KMeans, the choice of k: most of this step at 1 M customers) is refitted only when
    ml.cadence.decide_refit says so (forced, first run, backfill, settings/code/scikit-learn changed, the fit is
    SEGMINT_MODEL_REFIT_DAYS old, or the customer/web/event/order counts moved > 5 %), the same rule as the CLV
    chain; every other day the pinned fit from ml.cluster_model assigns every customer (a pure function of the fit,
    ml.clustering.assign_clusters) and today's profiles are computed. An unchanged day therefore gives identical
    segments, and a refit day gives exactly what a fit on that day always gave. The `cadence` metadata says which.

    SEGMINT_ENGINE=spark: fitted on a bounded sample and every customer assigned in Spark in chunks, with the same
    fit and the same assignment function as here (`_segments_on_spark`, orchestration/lib/spark_segments.py); that
    engine refits on every run."""
    if warehouse.resolved_engine() == "spark":
        yield from _segments_on_spark(warehouse, spark, config)
        return
    s = settings.load()
    with warehouse.connect() as conn:
        current = clustering_snapshot(conn, s, config)
        pinned = pinned_clusters(conn)
        decision = decide_on_cadence(pinned.snapshot if pinned else None, current, s, config.force_refit)
        # Only the columns clustering reads (the mart has ~30 more): the same result at a fraction of the memory.
        columns = present_columns(conn, "marts.customer_features", CLUSTERING_INPUT_COLUMNS)
        features = read_table(conn, "marts.customer_features", columns, order_by="customer_id")
        if decision.refit:
            fitted = fit_clusters(
                features,
                seed=config.seed,
                k_range=range(config.min_clusters, config.max_clusters + 1),
                n_bootstrap=config.bootstrap_resamples,
            )
            pin = PinnedClusters(current.key, current.as_of, decision.reason, current, pickle.dumps(fitted))
            write_table(conn, CLUSTER_MODEL_TABLE, _cluster_model_row(pin, fitted))
        else:
            pin, fitted = pinned, pinned.fitted
        cadence = cadence_line(decision, f"clustering fit {pin.key}", pin.fitted_as_of, pin.snapshot.fingerprint)
        result = apply_clusters(features, fitted)
        # The shop's own event name behind each event_type_share_<rank> column: generic clusters are named by it.
        top_event_types = read_table(
            conn, "marts.top_event_types", ["feature_column", "source_event_type", "event_share"], order_by="type_rank"
        )
        labels = dict(zip(top_event_types["feature_column"], top_event_types["source_event_type"], strict=True))
        segments = label_segments(result.labels, name_clusters(result.profiles, result.mode, labels, result.k))
        write_table(conn, "ml.behavioral_segments", segments)
        write_table(conn, "ml.cluster_profiles", result.profiles)
    sizes = (
        segments["behavioral_segment"].value_counts().rename_axis("behavioral_segment").reset_index(name="customers")
    )
    cadence_metadata = {
        "cadence": dg.MetadataValue.text(cadence),
        "model_version": dg.MetadataValue.text(pin.key),
        "fitted_as_of": dg.MetadataValue.text(str(pin.fitted_as_of)),
    }
    yield from _segment_results(result, len(segments), sizes, top_event_types, cadence_metadata)
    yield dg.MaterializeResult(
        asset_key=CLUSTER_MODEL,
        metadata={**cadence_metadata, "training_fingerprint": dg.MetadataValue.text(pin.snapshot.fingerprint)},
        data_version=dg.DataVersion(pin.key),
    )


def _cluster_model_row(pin: PinnedClusters, fitted: FittedClusters) -> pd.DataFrame:
    """ml.cluster_model: one row, the pinned fit and what it was fitted on."""
    return pd.DataFrame(
        {
            "model_version": [pin.key],
            "fitted_as_of": pd.Series([pin.fitted_as_of], dtype="object"),
            "refit_reason": [pin.reason],
            "mode": [fitted.mode],
            "k": [fitted.k],
            "snapshot": [pin.snapshot.to_json()],
            "model_blob": [pin.blob],
        }
    )


def _segment_results(
    result: ClusteringResult,
    rows: int,
    sizes: pd.DataFrame,
    top_event_types: pd.DataFrame,
    cadence: dict[str, dg.MetadataValue] | None = None,
):
    """The segments and profiles materializations of ml__behavioral_segments (both engines)."""
    numbers = {key: dg.MetadataValue.text(str(value)) for key, value in result.metadata().items()}
    yield dg.MaterializeResult(
        asset_key=BEHAVIORAL_SEGMENTS,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(rows),
            **(cadence or {}),
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


def read_lookalike_training(conn: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pre-purchase behaviour, RFM segments): the columns fit_lookalike reads, in customer order."""
    early_columns = present_columns(conn, "marts.customer_prepurchase_behaviour", BEHAVIOUR_INPUT_COLUMNS)
    early = read_table(conn, "marts.customer_prepurchase_behaviour", early_columns, order_by="customer_id")
    rfm = read_table(
        conn, "ml.rfm_segments", present_columns(conn, "ml.rfm_segments", RFM_INPUT_COLUMNS), order_by="customer_id"
    )
    return early, rfm


# The fitted lookalike, one row: ml/prospect_scores fits it and scores the prospects with it; realtime/serving_bundle
# packs this very model (it used to refit it from the same inputs: the same model, fitted and read twice per run).
LOOKALIKE_MODEL_TABLE = "ml.lookalike_model"


def lookalike_model_row(model: LookalikeModel) -> pd.DataFrame:
    """The ml.lookalike_model row: the pickled model, its version (sha256 of the pickle) and what the UI shows."""
    blob = pickle.dumps(model)
    return pd.DataFrame(
        {
            "model_version": [hashlib.sha256(blob).hexdigest()[:12]],
            "method": [model.method],
            "holdout_auc": [float(model.holdout_auc)],
            "n_train": [model.n_train],
            "n_positive": [model.n_positive],
            "model_blob": [blob],
        }
    )


def read_lookalike_model(conn: duckdb.DuckDBPyConnection) -> tuple[LookalikeModel, str]:
    """(the model ml/prospect_scores stored, its version); a clear error when it is missing or does not match."""
    if not table_exists(conn, LOOKALIKE_MODEL_TABLE):
        raise ValueError(f"{LOOKALIKE_MODEL_TABLE} does not exist: materialize ml/prospect_scores first")
    rows = conn.execute(f"select model_version, model_blob from {LOOKALIKE_MODEL_TABLE}").fetchall()
    if len(rows) != 1:
        raise ValueError(f"{LOOKALIKE_MODEL_TABLE} must hold exactly one model, found {len(rows)}")
    version, blob = rows[0][0], bytes(rows[0][1])
    if hashlib.sha256(blob).hexdigest()[:12] != version:
        raise ValueError(f"{LOOKALIKE_MODEL_TABLE}: the stored model does not match its version {version}")
    return pickle.loads(blob), version


LOOKALIKE_CODE_VERSION = asset_code_versions()["prospect_scores"]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            PROSPECT_SCORES,
            deps=[PROSPECT_FEATURES, PREPURCHASE_BEHAVIOUR, RFM_SEGMENTS],
            description="One row per prospect (events, no order): the lookalike score.",
            group_name=groups.SEGMENTS,
            kinds={"python", "scikitlearn", "duckdb"},
            code_version=LOOKALIKE_CODE_VERSION,
        ),
        dg.AssetSpec(
            LOOKALIKE_MODEL,
            deps=[PREPURCHASE_BEHAVIOUR, RFM_SEGMENTS],
            description=(
                "One row: the lookalike model that scored ml.prospect_scores (pickled, with its model_version, "
                "method and holdout AUC); the serving bundle packs this model."
            ),
            group_name=groups.SEGMENTS,
            kinds={"python", "scikitlearn", "duckdb"},
            code_version=LOOKALIKE_CODE_VERSION,
        ),
    ],
    # The op keeps the name it had as a single asset (ml__prospect_scores).
    name="ml__prospect_scores",
    op_tags=DUCKDB_TAG,
)
def prospect_scores(warehouse: Warehouse):
    """One row per prospect (events, no order): probability of becoming a high-value customer (lookalike score);
    and the fitted lookalike itself (ml.lookalike_model), fitted here once per run."""
    with warehouse.connect() as conn:
        early = read_lookalike_training(conn)
        columns = present_columns(conn, "marts.prospect_features", PROSPECT_INPUT_COLUMNS)
        prospects = read_table(conn, "marts.prospect_features", columns, order_by="prospect_id")
        model = fit_lookalike(*early)
        scores = score_prospects(model, prospects)
        row = lookalike_model_row(model)
        conn.execute("begin transaction")  # the scores and the model that gave them, together
        write_table(conn, "ml.prospect_scores", scores)
        write_table(conn, LOOKALIKE_MODEL_TABLE, row)
        conn.execute("commit")
    details = {key: dg.MetadataValue.text(str(value)) for key, value in model.metadata().items()}
    version = str(row["model_version"].iloc[0])
    yield dg.MaterializeResult(
        asset_key=PROSPECT_SCORES,
        metadata={"dagster/row_count": dg.MetadataValue.int(len(scores)), "model_version": version, **details},
    )
    yield dg.MaterializeResult(
        asset_key=LOOKALIKE_MODEL,
        metadata={"dagster/row_count": dg.MetadataValue.int(1), "model_version": version, **details},
        data_version=dg.DataVersion(version),
    )
