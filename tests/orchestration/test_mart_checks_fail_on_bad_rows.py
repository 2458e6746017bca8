"""The marts' Dagster checks on their failing path: a bad row planted in a tmp warehouse makes each one fail at ERROR
severity with a one-line description that says what is wrong (the data-quality-patterns habit: clean/defective pairs).
"""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest

from orchestration.defs.quality_checks import GX_CHECKED_TABLES, gx_checks
from orchestration.defs.reporting import (
    MIN_ACTIONABLE_SEGMENTS,
    check_enough_actionable_segments,
    out_of_reach_reason,
)
from orchestration.defs.resources import SegmintSettings, Warehouse
from orchestration.lib.warehouse_io import write_table
from tests.unit.test_expectation_suites import CLEAN, DEFECTS

MART_TABLES = {suite: table for table, (_, suite) in GX_CHECKED_TABLES.items() if table.startswith("marts.")}
# The cards table is the one the check's asset names (schema.table).
CARDS_TABLE = ".".join(next(iter(check_enough_actionable_segments.check_keys)).asset_key.path)


def _warehouse(tmp_path, table: str, frame: pd.DataFrame) -> Warehouse:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        write_table(conn, table, frame)
    return Warehouse(path=str(path))


def _cards_warehouse(tmp_path, cards: pd.DataFrame, history_days: int, repeat_buyers: int = 100) -> Warehouse:
    """The cards next to a customer_features whose oldest customer's tenure is `history_days`, with `repeat_buyers`
    customers of two orders."""
    warehouse = _warehouse(tmp_path, CARDS_TABLE, cards)
    features = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(repeat_buyers + 1)],
            "tenure_days": history_days,
            "order_count": [1] + [2] * repeat_buyers,
        }
    )
    with duckdb.connect(warehouse.path) as conn:
        write_table(conn, "marts.customer_features", features)
    return warehouse


def _check_cards(
    tmp_path, cards: pd.DataFrame, history_days: int = 1000, horizon_days: int = 365, repeat_buyers: int = 100
):
    settings = SegmintSettings(horizon_days=horizon_days)
    return check_enough_actionable_segments(
        warehouse=_cards_warehouse(tmp_path, cards, history_days, repeat_buyers), settings=settings
    )


def _gx_check(suite: str) -> dg.AssetChecksDefinition:
    [check] = [c for c in gx_checks if next(iter(c.check_keys)).name == f"gx_{suite}"]
    return check


def test_every_mart_suite_runs_as_a_blocking_check():
    assert set(MART_TABLES) == set(CLEAN)
    for suite in MART_TABLES:
        [spec] = _gx_check(suite).check_specs
        assert spec.blocking


@pytest.mark.parametrize("suite", sorted(CLEAN))
def test_a_clean_mart_passes_its_gx_check(tmp_path, suite):
    result = _gx_check(suite)(warehouse=_warehouse(tmp_path, MART_TABLES[suite], CLEAN[suite]))
    assert result.passed, result.description


@pytest.mark.parametrize(("suite", "label", "table", "column", "shown"), DEFECTS, ids=[d[1] for d in DEFECTS])
def test_a_planted_bad_row_fails_the_marts_gx_check_with_its_reason(tmp_path, suite, label, table, column, shown):
    result = _gx_check(suite)(warehouse=_warehouse(tmp_path, MART_TABLES[suite], table))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert shown in result.description and (column or "") in result.description


def _cards(actionable_rfm: int) -> pd.DataFrame:
    """Four RFM and four behavioural cards; `actionable_rfm` RFM and two behavioural ones are actionable."""
    rows = []
    for kind, actionable in (("RFM segments", actionable_rfm), ("Behavioural segments", 2)):
        for i in range(4):
            ok = i < actionable
            rows.append(
                {
                    "segment_kind": kind,
                    "name": f"{kind[:3]} {i}",
                    "size": 400 if ok else 12,
                    "is_actionable": ok,
                    "actionability_reason": "" if ok else "fewer than 50 customers",
                    "strategy_source": "playbook",
                }
            )
    return pd.DataFrame(rows)


def test_three_actionable_segments_of_one_kind_pass_the_report_check(tmp_path):
    result = _check_cards(tmp_path, _cards(MIN_ACTIONABLE_SEGMENTS))
    assert result.passed, result.description


def test_too_few_actionable_segments_fail_the_report_check_naming_the_segments_held_back(tmp_path):
    # Planted: the third RFM segment shrank to 12 customers, so no kind has three actionable segments.
    result = _check_cards(tmp_path, _cards(2))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.description.startswith(f"2 actionable segments (need {MIN_ACTIONABLE_SEGMENTS})")
    assert "RFM 2: fewer than 50 customers" in result.description and "\n" not in result.description


def test_a_shop_too_small_for_three_actionable_segments_gets_a_warning_not_a_failed_run(tmp_path):
    # Found on a 20-customer shop: three segments of 50 customers are impossible, so the ERROR failed every run.
    cards = pd.DataFrame(
        {
            "segment_kind": ["RFM segments"] * 2 + ["Behavioural segments"],
            "name": ["Champions", "Hibernating", "Average buyers"],
            "size": [12, 8, 20],
            "is_actionable": [False, False, False],
            "actionability_reason": ["fewer than 50 customers"] * 3,
            "strategy_source": ["playbook", "playbook", "default"],
        }
    )
    result = _check_cards(tmp_path, cards)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.description.endswith(
        f"a warning only: the shop has 20 customers in segments with a playbook strategy, fewer than "
        f"{MIN_ACTIONABLE_SEGMENTS} segments x 50 (playbook actionability.min_customers)"
    )


def _young_shop_cards(behavioural_sizes: list[int]) -> pd.DataFrame:
    """Issue 13's young shop (60 days of orders): nine small RFM segments and three behavioural ones, all with a
    strategy; only behavioural segments of 50 or more are actionable."""
    rfm_sizes = [24, 24, 23, 22, 18, 13, 12, 12, 4]
    rows = [("RFM segments", f"RFM {i}", size) for i, size in enumerate(rfm_sizes)]
    rows += [("Behavioural segments", f"Beh {i}", size) for i, size in enumerate(behavioural_sizes)]
    return pd.DataFrame(
        {
            "segment_kind": [kind for kind, _, _ in rows],
            "name": [name for _, name, _ in rows],
            "size": [size for _, _, size in rows],
            "is_actionable": [kind.startswith("Beh") and size >= 50 for kind, _, size in rows],
            "actionability_reason": ["" if size >= 50 else "fewer than 50 customers" for _, _, size in rows],
            "strategy_source": "playbook",
        }
    )


def test_a_young_shop_above_the_customer_bar_with_too_few_actionable_segments_gets_a_warning(tmp_path):
    # Issue 13: 152 customers over 60 days, above 3 x 50 but split 83/46/23: `make run` exited 1 on this ERROR.
    result = _check_cards(tmp_path, _young_shop_cards([83, 46, 23]), history_days=53, horizon_days=365)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.description.endswith(
        "a warning only: a young shop (53 days of orders, less than one CLV horizon of 365) with 152 customers in "
        f"segments with a playbook strategy, fewer than 2 x {MIN_ACTIONABLE_SEGMENTS} segments x 50"
    )


def test_the_same_cards_fail_at_error_once_the_shop_is_older_than_one_horizon(tmp_path):
    # 152 customers could give three segments of 50: past its first horizon the shop that does not is a regression.
    result = _check_cards(tmp_path, _young_shop_cards([83, 46, 23]), history_days=400, horizon_days=365)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert "a warning only" not in result.description


def _young_orders_only_cards() -> pd.DataFrame:
    """A 60-day orders-only shop of 430 customers, 35 of them repeat buyers, after ml/rfm.py stopped naming its 30-day
    customers lapsing: RFM segments of 317 and 78 (+ 33 and 2 repeat buyers), behavioural 113 and 77 (+ 35)."""
    rows = [("RFM segments", "Promising", 317), ("RFM segments", "New Customers", 78)]
    rows += [("RFM segments", "Potential Loyalists", 33), ("RFM segments", "Loyal Customers", 2)]
    rows += [("Behavioural segments", "Deal-driven buyers", 113), ("Behavioural segments", "Recent first-timers", 77)]
    rows += [("Behavioural segments", "Frequent high spenders", 35)]
    return pd.DataFrame(
        {
            "segment_kind": [kind for kind, _, _ in rows],
            "name": [name for _, name, _ in rows],
            "size": [size for _, _, size in rows],
            "is_actionable": [size >= 50 for _, _, size in rows],
            "actionability_reason": ["" if size >= 50 else "fewer than 50 customers" for _, _, size in rows],
            "strategy_source": "playbook",
        }
    )


def test_a_young_shop_whose_rfm_names_cannot_split_its_first_time_buyers_further_gets_a_warning(tmp_path):
    # Regression (issue 13): 430 customers in RFM strategy segments, above twice the bar, but a young shop's one-order
    # customers are only New Customers or Promising and 35 repeat buyers cannot make a third: `make run` exited 1.
    result = _check_cards(tmp_path, _young_orders_only_cards(), history_days=60, horizon_days=365, repeat_buyers=35)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "and its 35 repeat buyers are fewer than 50 for a third; the other kinds have at most 225" in (
        result.description
    )


def test_the_same_young_shop_with_enough_repeat_buyers_for_a_third_rfm_segment_fails_at_error(tmp_path):
    result = _check_cards(tmp_path, _young_orders_only_cards(), history_days=60, horizon_days=365, repeat_buyers=50)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR


def test_a_young_shop_with_customers_enough_for_twice_the_bar_still_fails_at_error(tmp_path):
    result = _check_cards(tmp_path, _young_shop_cards([250, 40, 10]), history_days=53, horizon_days=365)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR


@pytest.mark.parametrize(
    ("sizes", "sources", "history_days", "expected"),
    [
        # Customers in segments without a strategy can never be actionable: 160 customers, 40 with a strategy.
        ([120, 40], ["default", "playbook"], 1000, "the shop has 40 customers in segments with a playbook strategy"),
        ([150], ["playbook"], 1000, ""),  # the bar itself: three segments of 50 are possible
        ([299], ["playbook"], 89, "a young shop (89 days of orders, less than one CLV horizon of 90)"),
        ([300], ["playbook"], 89, ""),  # twice the bar: a young shop that could
        ([299], ["playbook"], 90, ""),  # one horizon of history: no longer young
    ],
)
def test_out_of_reach_reason_on_planted_cards(sizes, sources, history_days, expected):
    cards = pd.DataFrame({"segment_kind": "Behavioural segments", "size": sizes, "strategy_source": sources})
    reason = out_of_reach_reason(cards, min_customers=50, history_days=history_days, horizon_days=90)
    assert reason.startswith(expected) and bool(reason) == bool(expected)


def _shop_without_customers(tmp_path, is_refund: list[bool], is_cancelled: list[bool]) -> Warehouse:
    """An empty customer_features next to the staged orders (their flags as stg_orders sets them) and the cut-off."""
    warehouse = _warehouse(tmp_path, MART_TABLES["customer_features"], CLEAN["customer_features"].head(0))
    orders = pd.DataFrame(
        {
            "order_id": [f"O{i}" for i in range(len(is_refund))],
            "ordered_on": pd.to_datetime(["2025-06-01"] * len(is_refund)).date,
            "is_refund": is_refund,
            "is_cancelled": is_cancelled,
        }
    )
    with duckdb.connect(warehouse.path) as conn:
        conn.execute("create schema staging; create schema intermediate")
        write_table(conn, "staging.stg_orders", orders)
        write_table(
            conn, "intermediate.int_cutoffs", pd.DataFrame({"scoring_cutoff": pd.to_datetime(["2025-07-01"]).date})
        )
    return warehouse


def test_a_shop_whose_every_order_is_a_refund_or_cancellation_fails_the_features_check_saying_so(tmp_path):
    # Regression: the line was GX's "expect_table_row_count_to_be_between: observed 0 (min_value=1)".
    warehouse = _shop_without_customers(tmp_path, is_refund=[True, False, True], is_cancelled=[False, True, True])
    result = _gx_check("customer_features")(warehouse=warehouse)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.description == (
        "no completed order up to 2025-07-01: all 3 orders are refunds or cancellations (refunds: 1, cancellations: 2)"
    )
    assert "observed 0" in result.metadata["expectations_failed"].value


def test_an_empty_features_table_the_staged_orders_do_not_explain_keeps_the_gx_line(tmp_path):
    warehouse = _shop_without_customers(tmp_path, is_refund=[True, False], is_cancelled=[False, False])
    result = _gx_check("customer_features")(warehouse=warehouse)
    assert not result.passed and "observed 0" in result.description
