"""ml/clv_predictions on DuckDB scores marts.customer_features a customer range at a time (issue 18's memory budget):
the table it writes must be the one a single pass over the whole table gives."""

from __future__ import annotations

import dataclasses

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml import btyd, champion
from orchestration.defs.clv import (
    FEATURES,
    PREDICTIONS_TABLE,
    _predict_in_chunks,
    champion_input_chunks,
    read_champion_inputs,
)
from orchestration.defs.resources import Warehouse
from orchestration.lib import spark_compute
from orchestration.lib.warehouse_io import write_table
from tests.unit.test_clv import features_at, simulate_shop

HORIZON, N_DAYS = 180, 900


@pytest.fixture(scope="module")
def scored_shop(tmp_path_factory):
    """A warehouse with a small shop's customer_features, its champion model and the scoring cut-off's BTYD fits."""
    shop = simulate_shop(800, N_DAYS, seed=5)
    training = features_at(shop, N_DAYS - 1 - HORIZON, HORIZON)
    result = champion.champion_backtest(training, HORIZON, features_at(shop, N_DAYS - 1 - 2 * HORIZON, HORIZON))
    model = champion.fit_champion(training, HORIZON, result.evaluation)
    features = features_at(shop, N_DAYS - 1)
    features["customer_id"] = features["customer_id"].astype(str)
    path = tmp_path_factory.mktemp("chunks") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        write_table(conn, FEATURES, features)
    return Warehouse(path=str(path), engine="duckdb"), model, btyd.fit_btyd_models(features)


def _one_pass(warehouse: Warehouse, model, fits) -> pd.DataFrame:
    with duckdb.connect(warehouse.path) as conn:
        features = conn.execute(f"select * from {FEATURES} order by customer_id").df()
    return champion.predict_champion(model, features, fits=fits).assign(model_version="v1")


def _written(warehouse: Warehouse) -> pd.DataFrame:
    with duckdb.connect(warehouse.path) as conn:
        return conn.execute(f"select * from {PREDICTIONS_TABLE}").df()


def test_the_chunks_are_one_sorted_read_cut_into_exact_sizes(scored_shop):
    warehouse, _, _ = scored_shop
    with duckdb.connect(warehouse.path) as conn:
        whole = read_champion_inputs(conn, FEATURES)
        for size in (90, 2048, 2500, len(whole), len(whole) + 1):
            chunks = list(champion_input_chunks(conn, FEATURES, size))
            assert [len(c) for c in chunks[:-1]] == [size] * (len(chunks) - 1) and 0 < len(chunks[-1]) <= size
            pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole, check_exact=True)
        conn.execute("create table marts.empty as select * from marts.customer_features where false")
        assert list(champion_input_chunks(conn, "marts.empty", 90)) == []


def test_chunked_scores_are_the_single_pass_scores_row_for_row(scored_shop):
    warehouse, model, fits = scored_shop
    summary = _predict_in_chunks(warehouse, model, fits, "v1", chunk_rows=90)
    written, expected = _written(warehouse), _one_pass(warehouse, model, fits)
    pd.testing.assert_frame_equal(written, expected, check_exact=True)  # same rows, order, values and types
    assert summary["rows"] == len(expected) > 90 * 3
    assert summary["clv"] == pytest.approx(expected["predicted_clv"].sum(), rel=1e-12)


def test_the_structural_level_factor_of_the_chunks_is_the_whole_tables(scored_shop):
    warehouse, model, fits = scored_shop
    model = dataclasses.replace(model, structural_level=True)
    _predict_in_chunks(warehouse, model, fits, "v1", chunk_rows=90)
    written, expected = _written(warehouse), _one_pass(warehouse, model, fits)
    # One factor for the whole table, its two totals summed chunk by chunk: equal up to the sums' float rounding.
    np.testing.assert_allclose(written["predicted_clv"], expected["predicted_clv"], rtol=1e-12)
    assert written["customer_id"].tolist() == expected["customer_id"].tolist()


@pytest.fixture(scope="module")
def shape_hurdle_model():
    """The shape hurdle as champion of the same shop, with an isotonic shape-only map (its two table-wide factors)."""
    shop = simulate_shop(800, N_DAYS, seed=5)
    training = features_at(shop, N_DAYS - 1 - HORIZON, HORIZON)
    candidates = (champion.STACKED, champion.SHAPE_HURDLE)
    result = champion.champion_backtest(
        training, HORIZON, features_at(shop, N_DAYS - 1 - 2 * HORIZON, HORIZON), candidates=candidates
    )
    evaluation = result.evaluation.assign(is_champion=result.evaluation["model"] == champion.SHAPE_HURDLE)
    model = champion.fit_champion(training, HORIZON, evaluation)
    shape = champion.Calibration("isotonic", x=(1.0, 50.0, 400.0), y=(5.0, 40.0, 900.0), keeps_total=True)
    return dataclasses.replace(model, calibration=shape)


@pytest.mark.parametrize("structural_level", [False, True])
def test_a_leveled_hurdles_table_factors_are_the_whole_tables_in_chunks(
    scored_shop, shape_hurdle_model, structural_level
):
    warehouse, _, fits = scored_shop
    model = dataclasses.replace(shape_hurdle_model, structural_level=structural_level)
    assert model.name == champion.SHAPE_HURDLE and model.fitted.spend is not None
    _predict_in_chunks(warehouse, model, fits, "v1", chunk_rows=90)
    written, expected = _written(warehouse), _one_pass(warehouse, model, fits)
    # k and the shape rescaling, their totals summed chunk by chunk: equal up to the sums' float rounding.
    np.testing.assert_allclose(written["predicted_clv"], expected["predicted_clv"], rtol=1e-12)
    assert written["customer_id"].tolist() == expected["customer_id"].tolist()
    # The kept scores give exactly the table that re-scoring every chunk for every factor gives (Spark's passes:
    # its per-chunk functions, summed here in chunk order).
    with duckdb.connect(warehouse.path) as conn:
        chunks = list(champion_input_chunks(conn, FEATURES, 90))

    def rescored(table):
        totals = pd.concat([spark_compute.clv_table_totals(c, model, fits, table) for c in chunks])
        return sum(totals["total"].tolist()), sum(totals["target"].tolist())

    table = champion.table_factors(model, rescored)
    passes = pd.concat(
        [spark_compute.clv_predict_chunk(c, model, fits, "v1", table=table) for c in chunks], ignore_index=True
    )
    pd.testing.assert_frame_equal(written, passes, check_exact=True)
    # One chunk: the kept path's factors are the single pass's, bit for bit.
    _predict_in_chunks(warehouse, model, fits, "v1", chunk_rows=len(expected))
    pd.testing.assert_frame_equal(_written(warehouse), expected, check_exact=True)
    # Without the table's factors each chunk would take its own k and shape factor: visibly different.
    per_chunk = pd.concat([champion.predict_champion(model, c, fits=fits) for c in chunks], ignore_index=True)
    if not structural_level:
        assert not np.allclose(per_chunk["predicted_clv"], expected["predicted_clv"], rtol=1e-6)
