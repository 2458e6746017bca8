"""The lookalike is fitted once per run (ml/prospect_scores) and stored in ml.lookalike_model; the serving bundle
reads that very model back, and only if it matches its recorded version."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from ml.lookalike import fit_lookalike, score_prospects
from orchestration.defs.segments import LOOKALIKE_MODEL_TABLE, lookalike_model_row, read_lookalike_model
from orchestration.lib.keys import LOOKALIKE_MODEL
from orchestration.lib.warehouse_io import write_table
from realtime.bundle import lookalike_json
from tests.unit.test_lookalike import behaviour, rfm_rows


@pytest.fixture
def fitted():
    rng = np.random.default_rng(0)
    ids = [f"c{i:05d}" for i in range(600)]
    research = rng.beta(2, 20, len(ids))
    prepurchase = behaviour(ids, research, rng)
    return fit_lookalike(prepurchase, rfm_rows(ids, rng.random(len(ids)) < np.where(research > 0.1, 0.6, 0.1)))


def test_the_stored_lookalike_scores_and_packs_exactly_like_the_fitted_one(fitted):
    prospects = behaviour([f"p{i}" for i in range(50)], np.linspace(0, 0.3, 50), np.random.default_rng(1))
    prospects = prospects.rename(columns={"customer_id": "prospect_id"})
    with duckdb.connect() as conn:
        write_table(conn, LOOKALIKE_MODEL_TABLE, lookalike_model_row(fitted))
        model, version = read_lookalike_model(conn)
        assert conn.execute(f"select method, n_train from {LOOKALIKE_MODEL_TABLE}").fetchall() == [
            (fitted.method, fitted.n_train)
        ]
    assert len(version) == 12
    assert score_prospects(model, prospects).equals(score_prospects(fitted, prospects))  # bit for bit
    assert lookalike_json(model) == lookalike_json(fitted)


def test_a_missing_or_tampered_lookalike_is_refused_with_one_line(fitted):
    with duckdb.connect() as conn:
        with pytest.raises(ValueError, match="materialize ml/prospect_scores first"):
            read_lookalike_model(conn)
        write_table(conn, LOOKALIKE_MODEL_TABLE, lookalike_model_row(fitted).assign(model_version="000000000000"))
        with pytest.raises(ValueError, match="does not match its version 000000000000"):
            read_lookalike_model(conn)


def test_the_serving_bundle_declares_the_lookalike_it_reads_and_nothing_it_does_not():
    from orchestration.definitions import defs
    from orchestration.lib.keys import CUSTOMER_SCORES, SERVING_BUNDLE

    graph = defs.resolve_asset_graph()
    assert graph.get(SERVING_BUNDLE).parent_keys == {CUSTOMER_SCORES, LOOKALIKE_MODEL}
