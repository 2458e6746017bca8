"""The metadata of ml/btyd_models when a cut-off's model could not be fitted (orchestration/defs/btyd.py)."""

from __future__ import annotations

import duckdb

from orchestration.defs.btyd import _fit_metadata


def test_a_fit_that_failed_reads_back_from_the_warehouse_as_not_fitted():
    # The day after a refit the kept fits are read back with DuckDB's .df(): a model that could not be fitted (a
    # small shop's cut-off without repeat buyers) has a NULL blob, which pandas gives as NA, not None. It raised
    # TypeError: cannot convert 'NAType' object to bytes, and the next day's run failed.
    with duckdb.connect() as conn:
        table = conn.execute(
            "SELECT 'train' AS cutoff, 'bgnbd' AS model, NULL::BLOB AS fitted_blob, "
            "'no repeat buyers' AS error, 0.0 AS fit_seconds"
        ).df()
    metadata = _fit_metadata(table)
    assert metadata["train/bgnbd"].value == "not fitted: no repeat buyers"
