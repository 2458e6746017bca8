"""CLV and purchase-propensity assets: every candidate back-tested and the champion chosen, the champion refitted
as the production model, predictions with intervals, and the activation gate.

The model-quality gate guards activation, not insight: scores, segments, cards and the report always materialize
with the best available model (its metrics are in ml.clv_model_evaluation, read by people as the dbt view
marts.clv_model_evaluation). Only `ml/clv_activation_gate`
carries the blocking check, and only the audience syncs and the value-based exports depend on it
(orchestration/defs/audiences.py), so a shop whose model fails the gate still gets every score while nothing
model-driven leaves for an ad platform or CRM. `make run` reports that case as a one-line warning (cli.py).
"""

import hashlib
import pickle

import dagster as dg
import pandas as pd

from ml.champion import EVALUATION as EVALUATION_WINDOW
from ml.champion import champion_backtest, fit_champion, predict_champion
from ml.charts import decile_chart_png, feature_importance_png
from ml.clv import feature_importance
from ml.evaluation import (
    DEFAULT_CALIBRATION_BAND,
    DEFAULT_RANKING_FLOOR_SPEARMAN,
    quality_gate,
)
from orchestration.defs.btyd import read_btyd_fits
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, Warehouse
from orchestration.lib import groups
from orchestration.lib.keys import (
    ACTIVATION_GATE_CHECK,
    BTYD_FITS,
    CLV_ACTIVATION_GATE,
    CLV_MODEL,
    CLV_MODEL_EVALUATION,
    CLV_PREDICTIONS,
    CUSTOMER_FEATURES,
    CUSTOMER_FEATURES_SELECTION,
    CUSTOMER_FEATURES_TRAIN,
    INT_CUTOFFS,
    STG_ORDERS,
)
from orchestration.lib.metadata import markdown_table, png_image
from orchestration.lib.warehouse_io import read_table, write_table

# Python writes schema `ml`; dbt publishes it as the view marts.clv_model_evaluation (the contract name, issue 13).
EVALUATION_TABLE = "ml.clv_model_evaluation"
# The shop's revenue per order date up to the as-of date: what the seasonality decision measures (ml/champion.py).
DAILY_REVENUE_SQL = """
    select orders.ordered_on, sum(case when orders.is_refund then 0 else orders.order_amount end) as revenue
    from staging.stg_orders as orders, intermediate.int_cutoffs as cutoffs
    where not orders.is_cancelled and orders.ordered_on <= cutoffs.scoring_cutoff
    group by orders.ordered_on
    order by orders.ordered_on
"""
# The production model lives in the warehouse it was trained for (one row, the pickled blob and its version), so
# two warehouses sharing a data folder never read each other's model; clv_predictions reads exactly that row.
MODEL_TABLE = "ml.clv_model"
SHOWN_COLUMNS = [
    "model",
    "backtest_window",
    "is_champion",
    "n_customers",
    "spearman",
    "normalized_gini",
    "decile_mape",
    "calibration_ratio",
    "raw_decile_mape",
    "raw_calibration_ratio",
    "propensity_auc",
    "interval_coverage",
    "note",
]


class ClvConfig(dg.Config):
    """Model knobs editable in the launchpad (defaults are the measured choice, see ml/clv.py and ml/champion.py)."""

    seed: int = 0
    holdout_share: float = 0.3  # share of E's customers forecast in short-history mode
    max_train_rows: int = 200_000


@dg.asset(
    key=CLV_MODEL_EVALUATION,
    deps=[CUSTOMER_FEATURES_TRAIN, CUSTOMER_FEATURES_SELECTION, STG_ORDERS, INT_CUTOFFS, BTYD_FITS],
    group_name=groups.CLV,
    kinds={"python", "lightgbm", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version="clv-champion-v1",
)
def clv_model_evaluation(warehouse: Warehouse, settings: SegmintSettings, config: ClvConfig) -> dg.MaterializeResult:
    """Two rows per CLV candidate (selection and evaluation halves): back-test metrics, calibration, champion."""
    horizon = settings.load().horizon_days
    with warehouse.connect() as conn:
        train = read_table(conn, "marts.customer_features_train", order_by="customer_id")
        selection = read_table(conn, "marts.customer_features_selection", order_by="customer_id")
        daily = conn.execute(DAILY_REVENUE_SQL).df()
        train_fits, selection_fits = read_btyd_fits(conn, "train"), read_btyd_fits(conn, "selection")
    daily_revenue = pd.Series(daily["revenue"].to_numpy(float), index=pd.to_datetime(daily["ordered_on"]))
    result = champion_backtest(
        train,
        horizon,
        selection,
        seed=config.seed,
        holdout_share=config.holdout_share,
        max_train_rows=config.max_train_rows,
        daily_revenue=daily_revenue,
        evaluation_fits=train_fits,
        selection_fits=selection_fits,
    )
    table = result.evaluation.assign(horizon_days=horizon, n_fit=result.n_fit)
    with warehouse.connect() as conn:
        write_table(conn, EVALUATION_TABLE, table)
    reported = table[table["backtest_window"] == EVALUATION_WINDOW]
    per_metric = {
        f"{row['model']}/{metric}": dg.MetadataValue.float(float(row[metric]))
        for _, row in reported.iterrows()
        for metric in ("spearman", "decile_mape", "calibration_ratio", "propensity_auc", "interval_coverage")
        if pd.notna(row[metric])
    }
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "champion": dg.MetadataValue.text(result.champion),
            "why_champion": dg.MetadataValue.text(result.reason),
            "mode": dg.MetadataValue.text(result.mode),
            "seasonality": dg.MetadataValue.text(str(table["seasonality"].iloc[0]) if len(table) else "none"),
            "evaluation": markdown_table(table[SHOWN_COLUMNS]),
            "calibration": markdown_table(
                table.loc[table["backtest_window"] == EVALUATION_WINDOW, ["model", "calibration"]]
            ),
            "decile_calibration_chart": png_image(
                decile_chart_png(result.decile_tables), "calibrated predicted vs actual by decile (evaluation half)"
            ),
            "n_fit_customers": dg.MetadataValue.int(result.n_fit),
            "n_selection_customers": dg.MetadataValue.int(result.n_selection),
            "n_evaluation_customers": dg.MetadataValue.int(result.n_evaluation),
            "notes": dg.MetadataValue.text(" ".join(result.notes) or "none"),
            **per_metric,
        }
    )


@dg.asset(
    key=CLV_ACTIVATION_GATE,
    deps=[CLV_MODEL_EVALUATION],
    group_name=groups.CLV,
    kinds={"python"},
    op_tags=DUCKDB_TAG,
    code_version="clv-activation-gate-v1",
)
def clv_activation_gate(warehouse: Warehouse) -> dg.MaterializeResult:
    """Activation gate: audience syncs and value-based exports run only once its blocking check has passed.

    It stores nothing: its check (check_clv_model_beats_baselines) reads ml.clv_model_evaluation, and a failed
    check skips the syncs and value-based exports that depend on this asset, never the scores or the report.
    """
    with warehouse.connect() as conn:
        evaluation = read_table(conn, EVALUATION_TABLE)
    gate = quality_gate(evaluation)
    return dg.MaterializeResult(
        metadata={
            "gate": dg.MetadataValue.text("passes" if gate.passed else "blocks activation: " + "; ".join(gate.reasons)),
            "actual": dg.MetadataValue.json(gate.actual),
            "thresholds": dg.MetadataValue.json(gate.thresholds),
        }
    )


@dg.asset_check(
    asset=ACTIVATION_GATE_CHECK.asset_key,
    name=ACTIVATION_GATE_CHECK.name,
    description=(
        "Blocking model-quality gate on activation: audience syncs and value-based exports run only when at least "
        "one CLV candidate ranks above the Spearman floor and is calibrated within the band on the evaluation half "
        "(ml.evaluation.quality_gate). Scores, segments and the report are not blocked."
    ),
    blocking=True,
    op_tags=DUCKDB_TAG,
)
def check_clv_model_beats_baselines(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as conn:
        evaluation = read_table(conn, EVALUATION_TABLE)
    gate = quality_gate(evaluation)
    return dg.AssetCheckResult(
        passed=gate.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="a CLV candidate passes the gate" if gate.passed else gate.reasons[0],
        metadata={
            "actual": dg.MetadataValue.json(gate.actual),
            "thresholds": dg.MetadataValue.json(gate.thresholds),
            "ranking_floor_spearman": dg.MetadataValue.float(DEFAULT_RANKING_FLOOR_SPEARMAN),
            "calibration_band": dg.MetadataValue.text(str(DEFAULT_CALIBRATION_BAND)),
        },
    )


@dg.asset(
    key=CLV_MODEL,
    deps=[CUSTOMER_FEATURES_TRAIN, CLV_MODEL_EVALUATION, BTYD_FITS],
    group_name=groups.CLV,
    kinds={"python", "lightgbm", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version="clv-model-v2",
)
def clv_model(warehouse: Warehouse, settings: SegmintSettings, config: ClvConfig) -> dg.MaterializeResult:
    """One row: the champion refitted on every training customer, with its calibration and intervals (pickled)."""
    s = settings.load()
    with warehouse.connect() as conn:
        train = read_table(conn, "marts.customer_features_train", order_by="customer_id")
        evaluation = read_table(conn, EVALUATION_TABLE)
        train_fits = read_btyd_fits(conn, "train")
    model = fit_champion(
        train, s.horizon_days, evaluation, seed=config.seed, max_train_rows=config.max_train_rows, train_fits=train_fits
    )
    blob = pickle.dumps(model)
    version = hashlib.sha256(blob).hexdigest()[:12]
    # A copy named by its content for people who want the file; nothing reads it back.
    s.models_dir.mkdir(parents=True, exist_ok=True)
    (s.models_dir / f"clv_model-{version}.pkl").write_bytes(blob)
    row = pd.DataFrame(
        [
            {
                "model_version": version,
                "clv_model": model.name,
                "mode": model.mode,
                "calibration": model.calibration.method,
                "seasonal_factor": model.seasonal_factor,
                "horizon_days": s.horizon_days,
                "n_train_rows": len(train),
                "model_blob": blob,
            }
        ]
    )
    with warehouse.connect() as conn:
        write_table(conn, MODEL_TABLE, row)
    metadata = {
        "model_version": dg.MetadataValue.text(version),
        "clv_model": dg.MetadataValue.text(model.name),
        "mode": dg.MetadataValue.text(model.mode),
        "calibration": dg.MetadataValue.text(model.calibration.method),
        "seasonality": dg.MetadataValue.text(model.seasonality),
        "n_train_rows": dg.MetadataValue.int(len(train)),
        "notes": dg.MetadataValue.text(" ".join(model.notes) or "none"),
    }
    models = model.fitted.models
    if models is not None:
        metadata["fallback"] = dg.MetadataValue.text(models.fallback_reason or "none")
        importance = feature_importance(models)
        if len(importance):
            metadata["feature_importance"] = png_image(feature_importance_png(importance), "feature importance (gain)")
            metadata["top_features"] = markdown_table(importance.head(15).rename("gain_share").reset_index())
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version))


def load_model(blob: bytes, version: str):
    """Unpickle the model row of ml.clv_model, refusing a blob that does not match its recorded version."""
    if hashlib.sha256(blob).hexdigest()[:12] != version:
        raise ValueError(f"{MODEL_TABLE}: the stored model does not match its version {version}")
    return pickle.loads(blob)


@dg.asset(
    key=CLV_PREDICTIONS,
    deps=[CUSTOMER_FEATURES, CLV_MODEL, BTYD_FITS],
    group_name=groups.CLV,
    kinds={"python", "lightgbm", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version="clv-predict-v2",
)
def clv_predictions(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per customer: predicted CLV over the horizon with p10/p90, propensity, top drivers, model name."""
    with warehouse.connect() as conn:
        stored = conn.execute(f"select model_version, model_blob from {MODEL_TABLE}").fetchall()
        features = read_table(conn, "marts.customer_features", order_by="customer_id")
        scoring_fits = read_btyd_fits(conn, "scoring")
    if len(stored) != 1:
        raise ValueError(f"{MODEL_TABLE} must hold exactly one model, found {len(stored)}: materialize ml/clv_model")
    version, blob = stored[0]
    model = load_model(bytes(blob), version)
    predictions = predict_champion(model, features, fits=scoring_fits).assign(model_version=version)
    with warehouse.connect() as conn:
        write_table(conn, "ml.clv_predictions", predictions)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(predictions)),
            "model_version": dg.MetadataValue.text(version),
            "clv_model": dg.MetadataValue.text(model.name),
            "total_predicted_clv": dg.MetadataValue.float(float(predictions["predicted_clv"].sum())),
            "total_predicted_clv_p10": dg.MetadataValue.float(float(predictions["predicted_clv_p10"].sum())),
            "total_predicted_clv_p90": dg.MetadataValue.float(float(predictions["predicted_clv_p90"].sum())),
            "mean_purchase_propensity": dg.MetadataValue.float(float(predictions["purchase_propensity"].mean())),
        }
    )
