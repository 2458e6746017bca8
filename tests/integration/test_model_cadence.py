"""The model chain on a cadence, on a copy of the shared demo deployment's warehouse (no new whole-graph run):
a daily run after an unchanged day refits nothing and gives identical scores; a changed training window refits."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pandas as pd
import pytest

from orchestration.defs.btyd import btyd_models
from orchestration.defs.clv import clv_model, clv_model_evaluation, clv_predictions
from orchestration.defs.resources import SegmintSettings, SparkEngine, Warehouse

pytestmark = pytest.mark.slow

CHAIN = {
    "ml__btyd_models": ("ml", "btyd_models"),
    "ml__clv_model_evaluation": ("ml", "clv_model_evaluation"),
    "ml__clv_model": ("ml", "clv_model"),
}


def _run_chain(warehouse) -> dict[str, dg.AssetMaterialization]:
    result = dg.materialize(
        [btyd_models, clv_model_evaluation, clv_model, clv_predictions],
        # SparkEngine: clv_predictions asks for it (it scores in Spark when SEGMINT_ENGINE=spark; idle on DuckDB).
        resources={"warehouse": Warehouse(path=str(warehouse)), "settings": SegmintSettings(), "spark": SparkEngine()},
    )
    assert result.success
    return {node: result.asset_materializations_for_node(node)[0] for node in [*CHAIN, "ml__clv_predictions"]}


def _scores(warehouse) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute("select * from ml.clv_predictions order by customer_id").df()


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
    before = _scores(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        pinned_fit = conn.execute("select distinct fit_key from ml.btyd_models").fetchall()
        pinned_model = conn.execute("select model_version from ml.clv_model").fetchone()[0]
    assert len(pinned_fit) == 1

    # The same day again (what the daily schedule does when no new order arrived): every step keeps its fit.
    kept = _run_chain(warehouse)
    for node in CHAIN:
        assert kept[node].metadata["cadence"].value.startswith("kept "), kept[node].metadata["cadence"].value
    assert kept["ml__btyd_models"].tags["dagster/data_version"] == pinned_fit[0][0]
    assert kept["ml__clv_model"].tags["dagster/data_version"] == pinned_model
    assert f"kept model {pinned_model} (fitted " in kept["ml__clv_model"].metadata["cadence"].value
    pd.testing.assert_frame_equal(_scores(warehouse), before)

    # A training window that lost a tenth of its customers (e.g. a corrected import): the chain refits.
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("delete from marts.customer_features_train where hash(customer_id) % 10 = 0")
    refit = _run_chain(warehouse)
    reason = refit["ml__btyd_models"].metadata["cadence"].value
    assert reason.startswith("refit: training data moved more than 5%"), reason
    assert "train." in reason
    for node in ("ml__clv_model_evaluation", "ml__clv_model"):
        assert refit[node].metadata["cadence"].value.startswith("refit: ml/btyd_models refitted")
    assert refit["ml__btyd_models"].tags["dagster/data_version"] != pinned_fit[0][0]
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("select count(distinct fit_key) from ml.clv_model_evaluation").fetchone()[0] == 1
        assert conn.execute("select n_train_rows from ml.clv_model").fetchone()[0] < len(before)
    assert "fit_seconds/train/bgnbd" in refit["ml__btyd_models"].metadata
