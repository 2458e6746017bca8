"""Odd shop shapes the generated shops and CDNOW do not cover, and the production CLV step driven on them.

Each shape is a shop in tests/unit/test_clv.py's format (orders by day with amounts, sessions, customers) with the
as-of day and horizon it is scored at. production_step runs what ml/clv_model_evaluation, ml/clv_model and
ml/clv_predictions run (the back-test and choice, the champion's refit, the scoring) on features_at's tables.
Used by tests/unit/test_champion_shop_shapes.py and bench/champion_shapes.py (the table of the sweep).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml import btyd, champion
from tests.unit.test_clv import CHANNELS, SHOP_START, features_at, simulate_shop

# Generated shops run 1,100 days; scored one 90-day horizon before their end, so the next horizon's spend is known.
AS_OF = 1009


@dataclass(frozen=True)
class Shape:
    shop: dict[str, pd.DataFrame]
    as_of: int
    horizon: int


def shop_from_orders(orders: pd.DataFrame, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A shop of these orders (customer_id, day, amount[, discounted]) without web sessions."""
    rng = np.random.default_rng(seed)
    orders = orders.assign(discounted=orders.get("discounted", False)).reset_index(drop=True)
    ids = np.sort(orders["customer_id"].unique())
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "acquisition_channel": rng.choice(CHANNELS, size=len(ids)),
            "entry_offer": "none",
            "first_order_channel": "web",
            "country": "DE",
            "marketing_consent": True,
            "research_share": 0.0,
        }
    )
    sessions = pd.DataFrame(
        {
            "customer_id": pd.Series(dtype=str),
            "day": pd.Series(dtype=int),
            "events": pd.Series(dtype=int),
            "product_views": pd.Series(dtype=int),
            "cart_adds": pd.Series(dtype=int),
        }
    )
    return {"orders": orders, "sessions": sessions, "customers": customers}


def one_time_buyers(seed: int = 1) -> Shape:
    """Every customer ordered exactly once (arrivals over two years): nobody ever came back."""
    rng = np.random.default_rng(seed)
    n = 2000
    orders = pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "day": rng.integers(0, 820, size=n),
            "amount": rng.gamma(3.0, 20.0, size=n).round(2),
        }
    )
    return Shape(shop_from_orders(orders, seed), 729, 90)


def one_whale(seed: int = 1) -> Shape:
    """A generated shop plus one customer who brings half of all revenue (weekly orders of a large amount)."""
    shop = simulate_shop(2000, 1100, seed)
    orders = shop["orders"]
    days = np.arange(0, 1100, 7)
    whale_total = float(orders["amount"].sum())  # as much as everyone else together
    whale = pd.DataFrame(
        {"customer_id": "whale", "day": days, "amount": round(whale_total / len(days), 2), "discounted": False}
    )
    customers = pd.concat([shop["customers"], shop["customers"].head(1).assign(customer_id="whale")], ignore_index=True)
    return Shape({**shop, "orders": pd.concat([orders, whale], ignore_index=True), "customers": customers}, AS_OF, 90)


def b2b(seed: int = 1) -> Shape:
    """Forty business customers ordering large amounts about monthly for three years, a few of them stopping."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(40):
        start, stop = rng.integers(0, 400), rng.integers(700, 1400)
        size = rng.lognormal(np.log(5000), 0.6)
        for day in range(int(start), int(min(stop, 1100)), 30):
            rows.append((f"b{i:03d}", day + int(rng.integers(-3, 4)), round(size * rng.lognormal(0, 0.2), 2)))
    orders = pd.DataFrame(rows, columns=["customer_id", "day", "amount"])
    orders["day"] = orders["day"].clip(0, 1099)
    return Shape(shop_from_orders(orders, seed), AS_OF, 90)


def shorter_than_one_horizon(seed: int = 1) -> Shape:
    """Sixty days of orders and a 90-day horizon: no customer is older than one horizon, so no label exists."""
    return Shape(simulate_shop(1000, 150, seed), 59, 90)


def thirty_customers(seed: int = 1) -> Shape:
    """Thirty customers over three years."""
    return Shape(simulate_shop(30, 1100, seed), AS_OF, 90)


def seasonal(seed: int = 1) -> Shape:
    """Every order in November-December of two years (a Christmas shop), scored on the last day of the second."""
    rng = np.random.default_rng(seed)
    n = 1500
    ids = np.array([f"c{i:05d}" for i in range(n)])
    first_year = rng.uniform(size=n) < 0.6
    rows = []
    for year_start, buyers in ((304, first_year), (669, ~first_year | (rng.uniform(size=n) < 0.4))):
        for customer in ids[buyers]:
            for _ in range(1 + rng.poisson(0.5)):
                rows.append((customer, year_start + int(rng.integers(0, 61)), round(rng.gamma(3.0, 25.0), 2)))
    orders = pd.DataFrame(rows, columns=["customer_id", "day", "amount"])
    return Shape(shop_from_orders(orders, seed), 729, 90)


def _seasonal_orders(rng, n: int, n_days: int, in_season: np.ndarray, season_weight: float) -> pd.DataFrame:
    """Customers arriving over n_days and buying while alive at a daily rate times season_weight on in_season days
    (a boolean per day), 1 elsewhere: a year-round shop whose spend peaks in its season."""
    weight = np.where(in_season, season_weight, 1.0)
    first = rng.choice(n_days, size=n, p=weight / weight.sum())
    rate = rng.gamma(0.9, 1 / 70, size=n) / weight.mean()
    death = first + rng.exponential(rng.gamma(1.2, 300, size=n))
    cumulative = np.concatenate([[0.0], np.cumsum(weight)])
    rows = []
    for i in range(n):
        stop = int(min(np.ceil(death[i]), n_days))
        span = weight[first[i] + 1 : stop]
        count = rng.poisson(rate[i] * (cumulative[stop] - cumulative[first[i] + 1])) if len(span) else 0
        days = (
            [first[i], *(first[i] + 1 + rng.choice(len(span), size=count, p=span / span.sum()))]
            if count
            else [first[i]]
        )
        mean_spend = float(np.exp(rng.normal(np.log(55), 0.55)))
        rows += [(f"c{i:05d}", int(d), round(float(rng.gamma(3.0, mean_spend / 3.0)), 2)) for d in days]
    return pd.DataFrame(rows, columns=["customer_id", "day", "amount"])


def calendar_days(n_days: int, months: tuple[int, ...]) -> np.ndarray:
    """True on the days (counted from test_clv.SHOP_START) that fall in these calendar months."""
    return (SHOP_START + pd.to_timedelta(np.arange(n_days), unit="D")).month.isin(months)


def strong_season(seed: int = 1) -> Shape:
    """A year-round shop with 60 % of its spend in November-December (3 years to the end of March), scored on the
    last day of the second December: the next quarter is its quietest."""
    rng = np.random.default_rng(seed)
    n_days = 820  # to 2023-03-31: the next 90 days after the scoring day are known
    season = calendar_days(n_days, (11, 12))
    # 61 of 365 days at weight w hold 60 % of the spend: 61 w / (61 w + 304) = 0.6.
    orders = _seasonal_orders(rng, 3000, n_days, season, 0.6 * 304 / (0.4 * 61))
    return Shape(shop_from_orders(orders, seed), 729, 90)


def small_strong_season(seed: int = 1) -> Shape:
    """Like strong_season with 95 % of spend in November-December and 600 customers: off-season buyers are too few
    for a forward back-test (short history), though the revenue covers a year plus two horizons."""
    rng = np.random.default_rng(seed)
    n_days = 820
    orders = _seasonal_orders(rng, 600, n_days, calendar_days(n_days, (11, 12)), 0.95 * 304 / (0.05 * 61))
    return Shape(shop_from_orders(orders, seed), 729, 90)


def summer_shop(seed: int = 1) -> Shape:
    """Every order in June-August of two years (a summer shop), scored on the last day of the second summer."""
    rng = np.random.default_rng(seed)
    n = 1500
    ids = np.array([f"c{i:05d}" for i in range(n)])
    first_year = rng.uniform(size=n) < 0.6
    rows = []
    for year_start, buyers in ((151, first_year), (516, ~first_year | (rng.uniform(size=n) < 0.4))):
        for customer in ids[buyers]:
            for _ in range(1 + rng.poisson(0.8)):
                rows.append((customer, year_start + int(rng.integers(0, 92)), round(rng.gamma(2.0, 40.0), 2)))
    orders = pd.DataFrame(rows, columns=["customer_id", "day", "amount"])
    return Shape(shop_from_orders(orders, seed), 607, 90)


def many_zero_total_orders(seed: int = 1) -> Shape:
    """A generated shop where 40 % of orders have a total of 0 (free samples, fully discounted orders)."""
    shop = simulate_shop(2000, 1100, seed)
    orders = shop["orders"]
    rng = np.random.default_rng(seed)
    zero = (orders["amount"] > 0) & (rng.uniform(size=len(orders)) < 0.4)
    return Shape({**shop, "orders": orders.assign(amount=orders["amount"].where(~zero, 0.0))}, AS_OF, 90)


def negative_net_revenue(seed: int = 1) -> Shape:
    """A generated shop where 10 % of customers refunded more than they bought (net revenue below 0)."""
    shop = simulate_shop(2000, 1100, seed)
    orders = shop["orders"]
    rng = np.random.default_rng(seed)
    ids = orders["customer_id"].unique()
    chosen = rng.choice(ids, size=len(ids) // 10, replace=False)
    bought = orders[(orders["amount"] > 0) & orders["customer_id"].isin(chosen)].groupby("customer_id")
    refunds = pd.DataFrame(
        {
            "customer_id": bought["amount"].sum().index,
            "day": bought["day"].max().to_numpy() + 1,
            "amount": -(bought["amount"].sum().to_numpy() * 1.5).round(2),
            "discounted": False,
        }
    )
    refunds["day"] = refunds["day"].clip(upper=1099)
    return Shape({**shop, "orders": pd.concat([orders, refunds], ignore_index=True)}, AS_OF, 90)


SHAPES: dict[str, Callable[[], Shape]] = {
    "every customer ordered once": one_time_buyers,
    "one whale with 50 % of revenue": one_whale,
    "B2B: 40 customers, large monthly orders": b2b,
    "history shorter than one horizon": shorter_than_one_horizon,
    "30 customers": thirty_customers,
    "seasonal: all orders in Nov-Dec of two years": seasonal,
    "seasonal: all orders in Jun-Aug of two years": summer_shop,
    "strong season: 60 % of spend in Nov-Dec": strong_season,
    "strong season, small shop: 95 % of spend in Nov-Dec": small_strong_season,
    "40 % zero-total orders": many_zero_total_orders,
    "10 % customers with negative net revenue": negative_net_revenue,
}


def at_horizon(shape: Shape, horizon: int) -> Shape:
    """The shape scored with another horizon, one horizon before its last order day so the next horizon's spend is
    known (its own as-of day when that leaves under a month of history: the young shop)."""
    last = int(shape.shop["orders"]["day"].max())
    as_of = last - horizon if last - horizon > 30 else shape.as_of
    return dataclasses.replace(shape, as_of=as_of, horizon=horizon)


@dataclass
class StepResult:
    backtest: champion.ChampionBacktest
    model: champion.ChampionModel
    scores: pd.DataFrame
    scoring_rows: pd.DataFrame


def production_step(shape: Shape) -> StepResult:
    """The production CLV step on a shape: back-test at as_of - 2h / as_of - h, champion refit at as_of - h, the
    whole table scored at as_of (with explanations, as ml/clv_predictions does)."""
    shop, as_of, h = shape.shop, shape.as_of, shape.horizon
    evaluation_rows = features_at(shop, as_of - h, h)
    selection_rows = features_at(shop, as_of - 2 * h, h)
    scoring_rows = features_at(shop, as_of)
    orders = shop["orders"]
    paid = orders[orders["day"] <= as_of].assign(amount=lambda o: o["amount"].clip(lower=0))
    daily = paid.groupby("day")["amount"].sum()
    daily.index = SHOP_START + pd.to_timedelta(daily.index, unit="D")
    repeat = champion.repeat_revenue_by_day(paid["customer_id"], paid["day"], paid["amount"])
    repeat.index = SHOP_START + pd.to_timedelta(repeat.index, unit="D")
    # The as-of BTYD fits, as ml/clv_model_evaluation passes them: the label-free champion when E fails the bar.
    scoring_fits = btyd.fit_btyd_models(scoring_rows)
    backtest = champion.champion_backtest(
        evaluation_rows, h, selection_rows, daily_revenue=daily, scoring_fits=scoring_fits, daily_repeat_revenue=repeat
    )
    model = champion.fit_champion(evaluation_rows, h, backtest.evaluation)
    scores = champion.predict_champion(model, scoring_rows)
    return StepResult(backtest, model, scores, scoring_rows)


def problems(step: StepResult) -> list[str]:
    """What is wrong with a production step's output by the sweep's expectations (empty: nothing)."""
    scores, rows = step.scores, step.scoring_rows
    found = []
    if sorted(scores["customer_id"]) != sorted(rows["customer_id"]):
        found.append(f"{len(scores)} scored of {len(rows)} customers")
    predicted, low, high = (
        scores[c].to_numpy(float) for c in ("predicted_clv", "predicted_clv_p10", "predicted_clv_p90")
    )
    propensity = scores["purchase_propensity"].to_numpy(float)
    if not (np.isfinite(predicted).all() and np.isfinite(low).all() and np.isfinite(high).all()):
        found.append("non-finite predictions")
    if (predicted < 0).any() or (low < 0).any():
        found.append("negative predictions")
    if (low > predicted + 1e-9).any() or (predicted > high + 1e-9).any():
        found.append("p10 <= predicted <= p90 broken")
    if not (np.isfinite(propensity).all() and ((propensity >= 0) & (propensity <= 1)).all()):
        found.append("propensity outside [0, 1]")
    if ((predicted > 0) & (propensity <= 0)).any():
        found.append("a positive value next to a zero propensity")
    if not step.backtest.reason:
        found.append("no reason for the champion")
    return found
