"""No leakage, ever: rows after the as-of date cannot change a single score."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from demo_shop import generate_shop
from tests.conftest import make_run

pytestmark = pytest.mark.slow

END_DATE = date(2026, 6, 30)
AS_OF = END_DATE - timedelta(days=75)
TIME_COLUMNS = {"orders.csv": "ordered_at", "events.csv": "occurred_at", "customers.csv": "signed_up_at"}


def _truncate(full: Path, truncated: Path, as_of: date) -> None:
    """Copy the landing files keeping only rows at or before the as-of date (what a user exporting then would have)."""
    truncated.mkdir()
    with duckdb.connect() as conn:
        for name, column in TIME_COLUMNS.items():
            conn.execute(
                f"copy (select * from read_csv('{full / name}', all_varchar=true) "
                f"where cast({column} as date) <= date '{as_of}' order by all) to '{truncated / name}' (header)"
            )


def _scores(warehouse: Path) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute("select * from marts.customer_scores order by customer_id").df()


def test_scores_are_identical_with_and_without_the_rows_after_the_as_of_date(tmp_path):
    full = tmp_path / "full"
    generate_shop(full, tmp_path / "truth", n_customers=1200, seed=11, end_date=END_DATE)
    truncated = tmp_path / "truncated"
    _truncate(full, truncated, AS_OF)

    run_full = make_run(tmp_path / "a", SEGMINT_LANDING_DIR=str(full), SEGMINT_AS_OF=AS_OF.isoformat())
    assert run_full.returncode == 0, run_full.stderr[-4000:]
    run_truncated = make_run(tmp_path / "b", SEGMINT_LANDING_DIR=str(truncated), SEGMINT_AS_OF=AS_OF.isoformat())
    assert run_truncated.returncode == 0, run_truncated.stderr[-4000:]

    with_future = _scores(tmp_path / "a" / "data" / "warehouse.duckdb")
    without_future = _scores(tmp_path / "b" / "data" / "warehouse.duckdb")
    assert len(with_future) > 500
    assert with_future["as_of_date"].astype(str).str[:10].unique().tolist() == [AS_OF.isoformat()]
    pd.testing.assert_frame_equal(with_future, without_future)

    # The full run really did see later rows, and set them aside as after_as_of instead of using them.
    with duckdb.connect(str(tmp_path / "a" / "data" / "warehouse.duckdb"), read_only=True) as conn:
        ignored = conn.execute("select count(*) from raw.quarantine where reason like 'after_as_of%'").fetchone()[0]
    assert ignored > 0
