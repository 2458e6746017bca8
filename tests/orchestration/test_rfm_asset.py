"""ml/rfm_segments against a tmp DuckDB: a young shop's names read the recency floor of its CLV horizon, an older
shop's are its quintiles', and the metadata says which (issue 13)."""

from __future__ import annotations

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from orchestration.defs.resources import SegmintSettings, Warehouse
from orchestration.defs.segments import rfm_segments

LAPSED_NAMES = {"At Risk", "Can't Lose Them", "Hibernating", "Lost"}


def _features(path, history_days: int, customers: int = 200, seed: int = 5) -> None:
    rng = np.random.default_rng(seed)
    orders = rng.choice([1, 1, 1, 2, 4], size=customers)
    recency = rng.integers(0, history_days, size=customers)
    frame = pd.DataFrame({
        "customer_id": [f"c{i:04d}" for i in range(customers)], "recency_days": recency, "order_count": orders,
        "total_revenue": rng.gamma(2.0, 40.0, size=customers).round(2),
        "tenure_days": np.minimum(recency + rng.integers(0, history_days, size=customers), history_days),
    })  # fmt: skip
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema if not exists marts")
        conn.register("frame", frame)
        conn.execute("create or replace table marts.customer_features as select * from frame")


def _materialize(path, tmp_path) -> tuple[pd.DataFrame, dict]:
    result = dg.materialize(
        [rfm_segments],
        resources={"warehouse": Warehouse(path=str(path)), "settings": SegmintSettings(landing_dir=str(tmp_path))},
    )
    metadata = result.asset_materializations_for_node("ml__rfm_segments")[0].metadata
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute("select * from ml.rfm_segments").df(), metadata


def test_a_60_day_shop_names_nobody_lapsed_and_its_metadata_says_the_horizon_stood_in(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SEGMINT_CLV_HORIZON_DAYS", "365")
    path = tmp_path / "warehouse.duckdb"
    _features(path, history_days=60)
    table, metadata = _materialize(path, tmp_path)
    assert len(table) == 200 and not table["rfm_segment"].isin(LAPSED_NAMES).any()
    assert (table["recency_score"] == 1).sum() == 40  # the scores stay quintiles
    assert metadata["repurchase_cycle_days"].value == 365.0 and "young shop" in metadata["repurchase_cycle"].value
    assert metadata["named_above_recency_quintile"].value > 0


def test_a_three_year_shop_is_named_by_its_quintiles_and_its_metadata_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SEGMINT_CLV_HORIZON_DAYS", "365")
    path = tmp_path / "warehouse.duckdb"
    _features(path, history_days=1095)
    table, metadata = _materialize(path, tmp_path)
    assert "recency quintiles" in metadata["repurchase_cycle"].value and "repurchase_cycle_days" not in metadata
    assert metadata["named_above_recency_quintile"].value == 0
    assert (table["named_recency_score"] == table["recency_score"]).all()
    assert table["repurchase_cycle_days"].isna().all()
    assert table["rfm_segment"].isin(LAPSED_NAMES).sum() > 0
