"""The demo shop generator: deterministic, realistic in the ways downstream models rely on, and honest ground truth."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from demo_shop import ShopSummary, generate_shop
from demo_shop.__main__ import main as cli_main
from demo_shop.config import ARCHETYPES
from demo_shop.text import zero_padded

N_CUSTOMERS = 2000
SEED = 42
END_DATE = date(2026, 6, 30)
FUTURE_DAYS = 365
CUTOFF = pd.Timestamp(END_DATE + timedelta(days=1))
HORIZON_END = CUTOFF + pd.Timedelta(days=FUTURE_DAYS)

ORDER_COLUMNS = [
    "order_id",
    "customer_id",
    "ordered_at",
    "order_total",
    "currency",
    "discount_amount",
    "discount_code",
    "channel",
    "status",
]
CUSTOMER_COLUMNS = [
    "customer_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "postal_code",
    "country",
    "signed_up_at",
    "acquisition_channel",
    "marketing_consent",
]
EVENT_COLUMNS = [
    "event_id",
    "customer_id",
    "anonymous_id",
    "occurred_at",
    "event_type",
    "page_type",
    "product_id",
    "device",
    "utm_source",
    "utm_campaign",
]
EVENT_TYPES = {
    "page_view",
    "product_view",
    "add_to_cart",
    "begin_checkout",
    "shipping_info_viewed",
    "purchase",
    "review_read",
    "compare_used",
    "gallery_view",
    "video_play",
    "countdown_view",
    "low_stock_view",
    "discount_code_applied",
    "search",
}
PAGE_TYPES = {
    "home",
    "category",
    "product",
    "sale",
    "about",
    "brand",
    "reviews",
    "comparison",
    "gallery",
    "cart",
    "checkout",
    "blog",
    "search",
}


def _read_text_csv(path: Path) -> pd.DataFrame:
    """Every column as text, the way a careful pipeline reads a landing file."""
    return pd.read_csv(path, dtype=str)


def _read_orders(path: Path) -> pd.DataFrame:
    orders = _read_text_csv(path)
    orders["ordered_at"] = pd.to_datetime(orders["ordered_at"])
    orders["order_total"] = orders["order_total"].astype(float)
    return orders


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> ShopSummary:
    root = tmp_path_factory.mktemp("shop")
    return generate_shop(
        root / "landing", root / "truth", n_customers=N_CUSTOMERS, seed=SEED, end_date=END_DATE, future_days=FUTURE_DAYS
    )


@pytest.fixture(scope="module")
def orders(shop: ShopSummary) -> pd.DataFrame:
    return _read_orders(shop.orders_path)


@pytest.fixture(scope="module")
def future_orders(shop: ShopSummary) -> pd.DataFrame:
    return _read_orders(shop.future_orders_path)


@pytest.fixture(scope="module")
def customers(shop: ShopSummary) -> pd.DataFrame:
    return _read_text_csv(shop.customers_path)


@pytest.fixture(scope="module")
def events(shop: ShopSummary) -> pd.DataFrame:
    events = _read_text_csv(shop.events_path)
    events["occurred_at"] = pd.to_datetime(events["occurred_at"])
    return events


@pytest.fixture(scope="module")
def customers_truth(shop: ShopSummary) -> pd.DataFrame:
    truth = _read_text_csv(shop.customers_truth_path)
    truth["future_order_count"] = truth["future_order_count"].astype(int)
    truth["future_revenue"] = truth["future_revenue"].astype(float)
    truth["dropout_rate"] = truth["dropout_rate"].astype(float)
    return truth.set_index("customer_id")


@pytest.fixture(scope="module")
def prospects_truth(shop: ShopSummary) -> pd.DataFrame:
    return _read_text_csv(shop.prospects_truth_path)


def _file_bytes(summary: ShopSummary) -> dict[str, bytes]:
    paths = [
        summary.orders_path,
        summary.customers_path,
        summary.events_path,
        summary.future_orders_path,
        summary.customers_truth_path,
        summary.prospects_truth_path,
    ]
    return {path.name: path.read_bytes() for path in paths}


def _event_shares(events: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per visitor: share of each event_type and each page_type among their events."""
    event_types = pd.crosstab(events[key], events["event_type"])
    page_types = pd.crosstab(events[key], "page_" + events["page_type"])
    counts = pd.concat([event_types, page_types], axis=1)
    return counts.div(event_types.sum(axis=1), axis=0)


def _kmeans_ari(shares: pd.DataFrame, archetypes: pd.Series) -> float:
    scaled = StandardScaler().fit_transform(shares)
    labels = KMeans(n_clusters=5, n_init=10, random_state=0).fit_predict(scaled)
    return adjusted_rand_score(archetypes.loc[shares.index], labels)


# --- determinism -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_the_same_seed_writes_byte_identical_files(tmp_path: Path, file_format: str) -> None:
    first = generate_shop(tmp_path / "a" / "l", tmp_path / "a" / "t", n_customers=300, seed=7, file_format=file_format)
    second = generate_shop(tmp_path / "b" / "l", tmp_path / "b" / "t", n_customers=300, seed=7, file_format=file_format)
    other_seed = generate_shop(
        tmp_path / "c" / "l", tmp_path / "c" / "t", n_customers=300, seed=8, file_format=file_format
    )
    assert _file_bytes(first) == _file_bytes(second)
    assert _file_bytes(first)[first.orders_path.name] != _file_bytes(other_seed)[other_seed.orders_path.name]


# --- files and columns -------------------------------------------------------------------------------------------


def test_landing_files_carry_exactly_the_landing_columns(
    orders: pd.DataFrame, customers: pd.DataFrame, events: pd.DataFrame, future_orders: pd.DataFrame
) -> None:
    assert list(orders.columns) == ORDER_COLUMNS
    assert list(future_orders.columns) == ORDER_COLUMNS
    assert list(customers.columns) == CUSTOMER_COLUMNS
    assert list(events.columns) == EVENT_COLUMNS


def test_summary_counts_match_the_files(
    shop: ShopSummary,
    orders: pd.DataFrame,
    customers: pd.DataFrame,
    events: pd.DataFrame,
    future_orders: pd.DataFrame,
    prospects_truth: pd.DataFrame,
) -> None:
    assert (shop.customers, shop.orders, shop.events, shop.future_orders, shop.prospects) == (
        len(customers),
        len(orders),
        len(events),
        len(future_orders),
        len(prospects_truth),
    )
    assert shop.customers == shop.buyers == N_CUSTOMERS


def test_parquet_files_hold_the_same_columns_and_typed_timestamps(tmp_path: Path) -> None:
    summary = generate_shop(tmp_path / "l", tmp_path / "t", n_customers=200, file_format="parquet")
    orders = pq.read_table(summary.orders_path)
    assert orders.column_names == ORDER_COLUMNS
    assert orders.num_rows == summary.orders
    assert str(orders.schema.field("ordered_at").type).startswith("timestamp")
    assert pq.read_table(summary.events_path).column_names == EVENT_COLUMNS
    assert pq.read_table(summary.customers_path).column("customer_id")[0].as_py() == "0000001"


def test_regenerating_in_another_format_leaves_no_stale_files(tmp_path: Path) -> None:
    generate_shop(tmp_path / "l", tmp_path / "t", n_customers=50, file_format="csv")
    generate_shop(tmp_path / "l", tmp_path / "t", n_customers=50, file_format="parquet")
    assert sorted(p.name for p in (tmp_path / "l").iterdir()) == [
        "customers.parquet",
        "events.parquet",
        "orders.parquet",
    ]
    assert not list((tmp_path / "t").glob("*.csv"))


def test_timestamps_are_written_as_iso_text_in_csv(shop: ShopSummary) -> None:
    first_order_line = shop.orders_path.read_text().splitlines()[1]
    ordered_at = first_order_line.split(",")[2]
    assert datetime.strptime(ordered_at, "%Y-%m-%d %H:%M:%S")


def test_customer_ids_keep_their_leading_zeros_when_read_as_text(customers: pd.DataFrame, orders: pd.DataFrame) -> None:
    assert customers["customer_id"].iloc[0] == "0000001"
    assert customers["customer_id"].str.len().eq(7).all()
    assert customers["customer_id"].is_unique
    assert orders["customer_id"].str.startswith("0").all()


def test_every_order_belongs_to_a_customer_in_the_customers_file(
    customers: pd.DataFrame, orders: pd.DataFrame, future_orders: pd.DataFrame, events: pd.DataFrame
) -> None:
    known = set(customers["customer_id"])
    assert set(orders["customer_id"]) <= known
    assert set(future_orders["customer_id"]) <= known
    assert set(events["customer_id"].dropna()) <= known


def test_event_vocabulary_is_the_documented_one(events: pd.DataFrame) -> None:
    assert set(events["event_type"]) == EVENT_TYPES
    assert set(events["page_type"]) == PAGE_TYPES
    assert set(events["device"]) == {"desktop", "mobile", "tablet"}
    assert events["event_id"].is_unique


# --- the time split ----------------------------------------------------------------------------------------------


def test_no_landing_row_is_after_end_date_and_every_future_order_is_within_the_horizon(
    orders: pd.DataFrame, events: pd.DataFrame, future_orders: pd.DataFrame
) -> None:
    assert orders["ordered_at"].max() < CUTOFF
    assert events["occurred_at"].max() < CUTOFF
    assert future_orders["ordered_at"].min() >= CUTOFF
    assert future_orders["ordered_at"].max() < HORIZON_END
    assert len(future_orders) > 0.1 * len(orders)


def test_customers_sign_up_over_about_three_growing_years(customers: pd.DataFrame) -> None:
    signed_up = pd.to_datetime(customers["signed_up_at"])
    assert signed_up.min() > CUTOFF - pd.Timedelta(days=3 * 365 + 60)
    last_year = (signed_up >= CUTOFF - pd.Timedelta(days=365)).sum()
    first_year = (signed_up < CUTOFF - pd.Timedelta(days=2 * 365)).sum()
    assert last_year > 1.5 * first_year


# --- buying ------------------------------------------------------------------------------------------------------


def test_most_buyers_buy_once_and_the_average_is_below_two_orders(orders: pd.DataFrame) -> None:
    orders_per_buyer = orders[orders["status"] == "completed"].groupby("customer_id").size()
    assert 0.60 <= (orders_per_buyer == 1).mean() <= 0.72
    assert 1.5 <= orders_per_buyer.mean() <= 2.1


def test_spend_is_heavy_tailed(orders: pd.DataFrame) -> None:
    revenue = orders.groupby("customer_id")["order_total"].sum().sort_values(ascending=False)
    top_decile = revenue.iloc[: len(revenue) // 10].sum() / revenue.sum()
    assert top_decile > 0.40


def test_refunds_are_separate_negative_rows_dated_after_their_purchase(orders: pd.DataFrame) -> None:
    assert set(orders["status"]) == {"completed", "refunded"}
    refunds = orders[orders["status"] == "refunded"]
    purchases = orders[orders["status"] == "completed"].set_index("order_id")
    assert 0.015 < len(refunds) / len(purchases) < 0.05
    assert (refunds["order_total"] < 0).all() and (purchases["order_total"] > 0).all()
    # A refund's id is its purchase's id + "-R"; the purchase is earlier and at least as large.
    original = purchases.loc[refunds["order_id"].str.removesuffix("-R")]
    assert (refunds["ordered_at"].to_numpy() > original["ordered_at"].to_numpy()).all()
    assert (-refunds["order_total"].to_numpy() <= original["order_total"].to_numpy() + 1e-9).all()


def test_orders_use_the_documented_channels_currency_and_entry_offers(orders: pd.DataFrame) -> None:
    assert set(orders["channel"]) == {"web", "mobile_app"}
    assert set(orders["currency"]) == {"USD"}
    first_orders = orders[orders["status"] == "completed"].sort_values("ordered_at").groupby("customer_id").head(1)
    assert {"WELCOME10", "FREESHIP"} <= set(first_orders["discount_code"].dropna())
    discounted = orders["discount_code"].notna()
    assert (orders.loc[discounted, "discount_amount"].astype(float) > 0).all()
    assert (orders.loc[~discounted, "discount_amount"].astype(float) == 0).all()


def test_discount_acquired_customers_churn_faster(orders: pd.DataFrame, customers_truth: pd.DataFrame) -> None:
    first_orders = orders[orders["status"] == "completed"].sort_values("ordered_at").groupby("customer_id").head(1)
    entry_offer = first_orders.set_index("customer_id")["discount_code"].notna()
    dropout = customers_truth["dropout_rate"].loc[entry_offer.index]
    assert dropout[entry_offer].median() > 1.3 * dropout[~entry_offer].median()


def test_future_revenue_in_the_truth_equals_the_future_orders(
    future_orders: pd.DataFrame, customers_truth: pd.DataFrame
) -> None:
    clipped = future_orders.assign(order_total=future_orders["order_total"].clip(lower=0))
    expected = clipped.groupby("customer_id")["order_total"].sum()
    actual = customers_truth["future_revenue"]
    assert np.allclose(actual.loc[expected.index], expected, atol=0.011)
    assert actual.drop(expected.index).eq(0).all()
    expected_count = future_orders[future_orders["status"] == "completed"].groupby("customer_id").size()
    assert customers_truth["future_order_count"].sum() == expected_count.sum()


# --- contact data ------------------------------------------------------------------------------------------------


def test_contact_data_needs_normalising(customers: pd.DataFrame) -> None:
    emails = customers["email"].dropna()
    assert (emails != emails.str.strip()).any(), "some emails are padded with spaces"
    assert (emails.str.strip() != emails.str.strip().str.lower()).any(), "some emails are mixed case"
    phones = customers["phone"].dropna()
    assert phones.str.startswith("+1 (").any() and phones.str.contains(r"^\d{3}\.\d{3}\.\d{4}$").any()
    assert customers["postal_code"].str.startswith("0").any()
    consent = customers["marketing_consent"].eq("true").mean()
    assert 0.6 < consent < 0.8
    assert set(customers["acquisition_channel"]) == {
        "paid_search",
        "paid_social",
        "organic",
        "email",
        "referral",
        "affiliate",
    }


# --- web behaviour -----------------------------------------------------------------------------------------------


def test_about_85_percent_of_buyers_have_web_events(events: pd.DataFrame, customers: pd.DataFrame) -> None:
    tracked = events["customer_id"].dropna().nunique() / len(customers)
    assert 0.80 < tracked < 0.90


def test_prospects_have_events_and_no_orders(
    events: pd.DataFrame, prospects_truth: pd.DataFrame, orders: pd.DataFrame
) -> None:
    assert 0.35 * N_CUSTOMERS < len(prospects_truth) < 0.45 * N_CUSTOMERS
    prospect_events = events[events["anonymous_id"].isin(prospects_truth["anonymous_id"])]
    assert set(prospect_events["anonymous_id"]) == set(prospects_truth["anonymous_id"])
    assert prospect_events["customer_id"].isna().all()
    assert not prospect_events["event_type"].eq("purchase").any()
    buyer_anonymous_ids = set(events.loc[events["customer_id"].notna(), "anonymous_id"])
    assert buyer_anonymous_ids.isdisjoint(prospects_truth["anonymous_id"])
    assert set(prospects_truth["archetype"]) == set(ARCHETYPES)
    assert 0.02 < prospects_truth["converts_in_future"].eq("true").mean() < 0.4


def test_archetypes_are_recoverable_by_kmeans_on_event_shares(
    events: pd.DataFrame, customers_truth: pd.DataFrame
) -> None:
    shares = _event_shares(events[events["customer_id"].notna()], "customer_id")
    archetypes = customers_truth["archetype"]
    assert set(archetypes) == set(ARCHETYPES)
    assert _kmeans_ari(shares, archetypes) >= 0.8
    # The same check on shuffled truth fails: the ARI measures planted structure, not noise.
    shuffled = pd.Series(np.random.default_rng(0).permutation(archetypes.to_numpy()), index=archetypes.index)
    assert _kmeans_ari(shares, shuffled) < 0.05


def test_recent_engagement_predicts_future_buying(events: pd.DataFrame, customers_truth: pd.DataFrame) -> None:
    last_event = events[events["customer_id"].notna()].groupby("customer_id")["occurred_at"].max()
    days_since = (CUTOFF - last_event).dt.days
    buys_again = customers_truth["future_order_count"].loc[days_since.index] > 0
    assert days_since[buys_again].mean() < 0.5 * days_since[~buys_again].mean()


def test_churned_customers_mostly_stop_visiting(events: pd.DataFrame, customers_truth: pd.DataFrame) -> None:
    last_event = events[events["customer_id"].notna()].groupby("customer_id")["occurred_at"].max()
    recent_visitor = last_event >= CUTOFF - pd.Timedelta(days=30)
    alive = customers_truth["is_alive_at_end_date"].loc[last_event.index].eq("true")
    assert recent_visitor[alive].mean() > 3 * recent_visitor[~alive].mean()


# --- arguments, helpers and the command line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_arguments",
    [{"n_customers": 0}, {"file_format": "xlsx"}, {"profile": "huge"}, {"seed": -1}, {"future_days": 0}],
)
def test_invalid_arguments_are_refused_with_a_clear_message(tmp_path: Path, bad_arguments: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad_arguments))):
        generate_shop(tmp_path / "l", tmp_path / "t", **bad_arguments)


def test_zero_padded_ids_refuse_numbers_that_do_not_fit() -> None:
    assert zero_padded(np.array([4711]), 7).to_pylist() == ["0004711"]
    with pytest.raises(ValueError, match="numbers must lie"):
        zero_padded(np.array([10_000_000]), 7)


def test_bench_profile_has_more_orders_per_customer(tmp_path: Path) -> None:
    summary = generate_shop(tmp_path / "l", tmp_path / "t", n_customers=1000, profile="bench")
    assert 4.0 < summary.orders / summary.customers < 6.0
    assert 25 < summary.events / summary.customers < 45


def test_command_line_writes_the_shop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli_main(
        [
            "--landing",
            str(tmp_path / "l"),
            "--truth",
            str(tmp_path / "t"),
            "--customers",
            "100",
            "--seed",
            "3",
            "--format",
            "parquet",
            "--profile",
            "demo",
        ]
    )
    assert (tmp_path / "l" / "orders.parquet").exists()
    assert (tmp_path / "t" / "prospects_truth.parquet").exists()
    assert "customers=100" in capsys.readouterr().out
