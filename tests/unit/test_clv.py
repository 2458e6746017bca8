"""Tests of the CLV / propensity models on a simulated shop, and of their fallbacks on degenerate data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ml import btyd, charts, clv
from ml.evaluation import decile_table, evaluate

SHOP_START = pd.Timestamp("2021-01-01")
CHANNELS = np.array(["organic", "paid_search", "social", "email", "referral"])
CHANNEL_SHARE = np.array([0.35, 0.25, 0.2, 0.1, 0.1])
# Loyal channels buy more often and stay longer; social and deep-discount entry customers churn early.
CHANNEL_RATE = np.array([1.0, 0.8, 0.6, 1.6, 1.3])
OFFERS = np.array(["none", "WELCOME10", "SALE50"])
OFFER_SHARE = np.array([0.6, 0.3, 0.1])
OFFER_LIFETIME = np.array([1.0, 0.9, 0.4])
OFFER_SPEND = np.array([1.0, 0.95, 0.7])


def simulate_shop(n_customers: int, n_days: int, seed: int) -> dict[str, pd.DataFrame]:
    """Pareto/NBD-like shop: orders (day, amount, discounted) and web sessions that stop soon after a customer lapses.

    Customers arrive over the whole period, buy as a Poisson process while alive (exponential lifetime), spend
    Gamma-distributed amounts around a personal mean, and browse in proportion to their purchase rate while alive.
    """
    rng = np.random.default_rng(seed)
    ids = np.array([f"c{i:06d}" for i in range(n_customers)])
    first_day = np.floor(n_days * np.sqrt(rng.uniform(size=n_customers))).astype(int).clip(0, n_days - 1)
    channel = rng.choice(len(CHANNELS), size=n_customers, p=CHANNEL_SHARE)
    offer = rng.choice(len(OFFERS), size=n_customers, p=OFFER_SHARE)
    rate = rng.gamma(0.9, 1 / 70, size=n_customers) * CHANNEL_RATE[channel]
    mean_lifetime = rng.gamma(1.2, 300, size=n_customers) * OFFER_LIFETIME[offer] * np.sqrt(CHANNEL_RATE[channel])
    death_day = first_day + rng.exponential(mean_lifetime)
    mean_spend = np.exp(rng.normal(np.log(55), 0.55, size=n_customers)) * OFFER_SPEND[offer]
    tracked = rng.uniform(size=n_customers) < 0.75

    alive_span = np.clip(np.minimum(death_day, n_days) - first_day, 0, None)
    n_repeat = rng.poisson(rate * alive_span)
    order_customer = np.concatenate([np.arange(n_customers), np.repeat(np.arange(n_customers), n_repeat)])
    order_day = np.concatenate(
        [
            first_day,
            first_day[order_customer[n_customers:]]
            + rng.uniform(size=n_repeat.sum()) * alive_span[order_customer[n_customers:]],
        ]
    )
    amount = rng.gamma(3.0, mean_spend[order_customer] / 3.0)
    orders = pd.DataFrame(
        {
            "customer_id": ids[order_customer],
            "day": np.floor(order_day).astype(int),
            "amount": amount.round(2),
            "discounted": np.where(
                np.arange(len(order_customer)) < n_customers,
                OFFERS[offer[order_customer]] != "none",
                rng.uniform(size=len(order_customer)) < 0.2,
            ),
        }
    )
    refunded = orders.sample(frac=0.03, random_state=seed)
    refunds = refunded.assign(
        day=(refunded["day"] + 5).clip(upper=n_days - 1), amount=-refunded["amount"], discounted=False
    )
    orders = pd.concat([orders, refunds], ignore_index=True)

    # Sessions while alive at a rate tied to the purchase rate, then a trickle afterwards: the engagement signal.
    alive_sessions = rng.poisson((0.01 + 3 * rate) * alive_span)
    lapsed_span = np.clip(n_days - np.minimum(death_day, n_days), 0, None)
    lapsed_sessions = rng.poisson(0.002 * lapsed_span)
    session_customer = np.concatenate(
        [np.repeat(np.arange(n_customers), alive_sessions), np.repeat(np.arange(n_customers), lapsed_sessions)]
    )
    session_start = np.concatenate(
        [np.repeat(first_day, alive_sessions), np.repeat(np.minimum(death_day, n_days), lapsed_sessions)]
    )
    session_span = np.concatenate([np.repeat(alive_span, alive_sessions), np.repeat(lapsed_span, lapsed_sessions)])
    session_day = np.floor(session_start + rng.uniform(size=len(session_customer)) * session_span).astype(int)
    keep = tracked[session_customer] & (session_day < n_days)
    sessions = pd.DataFrame(
        {
            "customer_id": ids[session_customer[keep]],
            "day": session_day[keep],
            "events": 1 + rng.poisson(4, size=keep.sum()),
            "product_views": rng.poisson(2, size=keep.sum()),
            "cart_adds": rng.poisson(0.3, size=keep.sum()),
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "acquisition_channel": CHANNELS[channel],
            "entry_offer": OFFERS[offer],
            "first_order_channel": np.where(rng.uniform(size=n_customers) < 0.3, "app", "web"),
            "country": rng.choice(["DE", "FR", "NL", "AT"], size=n_customers, p=[0.5, 0.25, 0.15, 0.1]),
            "marketing_consent": rng.uniform(size=n_customers) < 0.6,
            "research_share": rng.beta(2, 8, size=n_customers),
        }
    )
    return {"orders": orders, "sessions": sessions, "customers": customers}


def features_at(shop: dict[str, pd.DataFrame], cutoff_day: int, horizon_days: int | None = None) -> pd.DataFrame:
    """The customer_features contract computed at a cutoff day, plus labels over (cutoff, cutoff + horizon] if asked."""
    orders = shop["orders"][shop["orders"]["day"] <= cutoff_day]
    positive = orders[orders["amount"] > 0]
    refunds = orders[orders["amount"] < 0]
    by_customer = positive.groupby("customer_id")
    frame = pd.DataFrame(
        {
            "order_count": by_customer.size(),
            "order_days": by_customer["day"].nunique(),
            "first_day": by_customer["day"].min(),
            "last_day": by_customer["day"].max(),
            "gross_revenue": by_customer["amount"].sum(),
            "max_order_value": by_customer["amount"].max(),
            "first_order_value": positive.sort_values("day", kind="stable").groupby("customer_id")["amount"].first(),
            "first_order_day_revenue": positive[
                positive["day"] == positive["customer_id"].map(by_customer["day"].min())
            ]
            .groupby("customer_id")["amount"]
            .sum(),
            "discounted_order_share": by_customer["discounted"].mean(),
            "revenue_last_90d": positive[positive["day"] > cutoff_day - 90].groupby("customer_id")["amount"].sum(),
            "order_count_last_90d": positive[positive["day"] > cutoff_day - 90].groupby("customer_id").size(),
            "revenue_last_365d": positive[positive["day"] > cutoff_day - 365].groupby("customer_id")["amount"].sum(),
            "order_count_last_365d": positive[positive["day"] > cutoff_day - 365].groupby("customer_id").size(),
            "refund_count": refunds.groupby("customer_id").size(),
            "refund_amount": -refunds.groupby("customer_id")["amount"].sum(),
        }
    )
    frame = frame[frame["order_count"].notna()]
    for column in [
        "revenue_last_90d",
        "order_count_last_90d",
        "revenue_last_365d",
        "order_count_last_365d",
        "refund_count",
        "refund_amount",
    ]:
        frame[column] = frame[column].fillna(0)
    frame["repeat_order_count"] = frame["order_days"] - 1
    frame["recency_days"] = cutoff_day - frame["last_day"]
    frame["tenure_days"] = cutoff_day - frame["first_day"]
    frame["btyd_recency_days"] = frame["last_day"] - frame["first_day"]
    frame["total_revenue"] = frame["gross_revenue"] - frame["refund_amount"]
    frame["avg_order_value"] = frame["gross_revenue"] / frame["order_count"]
    frame["mean_days_between_orders"] = (frame["btyd_recency_days"] / (frame["order_count"] - 1)).where(
        frame["order_count"] > 1
    )
    frame["cutoff_date"] = SHOP_START + pd.Timedelta(days=cutoff_day)
    frame["first_order_at"] = SHOP_START + pd.to_timedelta(frame["first_day"], unit="D")
    frame["last_order_at"] = SHOP_START + pd.to_timedelta(frame["last_day"], unit="D")

    sessions = shop["sessions"][shop["sessions"]["day"] <= cutoff_day]
    by_session = sessions.groupby("customer_id")
    behaviour = pd.DataFrame(
        {
            "event_count": by_session["events"].sum(),
            "active_days": by_session["day"].nunique(),
            "days_since_last_event": cutoff_day - by_session["day"].max(),
            "event_count_last_30d": sessions[sessions["day"] > cutoff_day - 30].groupby("customer_id")["events"].sum(),
            "product_views": by_session["product_views"].sum(),
            "cart_add_count_last_90d": sessions[sessions["day"] > cutoff_day - 90]
            .groupby("customer_id")["cart_adds"]
            .sum(),
        }
    )
    frame = frame.join(behaviour, how="left").join(shop["customers"].set_index("customer_id"), how="left")
    frame["has_web_events"] = frame["event_count"].notna()
    for column in ["event_count", "active_days", "event_count_last_30d", "product_views", "cart_add_count_last_90d"]:
        frame[column] = frame[column].fillna(0)
    frame["product_views_per_active_day"] = (frame["product_views"] / frame["active_days"]).where(
        frame["active_days"] > 0, 0.0
    )
    frame["research_share"] = frame["research_share"].where(frame["has_web_events"], 0.0)
    for column in [
        "sale_share",
        "discount_event_share",
        "shipping_abandon_rate",
        "brand_share",
        "visual_share",
        "urgency_share",
    ]:
        frame[column] = 0.0
    frame["has_email"] = True
    frame["has_phone"] = False
    frame["signed_up_at"] = frame["first_order_at"]

    if horizon_days is not None:
        future = shop["orders"][
            (shop["orders"]["day"] > cutoff_day) & (shop["orders"]["day"] <= cutoff_day + horizon_days)
        ]
        future_positive = future[future["amount"] > 0]
        frame["future_revenue"] = (
            future.assign(amount=future["amount"].clip(lower=0)).groupby("customer_id")["amount"].sum()
        )
        frame["future_order_count"] = future_positive.groupby("customer_id").size()
        frame["future_revenue"] = frame["future_revenue"].fillna(0.0)
        frame["future_order_count"] = frame["future_order_count"].fillna(0).astype(int)
        frame["has_future_order"] = frame["future_order_count"] > 0
    frame = frame.drop(columns=["order_days", "first_day", "last_day", "product_views"])
    return frame.rename_axis("customer_id").reset_index()


def training_table(n_customers: int = 4000, horizon_days: int = 180, seed: int = 7, n_days: int = 1100) -> pd.DataFrame:
    """customer_features_train of a simulated shop whose as-of date is its last day."""
    shop = simulate_shop(n_customers, n_days, seed)
    return features_at(shop, n_days - 1 - horizon_days, horizon_days)


CONTRACT = Path(__file__).parents[2] / "dbt_project" / "models" / "marts" / "customer_features.yml"
HORIZON_DAYS = 180


@pytest.fixture(scope="module")
def shop() -> dict[str, pd.DataFrame]:
    return simulate_shop(4000, 1100, seed=11)


@pytest.fixture(scope="module")
def train(shop) -> pd.DataFrame:
    return features_at(shop, 1099 - HORIZON_DAYS, HORIZON_DAYS)


@pytest.fixture(scope="module")
def scoring_features(shop) -> pd.DataFrame:
    return features_at(shop, 1099)


@pytest.fixture(scope="module")
def models(train) -> clv.ClvModels:
    return clv.fit_clv_models(train, seed=0)


@pytest.fixture(scope="module")
def holdout(train) -> dict:
    """Fit outside a 30 % hash hold-out of the training cut-off, score the hold-out, and both baselines on it."""
    in_holdout = clv.holdout_mask(train["customer_id"], 0.3)
    models = clv.fit_clv_models(train[~in_holdout], seed=0)
    rows = train[in_holdout].reset_index(drop=True)
    value = rows["future_revenue"].clip(lower=0).to_numpy(float)
    scores = clv.predict(models, rows, explain=False)
    return {
        "models": models,
        "value": value,
        "lightgbm": scores["predicted_clv"].to_numpy(float),
        "past_spend_rate": clv.past_spend_rate(rows, HORIZON_DAYS),
        "btyd": btyd.btyd_clv_baseline(train, HORIZON_DAYS).to_numpy()[in_holdout],
    }


def test_every_model_feature_is_a_column_of_the_customer_features_contract():
    documented = {column["name"] for column in yaml.safe_load(CONTRACT.read_text())["models"][0]["columns"]}
    assert set(clv.FEATURE_COLUMNS) <= documented


def test_model_beats_both_baselines_on_ranking_and_decile_calibration(holdout):
    value = holdout["value"]
    model = evaluate("lightgbm", value, holdout["lightgbm"], value > 0)
    for baseline in ("past_spend_rate", "btyd"):
        other = evaluate(baseline, value, holdout[baseline], value > 0)
        assert model["spearman"] > other["spearman"]
        assert model["decile_mape"] < other["decile_mape"]
    assert 0.85 <= model["calibration_ratio"] <= 1.15


def test_the_engagement_signal_the_simulator_plants_is_found(holdout):
    importance = clv.feature_importance(holdout["models"])
    assert importance.sum() == pytest.approx(1.0)
    assert "days_since_last_event" in importance.head(10).index


def test_predict_gives_one_row_per_customer_with_json_drivers(models, scoring_features):
    scores = clv.predict(models, scoring_features, top_k_drivers=3)
    assert scores.columns.tolist() == ["customer_id", "predicted_clv", "purchase_propensity", "top_drivers"]
    assert scores["customer_id"].tolist() == scoring_features["customer_id"].tolist()
    assert (scores["predicted_clv"] >= 0).all() and scores["purchase_propensity"].between(0, 1).all()
    drivers = json.loads(scores["top_drivers"].iloc[0])
    assert len(drivers) == 3 and {d["feature"] for d in drivers} <= set(clv.MODEL_FEATURES)
    contributions = [abs(d["contribution"]) for d in drivers]
    assert contributions == sorted(contributions, reverse=True)


def test_top_drivers_are_the_text_json_dumps_would_write():
    contributions = np.array([[0.5, -0.123456, 0.0, 2.0], [-0.0, 0.00004, -1e-9, 0.3]])
    names = ["a", "b", "c"]
    expected = [
        json.dumps([{"feature": names[j], "contribution": round(float(row[j]), 4)} for j in top])
        for row, top in [(contributions[0], [0, 1, 2]), (contributions[1], [1, 2, 0])]
    ]
    assert clv._top_drivers(contributions, names, top_k=3).to_pylist() == expected


def _json_dumps_drivers(contributions: np.ndarray, names: list[str], top_k: int) -> list[str]:
    """The per-row definition: a stable sort by -|contribution|, Python's round and json.dumps (whose NaN and
    Infinity the formatter has always written as Python does: nan, inf; TreeSHAP of finite leaves gives neither)."""
    texts = []
    for row in contributions[:, :-1]:
        top = np.argsort(-np.abs(row), kind="stable")[:top_k]
        text = json.dumps([{"feature": names[j], "contribution": round(float(row[j]), 4)} for j in top])
        texts.append(text.replace("-Infinity", "-inf").replace("Infinity", "inf").replace("NaN", "nan"))
    return texts


@pytest.mark.parametrize("with_nan", [False, True])
def test_vectorized_top_drivers_equal_json_dumps_on_hard_values(with_nan):
    rng = np.random.default_rng(7)
    names = [f"f{j}" for j in range(9)] + ['n\u00e4me "quoted"']
    values = rng.normal(scale=0.3, size=(4000, 11))
    values[rng.random(values.shape) < 0.4] = 0.0  # exact ties at zero, as unused features give
    values[:300, 2] = -values[:300, 5]  # ties in |contribution|: the lower column first
    values[300:600, 0] = np.round(rng.normal(size=300), 4) + 0.00005  # half-way points of round(., 4)
    values[600:610, 1] = [0.0, -0.0, np.inf, -np.inf, 0.00005, -0.00005, 1.00015, 2.5e-5, -2.5e-5, 7.0]
    values[610:700] = rng.normal(scale=1e13, size=(90, 11))  # beyond rint's exact range
    values[700:800] = -0.0
    if with_nan:
        values[800:805, 3] = np.nan
    for top_k in (0, 1, 3, 10, 12):
        texts = clv._top_drivers(values, names, top_k).to_pylist()
        assert texts == _json_dumps_drivers(values, names, top_k)


def test_explaining_in_chunks_gives_the_same_drivers_as_in_one_go(models, scoring_features, monkeypatch):
    whole = clv.predict(models, scoring_features)
    monkeypatch.setattr(clv, "EXPLAIN_CHUNK_ROWS", 333)
    pd.testing.assert_frame_equal(clv.predict(models, scoring_features), whole)


def test_treeshap_by_decision_pattern_equals_lightgbms_per_row_treeshap(models, scoring_features):
    matrix = clv.model_matrix(scoring_features.reset_index(drop=True), models.categories)
    # Missing values and unseen categories take LightGBM's missing-value and categorical paths.
    matrix.loc[::7, "recency_days"] = np.nan
    matrix.loc[::11, "avg_order_value"] = 0.0
    matrix.loc[::13, "country"] = np.nan
    booster = models.value_model
    lightgbm = np.asarray(booster.predict(matrix, num_iteration=booster.best_iteration or None, pred_contrib=True))
    trees = clv.pattern_trees(booster, booster.best_iteration or None)
    by_pattern = clv.tree_shap_by_pattern(trees, matrix)
    assert by_pattern.shape == lightgbm.shape
    np.testing.assert_allclose(by_pattern, lightgbm, rtol=0, atol=1e-9)
    names = list(matrix.columns)
    assert clv._top_drivers(by_pattern, names, 3) == clv._top_drivers(lightgbm, names, 3)


def test_a_model_with_larger_trees_is_explained_by_lightgbm_row_by_row(models, scoring_features, monkeypatch):
    by_pattern = clv.predict(models, scoring_features)
    monkeypatch.setattr(clv, "MAX_PATTERN_SPLITS", 2)
    assert clv.pattern_trees(models.value_model) is None
    pd.testing.assert_frame_equal(clv.predict(models, scoring_features), by_pattern)


def test_values_read_off_the_explanations_patterns_equal_lightgbms_predictions_bit_for_bit(
    models, scoring_features, train
):
    # Regression guard for the daily scoring speed-up: the value model's trees are walked once, for the explanation,
    # and the prediction is read off the same patterns; it must be LightGBM's own number, missing values and unseen
    # categories included.
    features = scoring_features.reset_index(drop=True).copy()
    features.loc[::7, "recency_days"] = np.nan
    features.loc[::13, "country"] = "atlantis"
    features.loc[::17, "acquisition_channel"] = None
    matrix = clv.model_matrix(features, models.categories)
    booster = models.value_model
    iteration = booster.best_iteration or None
    _, raw = clv._by_pattern(clv.pattern_trees(booster, iteration), matrix)
    assert np.array_equal(raw, booster.predict(matrix, num_iteration=iteration, raw_score=True))
    scored = clv.predict(models, features)
    lightgbm = np.clip(booster.predict(matrix, num_iteration=iteration) * models.calibration_factor, 0.0, None)
    assert np.array_equal(scored["predicted_clv"].to_numpy(), lightgbm)
    # Every plain prediction is read off the patterns, the purchase classifier's (sigmoid output) too.
    buyer = models.buy_model
    assert clv._pattern_predict(buyer, matrix) is not None
    assert np.array_equal(
        clv._best_predict(buyer, matrix), buyer.predict(matrix, num_iteration=buyer.best_iteration or None)
    )
    assert np.array_equal(
        scored["predicted_clv"].to_numpy(), clv.predict(models, features, explain=False)["predicted_clv"]
    )
    # The buyer-spend regression (the hurdle's log spend) too: its output is the raw score.
    spend = clv.fit_buyer_spend_model(train, models.categories, seed=0)
    assert clv._pattern_predict(spend.booster, matrix) is not None
    assert np.array_equal(
        clv._best_predict(spend.booster, matrix),
        spend.booster.predict(matrix, num_iteration=spend.booster.best_iteration or None),
    )


def test_the_model_matrix_is_the_same_whatever_type_the_warehouse_gave_a_column(models, scoring_features):
    features = scoring_features.reset_index(drop=True)
    plain = clv.model_matrix(features, models.categories)
    retyped = features.assign(
        order_count=features["order_count"].astype("Int64").mask(features.index % 5 == 0),
        recency_days=features["recency_days"].astype(object),
        has_email=features["has_email"].astype("boolean"),
        country=features["country"].astype(object),
    )
    expected = plain.assign(order_count=plain["order_count"].mask(features.index % 5 == 0))
    expected["orders_per_tenure_day"] = expected["order_count"] / expected["tenure_days"].clip(lower=1.0)
    pd.testing.assert_frame_equal(clv.model_matrix(retyped, models.categories), expected)
    # What LightGBM makes of the frame: category codes as floats, every column float64.
    array = clv.model_array(plain)
    assert array.dtype == np.float64 and array.flags["C_CONTIGUOUS"]
    assert np.array_equal(array[:, list(plain.columns).index("country")], plain["country"].cat.codes.to_numpy(float))


def test_the_stable_hash_is_the_per_customer_blake2b_formula():
    ids = pd.Series(["c000001", "c000002", "", "é-42", 7])
    expected = [
        int.from_bytes(hashlib.blake2b(f"salt:{v}".encode(), digest_size=8).digest(), "big") / 2**64
        for v in ids.astype(str)
    ]
    assert clv._unit_hash(ids, "salt").tolist() == expected
    assert clv._unit_hash(pd.Series([], dtype=str), "salt").shape == (0,)


def test_large_shops_learn_faster_so_their_explanations_need_fewer_trees():
    slow, fast = clv.LEARNING_RATE_BOUNDS
    assert clv.learning_rate(clv.LEARNING_RATE_ROWS[0]) == pytest.approx(slow) == clv.learning_rate(500)
    assert clv.learning_rate(clv.LEARNING_RATE_ROWS[1]) == pytest.approx(fast) == clv.learning_rate(5_000_000)
    rates = [clv.learning_rate(n) for n in (10_000, 20_000, 50_000, 100_000, 160_000)]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    assert clv.max_boost_rounds(slow) == clv.MAX_BOOST_ROUNDS
    assert clv.max_boost_rounds(fast) * fast == pytest.approx(clv.MAX_BOOST_ROUNDS * slow)


def test_recently_active_frequent_buyers_are_worth_more_than_lapsed_one_timers(models, scoring_features):
    scores = clv.predict(models, scoring_features).set_index("customer_id")["predicted_clv"]
    features = scoring_features.set_index("customer_id")
    engaged = (
        (features["order_count"] >= 4) & (features["recency_days"] < 60) & (features["days_since_last_event"] < 14)
    )
    lapsed = (features["order_count"] == 1) & (features["recency_days"] > 500)
    assert scores[engaged].mean() > 5 * scores[lapsed].mean()


def test_fitting_twice_with_the_same_seed_gives_identical_predictions(train, models, scoring_features):
    again = clv.fit_clv_models(train, seed=0)
    pd.testing.assert_frame_equal(clv.predict(models, scoring_features), clv.predict(again, scoring_features))


def test_unseen_categories_and_missing_values_at_scoring_time_are_tolerated(models, scoring_features):
    odd = scoring_features.head(50).copy()
    odd["acquisition_channel"] = "tiktok"
    odd["country"] = None
    odd["days_since_last_event"] = np.nan
    odd = odd.drop(columns=["urgency_share", "visual_share"])
    scores = clv.predict(models, odd)
    assert np.isfinite(scores["predicted_clv"]).all() and len(scores) == 50


def test_rare_categories_share_one_bucket_instead_of_one_category_each(train):
    one_off_codes = train.assign(entry_offer=[f"CODE{i}" for i in range(len(train))])
    vocabulary = clv.learn_categories(one_off_codes)["entry_offer"]
    assert vocabulary == [clv.OTHER_CATEGORY, clv.MISSING_CATEGORY]


def test_large_training_tables_are_sampled_deterministically(train):
    first = clv.fit_clv_models(train, max_train_rows=1000)
    second = clv.fit_clv_models(train.sample(frac=1.0, random_state=3), max_train_rows=1000)
    assert first.n_train_rows == second.n_train_rows == 1000
    sample = clv._sample_rows(train, 1000)["customer_id"]
    assert set(sample) == set(clv._sample_rows(train.iloc[::-1], 1000)["customer_id"])


def test_holdout_split_is_stable_and_close_to_the_requested_share(train):
    mask = clv.holdout_mask(train["customer_id"], 0.3)
    assert abs(mask.mean() - 0.3) < 0.03
    assert (clv.holdout_mask(train["customer_id"].iloc[::-1], 0.3)[::-1] == mask).all()


def test_the_past_spend_rate_of_a_customer_younger_than_the_horizon_repeats_their_spend_once():
    # Regression: tenure was floored at one day, so 50 spent on the first day forecast 18,250 over 365 days on a
    # young shop, and its report and customer_scores showed it.
    customers = pd.DataFrame({"total_revenue": [50.0, 50.0, 50.0, 730.0, -20.0], "tenure_days": [0, 1, 364, 730, 10]})
    np.testing.assert_allclose(clv.past_spend_rate(customers, 365), [50.0, 50.0, 50.0, 365.0, 0.0])


def test_the_fallback_ranks_young_customers_by_the_past_spend_rate_of_its_horizon(train):
    tiny = train.head(30).assign(tenure_days=np.arange(30) * 10)
    models = clv.fit_clv_models(tiny, horizon_days=90.0)
    scores = clv.predict(models, tiny)
    np.testing.assert_allclose(
        scores["predicted_clv"], clv.past_spend_rate(tiny, 90.0) * models.fallback_spend_rate_factor
    )
    assert scores["predicted_clv"].sum() == pytest.approx(tiny["future_revenue"].clip(lower=0).sum())


def test_a_tiny_shop_falls_back_to_the_calibrated_past_spend_rate(train):
    tiny = train.head(30)
    models = clv.fit_clv_models(tiny)
    assert models.fallback_reason is not None and "30 customers" in models.fallback_reason
    scores = clv.predict(models, tiny)
    expected = clv.past_spend_rate(tiny, 1.0) * models.fallback_spend_rate_factor
    np.testing.assert_allclose(scores["predicted_clv"], expected)
    assert scores["predicted_clv"].sum() == pytest.approx(tiny["future_revenue"].sum())


def test_a_shop_where_nobody_bought_again_predicts_zero(train):
    nobody = train.assign(future_revenue=0.0, future_order_count=0, has_future_order=False)
    models = clv.fit_clv_models(nobody)
    assert models.fallback_reason is not None
    assert (clv.predict(models, nobody)["predicted_clv"] == 0).all()


def test_refund_heavy_negative_labels_are_clipped_before_training(train):
    refunds = train.head(1500)
    refunds = refunds.assign(future_revenue=refunds["future_revenue"].where(refunds.index % 7 != 0, -50.0))
    scores = clv.predict(clv.fit_clv_models(refunds), refunds)
    assert (scores["predicted_clv"] >= 0).all()


def test_charts_are_png_images(holdout):
    tables = {name: decile_table(holdout["value"], holdout[name]) for name in ("lightgbm", "past_spend_rate", "btyd")}
    assert charts.decile_chart_png(tables).startswith(b"\x89PNG")
    assert charts.feature_importance_png(clv.feature_importance(holdout["models"])).startswith(b"\x89PNG")
    assert charts.decile_chart_png({}).startswith(b"\x89PNG")


def test_explaining_without_the_bias_column_changes_only_that_column(models, scoring_features):
    # top_drivers never reads the expected-value column, so _explain skips its additions: the feature columns and
    # the raw score must be the same floats.
    matrix = clv.model_matrix(scoring_features.reset_index(drop=True), models.categories)
    trees = clv.pattern_trees(models.value_model, models.value_model.best_iteration or None)
    full, raw = clv._by_pattern(trees, matrix)
    no_bias, raw_no_bias = clv._by_pattern(trees, matrix, bias=False)
    assert np.array_equal(no_bias[:, :-1], full[:, :-1]) and np.array_equal(raw_no_bias, raw)
    assert not no_bias[:, -1].any() and full[:, -1].any()


def test_arrow_string_categories_get_the_codes_of_the_pandas_lookup():
    # The Arrow lookup (DuckDB's strings) must give exactly the Categorical codes: nulls -> missing, unseen ->
    # other, the empty string and the reserved names as themselves.
    vocabulary = ["", "DE", "FR", clv.OTHER_CATEGORY, clv.MISSING_CATEGORY]
    values = np.array(["DE", "FR", "", "US", clv.MISSING_CATEGORY, clv.OTHER_CATEGORY, None] * 50, dtype=object)
    arrow = pd.Series(values, dtype="str")
    assert isinstance(arrow.array, pd.arrays.ArrowStringArray)
    fast = clv._vocabulary_codes(arrow, vocabulary, len(arrow))
    slow = clv._vocabulary_codes(pd.Series(values, dtype=object), vocabulary, len(arrow))
    assert fast.tolist() == slow.tolist()
    assert fast[:7].tolist() == [1, 2, 0, 3, 4, 3, 4]


def _pattern_shap_without_reuse(root: dict, nodes: list[dict], patterns: np.ndarray, n_columns: int) -> np.ndarray:
    """clv._pattern_shap as it was before subtrees' values were reused across coalitions (commit bc3dc0d)."""
    import math

    bit = {id(node): k for k, node in enumerate(nodes)}
    left = ((patterns[:, None] >> np.arange(len(nodes))) & 1).astype(bool)
    features = sorted({node["split_feature"] for node in nodes})

    def value(node: dict, subset: frozenset):
        if "split_index" not in node:
            return node["leaf_value"]
        low, high = value(node["left_child"], subset), value(node["right_child"], subset)
        if node["split_feature"] in subset:
            return np.where(left[:, bit[id(node)]], low, high)
        n_low, n_high = clv._count(node["left_child"]), clv._count(node["right_child"])
        return (n_low * low + n_high * high) / (n_low + n_high)

    m = len(features)
    values = [
        np.broadcast_to(value(root, frozenset(f for j, f in enumerate(features) if mask >> j & 1)), len(patterns))
        for mask in range(1 << m)
    ]
    table = np.zeros((len(patterns), n_columns))
    for j, feature in enumerate(features):
        for mask in range(1 << m):
            if not mask >> j & 1:
                size = bin(mask).count("1")
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                table[:, feature] += weight * (values[mask | 1 << j] - values[mask])
    table[:, -1] = values[0]
    return table


def test_solving_the_trees_with_reused_subtree_values_gives_the_same_bits(models):
    # Issue 18: each subtree's value is computed once per part of the coalition it splits on; the tables (hence
    # every contribution and prediction) must be the bits the plain recursion gave.
    for booster in (models.value_model, models.buy_model):
        n_columns = booster.num_feature() + 1
        dumped = booster.dump_model()["tree_info"][: booster.best_iteration or None]
        trees = clv.pattern_trees(booster, booster.best_iteration or None)
        assert len(trees) == len(dumped) > 0
        for tree, info in zip(trees, dumped, strict=True):
            root = info["tree_structure"]
            patterns = np.arange(1 << len(tree.nodes))
            expected = _pattern_shap_without_reuse(root, clv._internal_nodes(root), patterns, n_columns)
            assert tree.table.tobytes() == expected.tobytes()


def test_scoring_blocks_on_threads_gives_the_same_bits_as_one_block(models, scoring_features, monkeypatch):
    # Issue 18: the rows are cut into blocks scored on two threads; values must not depend on the cut or the thread.
    features = scoring_features.reset_index(drop=True).copy()
    features.loc[::7, "recency_days"] = np.nan
    features.loc[::13, "country"] = "atlantis"
    monkeypatch.setattr(clv, "SCORING_THREADS", 1)
    monkeypatch.setattr(clv, "EXPLAIN_CHUNK_ROWS", 10**9)
    whole = clv.predict(models, features)
    monkeypatch.setattr(clv, "SCORING_THREADS", 2)
    monkeypatch.setattr(clv, "EXPLAIN_CHUNK_ROWS", 257)
    monkeypatch.setattr(clv, "MIN_THREADED_BLOCK_ROWS", 100)
    assert len(clv._map_row_blocks(len, np.zeros((len(features), 1)))) > 2
    blocked = clv.predict(models, features)
    pd.testing.assert_frame_equal(blocked, whole, check_exact=True)
    for column in ("predicted_clv", "purchase_propensity"):
        assert blocked[column].to_numpy().tobytes() == whole[column].to_numpy().tobytes()
    assert blocked["top_drivers"].tolist() == whole["top_drivers"].tolist()
    assert clv._map_row_blocks(len, np.zeros((0, 3))) == [0]
