"""The model chain on a cadence, on a copy of the shared demo deployment's warehouse (no new whole-graph run):
a daily run after an unchanged day refits nothing, builds no back-test mart and gives identical scores; a changed
training window rebuilds the back-test marts and refits; the decision's measures, computed from the staging,
equal the same aggregates over the back-test marts."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import duckdb
import pandas as pd
import pytest

from orchestration.defs import btyd as btyd_defs
from orchestration.defs.btyd import (
    CUTOFF_WINDOWS,
    btyd_models,
    chain_code_versions,
    chain_decision,
    code_versions_setting,
    measures_sql,
    model_refit_decision,
    pinned_btyd_fit,
)
from orchestration.defs.clv import clv_model, clv_model_evaluation, clv_predictions
from orchestration.defs.dbt_models import KEPT_METADATA, dbt_backtest_models, dbt_target_path
from orchestration.defs.resources import SegmintSettings, SparkEngine, Warehouse, dbt_resource
from orchestration.lib.settings import load_settings
from tests.unit.test_code_versions import copy_of_the_sources, edit_source

pytestmark = pytest.mark.slow

CHAIN = {
    "ml__btyd_models": ("ml", "btyd_models"),
    "ml__clv_model_evaluation": ("ml", "clv_model_evaluation"),
    "ml__clv_model": ("ml", "clv_model"),
}
# The measures as they were computed before the decision moved ahead of the back-test marts: aggregates over the
# feature tables themselves. The reference the staging SQL (orchestration.defs.btyd.measures_sql) must equal.
MART_TABLES = {
    "selection": "marts.customer_features_selection",
    "train": "marts.customer_features_train",
    "scoring": "marts.customer_features",
}
MART_MEASURES_SQL = """
    select count(*) as customers, coalesce(sum(order_count), 0) as orders,
        round(coalesce(sum(gross_revenue), 0), 2) as gross_revenue, count_if(repeat_order_count > 0) as repeat_buyers{labels}
    from {table}
"""
MART_LABEL_MEASURES = (
    ", count_if(has_future_order) as future_buyers, round(coalesce(sum(future_revenue), 0), 2) as future_revenue"
)


def _run_chain(warehouse, instance: dg.DagsterInstance) -> tuple[dict[str, list[dg.AssetMaterialization]], list]:
    """The chain's materializations per step, and the back-test marts' dbt test results."""
    result = dg.materialize(
        [model_refit_decision, dbt_backtest_models, btyd_models, clv_model_evaluation, clv_model, clv_predictions],
        # SparkEngine: clv_predictions asks for it (it scores in Spark when SEGMINT_ENGINE=spark; idle on DuckDB).
        resources={
            "warehouse": Warehouse(path=str(warehouse)),
            "settings": SegmintSettings(),
            "spark": SparkEngine(),
            "dbt": dbt_resource(),
        },
        instance=instance,
    )
    assert result.success
    nodes = [*CHAIN, "ml__clv_predictions", "ml__model_refit_decision", "dbt_backtest_models"]
    checks = [
        event.event_specific_data
        for event in result.events_for_node("dbt_backtest_models")
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    return {node: result.asset_materializations_for_node(node) for node in nodes}, checks


def _scores(warehouse) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute("select * from ml.clv_predictions order by customer_id").df()


def _measures(warehouse) -> tuple[dict[str, float], dict[str, float]]:
    """(from the staging, from the marts) for every measure and cut-off."""
    marts = {}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for cutoff, table in MART_TABLES.items():
            labels = MART_LABEL_MEASURES if CUTOFF_WINDOWS[cutoff][1] else ""
            frame = conn.execute(MART_MEASURES_SQL.format(table=table, labels=labels)).df()
            marts |= {f"{cutoff}.{name}": float(value) for name, value in frame.iloc[0].items()}
        staging = {name: float(value) for name, value in conn.execute(measures_sql()).df().iloc[0].items()}
    return staging, marts


def _backtest_marts(warehouse) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(
            "select 'train' as mart, * from marts.customer_features_train"
            " union all by name select 'selection' as mart, * from marts.customer_features_selection"
            " order by mart, customer_id"
        ).df()


def test_an_unchanged_day_keeps_the_pinned_model_and_a_changed_training_window_refits(operated, tmp_path, monkeypatch):
    for name, value in operated.env.items():
        if name.startswith("SEGMINT_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("SEGMINT_FORCE_REFIT", raising=False)
    monkeypatch.delenv("SEGMINT_MODEL_REFIT_DAYS", raising=False)
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(operated.warehouse, warehouse)
    monkeypatch.setenv("SEGMINT_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(tmp_path / "data"))
    before, marts_before = _scores(warehouse), _backtest_marts(warehouse)
    staging, marts = _measures(warehouse)
    assert len(staging) == 16 and staging == marts  # every measure at every cut-off, exactly
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        pinned_fit = conn.execute("select distinct fit_key from ml.btyd_models").fetchall()
        pinned_model = conn.execute("select model_version from ml.clv_model").fetchone()[0]
    assert len(pinned_fit) == 1

    # The same day again (what the daily schedule does when no new order arrived): every step keeps its fit, and
    # dbt builds no back-test mart: they keep the pinned fit's key as their data version. This run history has no
    # result of their tests yet, so dbt tests them (no build); the next kept day carries those results over.
    results = dbt_target_path(str(warehouse), "dbt_backtest_models") / "run_results.json"
    instance = dg.DagsterInstance.ephemeral()
    kept, checks = _run_chain(warehouse, instance)
    assert checks and all(check.passed for check in checks)
    ran = {r["unique_id"].split(".")[0] for r in json.loads(results.read_text())["results"]}
    assert "test" in ran and "model" not in ran, ran
    tested_at = results.stat().st_mtime
    kept, checks = _run_chain(warehouse, instance)
    assert checks and all(check.passed and KEPT_METADATA in check.metadata for check in checks)
    assert results.stat().st_mtime == tested_at  # no dbt at all
    for node in CHAIN:
        assert kept[node][0].metadata["cadence"].value.startswith("kept "), kept[node][0].metadata["cadence"].value
    assert kept["ml__model_refit_decision"][0].metadata["cadence"].value.startswith("kept ")
    assert kept["ml__model_refit_decision"][0].tags["dagster/data_version"] == pinned_fit[0][0]
    assert len(kept["dbt_backtest_models"]) == 2
    for materialization in kept["dbt_backtest_models"]:
        assert KEPT_METADATA in materialization.metadata
        assert materialization.tags["dagster/data_version"] == pinned_fit[0][0]
    pd.testing.assert_frame_equal(_backtest_marts(warehouse), marts_before)
    assert kept["ml__btyd_models"][0].tags["dagster/data_version"] == pinned_fit[0][0]
    assert kept["ml__clv_model"][0].tags["dagster/data_version"] == pinned_model
    assert f"kept model {pinned_model} (fitted " in kept["ml__clv_model"][0].metadata["cadence"].value
    pd.testing.assert_frame_equal(_scores(warehouse), before)

    # Rule 4 through the real digest: the pinned snapshot holds the code versions the assets show in Dagster, and
    # the chain's decision on this kept day refits for a code edit in a copy of the sources, not for a comment.
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert pinned_btyd_fit(conn).snapshot.settings["code_versions"] == code_versions_setting(chain_code_versions())
    for step, asset in (("btyd_models", btyd_models), ("clv_model_evaluation", clv_model_evaluation)):
        assert asset.code_versions_by_key[asset.key] == chain_code_versions()[step]
    assert clv_model.code_versions_by_key[clv_model.key] == chain_code_versions()["clv_model"]
    commented, edited = copy_of_the_sources(tmp_path, "commented"), copy_of_the_sources(tmp_path, "edited")
    edit_source(commented, "ml/champion.py", "", "# a comment at the end\n")
    edit_source(edited, "ml/champion.py", "", "\n\ndef _an_added_helper():\n    return 1\n")
    for root, refits in ((commented, False), (edited, True)):
        with monkeypatch.context() as patch, duckdb.connect(str(warehouse), read_only=True) as conn:
            patch.setattr(btyd_defs, "chain_code_versions", lambda root=root: chain_code_versions(root))
            decision = chain_decision(conn, load_settings(), force=False)
        assert decision.refit == refits, decision.reason
        assert not refits or decision.reason.startswith("settings changed: code_versions "), decision.reason

    # A training window that lost a tenth of its customers (e.g. a corrected import): the decision sees it in the
    # staging, dbt rebuilds the back-test marts, and the chain refits on them.
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("delete from staging.stg_orders where hash(customer_id) % 10 = 0")
    refit, checks = _run_chain(warehouse, instance)
    assert checks and all(check.passed and KEPT_METADATA not in check.metadata for check in checks)
    reason = refit["ml__btyd_models"][0].metadata["cadence"].value
    assert reason.startswith("refit: training data moved more than 5%"), reason
    assert refit["ml__model_refit_decision"][0].metadata["cadence"].value == reason
    for materialization in refit["dbt_backtest_models"]:
        assert KEPT_METADATA not in materialization.metadata
        assert materialization.metadata["cadence"].value == "built for a refit: " + reason.removeprefix("refit: ")
        assert materialization.tags["dagster/data_version"] == refit["ml__btyd_models"][0].tags["dagster/data_version"]
    built = {r["unique_id"] for r in json.loads(results.read_text())["results"] if r["unique_id"].startswith("model.")}
    assert built == {"model.segmint.customer_features_train", "model.segmint.customer_features_selection"}
    for node in ("ml__clv_model_evaluation", "ml__clv_model"):
        assert refit[node][0].metadata["cadence"].value.startswith("refit: ml/btyd_models refitted")
    assert refit["ml__btyd_models"][0].tags["dagster/data_version"] != pinned_fit[0][0]
    staging, marts = _measures(warehouse)
    # The rebuilt back-test marts and the decision agree again (customer_features is the feature step's, not run here).
    backtest = [name for name in staging if not name.startswith("scoring.")]
    assert len(backtest) == 12 and {n: staging[n] for n in backtest} == {n: marts[n] for n in backtest}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("select count(distinct fit_key) from ml.clv_model_evaluation").fetchone()[0] == 1
        assert conn.execute("select n_train_rows from ml.clv_model").fetchone()[0] < len(before)
    assert "fit_seconds/train/bgnbd" in refit["ml__btyd_models"][0].metadata
