"""The marts' Dagster checks on their failing path: a bad row planted in a tmp warehouse makes each one fail at ERROR
severity with a one-line description that says what is wrong (the data-quality-patterns habit: clean/defective pairs).
"""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest

from orchestration.defs.quality_checks import GX_CHECKED_TABLES, gx_checks
from orchestration.defs.reporting import MIN_ACTIONABLE_SEGMENTS, check_enough_actionable_segments
from orchestration.defs.resources import Warehouse
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
                }
            )
    return pd.DataFrame(rows)


def test_three_actionable_segments_of_one_kind_pass_the_report_check(tmp_path):
    warehouse = _warehouse(tmp_path, CARDS_TABLE, _cards(MIN_ACTIONABLE_SEGMENTS))
    result = check_enough_actionable_segments(warehouse=warehouse)
    assert result.passed, result.description


def test_too_few_actionable_segments_fail_the_report_check_naming_the_segments_held_back(tmp_path):
    # Planted: the third RFM segment shrank to 12 customers, so no kind has three actionable segments.
    result = check_enough_actionable_segments(warehouse=_warehouse(tmp_path, CARDS_TABLE, _cards(2)))
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
        }
    )
    result = check_enough_actionable_segments(warehouse=_warehouse(tmp_path, CARDS_TABLE, cards))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.description.endswith(
        f"a warning only: the shop has 20 customers, fewer than {MIN_ACTIONABLE_SEGMENTS} segments x 50 "
        "(playbook actionability.min_customers)"
    )


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
