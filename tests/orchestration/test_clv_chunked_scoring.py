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


def _written(warehouse: Warehouse, digest: bool = False) -> pd.DataFrame:
    """The table written; without drivers_digest (the DuckDB path's bookkeeping for the next scoring) unless asked."""
    with duckdb.connect(warehouse.path) as conn:
        return conn.execute(f"select * {'' if digest else 'exclude (drivers_digest)'} from {PREDICTIONS_TABLE}").df()


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


def _next_day(features: pd.DataFrame) -> pd.DataFrame:
    """The same customers a day later: recency and tenure move for everyone (what a real next day does)."""
    moved = features.copy()
    for column in ("recency_days", "tenure_days", "days_since_last_event", "btyd_recency_days"):
        moved[column] = moved[column] + 1
    return moved


@pytest.fixture(scope="module")
def lightgbm_model():
    """LightGBM as champion of the same shop (its trees explain every customer)."""
    shop = simulate_shop(800, N_DAYS, seed=5)
    training = features_at(shop, N_DAYS - 1 - HORIZON, HORIZON)
    result = champion.champion_backtest(
        training, HORIZON, features_at(shop, N_DAYS - 1 - 2 * HORIZON, HORIZON), candidates=(champion.LIGHTGBM,)
    )
    evaluation = result.evaluation.assign(is_champion=result.evaluation["model"] == champion.LIGHTGBM)
    return champion.fit_champion(training, HORIZON, evaluation)


def test_a_next_day_keeps_the_drivers_of_unchanged_patterns_and_explains_the_rest(
    tmp_path, scored_shop, lightgbm_model
):
    # Issue 18: top_drivers of a customer whose patterns in every value tree did not move are taken over from the
    # previous scoring by the same model; the table must be exactly what explaining everyone gives.
    shared, _, fits = scored_shop
    model = lightgbm_model
    assert model.name == champion.LIGHTGBM
    warehouse = Warehouse(path=str(tmp_path / "warehouse.duckdb"), engine="duckdb")
    with duckdb.connect(shared.path) as source, duckdb.connect(warehouse.path) as conn:
        today = source.execute(f"select * from {FEATURES} order by customer_id").df()
        write_table(conn, FEATURES, today)
    _predict_in_chunks(warehouse, model, fits, "v1", chunk_rows=90)
    first = _written(warehouse, digest=True)
    assert first["drivers_digest"].notna().all()
    pd.testing.assert_frame_equal(first.drop(columns="drivers_digest"), _one_pass(warehouse, model, fits))

    with duckdb.connect(warehouse.path) as conn:
        write_table(conn, FEATURES, _next_day(today))
        # A planted text shows which drivers are taken over: exactly those of the customers whose patterns stayed.
        conn.execute(f"update {PREDICTIONS_TABLE} set top_drivers = 'kept'")
    _predict_in_chunks(warehouse, model, fits, "v1", chunk_rows=90)
    second = _written(warehouse, digest=True)
    expected = _one_pass(warehouse, model, fits)
    unchanged = (second["drivers_digest"] == first["drivers_digest"]).to_numpy()
    assert 0 < unchanged.sum() < len(second)  # both paths are exercised
    planted = (second["top_drivers"] == "kept").to_numpy()
    assert (planted == unchanged).all()
    first_texts = first["top_drivers"].to_numpy()
    assert (expected["top_drivers"].to_numpy()[unchanged] == first_texts[unchanged]).all()  # what was taken over
    pd.testing.assert_frame_equal(second.drop(columns="drivers_digest")[~planted], expected[~planted], check_exact=True)

    # Another model version never takes them over: everyone is explained again.
    _predict_in_chunks(warehouse, model, fits, "v2", chunk_rows=90)
    third = _written(warehouse)
    pd.testing.assert_frame_equal(third, expected.assign(model_version="v2"), check_exact=True)
