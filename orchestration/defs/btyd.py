"""BTYD fits (once per cut-off, shared) and the BTYD peer predictions (P(alive), expected orders, days to the next
order, order value) per customer."""

import hashlib
import json
import pickle
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

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
from ml.cadence import RefitDecision, TrainingSnapshot
from orchestration.defs.dbt_models import BACKTEST_MODELS, DBT_MANIFEST
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, Warehouse
from orchestration.lib import groups
from orchestration.lib.cadence import (
    REFIT_DECISION_TABLE,
    ChainDecision,
    PinnedFit,
    cadence_metadata,
    decide_on_cadence,
    read_refit_decision,
)
from orchestration.lib.code_versions import PROJECT_ROOT, asset_code_versions
from orchestration.lib.keys import (
    BTYD_FITS,
    BTYD_PREDICTIONS,
    CUSTOMER_FEATURES,
    CUSTOMER_FEATURES_SELECTION,
    CUSTOMER_FEATURES_TRAIN,
    INT_CUTOFFS,
    MODEL_REFIT_DECISION,
    RAW_RUN_CONTEXT,
    STG_ORDERS,
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
    """Launchpad switch of ml/model_refit_decision: refit the model chain (and rebuild its back-test marts) on this
    run whatever the cadence says (or SEGMINT_FORCE_REFIT=1)."""

    force_refit: bool = False


# The model chain's steps (of orchestration/lib/code_versions.py's ASSET_STEPS). Each step's code version is computed
# from its source (code_versions.py says why and what it covers); a change refits the chain (ml/cadence.py, rule 4)
# and shows in Dagster as "code version changed". No manual epoch: the dbt side is backtest_definition, libraries are
# library_versions, and anything else every deployment must refit for ships as code the fit reaches or is a
# SEGMINT_FORCE_REFIT=1 run; a hand-kept epoch is the bump that was forgotten.
CHAIN_STEPS = ("btyd_models", "clv_model_evaluation", "clv_model")


def chain_code_versions(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Step -> code version ("clv-champion-<12 hex>"): the one value of the asset's Dagster code_version and of the
    training snapshot's code_versions (asset_code_versions: computed once per process). `root`: the sources to read
    (tests use copies)."""
    return {step: asset_code_versions(root)[step] for step in CHAIN_STEPS}


def code_versions_setting(versions: Mapping[str, str]) -> str:
    """The training snapshot's `code_versions`: every chain step's code version in one text."""
    return ",".join(f"{step}={version}" for step, version in sorted(versions.items()))


# Per cut-off: its column of intermediate.int_cutoffs, and the end of its label window (None: not labelled).
CUTOFF_WINDOWS = {
    "selection": ("selection_cutoff", "training_cutoff"),
    "train": ("training_cutoff", "scoring_cutoff"),
    "scoring": ("scoring_cutoff", None),
}
# The training-window measures ml/cadence.py compares, for every cut-off, computed from the staging with exactly
# the definitions of the feature marts (macros customer_features_at and future_labels): a customer counts at a
# cut-off when they have an accepted (not cancelled), not refunded order at or before it; repeat buyers bought on
# more than one day (repeat_order_count = distinct order days - 1 > 0, i.e. first day < last day); labels come from
# accepted orders in (cut-off, label end], refunds counted 0, for the customers known at the cut-off. One scan of
# the orders and one group by customer for all three cut-offs, money summed per customer first as the marts do;
# no back-test mart is read. tests/integration/test_model_cadence.py proves them equal to the marts' aggregates.
MEASURES_SQL = """
    with cutoffs as (
        select * from intermediate.int_cutoffs
    ),

    per_customer as (
        select orders.customer_id,
            {per_customer}
        from staging.stg_orders as orders, cutoffs
        where not orders.is_cancelled
        group by orders.customer_id
    )

    select
        {measures}
    from per_customer
"""


def measures_sql() -> str:
    """The SQL of the training-window measures: one row, a column `<cut-off>.<measure>` per measure."""
    per_customer, measures = [], []
    for cutoff, (column, label_end) in CUTOFF_WINDOWS.items():
        bought = f"not orders.is_refund and orders.ordered_on <= cutoffs.{column}"
        per_customer += [
            f"count(*) filter (where {bought}) as {cutoff}_orders",
            f"min(orders.ordered_on) filter (where {bought}) as {cutoff}_first_day",
            f"max(orders.ordered_on) filter (where {bought}) as {cutoff}_last_day",
            f"{money_sum('orders.order_amount', where=bought)} as {cutoff}_gross_revenue",
        ]
        known = f"{cutoff}_orders > 0"
        measures += [
            f'count_if({known}) as "{cutoff}.customers"',
            f'coalesce(sum({cutoff}_orders), 0) as "{cutoff}.orders"',
            f"round(coalesce({money_sum(f'{cutoff}_gross_revenue', MONEY_TOTAL_DECIMAL)}, 0), 2)"
            f' as "{cutoff}.gross_revenue"',
            f'count_if({cutoff}_first_day < {cutoff}_last_day) as "{cutoff}.repeat_buyers"',
        ]
        if label_end is None:
            continue
        window = f"orders.ordered_on > cutoffs.{column} and orders.ordered_on <= cutoffs.{label_end}"
        per_customer += [
            f"count(*) filter (where {window} and not orders.is_refund) as {cutoff}_future_orders",
            f"{money_sum('case when orders.is_refund then 0 else orders.order_amount end', where=window)}"
            f" as {cutoff}_future_revenue",
        ]
        measures += [
            f'count_if({known} and {cutoff}_future_orders > 0) as "{cutoff}.future_buyers"',
            f"round(coalesce({money_sum(f'{cutoff}_future_revenue', MONEY_TOTAL_DECIMAL, where=known)}, 0), 2)"
            f' as "{cutoff}.future_revenue"',
        ]
    return MEASURES_SQL.format(per_customer=",\n            ".join(per_customer), measures=",\n        ".join(measures))


# The scoring table's columns (the back-test marts are built from the same macro; their own definition is
# fingerprinted from the dbt manifest, backtest_definition): known before any back-test mart is built.
COLUMNS_SQL = """
    select column_name, data_type from information_schema.columns
    where table_schema = 'marts' and table_name = 'customer_features'
    order by ordinal_position
"""


def run_context(conn: duckdb.DuckDBPyConnection, settings: Settings) -> tuple[date | None, int]:
    """(as-of date, horizon) the feature tables were built for: raw.run_context, else the run settings."""
    if table_exists(conn, "raw.run_context"):
        as_of, horizon = conn.execute("select as_of, horizon_days from raw.run_context").fetchone()
        return as_of, int(horizon)
    return settings.as_of, settings.horizon_days


def backtest_definition(manifest: Mapping[str, Any]) -> str:
    """Fingerprint of what the back-test marts are made of: their dbt models (file checksum, config, parents) and
    every macro they call, with its adapter implementations. A change refits the chain (ml/cadence.py rule 4),
    since the marts are rebuilt only on a refit."""
    macros = manifest.get("macros", {})
    seen: set[str] = set()
    todo = [
        macro
        for name in BACKTEST_MODELS
        for macro in manifest["nodes"][f"model.segmint.{name}"]["depends_on"].get("macros", [])
    ]
    while todo:
        unique_id = todo.pop()
        if unique_id in seen or unique_id not in macros:
            continue
        seen.add(unique_id)
        todo.extend(macros[unique_id].get("depends_on", {}).get("macros", []))
        # adapter.dispatch: `days_between` runs `duckdb__days_between` (or `spark__...`), which no depends_on names
        short = unique_id.rsplit(".", 1)[-1]
        todo.extend(key for key in macros if key.rsplit(".", 1)[-1].endswith(f"__{short}"))
    parts = [
        [
            manifest["nodes"][f"model.segmint.{name}"]["checksum"],
            manifest["nodes"][f"model.segmint.{name}"]["config"],
            manifest["nodes"][f"model.segmint.{name}"]["depends_on"].get("nodes", []),
        ]
        for name in BACKTEST_MODELS
    ]
    parts.append(sorted((unique_id, macros[unique_id].get("macro_sql", "")) for unique_id in seen))
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def training_snapshot(
    conn: duckdb.DuckDBPyConnection, settings: Settings, manifest: Mapping[str, Any] | None = None
) -> TrainingSnapshot:
    """The current training data as ml/cadence.py compares it: a few aggregates per cut-off over the staging (no
    table is loaded, no back-test mart is read) and the settings that shape the fit."""
    as_of, horizon = run_context(conn, settings)
    frame = conn.execute(measures_sql()).df()
    measures = {name: float(value) for name, value in frame.iloc[0].items()}
    columns = conn.execute(COLUMNS_SQL).fetchall()
    manifest = manifest if manifest is not None else json.loads(DBT_MANIFEST.read_text(encoding="utf-8"))
    return TrainingSnapshot(
        as_of,
        measures,
        {
            "horizon_days": str(horizon),
            "feature_columns": hashlib.sha256(repr(columns).encode()).hexdigest()[:12],
            "backtest_definition": backtest_definition(manifest),
            "code_versions": code_versions_setting(chain_code_versions()),
            "library_versions": f"lightgbm={lightgbm.__version__},scipy={scipy.__version__}",
        },
    )


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
        # NA, not None, when the kept fits are read back from the warehouse (the next day's run of a small shop)
        if pd.isna(row.fitted_blob):
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


def stale_backtest_marts(conn: duckdb.DuckDBPyConnection, pinned: PinnedFit) -> str | None:
    """Why the back-test marts cannot serve the pinned fit (missing, or built for another as-of date), else None.

    Between refits the marts must hold what the pinned fits were made on: their cutoff_date is the pinned as-of
    minus one (train) or two (selection) horizons. A failed build, a restored table or a warehouse from before the
    marts followed the cadence shows here, and the chain refits instead of mixing two days."""
    snapshot = pinned.snapshot
    horizon = int(snapshot.settings.get("horizon_days", 0)) if snapshot else 0
    for name, horizons in (("customer_features_train", 1), ("customer_features_selection", 2)):
        table = f"marts.{name}"
        if not table_exists(conn, table):
            return f"back-test mart {table} is missing"
        built = conn.execute(f"select max(cutoff_date) from {table}").fetchone()[0]
        if built is None or pinned.fitted_as_of is None or not horizon:
            continue  # an empty mart (a young shop) has no rows to disagree with
        expected = pinned.fitted_as_of - timedelta(days=horizons * horizon)
        if built != expected:
            return f"back-test mart {table} has cut-off {built}, the pinned fit's is {expected}"
    return None


def chain_decision(
    conn: duckdb.DuckDBPyConnection, settings: Settings, force: bool, manifest: Mapping[str, Any] | None = None
) -> ChainDecision:
    """The model chain's one refit decision for this run (ml.cadence.decide_refit with the run's settings, `force`
    = the launchpad switch, then the back-test marts' own check)."""
    current = training_snapshot(conn, settings, manifest)
    pinned = pinned_btyd_fit(conn)
    decision = decide_on_cadence(pinned.snapshot if pinned else None, current, settings, force)
    if not decision.refit and (stale := stale_backtest_marts(conn, pinned)):
        decision = RefitDecision(True, stale, decision.age_days)
    return ChainDecision(
        refit=decision.refit,
        reason=decision.reason,
        fit_key=current.key if decision.refit else pinned.key,
        snapshot=current,
        age_days=decision.age_days,
        pinned_as_of=pinned.fitted_as_of if pinned else None,
        pinned_fingerprint=pinned.snapshot.fingerprint if pinned and pinned.snapshot else None,
    )


@dg.asset(
    key=MODEL_REFIT_DECISION,
    deps=[STG_ORDERS, INT_CUTOFFS, CUSTOMER_FEATURES, RAW_RUN_CONTEXT],
    # With the feature marts, not the models: it gates the back-test marts' build, so like them it runs in whole runs
    # only (orchestration/defs/automation.py), never alone after an input changed, which would ask ml/btyd_models
    # for a refit whose marts nobody built.
    group_name=groups.FEATURES,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["model_refit_decision"],
)
def model_refit_decision(warehouse: Warehouse, settings: SegmintSettings, config: RefitConfig) -> dg.MaterializeResult:
    """Refit the CLV model chain on this run, or keep the pinned fit: decided once, before any back-test mart.

    ml.cadence.decide_refit on the training-window measures (SQL aggregates over the staging at the cut-offs of
    intermediate.int_cutoffs, the marts' own definitions) and the settings; a refit also when the back-test marts
    are not the pinned fit's (stale_backtest_marts). dbt_backtest_models builds customer_features_train and
    _selection only on "refit", and ml/btyd_models follows. Its data version is the key the chain holds after the
    run, so a kept day changes no version downstream. It reads ml.btyd_models, the pinned fit of the previous run,
    which a declared dependency cannot express (btyd_models comes after it): Dagster's own data-version rule also
    compares with the last materialization."""
    s = settings.load()
    with warehouse.connect() as conn:
        decision = chain_decision(conn, s, force=config.force_refit)
        write_table(conn, REFIT_DECISION_TABLE, decision.to_frame())
    metadata = cadence_metadata(
        RefitDecision(decision.refit, decision.reason, decision.age_days),
        f"BTYD fits {decision.fit_key}",
        decision.fit_key,
        decision.as_of if decision.refit else decision.pinned_as_of,
        decision.pinned_fingerprint,
    )
    measures = decision.snapshot.measures
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "training_fingerprint": dg.MetadataValue.text(decision.snapshot.fingerprint),
            "training_measures": dg.MetadataValue.json(measures),
        },
        data_version=dg.DataVersion(decision.fit_key),
    )


@dg.asset(
    key=BTYD_FITS,
    deps=[
        MODEL_REFIT_DECISION,
        CUSTOMER_FEATURES_SELECTION,
        CUSTOMER_FEATURES_TRAIN,
        CUSTOMER_FEATURES,
        RAW_RUN_CONTEXT,
    ],
    group_name=groups.CLV,
    kinds={"python", "scipy", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["btyd_models"],
)
def btyd_models(warehouse: Warehouse, settings: SegmintSettings) -> dg.MaterializeResult:
    """BG/NBD and Pareto/NBD (x Gamma-Gamma) fitted at each cut-off (selection, train, scoring), pickled, on a cadence.

    BTYD needs no labels, so one fit per cut-off serves every reader: the BTYD back-test and peer predictions, and
    the CLV champion's back-test, production model and predictions (ml.btyd.fit_btyd_models).
    It follows ml/model_refit_decision, the chain's one decision (forced, settings or code changed,
    SEGMINT_MODEL_REFIT_DAYS old, or training data moved materially): it refits on the back-test marts that
    dbt_backtest_models has just built, or keeps the pinned fits, and the steps after it keep theirs because its
    data version (the fit key) is unchanged."""
    s = settings.load()
    with warehouse.connect() as conn:
        decision = read_refit_decision(conn)
        as_of, _ = run_context(conn, s)
        if decision is None or decision.as_of != as_of:
            found = "none" if decision is None else f"one for as-of {decision.as_of}"
            raise dg.Failure(
                description=f"{REFIT_DECISION_TABLE} holds {found}, the features are as of {as_of}: "
                "materialize ml/model_refit_decision (and the back-test marts) first"
            )
        if not decision.refit:
            pinned = pinned_btyd_fit(conn)
            if pinned is None or pinned.key != decision.fit_key:
                raise dg.Failure(
                    description=f"ml/model_refit_decision kept fit {decision.fit_key}, but {BTYD_FITS_TABLE} holds "
                    f"{pinned.key if pinned else 'none'}: materialize ml/model_refit_decision again"
                )
            table = conn.execute(f"select * from {BTYD_FITS_TABLE} order by cutoff, model").df()
            return dg.MaterializeResult(
                metadata={
                    **cadence_metadata(
                        RefitDecision(False, decision.reason, decision.age_days),
                        f"BTYD fits {pinned.key}",
                        pinned.key,
                        pinned.fitted_as_of,
                        pinned.snapshot.fingerprint,
                    ),
                    "dagster/row_count": dg.MetadataValue.int(len(table)),
                    **_fit_metadata(table),
                },
                data_version=dg.DataVersion(pinned.key),
            )
        # A refit fits on the back-test marts dbt_backtest_models built for this decision, never on older ones
        # (a run that selected the decision and this step but not the marts, e.g. an automation).
        unbuilt = stale_backtest_marts(conn, PinnedFit(decision.fit_key, decision.as_of, "", decision.snapshot))
        if unbuilt:
            raise dg.Failure(
                description=f"ml/model_refit_decision says refit, but {unbuilt}: materialize dbt_backtest_models first"
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
    key, current = decision.fit_key, decision.snapshot
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
            **cadence_metadata(
                RefitDecision(True, decision.reason, decision.age_days), "", key, current.as_of, current.fingerprint
            ),
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
    code_version=asset_code_versions()["btyd_predictions"],
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
