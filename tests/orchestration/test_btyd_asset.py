"""ml/btyd_models and ml/btyd_predictions against a tmp DuckDB: one fit per cut-off and model, one prediction row per
customer, the back-test in metadata, no crash without repeats."""

from __future__ import annotations

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from ml import champion
from ml.btyd import BTYD_MODELS, FittedBTYD
from ml.cadence import TrainingSnapshot
from orchestration.defs.btyd import btyd_models, btyd_predictions, read_btyd_fits
from orchestration.defs.resources import SegmintSettings, Warehouse
from orchestration.lib.cadence import REFIT_DECISION_TABLE, ChainDecision
from orchestration.lib.warehouse_io import write_table
from tests.unit.test_btyd import simulated_train


def _materialize(tmp_path, monkeypatch, train: pd.DataFrame, features: pd.DataFrame):
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(tmp_path / "data"))
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("create schema marts")
        conn.register("train_frame", train)
        conn.register("features_frame", features)
        conn.execute("create table marts.customer_features_train as select * from train_frame")
        conn.execute("create table marts.customer_features as select * from features_frame")
        conn.execute("create table marts.customer_features_selection as select * from train_frame limit 0")
        # The chain's decision (ml/model_refit_decision, from the staging this test has not built): refit.
        as_of = SegmintSettings(landing_dir=str(tmp_path)).load().as_of
        write_table(conn, REFIT_DECISION_TABLE, ChainDecision(True, "test", "k1", TrainingSnapshot(as_of)).to_frame())
    result = dg.materialize(
        [btyd_models, btyd_predictions],
        resources={"warehouse": Warehouse(path=str(warehouse)), "settings": SegmintSettings(landing_dir=str(tmp_path))},
    )
    metadata = result.asset_materializations_for_node("ml__btyd_predictions")[0].metadata
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        table = conn.execute("select * from ml.btyd_predictions order by customer_id").df()
    return table, metadata


def test_predictions_cover_every_customer_and_the_backtest_is_in_the_metadata(tmp_path, monkeypatch):
    train = simulated_train(1500, seed=11)
    features = simulated_train(1600, seed=12).drop(
        columns=["future_revenue", "future_order_count", "has_future_order", "days_to_next_order"]
    )
    table, metadata = _materialize(tmp_path, monkeypatch, train, features)
    assert len(table) == len(features) and table["customer_id"].is_unique
    assert table.notna().all().all()
    assert metadata["model"].value == metadata["chosen_on_backtest"].value == "pareto_nbd"
    assert "churn_auc" in metadata["backtest"].value and "next_order_days_mae" in metadata["backtest"].value
    assert 0.5 < metadata["pareto_nbd/churn_auc"].value <= 1
    assert np.isfinite(metadata["bgnbd/next_order_days_mae"].value)


def test_a_shop_where_nobody_came_back_gets_null_predictions_and_a_reason(tmp_path, monkeypatch):
    train = simulated_train(300).assign(repeat_order_count=0, btyd_recency_days=0.0)
    features = train.drop(columns=["future_revenue", "future_order_count", "has_future_order", "days_to_next_order"])
    table, metadata = _materialize(tmp_path, monkeypatch, train, features)
    assert len(table) == 300 and table["p_alive"].isna().all()
    assert metadata["model"].value == "none"
    assert "not fitted" in metadata["notes"].value


def test_btyd_is_fitted_once_per_cut_off_and_every_reader_gets_the_same_forecast(tmp_path, monkeypatch):
    train = simulated_train(1500, seed=11)
    features = simulated_train(1600, seed=12).drop(
        columns=["future_revenue", "future_order_count", "has_future_order", "days_to_next_order"]
    )
    _, metadata = _materialize(tmp_path, monkeypatch, train, features)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        stored = conn.execute("select cutoff, model, error from ml.btyd_models order by all").df()
        scoring = read_btyd_fits(conn, "scoring")
        selection = read_btyd_fits(conn, "selection")
    assert len(stored) == 3 * len(BTYD_MODELS) and not stored.duplicated(["cutoff", "model"]).any()
    assert all(isinstance(fitted, FittedBTYD) for fitted in scoring.values())
    assert selection == {model: "no customers" for model in BTYD_MODELS}  # an empty selection cut-off: the reason
    # The champion reading the stored fits forecasts exactly what it would have fitted itself.
    shared = champion.btyd_outputs(features, 90, scoring)[0]
    pd.testing.assert_frame_equal(shared, champion.btyd_outputs(features, 90)[0])
    assert metadata["model"].value in BTYD_MODELS
