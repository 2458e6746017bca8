"""CLV and purchase-propensity assets: back-test vs baselines, final model, predictions, and the activation gate.

The model-quality gate guards activation, not insight: scores, segments, cards and the report always materialize
with the best available model (its metrics are in marts.clv_model_evaluation). Only `ml/clv_activation_gate`
carries the blocking check, and only the audience syncs and the value-based exports depend on it
(orchestration/defs/audiences.py), so a shop whose model fails the gate still gets every score while nothing
model-driven leaves for an ad platform or CRM. `make run` reports that case as a one-line warning (cli.py).
"""


import hashlib
import pickle

import dagster as dg
import pandas as pd

from ml.charts import decile_chart_png, feature_importance_png
from ml.clv import backtest, feature_importance, fit_clv_models, predict
from ml.evaluation import DEFAULT_CALIBRATION_BAND, DEFAULT_RANKING_FLOOR_SPEARMAN, MODEL_NAME, quality_gate
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, Warehouse
from orchestration.lib import groups
from orchestration.lib.metadata import markdown_table, png_image
from orchestration.lib.warehouse_io import read_table, write_table

TRAINING_SET = dg.AssetKey(["marts", "customer_features_train"])
CUSTOMER_FEATURES = dg.AssetKey(["marts", "customer_features"])
EVALUATION = dg.AssetKey(["marts", "clv_model_evaluation"])
ACTIVATION_GATE = dg.AssetKey(["ml", "clv_activation_gate"])
GATE_CHECK_NAME = "check_clv_model_beats_baselines"
GATE_CHECK = dg.AssetCheckKey(ACTIVATION_GATE, GATE_CHECK_NAME)
MODEL_FILE = "clv_model.pkl"


class ClvConfig(dg.Config):
    """Model knobs editable in the launchpad (defaults are the measured choice, see ml/clv.py)."""

    objective: str = "tweedie"
    seed: int = 0
    holdout_share: float = 0.3
    max_train_rows: int = 200_000


@dg.asset(
    key=EVALUATION.path,
    deps=[TRAINING_SET],
    group_name=groups.CLV,
    kinds={"python", "lightgbm", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version="clv-backtest-v1",
)
def clv_model_evaluation(
    warehouse: Warehouse, settings: SegmintSettings, config: ClvConfig
) -> dg.MaterializeResult:
    """One row per model (LightGBM, past-spend rate, BTYD): back-test metrics on held-out customers."""
    horizon = settings.load().horizon_days
    with warehouse.connect() as conn:
        train = read_table(conn, "marts.customer_features_train", order_by="customer_id")
        result = backtest(train, horizon, seed=config.seed, holdout_share=config.holdout_share, objective=config.objective)
        table = result.evaluation.assign(horizon_days=horizon, n_fit=result.n_fit, n_holdout=result.n_holdout)
        write_table(conn, "marts.clv_model_evaluation", table)
    per_metric = {
        f"{row['model']}/{metric}": dg.MetadataValue.float(float(row[metric]))
        for _, row in result.evaluation.iterrows()
        for metric in ("spearman", "normalized_gini", "decile_mape", "calibration_ratio", "top20_capture", "propensity_auc")
        if pd.notna(row[metric])
    }
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "evaluation": markdown_table(result.evaluation),
            "decile_calibration_chart": png_image(decile_chart_png(result.decile_tables), "predicted vs actual by decile"),
            "n_fit_customers": dg.MetadataValue.int(result.n_fit),
            "n_holdout_customers": dg.MetadataValue.int(result.n_holdout),
            "notes": dg.MetadataValue.text(" ".join(result.notes) or "none"),
            **per_metric,
        }
    )


@dg.asset(
    key=ACTIVATION_GATE.path,
    deps=[EVALUATION],
    group_name=groups.CLV,
    kinds={"python"},
    op_tags=DUCKDB_TAG,
    code_version="clv-activation-gate-v1",
)
def clv_activation_gate(warehouse: Warehouse) -> dg.MaterializeResult:
    """Activation gate: audience syncs and value-based exports run only once its blocking check has passed.

    It stores nothing: its check (check_clv_model_beats_baselines) reads marts.clv_model_evaluation, and a failed
    check skips the syncs and value-based exports that depend on this asset, never the scores or the report.
    """
    with warehouse.connect() as conn:
        evaluation = read_table(conn, "marts.clv_model_evaluation")
    gate = quality_gate(evaluation)
    return dg.MaterializeResult(
        metadata={
            "gate": dg.MetadataValue.text("passes" if gate.passed else "blocks activation: " + "; ".join(gate.reasons)),
            "actual": dg.MetadataValue.json(gate.actual),
            "thresholds": dg.MetadataValue.json(gate.thresholds),
        }
    )


@dg.asset_check(
    asset=ACTIVATION_GATE,
    name=GATE_CHECK_NAME,
    description=(
        "Blocking model-quality gate on activation: audience syncs and value-based exports run only when the CLV "
        "model ranks above the Spearman floor and is calibrated within the band (ml.evaluation.quality_gate). "
        "Scores, segments and the report are not blocked."
    ),
    blocking=True,
    op_tags=DUCKDB_TAG,
)
def check_clv_model_beats_baselines(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as conn:
        evaluation = read_table(conn, "marts.clv_model_evaluation")
    gate = quality_gate(evaluation)
    return dg.AssetCheckResult(
        passed=gate.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="model passes the gate" if gate.passed else "; ".join(gate.reasons),
        metadata={
            "actual": dg.MetadataValue.json(gate.actual),
            "thresholds": dg.MetadataValue.json(gate.thresholds),
            "ranking_floor_spearman": dg.MetadataValue.float(DEFAULT_RANKING_FLOOR_SPEARMAN),
            "calibration_band": dg.MetadataValue.text(str(DEFAULT_CALIBRATION_BAND)),
        },
    )


@dg.asset(
    key=["ml", "clv_model"],
    deps=[TRAINING_SET, EVALUATION],
    group_name=groups.CLV,
    kinds={"python", "lightgbm"},
    op_tags=DUCKDB_TAG,
    code_version="clv-model-v1",
)
def clv_model(warehouse: Warehouse, settings: SegmintSettings, config: ClvConfig) -> dg.MaterializeResult:
    """The CLV and propensity models fitted on every training customer, saved under data/models/."""
    s = settings.load()
    with warehouse.connect() as conn:
        train = read_table(conn, "marts.customer_features_train", order_by="customer_id")
    models = fit_clv_models(train, seed=config.seed, max_train_rows=config.max_train_rows, objective=config.objective)
    blob = pickle.dumps(models)
    version = hashlib.sha256(blob).hexdigest()[:12]
    s.models_dir.mkdir(parents=True, exist_ok=True)
    (s.models_dir / f"clv_model-{version}.pkl").write_bytes(blob)
    (s.models_dir / MODEL_FILE).write_bytes(blob)
    importance = feature_importance(models)
    metadata = {
        "model_version": dg.MetadataValue.text(version),
        "objective": dg.MetadataValue.text(models.objective),
        "n_train_rows": dg.MetadataValue.int(models.n_train_rows),
        "notes": dg.MetadataValue.text(" ".join(models.notes) or "none"),
        "fallback": dg.MetadataValue.text(models.fallback_reason or "none"),
    }
    if len(importance):
        metadata["feature_importance"] = png_image(feature_importance_png(importance), "feature importance (gain)")
        metadata["top_features"] = markdown_table(importance.head(15).rename("gain_share").reset_index())
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version))


@dg.asset(
    key=["ml", "clv_predictions"],
    deps=[CUSTOMER_FEATURES, dg.AssetKey(["ml", "clv_model"])],
    group_name=groups.CLV,
    kinds={"python", "lightgbm", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version="clv-predict-v1",
)
def clv_predictions(warehouse: Warehouse, settings: SegmintSettings) -> dg.MaterializeResult:
    """One row per customer: predicted CLV over the horizon, purchase propensity and the top drivers."""
    blob = (settings.load().models_dir / MODEL_FILE).read_bytes()
    models = pickle.loads(blob)
    version = hashlib.sha256(blob).hexdigest()[:12]
    with warehouse.connect() as conn:
        features = read_table(conn, "marts.customer_features", order_by="customer_id")
        predictions = predict(models, features).assign(model_version=version)
        write_table(conn, "ml.clv_predictions", predictions)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(predictions)),
            "model_version": dg.MetadataValue.text(version),
            "model": dg.MetadataValue.text(MODEL_NAME),
            "total_predicted_clv": dg.MetadataValue.float(float(predictions["predicted_clv"].sum())),
            "mean_purchase_propensity": dg.MetadataValue.float(float(predictions["purchase_propensity"].mean())),
        }
    )
