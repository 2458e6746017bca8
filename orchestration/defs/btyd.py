"""BTYD fits (once per cut-off, shared) and the BTYD peer predictions (P(alive), expected orders, days to the next
order, order value) per customer."""

import pickle

import dagster as dg
import duckdb
import pandas as pd

from ml.btyd import (
    BTYD_MODELS,
    CHURN_AUC_TIE,
    FittedBTYD,
    backtest_btyd,
    btyd_prediction_table,
    fit_btyd_models,
)
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, Warehouse
from orchestration.lib import groups
from orchestration.lib.keys import (
    BTYD_FITS,
    BTYD_PREDICTIONS,
    CUSTOMER_FEATURES,
    CUSTOMER_FEATURES_SELECTION,
    CUSTOMER_FEATURES_TRAIN,
)
from orchestration.lib.metadata import markdown_table
from orchestration.lib.warehouse_io import read_table, write_table

BTYD_FITS_TABLE = "ml.btyd_models"
# The cut-offs BTYD is fitted at, and the table each one's rows come from.
CUTOFF_TABLES = {
    "selection": "marts.customer_features_selection",
    "train": "marts.customer_features_train",
    "scoring": "marts.customer_features",
}


def read_btyd_fits(conn: duckdb.DuckDBPyConnection, cutoff: str) -> dict[str, FittedBTYD | str]:
    """The fits ml/btyd_models stored for one cut-off: model -> FittedBTYD, or the reason it could not be fitted."""
    rows = conn.execute(
        f"select model, fitted_blob, error from {BTYD_FITS_TABLE} where cutoff = ?", [cutoff]
    ).fetchall()
    return {model: pickle.loads(bytes(blob)) if blob is not None else error for model, blob, error in rows}


@dg.asset(
    key=BTYD_FITS,
    deps=[CUSTOMER_FEATURES_SELECTION, CUSTOMER_FEATURES_TRAIN, CUSTOMER_FEATURES],
    group_name=groups.CLV,
    kinds={"python", "scipy", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version="btyd-models-v1",
)
def btyd_models(warehouse: Warehouse) -> dg.MaterializeResult:
    """BG/NBD and Pareto/NBD (x Gamma-Gamma) fitted once at each cut-off (selection, train, scoring), pickled.

    BTYD needs no labels, so one fit per cut-off serves every reader: the BTYD back-test and peer predictions, and
    the CLV champion's back-test, production model and predictions (ml.btyd.fit_btyd_models)."""
    rows, metadata = [], {}
    with warehouse.connect() as conn:
        frames = {cutoff: read_table(conn, table, order_by="customer_id") for cutoff, table in CUTOFF_TABLES.items()}
    for cutoff, frame in frames.items():
        for model, fitted in fit_btyd_models(frame).items():
            ok = isinstance(fitted, FittedBTYD)
            rows.append(
                {
                    "cutoff": cutoff,
                    "model": model,
                    "n_customers": len(frame),
                    "fitted_blob": pickle.dumps(fitted) if ok else None,
                    "error": None if ok else fitted,
                }
            )
            metadata[f"{cutoff}/{model}"] = dg.MetadataValue.text(
                ", ".join(f"{k}={v:.4g}" for k, v in vars(fitted.purchase_params).items())
                if ok
                else f"not fitted: {fitted}"
            )
    with warehouse.connect() as conn:
        write_table(conn, BTYD_FITS_TABLE, pd.DataFrame(rows))
    return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(len(rows)), **metadata})


@dg.asset(
    key=BTYD_PREDICTIONS,
    deps=[CUSTOMER_FEATURES, CUSTOMER_FEATURES_TRAIN, BTYD_FITS],
    group_name=groups.CLV,
    kinds={"python", "scipy", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version="btyd-predictions-v1",
)
def btyd_predictions(warehouse: Warehouse, settings: SegmintSettings) -> dg.MaterializeResult:
    """One row per customer: P(alive), expected orders in the horizon, days to (and date of) the next order, order value.

    The BTYD model (BG/NBD or Pareto/NBD, x Gamma-Gamma) is chosen on the back-test over customer_features_train
    by the rule in ml.btyd.choose_btyd_model; the scoring rows use its fit on customer_features (BTYD needs no
    labels). Both fits come from ml/btyd_models.
    """
    horizon = settings.load().horizon_days
    with warehouse.connect() as conn:
        train = read_table(conn, "marts.customer_features_train", order_by="customer_id")
        features = read_table(conn, "marts.customer_features", order_by="customer_id")
        train_fits, scoring_fits = read_btyd_fits(conn, "train"), read_btyd_fits(conn, "scoring")
        evaluation, chosen = backtest_btyd(train, horizon, train_fits)
        notes = []
        fitted = None
        # The back-test's choice first, then the others in ml.btyd's order (one owner of the model names).
        for model in ([chosen] if chosen else []) + [m for m in BTYD_MODELS if m != chosen]:
            candidate = scoring_fits.get(model, "not fitted")
            if isinstance(candidate, FittedBTYD):
                fitted = candidate
                break
            notes.append(f"{model} not fitted on the scoring rows: {candidate}")
        if fitted is not None:
            notes.extend(fitted.notes)
        table = btyd_prediction_table(features, fitted, horizon)
        write_table(conn, "ml.btyd_predictions", table)
    per_metric = {
        f"{row['model']}/{metric}": dg.MetadataValue.float(float(row[metric]))
        for _, row in evaluation.iterrows()
        for metric in ("churn_auc", "expected_orders_mae", "next_order_days_mae")
        if pd.notna(row[metric])
    }
    params = (
        {}
        if fitted is None
        else {
            "purchase_params": dg.MetadataValue.json({k: round(v, 6) for k, v in vars(fitted.purchase_params).items()}),
            "spend_params": dg.MetadataValue.json(
                {k: round(v, 6) for k, v in vars(fitted.spend_params).items()} if fitted.spend_params else {}
            ),
        }
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "model": dg.MetadataValue.text(fitted.model if fitted else "none"),
            "chosen_on_backtest": dg.MetadataValue.text(chosen or "none"),
            "choice_rule": dg.MetadataValue.text(
                f"highest churn AUC on the back-test; within {CHURN_AUC_TIE}, lower MAE of expected orders"
            ),
            "backtest": markdown_table(evaluation),
            "horizon_days": dg.MetadataValue.int(horizon),
            "mean_p_alive": dg.MetadataValue.float(float(table["p_alive"].mean()) if fitted else float("nan")),
            "notes": dg.MetadataValue.text(" ".join(notes) or "none"),
            **params,
            **per_metric,
        }
    )
