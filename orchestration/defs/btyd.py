"""BTYD fits (once per cut-off, shared) and the BTYD peer predictions (P(alive), expected orders, days to the next
order, order value) per customer."""

import hashlib
import pickle
from dataclasses import dataclass
from datetime import date

import dagster as dg
import duckdb
import lightgbm
import pandas as pd
import scipy

from ml.btyd import (
    BACKTEST_LABEL_COLUMNS,
    BTYD_MODELS,
    CHURN_AUC_TIE,
    FEATURE_COLUMNS,
    FIT_BUDGET,
    FittedBTYD,
    backtest_btyd,
    btyd_prediction_table,
    fit_btyd_models,
)
from ml.cadence import TrainingSnapshot, decide_refit, kept_message
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, Warehouse
from orchestration.lib import groups
from orchestration.lib.keys import (
    BTYD_FITS,
    BTYD_PREDICTIONS,
    CUSTOMER_FEATURES,
    CUSTOMER_FEATURES_SELECTION,
    CUSTOMER_FEATURES_TRAIN,
    RAW_RUN_CONTEXT,
)
from orchestration.lib.metadata import markdown_table
from orchestration.lib.settings import Settings
from orchestration.lib.warehouse_io import MONEY_TOTAL_DECIMAL, money_sum, read_table, table_exists, write_table

BTYD_FITS_TABLE = "ml.btyd_models"
# The cut-offs BTYD is fitted at, and the table each one's rows come from.
CUTOFF_TABLES = {
    "selection": "marts.customer_features_selection",
    "train": "marts.customer_features_train",
    "scoring": "marts.customer_features",
}


def read_btyd_columns(conn: duckdb.DuckDBPyConnection, table: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows of a feature table with only the columns ml.btyd reads (FEATURE_COLUMNS + extra), ordered by
    customer_id: BTYD needs a tenth of the feature columns, and the 1 M shop's three tables in full made
    ml/btyd_models peak at 3.0 GiB."""
    return read_table(conn, table, list(FEATURE_COLUMNS + extra), order_by="customer_id")


def read_btyd_fits(conn: duckdb.DuckDBPyConnection, cutoff: str) -> dict[str, FittedBTYD | str]:
    """The fits ml/btyd_models stored for one cut-off: model -> FittedBTYD, or the reason it could not be fitted."""
    rows = conn.execute(
        f"select model, fitted_blob, error from {BTYD_FITS_TABLE} where cutoff = ?", [cutoff]
    ).fetchall()
    return {model: pickle.loads(bytes(blob)) if blob is not None else error for model, blob, error in rows}


class RefitConfig(dg.Config):
    """Launchpad switch: refit the model chain on this run whatever the cadence says (or SEGMINT_FORCE_REFIT=1)."""

    force_refit: bool = False


# The code versions of the model chain's steps: a change to any refits the chain (ml/cadence.py, rule 4).
BTYD_MODELS_CODE_VERSION = "btyd-models-v3"  # v3: single-threaded fits (ml.btyd.NATIVE_THREADS)
CHAIN_CODE_VERSIONS = {
    "btyd_models": BTYD_MODELS_CODE_VERSION,
    "clv_model_evaluation": "clv-champion-v2",
    "clv_model": "clv-model-v3",
}
# Per cut-off table: the training-window measures ml/cadence.py compares (labelled windows also count labels).
MEASURES_SQL = f"""
    select count(*) as customers, coalesce(sum(order_count), 0) as orders,
        round(coalesce({money_sum("gross_revenue", MONEY_TOTAL_DECIMAL)}, 0), 2) as gross_revenue, count_if(repeat_order_count > 0) as repeat_buyers{{labels}}
    from {{table}}
"""
LABEL_MEASURES = (
    ", count_if(has_future_order) as future_buyers,"
    f" round(coalesce({money_sum('future_revenue', MONEY_TOTAL_DECIMAL)}, 0), 2) as future_revenue"
)
COLUMNS_SQL = """
    select table_name, column_name, data_type from information_schema.columns
    where table_schema = 'marts' and table_name in ('customer_features_selection', 'customer_features_train',
        'customer_features')
    order by table_name, ordinal_position
"""


def run_context(conn: duckdb.DuckDBPyConnection, settings: Settings) -> tuple[date | None, int]:
    """(as-of date, horizon) the feature tables were built for: raw.run_context, else the run settings."""
    if table_exists(conn, "raw.run_context"):
        as_of, horizon = conn.execute("select as_of, horizon_days from raw.run_context").fetchone()
        return as_of, int(horizon)
    return settings.as_of, settings.horizon_days


def training_snapshot(conn: duckdb.DuckDBPyConnection, settings: Settings) -> TrainingSnapshot:
    """The current training data as ml/cadence.py compares it: a few aggregates per cut-off, no table is loaded."""
    as_of, horizon = run_context(conn, settings)
    measures = {}
    for cutoff, table in CUTOFF_TABLES.items():
        labels = LABEL_MEASURES if cutoff != "scoring" else ""
        frame = conn.execute(MEASURES_SQL.format(table=table, labels=labels)).df()
        measures |= {f"{cutoff}.{name}": float(value) for name, value in frame.iloc[0].items()}
    columns = conn.execute(COLUMNS_SQL).fetchall()
    return TrainingSnapshot(
        as_of,
        measures,
        {
            "horizon_days": str(horizon),
            "feature_columns": hashlib.sha256(repr(columns).encode()).hexdigest()[:12],
            "code_versions": ",".join(f"{k}={v}" for k, v in sorted(CHAIN_CODE_VERSIONS.items())),
            "library_versions": f"lightgbm={lightgbm.__version__},scipy={scipy.__version__}",
        },
    )


@dataclass(frozen=True)
class PinnedFit:
    """What a model step stored beside its output: the key it was fitted for, when, and why."""

    key: str
    fitted_as_of: date | None
    reason: str
    snapshot: TrainingSnapshot | None = None


def pinned_btyd_fit(conn: duckdb.DuckDBPyConnection) -> PinnedFit | None:
    """The fit ml/btyd_models holds (None when there is none, or it predates keyed fits)."""
    if not table_exists(conn, BTYD_FITS_TABLE):
        return None
    columns = {row[0] for row in conn.execute(f"describe {BTYD_FITS_TABLE}").fetchall()}
    if "fit_key" not in columns:
        return None
    row = conn.execute(
        f"select fit_key, fitted_as_of, refit_reason, snapshot from {BTYD_FITS_TABLE} limit 1"
    ).fetchone()
    if row is None:
        return None
    return PinnedFit(row[0], row[1], row[2], TrainingSnapshot.from_json(row[3]))


def _fit_metadata(table: pd.DataFrame) -> dict[str, dg.MetadataValue]:
    """Per cut-off and model: the parameters (or why not fitted), fit seconds, and the fits that hit their budget."""
    metadata, budget = {}, []
    for row in table.itertuples(index=False):
        name = f"{row.cutoff}/{row.model}"
        if row.fitted_blob is None:
            metadata[name] = dg.MetadataValue.text(f"not fitted: {row.error}")
            continue
        fitted = pickle.loads(bytes(row.fitted_blob))
        metadata[name] = dg.MetadataValue.text(
            ", ".join(f"{k}={v:.4g}" for k, v in vars(fitted.purchase_params).items())
        )
        metadata[f"fit_seconds/{name}"] = dg.MetadataValue.float(round(float(row.fit_seconds), 3))
        if fitted.budget_hit:
            budget.append(f"{name}: " + "; ".join(fitted.notes))
    metadata["fit_budget"] = dg.MetadataValue.text(
        "; ".join(budget) if budget else f"no fit hit its budget {FIT_BUDGET}"
    )
    return metadata


@dg.asset(
    key=BTYD_FITS,
    deps=[CUSTOMER_FEATURES_SELECTION, CUSTOMER_FEATURES_TRAIN, CUSTOMER_FEATURES, RAW_RUN_CONTEXT],
    group_name=groups.CLV,
    kinds={"python", "scipy", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=BTYD_MODELS_CODE_VERSION,
)
def btyd_models(warehouse: Warehouse, settings: SegmintSettings, config: RefitConfig) -> dg.MaterializeResult:
    """BG/NBD and Pareto/NBD (x Gamma-Gamma) fitted at each cut-off (selection, train, scoring), pickled, on a cadence.

    BTYD needs no labels, so one fit per cut-off serves every reader: the BTYD back-test and peer predictions, and
    the CLV champion's back-test, production model and predictions (ml.btyd.fit_btyd_models).
    This step decides for the whole model chain whether to refit (ml.cadence.decide_refit: forced, settings or
    code changed, SEGMINT_MODEL_REFIT_DAYS old, or training data moved materially); otherwise it keeps the pinned
    fits, and the steps after it keep theirs because its data version (the fit key) is unchanged."""
    s = settings.load()
    with warehouse.connect() as conn:
        current = training_snapshot(conn, s)
        pinned = pinned_btyd_fit(conn)
        decision = decide_refit(
            pinned.snapshot if pinned else None,
            current,
            refit_days=s.model_refit_days,
            force=s.force_refit or config.force_refit,
        )
        if not decision.refit:
            table = conn.execute(f"select * from {BTYD_FITS_TABLE} order by cutoff, model").df()
            message = kept_message(
                f"BTYD fits {pinned.key}",
                pinned.fitted_as_of,
                decision.age_days,
                pinned.snapshot.fingerprint,
                decision.reason,
            )
            return dg.MaterializeResult(
                metadata={
                    "cadence": dg.MetadataValue.text(message),
                    "fit_key": dg.MetadataValue.text(pinned.key),
                    "fitted_as_of": dg.MetadataValue.text(str(pinned.fitted_as_of)),
                    "dagster/row_count": dg.MetadataValue.int(len(table)),
                    **_fit_metadata(table),
                },
                data_version=dg.DataVersion(pinned.key),
            )
    rows = []
    for cutoff, table in CUTOFF_TABLES.items():  # one table in memory at a time
        with warehouse.connect() as conn:
            frame = read_btyd_columns(conn, table)
        for model, fitted in fit_btyd_models(frame).items():
            ok = isinstance(fitted, FittedBTYD)
            rows.append(
                {
                    "cutoff": cutoff,
                    "model": model,
                    "n_customers": len(frame),
                    "fitted_blob": pickle.dumps(fitted) if ok else None,
                    "error": None if ok else fitted,
                    "fit_seconds": fitted.fit_seconds if ok else 0.0,
                }
            )
    key = current.key
    table = pd.DataFrame(rows).assign(
        fit_key=key,
        fitted_as_of=pd.Series([current.as_of] * len(rows), dtype="object"),
        refit_reason=decision.reason,
        snapshot=current.to_json(),
    )
    with warehouse.connect() as conn:
        write_table(conn, BTYD_FITS_TABLE, table)
    return dg.MaterializeResult(
        metadata={
            "cadence": dg.MetadataValue.text(f"refit: {decision.reason}"),
            "fit_key": dg.MetadataValue.text(key),
            "fitted_as_of": dg.MetadataValue.text(str(current.as_of)),
            "training_fingerprint": dg.MetadataValue.text(current.fingerprint),
            "dagster/row_count": dg.MetadataValue.int(len(rows)),
            **_fit_metadata(table),
        },
        data_version=dg.DataVersion(key),
    )


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
        train = read_btyd_columns(conn, "marts.customer_features_train", BACKTEST_LABEL_COLUMNS)
        features = read_btyd_columns(conn, "marts.customer_features")
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
