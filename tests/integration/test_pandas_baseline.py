"""The benchmark's pandas baseline computes every column of every feature mart, and the same values as dbt.

A small shop of the benchmark profile (Parquet), the graph run in process up to the feature marts (landing, raw
tables, the vocabulary, the dbt feature step), then each mart compared with `bench.baselines.pandas_feature_marts`
on the same files: same rows, same columns, every value equal (floats to 1e-9 relative).
"""

from __future__ import annotations

import os

import dagster as dg
import duckdb
import pandas as pd
import pytest

from bench.baselines import mismatches, pandas_feature_marts
from demo_shop import generate_shop
from tests.conftest import PROJECT_ROOT, segmint_env

pytestmark = pytest.mark.slow

MARTS = {
    "customer_features": "customer_id",
    "customer_features_train": "customer_id",
    "customer_features_selection": "customer_id",
    "customer_prepurchase_behaviour": "customer_id",
    "prospect_features": "prospect_id",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """(warehouse marts, pandas marts) for one small benchmark-profile shop."""
    root = tmp_path_factory.mktemp("pandas_baseline")
    landing = root / "landing"
    generate_shop(landing, root / "truth", n_customers=600, seed=11, file_format="parquet", profile="bench")
    env = segmint_env(root / "work", SEGMINT_LANDING_DIR=str(landing))
    home = root / "work" / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("SEGMINT_")]:
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        from orchestration.definitions import defs

        marts = dg.AssetSelection.assets(*(dg.AssetKey(["marts", name]) for name in MARTS))
        selection = list(marts.upstream().required_multi_asset_neighbors().resolve(defs.resolve_asset_graph()))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            result = defs.resolve_job_def("segmint_refresh").execute_in_process(
                instance=instance, asset_selection=selection, raise_on_error=False
            )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
    with duckdb.connect(env["SEGMINT_WAREHOUSE"], read_only=True) as conn:
        warehouse = {name: conn.execute(f"select * from marts.{name}").df() for name in MARTS}
    return warehouse, pandas_feature_marts(landing)


@pytest.mark.parametrize("mart", sorted(MARTS))
def test_pandas_reproduces_every_column_of_the_mart(built, mart):
    warehouse, pandas = built
    assert len(warehouse[mart]) > 0
    assert mismatches(warehouse[mart], pandas[mart], MARTS[mart]) == []


def test_a_changed_value_or_null_is_reported_by_column(built):
    warehouse, pandas = built
    changed = pandas["customer_features"].copy()
    changed.loc[0, "research_share"] += 0.01
    changed.loc[changed.index[changed["days_since_last_event"].notna()][0], "days_since_last_event"] = None
    assert mismatches(warehouse["customer_features"], changed, "customer_id") == [
        "days_since_last_event (NULLs)",
        "research_share",
    ]
