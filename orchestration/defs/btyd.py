"""BTYD peer predictions (P(alive), expected orders, days to the next order, order value) per customer."""

import dagster as dg
import pandas as pd

from ml.btyd import BTYD_MODELS, CHURN_AUC_TIE, BTYDFitError, backtest_btyd, btyd_prediction_table, fit_btyd
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, Warehouse
from orchestration.lib import groups
from orchestration.lib.metadata import markdown_table
from orchestration.lib.warehouse_io import read_table, write_table

TRAINING_SET = dg.AssetKey(["marts", "customer_features_train"])
CUSTOMER_FEATURES = dg.AssetKey(["marts", "customer_features"])


@dg.asset(
    key=["ml", "btyd_predictions"],
    deps=[CUSTOMER_FEATURES, TRAINING_SET],
    group_name=groups.CLV,
    kinds={"python", "scipy", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version="btyd-predictions-v1",
)
def btyd_predictions(warehouse: Warehouse, settings: SegmintSettings) -> dg.MaterializeResult:
    """One row per customer: P(alive), expected orders in the horizon, days to (and date of) the next order, order value.

    The BTYD model (BG/NBD or Pareto/NBD, x Gamma-Gamma) is chosen on the back-test over customer_features_train
    by the rule in ml.btyd.choose_btyd_model, then refitted on customer_features (BTYD needs no labels).
    """
    horizon = settings.load().horizon_days
    with warehouse.connect() as conn:
        train = read_table(conn, "marts.customer_features_train", order_by="customer_id")
        features = read_table(conn, "marts.customer_features", order_by="customer_id")
        evaluation, chosen = backtest_btyd(train, horizon)
        notes = []
        fitted = None
        # The back-test's choice first, then the others in ml.btyd's order (one owner of the model names).
        for model in ([chosen] if chosen else []) + [m for m in BTYD_MODELS if m != chosen]:
            try:
                fitted = fit_btyd(features, model)
                break
            except BTYDFitError as error:
                notes.append(f"{model} not fitted on the scoring rows: {error}")
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
    params = {} if fitted is None else {
        "purchase_params": dg.MetadataValue.json({k: round(v, 6) for k, v in vars(fitted.purchase_params).items()}),
        "spend_params": dg.MetadataValue.json(
            {k: round(v, 6) for k, v in vars(fitted.spend_params).items()} if fitted.spend_params else {}
        ),
    }
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
