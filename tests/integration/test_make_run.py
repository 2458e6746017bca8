"""The two-command promise: `make run` materializes the whole graph and honours the output contract."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from demo_shop import generate_shop
from tests.conftest import make_run
from tests.integration.test_declared_relations import assert_every_relation_is_declared

pytestmark = pytest.mark.slow

# The third-party analytics tool: its own event names for the demo shop's events, and no page types.
FOREIGN_EVENT_NAMES = {
    "page_view": "catalog", "product_view": "product1", "add_to_cart": "cart", "begin_checkout": "checkout_step",
    "shipping_info_viewed": "delivery_choice", "purchase": "payment_done", "review_read": "opinions",
    "compare_used": "versus", "gallery_view": "photos", "video_play": "clip", "countdown_view": "timer",
    "low_stock_view": "few_left", "discount_code_applied": "voucher", "search": "lookup",
}  # fmt: skip
CONTRACT_COLUMNS = {"customer_id", "predicted_clv", "purchase_propensity", "rfm_segment", "behavioral_segment"}


def _tail(result) -> str:
    return result.stdout[-3000:] + "\n" + result.stderr[-6000:]


def _assert_customer_scores_contract(warehouse: Path) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        columns = {row[0]: row[1] for row in conn.execute("describe marts.customer_scores").fetchall()}
        assert CONTRACT_COLUMNS <= set(columns)
        assert columns["customer_id"] == "VARCHAR"
        n_rows, n_ids = conn.execute(
            "select count(*), count(distinct customer_id) from marts.customer_scores"
        ).fetchone()
        buyers = conn.execute(
            "select count(distinct customer_id) from raw.orders where order_total > 0 "
            "and coalesce(lower(status), '') not in ('cancelled', 'canceled', 'void', 'voided', 'refunded', 'refund', 'returned')"
        ).fetchone()[0]
        nulls = conn.execute(
            "select count(*) from marts.customer_scores where predicted_clv is null or purchase_propensity is null "
            "or rfm_segment is null or behavioral_segment is null"
        ).fetchone()[0]
    assert n_rows == n_ids == buyers
    assert nulls == 0
    _assert_peer_predictions(warehouse, n_rows)
    _assert_champion_and_intervals(warehouse)
    return n_rows


def _assert_champion_and_intervals(warehouse: Path) -> None:
    """Issue 13 items 1, 2, 5: every candidate evaluated, one champion used by the scores, p10 <= CLV <= p90."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        evaluation = conn.execute("select model, backtest_window, is_champion from marts.clv_model_evaluation").df()
        scores = conn.execute(
            "select clv_model, predicted_clv, predicted_clv_p10, predicted_clv_p90 from marts.customer_scores"
        ).df()
        stored = conn.execute("select clv_model, model_version from ml.clv_model").fetchall()
        used = conn.execute("select distinct model_version from ml.clv_predictions").fetchall()
    assert set(evaluation["model"]) == {
        "lightgbm",
        "lightgbm_btyd",
        "lightgbm_btyd_blend",
        "bgnbd",
        "pareto_nbd",
        "past_spend_rate",
        "lightgbm_hurdle_shape",
    }
    assert set(evaluation["backtest_window"]) == {"selection", "evaluation"}
    champions = set(evaluation.loc[evaluation["is_champion"], "model"])
    assert len(champions) == 1 and len(stored) == 1 and stored[0][0] in champions
    assert used == [(stored[0][1],)]  # predictions come from exactly the stored model version
    assert set(scores["clv_model"]) == champions
    assert scores.notna().all().all()
    assert (scores["predicted_clv_p10"] <= scores["predicted_clv"] + 1e-9).all()
    assert (scores["predicted_clv"] <= scores["predicted_clv_p90"] + 1e-9).all()


PEER_COLUMNS = [
    "p_alive", "churn_risk", "expected_orders", "expected_days_to_next_order", "expected_next_order_date",
    "predicted_avg_order_value", "historic_clv", "total_clv",
]  # fmt: skip


def _assert_peer_predictions(warehouse: Path, n_rows: int) -> None:
    """The BTYD peer predictions (issue 13, item 4) are there for every customer and within their ranges."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        scores = conn.execute(
            f"select as_of_date, predicted_clv, {', '.join(PEER_COLUMNS)} from marts.customer_scores"
        ).df()
        models = conn.execute("select distinct btyd_model from ml.btyd_predictions").fetchall()
        horizon = conn.execute("select horizon_days from raw.run_context").fetchone()[0]
    assert len(scores) == n_rows
    assert scores[PEER_COLUMNS].notna().all().all(), scores[PEER_COLUMNS].isna().sum().to_dict()
    assert models in ([("bgnbd",)], [("pareto_nbd",)])
    assert scores["p_alive"].between(0, 1).all()
    assert (scores["churn_risk"] - (1 - scores["p_alive"])).abs().max() < 1e-9
    assert scores["p_alive"].nunique() > 10  # a real spread, not a constant
    assert (scores["expected_orders"] >= 0).all() and scores["expected_orders"].max() < 1000
    assert scores["expected_days_to_next_order"].between(0, horizon).all()  # median given an order in the horizon
    days_ahead = (pd.to_datetime(scores["expected_next_order_date"]) - pd.to_datetime(scores["as_of_date"])).dt.days
    assert (days_ahead - scores["expected_days_to_next_order"]).abs().max() <= 0.5 + 1e-9
    assert (scores["predicted_avg_order_value"] > 0).all()
    assert ((scores["total_clv"] - scores["historic_clv"] - scores["predicted_clv"]).abs() < 1e-6).all()


def test_make_run_scores_every_customer_of_a_small_demo_shop(tmp_path):
    result = make_run(tmp_path, SEGMINT_DEMO_CUSTOMERS="1500")
    assert result.returncode == 0, _tail(result)
    n = _assert_customer_scores_contract(tmp_path / "data" / "warehouse.duckdb")
    assert n > 1000
    _assert_planted_archetypes_are_recovered(tmp_path)


def _assert_planted_archetypes_are_recovered(tmp_path: Path) -> None:
    """Through the real dbt features: clusters match the generator's planted archetypes and carry their names."""
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as conn:
        segments = conn.execute("select customer_id, cluster_id, behavioral_segment from ml.behavioral_segments").df()
    truth = pd.read_csv(tmp_path / "data" / "demo" / "truth" / "customers_truth.csv", dtype={"customer_id": str})
    clustered = segments.merge(truth, on="customer_id")
    clustered = clustered[clustered["cluster_id"] >= 0]  # customers without web events are not clustered
    assert adjusted_rand_score(clustered["archetype"], clustered["cluster_id"]) >= 0.8
    majority_name = clustered.groupby("archetype")["behavioral_segment"].agg(lambda names: names.mode().iloc[0])
    assert (majority_name.index == majority_name.to_numpy()).all(), majority_name.to_dict()
    assert len(majority_name) == 5


def with_foreign_event_names(demo_landing: Path, landing: Path) -> Path:
    """A copy of a demo landing zone whose events use FOREIGN_EVENT_NAMES and carry no page type."""
    landing.mkdir(parents=True)
    for path in demo_landing.glob("*.csv"):
        if path.name != "events.csv":
            shutil.copy(path, landing / path.name)
    cases = " ".join(f"when '{ours}' then '{theirs}'" for ours, theirs in FOREIGN_EVENT_NAMES.items())
    with duckdb.connect() as conn:
        conn.execute(
            f"copy (select * replace (case event_type {cases} else event_type end as event_type, null as page_type) "
            f"from read_csv('{demo_landing / 'events.csv'}', all_varchar=true) order by event_id) "
            f"to '{landing / 'events.csv'}' (header)"
        )
    return landing


def test_make_run_works_with_only_an_orders_file(tmp_path):
    demo = tmp_path / "demo"
    generate_shop(demo / "landing", demo / "truth", n_customers=800, seed=7)
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copy(demo / "landing" / "orders.csv", landing / "orders.csv")
    result = make_run(tmp_path, SEGMINT_LANDING_DIR=str(landing))
    assert result.returncode == 0, _tail(result)
    warehouse = tmp_path / "data" / "warehouse.duckdb"
    _assert_customer_scores_contract(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("select count(*) from raw.events").fetchone()[0] == 0
        modes = conn.execute("select distinct behavioral_segment from marts.customer_scores").fetchall()
    assert ("No Web Activity",) not in modes  # orders only: clustered on purchase behaviour instead
    # Issue 15: with no customers or events file too, every table and view of the run is declared by an asset.
    assert_every_relation_is_declared(warehouse)
