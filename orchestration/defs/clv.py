"""CLV and purchase-propensity assets: every candidate back-tested and the champion chosen, the champion refitted
as the production model, predictions with intervals, and the activation gate.

The model-quality gate guards activation, not insight: scores, segments, cards and the report always materialize
with the best available model (its metrics are in ml.clv_model_evaluation, read by people as the dbt view
marts.clv_model_evaluation). Only `ml/clv_activation_gate`
carries the blocking check, and only the audience syncs and the value-based exports depend on it
(orchestration/defs/audiences.py), so a shop whose model fails the gate still gets every score while nothing
model-driven leaves for an ad platform or CRM. `make run` reports that case as a one-line warning (cli.py).
So does a closed season that zeroes every customer's forecast (clv_predictions: a log warning, metadata and a WARN
check), since a gap in a year-old export looks the same (bench/results/clv_seasonal_shop.md).
"""

import hashlib
import pickle
import time
from collections.abc import Iterator
from functools import partial

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa

from ml.cadence import derived_key
from ml.champion import EVALUATION as EVALUATION_WINDOW
from ml.champion import (
    INPUT_COLUMNS,
    champion_backtest,
    finish_chunk,
    fit_champion,
    kept_table_factors,
    needs_table_factors,
    predict_champion,
    propensity_source,
    score_chunk,
    table_factors,
    year_earlier_window,
)
from ml.charts import decile_chart_png, feature_importance_png
from ml.clv import feature_importance
from ml.evaluation import (
    DEFAULT_CALIBRATION_BAND,
    DEFAULT_RANKING_FLOOR_SPEARMAN,
    quality_gate,
)
from orchestration.defs.btyd import (
    BTYD_FITS_TABLE,
    chain_code_versions,
    pinned_btyd_fit,
    read_btyd_fits,
    run_context,
)
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, SparkEngine, Warehouse
from orchestration.lib import groups, spark_compute
from orchestration.lib.cadence import PinnedFit, cadence_line, follow_upstream
from orchestration.lib.code_versions import asset_code_versions
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
    RAW_RUN_CONTEXT,
    STG_ORDERS,
)
from orchestration.lib.metadata import markdown_table, png_image
from orchestration.lib.warehouse_io import money_sum, present_columns, read_table, table_exists, write_table

# Python writes schema `ml`; dbt publishes it as the view marts.clv_model_evaluation (the contract name, issue 13).
EVALUATION_TABLE = "ml.clv_model_evaluation"
# The shop's revenue per order date up to the as-of date: what the seasonality decision measures (ml/champion.py);
# repeat_revenue: that of orders placed after the customer's first order day (a season ahead's base, season_ahead).
_PAID = "case when orders.is_refund then 0 else orders.order_amount end"
_REPEAT = money_sum(_PAID, where="orders.ordered_on > first_orders.first_ordered_on")
DAILY_REVENUE_SQL = f"""
    with first_orders as (
        select customer_id, min(ordered_on) as first_ordered_on
        from staging.stg_orders
        where not is_cancelled and not is_refund
        group by customer_id
    )
    select orders.ordered_on, {money_sum(_PAID)} as revenue, coalesce({_REPEAT}, 0) as repeat_revenue
    from staging.stg_orders as orders
    cross join intermediate.int_cutoffs as cutoffs
    left join first_orders on orders.customer_id = first_orders.customer_id
    where not orders.is_cancelled and orders.ordered_on <= cutoffs.scoring_cutoff
    group by orders.ordered_on
    order by orders.ordered_on
"""
# The production model lives in the warehouse it was trained for (one row, the pickled blob and its version), so
# two warehouses sharing a data folder never read each other's model; clv_predictions reads exactly that row.
MODEL_TABLE = "ml.clv_model"
FEATURES = "marts.customer_features"
PREDICTIONS_TABLE = "ml.clv_predictions"
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
    force_refit: bool = False  # refit on this run whatever the cadence says (also SEGMINT_FORCE_REFIT=1)


def read_champion_inputs(conn: duckdb.DuckDBPyConnection, table: str, where: str = "", params=()) -> pd.DataFrame:
    """The rows of a feature table with only the columns the champion reads (ml.champion.INPUT_COLUMNS, those the
    table has), ordered by customer_id: 42-44 of the marts' 65-69 columns to read and convert."""
    columns = ", ".join(present_columns(conn, table, INPUT_COLUMNS))
    return conn.execute(f"select {columns} from {table}{where} order by customer_id", list(params)).df()


def stored_fit(conn: duckdb.DuckDBPyConnection, table: str) -> PinnedFit | None:
    """The key a model step stored beside its output (None when there is none, or it predates keyed fits)."""
    if not table_exists(conn, table):
        return None
    columns = {row[0] for row in conn.execute(f"describe {table}").fetchall()}
    if not {"fit_key", "fitted_as_of", "refit_reason"} <= columns:
        return None
    row = conn.execute(f"select fit_key, fitted_as_of, refit_reason from {table} limit 1").fetchone()
    return PinnedFit(*row) if row else None


def _chain_key(conn: duckdb.DuckDBPyConnection, step: str, **settings) -> tuple[str, PinnedFit | None]:
    """This step's key: the pinned BTYD fit's key with the step's code version and settings."""
    upstream = pinned_btyd_fit(conn)
    if upstream is None:
        raise ValueError(f"{BTYD_FITS_TABLE} holds no keyed fit: materialize ml/btyd_models first")
    return derived_key(upstream.key, code_version=chain_code_versions()[step], **settings), upstream


@dg.asset(
    key=CLV_MODEL_EVALUATION,
    deps=[CUSTOMER_FEATURES_TRAIN, CUSTOMER_FEATURES_SELECTION, STG_ORDERS, INT_CUTOFFS, BTYD_FITS, RAW_RUN_CONTEXT],
    group_name=groups.CLV,
    kinds={"python", "lightgbm", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["clv_model_evaluation"],
)
def clv_model_evaluation(warehouse: Warehouse, settings: SegmintSettings, config: ClvConfig) -> dg.MaterializeResult:
    """Two rows per CLV candidate (selection and evaluation halves): back-test metrics, calibration, champion.

    Refitted only when ml/btyd_models refitted (the cadence of ml/cadence.py), its own settings changed, or forced;
    otherwise the pinned evaluation stays, and so does the activation gate that reads it."""
    s = settings.load()
    horizon = s.horizon_days
    with warehouse.connect() as conn:
        as_of, _ = run_context(conn, s)
        key, upstream = _chain_key(
            conn, "clv_model_evaluation", seed=config.seed, holdout_share=config.holdout_share,
            max_train_rows=config.max_train_rows, horizon=horizon,
        )  # fmt: skip
        stored = stored_fit(conn, EVALUATION_TABLE)
        decision = follow_upstream(stored, key, upstream, as_of, s, config.force_refit)
        why = decision.reason
        if not decision.refit:
            table = read_table(conn, EVALUATION_TABLE)
            message = cadence_line(decision, "evaluation " + key, stored.fitted_as_of, upstream.fingerprint)
            return _kept_evaluation(table, message, key)
        train = read_champion_inputs(conn, "marts.customer_features_train")
        selection = read_champion_inputs(conn, "marts.customer_features_selection")
        daily = conn.execute(DAILY_REVENUE_SQL).df()
        train_fits, selection_fits = read_btyd_fits(conn, "train"), read_btyd_fits(conn, "selection")
        scoring_fits = read_btyd_fits(conn, "scoring")  # which label-free champion can ship without a back-test
    daily_revenue = pd.Series(daily["revenue"].to_numpy(float), index=pd.to_datetime(daily["ordered_on"]))
    daily_repeat_revenue = pd.Series(daily["repeat_revenue"].to_numpy(float), index=daily_revenue.index)
    started = time.perf_counter()
    result = champion_backtest(
        train,
        horizon,
        selection,
        seed=config.seed,
        holdout_share=config.holdout_share,
        max_train_rows=config.max_train_rows,
        daily_revenue=daily_revenue,
        daily_repeat_revenue=daily_repeat_revenue,
        evaluation_fits=train_fits,
        selection_fits=selection_fits,
        scoring_fits=scoring_fits,
    )
    budget = budget_notes({"selection": selection_fits, "train": train_fits})
    table = _with_budget_notes(result.evaluation, budget).assign(
        horizon_days=horizon,
        n_fit=result.n_fit,
        fit_key=key,
        fitted_as_of=pd.Series([as_of] * len(result.evaluation), dtype="object", index=result.evaluation.index),
        refit_reason=why,
    )
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
        data_version=dg.DataVersion(key),
        metadata={
            "cadence": dg.MetadataValue.text(cadence_line(decision, "", None, None)),
            "fit_key": dg.MetadataValue.text(key),
            "fit_seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
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
            "notes": dg.MetadataValue.text(
                " ".join(result.notes + [n for ns in budget.values() for n in ns]) or "none"
            ),
            **per_metric,
        },
    )


def budget_notes(fits_by_cutoff: dict[str, dict]) -> dict[str, list[str]]:
    """Per BTYD model, the notes of its fits that stopped at their iteration budget (ml.btyd.FIT_BUDGET)."""
    notes: dict[str, list[str]] = {}
    for cutoff, fits in fits_by_cutoff.items():
        for model, fitted in fits.items():
            if getattr(fitted, "budget_hit", False):
                notes.setdefault(model, []).extend(f"at the {cutoff} cut-off: {note}" for note in fitted.notes)
    return notes


def _with_budget_notes(evaluation: pd.DataFrame, budget: dict[str, list[str]]) -> pd.DataFrame:
    """The evaluation rows of a BTYD candidate whose fit hit its budget say so in their note."""
    if not budget or "note" not in evaluation:
        return evaluation
    notes = [
        "; ".join(filter(None, [note if isinstance(note, str) else "", *budget.get(model, [])])) or note
        for model, note in zip(evaluation["model"], evaluation["note"], strict=True)
    ]
    return evaluation.assign(note=notes)


def _kept_evaluation(table: pd.DataFrame, message: str, key: str) -> dg.MaterializeResult:
    """Metadata of a kept evaluation: what the pinned back-test said (the decile chart is in its refit run)."""
    reported = table[table["backtest_window"] == EVALUATION_WINDOW]
    champion = reported.loc[reported["is_champion"].astype(bool), "model"]
    return dg.MaterializeResult(
        data_version=dg.DataVersion(key),
        metadata={
            "cadence": dg.MetadataValue.text(message),
            "fit_key": dg.MetadataValue.text(key),
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "champion": dg.MetadataValue.text(str(champion.iloc[0]) if len(champion) else "none"),
            "evaluation": markdown_table(table[SHOWN_COLUMNS]),
        },
    )


@dg.asset(
    key=CLV_ACTIVATION_GATE,
    deps=[CLV_MODEL_EVALUATION],
    group_name=groups.CLV,
    kinds={"python"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["clv_activation_gate"],
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
    deps=[CUSTOMER_FEATURES_TRAIN, CLV_MODEL_EVALUATION, BTYD_FITS, RAW_RUN_CONTEXT],
    group_name=groups.CLV,
    kinds={"python", "lightgbm", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["clv_model"],
)
def clv_model(warehouse: Warehouse, settings: SegmintSettings, config: ClvConfig) -> dg.MaterializeResult:
    """One row: the champion refitted on every training customer, with its calibration and intervals (pickled).

    Refitted with its evaluation (same cadence, ml/cadence.py); otherwise the pinned model row stays and daily runs
    score with it. Its data version is the model's content hash either way."""
    s = settings.load()
    with warehouse.connect() as conn:
        as_of, _ = run_context(conn, s)
        evaluation_fit = stored_fit(conn, EVALUATION_TABLE)
        if evaluation_fit is None:
            raise ValueError(f"{EVALUATION_TABLE} holds no keyed evaluation: materialize ml/clv_model_evaluation first")
        key, upstream = _chain_key(
            conn, "clv_model", evaluation=evaluation_fit.key, seed=config.seed, max_train_rows=config.max_train_rows,
            horizon=s.horizon_days,
        )  # fmt: skip
        stored = stored_fit(conn, MODEL_TABLE)
        decision = follow_upstream(stored, key, upstream, as_of, s, config.force_refit)
        why = decision.reason
        if not decision.refit:
            version = conn.execute(f"select model_version from {MODEL_TABLE}").fetchone()[0]
            message = cadence_line(decision, f"model {version}", stored.fitted_as_of, upstream.fingerprint)
            return dg.MaterializeResult(
                metadata={
                    "cadence": dg.MetadataValue.text(message),
                    "fit_key": dg.MetadataValue.text(key),
                    "model_version": dg.MetadataValue.text(version),
                    "fitted_as_of": dg.MetadataValue.text(str(stored.fitted_as_of)),
                },
                data_version=dg.DataVersion(version),
            )
        train = read_champion_inputs(conn, "marts.customer_features_train")
        evaluation = read_table(conn, EVALUATION_TABLE)
        train_fits = read_btyd_fits(conn, "train")
    started = time.perf_counter()
    model = fit_champion(
        train, s.horizon_days, evaluation, seed=config.seed, max_train_rows=config.max_train_rows, train_fits=train_fits
    )
    fit_seconds = time.perf_counter() - started
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
                "fit_key": key,
                "fitted_as_of": as_of,
                "refit_reason": why,
            }
        ]
    )
    with warehouse.connect() as conn:
        write_table(conn, MODEL_TABLE, row)
    metadata = {
        "cadence": dg.MetadataValue.text(cadence_line(decision, "", None, None)),
        "fit_key": dg.MetadataValue.text(key),
        "fit_seconds": dg.MetadataValue.float(round(fit_seconds, 3)),
        "model_version": dg.MetadataValue.text(version),
        "clv_model": dg.MetadataValue.text(model.name),
        "mode": dg.MetadataValue.text(model.mode),
        "calibration": dg.MetadataValue.text(model.calibration.method),
        "purchase_propensity": dg.MetadataValue.text(propensity_source(model.name, model.fitted)),
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


# WARN, never blocks: a closed season may be real (a seasonal shop after its season), and the scores are right then.
CLOSED_SEASON_CHECK = "check_forecast_is_not_zeroed_by_a_closed_season"
# What ops do when the year-earlier window was a data gap rather than a closed shop (landing/README.md, settings).
DATA_GAP_ADVICE = (
    "if the shop did sell then (an export that misses those days: a platform migration, a lost file), add those "
    "orders to the landing folder (SEGMINT_LANDING_DIR) and run again with SEGMINT_FORCE_REFIT=1"
)


def export_coverage(spans: pd.DataFrame, after, through) -> str:
    """What the landing files say about the window (after, through]: the file(s) whose orders run from before it to
    after it (so the export itself holds the empty stretch), or, when none does, the nearest file ending before it and
    starting after it (a missing file between them is likely). `spans`: source_file, first_day, last_day (dates)."""
    after, through = pd.Timestamp(after).date(), pd.Timestamp(through).date()
    if spans.empty:
        return "the landing holds no order file"
    first, last = pd.to_datetime(spans["first_day"]).dt.date, pd.to_datetime(spans["last_day"]).dt.date
    spanning = spans.loc[(first <= after) & (last > through), "source_file"].astype(str).tolist()
    if spanning:
        return f"{', '.join(spanning)} holds orders before and after it: the empty stretch is inside that export"
    ending = spans[last <= through].assign(day=last).sort_values("day").tail(1)
    starting = spans[first > after].assign(day=first).sort_values("day").head(1)
    sides = [f"{row.source_file} ends {row.day}" for row in ending.itertuples()] + [
        f"{row.source_file} starts {row.day}" for row in starting.itertuples()
    ]
    return f"no landing file holds orders on both sides of it ({'; '.join(sides)}): a missing file is likely"


def closed_season_warning(model, coverage: str | None) -> str | None:
    """One line when the model forecasts 0 for everyone because of a closed season (ml.champion.closed_season):
    why (its window, the year-earlier window without orders, the days sold before it), what the landing files say,
    and what to do if it was a data gap. None otherwise."""
    if model.seasonal_factor != 0:
        return None
    found = f"; landing: {coverage}" if coverage else ""
    return (
        f"the CLV forecast is 0 for every customer (value, p10/p90, propensity): seasonality {model.seasonality}"
        f"{found}; {DATA_GAP_ADVICE}"
    )


def order_file_spans(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per landing file of raw.orders: its first and last order day (origin_file, else the segmint file's name)."""
    if not table_exists(conn, "raw.orders"):
        return pd.DataFrame(columns=["source_file", "first_day", "last_day"])
    return conn.execute(
        "select coalesce(origin_file, source_file) as source_file, min(ordered_at)::date as first_day, "
        "max(ordered_at)::date as last_day from raw.orders group by all order by first_day"
    ).df()


@dg.asset(
    key=CLV_PREDICTIONS,
    deps=[CUSTOMER_FEATURES, CLV_MODEL, BTYD_FITS],
    group_name=groups.CLV,
    kinds={"python", "lightgbm", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["clv_predictions"],
    check_specs=[
        dg.AssetCheckSpec(
            CLOSED_SEASON_CHECK,
            asset=CLV_PREDICTIONS,
            blocking=False,
            description=(
                "Warns (never blocks) when the forecast is 0 for every customer because the same window a year "
                "earlier had no orders while the shop sold before it and sells now (a closed season, "
                "ml.champion.closed_season): right for a seasonal shop, wrong when the export misses those days."
            ),
        )
    ],
)
def clv_predictions(
    context: dg.AssetExecutionContext, warehouse: Warehouse, spark: SparkEngine
) -> dg.MaterializeResult:
    """One row per customer: predicted CLV over the horizon with p10/p90, propensity, top drivers, model name."""
    on_spark = warehouse.resolved_engine() == "spark"
    with warehouse.connect() as conn:
        stored = conn.execute(f"select model_version, model_blob from {MODEL_TABLE}").fetchall()
        pinned = stored_fit(conn, MODEL_TABLE)
        # Spark: the customers stay in Spark, and a few rows fix the result's column types.
        sample = conn.execute(f"select * from {FEATURES} order by customer_id limit 100").df() if on_spark else None
        scoring_fits = read_btyd_fits(conn, "scoring")
    if len(stored) != 1:
        raise ValueError(f"{MODEL_TABLE} must hold exactly one model, found {len(stored)}: materialize ml/clv_model")
    version, blob = stored[0]
    model = load_model(bytes(blob), version)
    coverage = None
    if model.seasonal_factor == 0 and pinned is not None:  # only then: the landing's files around the empty window
        with warehouse.connect() as conn:
            spans = order_file_spans(conn)
        coverage = export_coverage(spans, *year_earlier_window(pinned.fitted_as_of, int(model.horizon_days)))
    warning = closed_season_warning(model, coverage)
    if warning is not None:
        context.log.warning(warning)
    if on_spark:
        summary = _predict_on_spark(warehouse, spark, model, scoring_fits, version, sample=sample)
    else:
        summary = _predict_in_chunks(warehouse, model, scoring_fits, version)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(summary["rows"]),
            "model_version": dg.MetadataValue.text(version),
            "model_fitted_as_of": dg.MetadataValue.text(str(pinned.fitted_as_of) if pinned else "unknown"),
            "clv_model": dg.MetadataValue.text(model.name),
            "purchase_propensity": dg.MetadataValue.text(propensity_source(model.name, model.fitted)),
            "total_predicted_clv": dg.MetadataValue.float(summary["clv"]),
            "total_predicted_clv_p10": dg.MetadataValue.float(summary["p10"]),
            "total_predicted_clv_p90": dg.MetadataValue.float(summary["p90"]),
            "mean_purchase_propensity": dg.MetadataValue.float(summary["propensity"]),
            "closed_season": dg.MetadataValue.text(warning or "no"),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CLOSED_SEASON_CHECK,
                passed=warning is None,
                severity=dg.AssetCheckSeverity.WARN,
                description=warning or f"seasonality {model.seasonality}",
                metadata={"seasonal_factor": dg.MetadataValue.float(float(model.seasonal_factor))},
            )
        ],
    )


# Customers scored at once on DuckDB: the whole customer table as one pandas frame (1 M x ~60 columns) and its model
# matrix, BTYD outputs and explanations cost ~2 GiB at 1 M (issue 18's memory budget); a chunk of 100 k costs a tenth.
PREDICT_CHUNK_CUSTOMERS = 100_000
# Rows per DuckDB vector: a streamed result arrives in whole vectors (fetch_df_chunk).
DUCKDB_VECTOR_ROWS = 2048


def champion_input_chunks(conn: duckdb.DuckDBPyConnection, table: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """read_champion_inputs(conn, table) cut into frames of exactly `chunk_rows` rows (the last one shorter), in
    customer_id order: ONE sorted scan streamed vector by vector on a cursor of its own (so `conn` may write
    meanwhile), instead of a query per customer_id range, each filtering and sorting again (~1 CPU s at 1 M)."""
    columns = ", ".join(present_columns(conn, table, INPUT_COLUMNS))
    reader = conn.cursor()
    try:
        reader.execute(f"select {columns} from {table} order by customer_id")
        vectors = max(1, -(-chunk_rows // DUCKDB_VECTOR_ROWS))
        pending: pd.DataFrame | None = None
        while len(piece := reader.fetch_df_chunk(vectors)):
            pending = piece if pending is None else pd.concat([pending, piece], ignore_index=True)
            while len(pending) >= chunk_rows:
                yield pending.iloc[:chunk_rows].reset_index(drop=True)
                pending = pending.iloc[chunk_rows:].reset_index(drop=True)
        if pending is not None and len(pending):
            yield pending
    finally:
        reader.close()


def _predict_in_chunks(
    warehouse: Warehouse, model, fits, version: str, chunk_rows: int = PREDICT_CHUNK_CUSTOMERS
) -> dict:
    """SEGMINT_ENGINE=duckdb: predict_champion over marts.customer_features `chunk_rows` customers at a time (in
    customer_id order), written into ml.clv_predictions in one transaction (readers see the old table or the new
    one). Each row's prediction depends on that row only, except the whole table's factors (a leveled hurdle's k and
    shape factor, the structural level's): for such a model every chunk is scored once and its scores kept
    (score_chunk: a few arrays per chunk), the factors come from their sums and are applied to the kept scores."""
    with warehouse.connect() as conn:
        if needs_table_factors(model):
            kept = [score_chunk(model, chunk, fits=fits) for chunk in champion_input_chunks(conn, FEATURES, chunk_rows)]
            table = kept_table_factors(model, kept)
            scored = (finish_chunk(model, chunk, table) for chunk in kept)
        else:
            scored = (
                predict_champion(model, chunk, fits=fits) for chunk in champion_input_chunks(conn, FEATURES, chunk_rows)
            )
        conn.execute("begin transaction")
        written = 0
        for predictions in scored:
            predictions = predictions.assign(model_version=version)
            if not written:  # the first chunk replaces the table (its column types are the scored frame's)
                write_table(conn, PREDICTIONS_TABLE, predictions)
            else:
                conn.register("_segmint_predictions", predictions)
                conn.execute(f"insert into {PREDICTIONS_TABLE} by name select * from _segmint_predictions")
                conn.unregister("_segmint_predictions")
            written += len(predictions)
            del predictions  # before the next chunk is scored: one chunk's frames at a time
        if not written:  # no customer: the table is still replaced, empty (typed by the mart's columns)
            empty = read_champion_inputs(conn, FEATURES, " where false")
            write_table(
                conn, PREDICTIONS_TABLE, predict_champion(model, empty, fits=fits).assign(model_version=version).head(0)
            )
        conn.execute("commit")
        rows, clv, p10, p90, propensity = conn.execute(
            "select count(*), sum(predicted_clv), sum(predicted_clv_p10), sum(predicted_clv_p90), "
            f"avg(purchase_propensity) from {PREDICTIONS_TABLE}"
        ).fetchone()
    return {"rows": rows, "clv": clv or 0.0, "p10": p10 or 0.0, "p90": p90 or 0.0, "propensity": propensity or 0.0}


def _predict_on_spark(
    warehouse: Warehouse, spark: SparkEngine, model, fits, version: str, sample: pd.DataFrame
) -> dict:
    """SEGMINT_ENGINE=spark: score marts.customer_features in Spark, chunk by chunk (orchestration/lib/spark_compute.py),
    into the Parquet table ml.clv_predictions; the Python steps after it read that table through DuckDB."""
    session = spark.session()

    def summed(table) -> tuple[float, float]:
        totals_of_chunk = partial(spark_compute.clv_table_totals, model=model, fits=fits, table=table)
        totals = spark_compute.map_table(session, FEATURES, totals_of_chunk, spark_compute.TOTALS_SCHEMA)
        row = totals.agg({"total": "sum", "target": "sum"}).collect()[0]
        return float(row["sum(total)"] or 0.0), float(row["sum(target)"] or 0.0)

    # The whole table's factors (a leveled hurdle's k and shape, the structural level): each scales the whole
    # table, so each sums its two totals over the chunks first (one Spark pass per factor; none for other models).
    table = table_factors(model, summed) if needs_table_factors(model) else None
    score = partial(spark_compute.clv_predict_chunk, model=model, fits=fits, version=version, table=table)
    schema = pa.Schema.from_pandas(score(sample), preserve_index=False)
    scored = spark_compute.map_table(session, FEATURES, score, schema)
    spark_compute.write_parquet_table(scored, PREDICTIONS_TABLE, warehouse.spark_warehouse_dir())
    with warehouse.connect() as conn:
        warehouse.attach_engine_tables(conn, [PREDICTIONS_TABLE])
        rows, clv, p10, p90, propensity = conn.execute(
            "select count(*), sum(predicted_clv), sum(predicted_clv_p10), sum(predicted_clv_p90), "
            f"avg(purchase_propensity) from {PREDICTIONS_TABLE}"
        ).fetchone()
    return {"rows": rows, "clv": clv or 0.0, "p10": p10 or 0.0, "p90": p90 or 0.0, "propensity": propensity or 0.0}
