"""Treated-vs-control comparison per audience from provenance and later orders."""

import pandas as pd
import pytest

from activation.sync import lift_by_audience


def test_lift_compares_orders_after_first_assignment_between_treated_and_control():
    t0 = pd.Timestamp("2026-01-01")
    assignments = pd.DataFrame(
        [
            ("vip", "a", False, t0),
            ("vip", "b", False, t0),
            ("vip", "c", True, t0),
            ("vip", "d", True, t0),
            ("vip", "a", False, t0 + pd.Timedelta(days=7)),  # a later run does not move the start date
        ],
        columns=["audience", "customer_id", "is_control", "recorded_at"],
    )
    orders = pd.DataFrame(
        [
            ("a", t0 - pd.Timedelta(days=1), 500.0),  # before assignment: ignored
            ("a", t0 + pd.Timedelta(days=2), 100.0),
            ("b", t0 + pd.Timedelta(days=3), 60.0),
            ("b", t0 + pd.Timedelta(days=9), 40.0),
            ("c", t0 + pd.Timedelta(days=5), 20.0),
        ],
        columns=["customer_id", "ordered_at", "order_total"],
    )
    lift = lift_by_audience(assignments, orders).set_index("audience").loc["vip"]
    assert (lift["treated_customers"], lift["control_customers"]) == (2, 2)
    assert lift["treated_buyer_share"] == 1.0 and lift["control_buyer_share"] == 0.5
    assert lift["treated_revenue_per_customer"] == pytest.approx(100.0)
    assert lift["control_revenue_per_customer"] == pytest.approx(10.0)
    assert lift["revenue_per_customer_lift"] == pytest.approx(90.0)
    assert lift["relative_revenue_lift"] == pytest.approx(9.0)
    assert lift["treated_orders_per_customer"] == pytest.approx(1.5)


def test_lift_has_no_p_value_when_a_group_is_too_small():
    t0 = pd.Timestamp("2026-01-01")
    assignments = pd.DataFrame(
        [("x", "a", False, t0), ("x", "b", True, t0)], columns=["audience", "customer_id", "is_control", "recorded_at"]
    )
    orders = pd.DataFrame(columns=["customer_id", "ordered_at", "order_total"])
    lift = lift_by_audience(assignments, orders)
    assert lift["p_value"].isna().all()
    assert lift.loc[0, "treated_revenue_per_customer"] == 0.0
