"""The CLV champion on CDNOW cuts, without Dagster: the numbers of the README's champion table.

Usage: python -m bench.champion_cdnow PATH/TO/CDNOW_master.txt AS_OF_DAY:HORIZON ... [--candidates a,b,...]
(get the file with `pip download --no-deps lifetimes` and unzip lifetimes/datasets/CDNOW_master.txt; not vendored).
Features are built in pandas with the dbt macro's definitions (tests/unit/test_clv.py: features_at); days count from
the first day of the log. For each cut: the champion back-test (as the clv_model_evaluation asset runs it), then the
production step (champion fitted at as_of - h, scored at as_of) against the real next h days, next to BG/NBD and
Pareto/NBD fitted at as_of, and the issue's done-when criteria on it (bench/clv.py done_when).
--candidates: the candidates the back-test fits (default champion.CANDIDATES; e.g. add one of
champion.TRIED_CANDIDATES to measure it under the same rule).
"""

from __future__ import annotations

import sys

import pandas as pd

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
    orders = orders[orders["amount"] > 0]
    ids = orders["customer_id"].unique()
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "acquisition_channel": "unknown",
            "entry_offer": "none",
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


def run_cut(
    shop: dict[str, pd.DataFrame], as_of: int, horizon: int, candidates: tuple[str, ...] = champion.CANDIDATES
) -> tuple[champion.ChampionBacktest, pd.DataFrame]:
    orders = shop["orders"]
    evaluation_rows, selection_rows = (
        features_at(shop, as_of - horizon, horizon),
        features_at(shop, as_of - 2 * horizon, horizon),
    )
    scoring_rows = features_at(shop, as_of, horizon)
    daily = orders[orders["day"] <= as_of].groupby("day")["amount"].sum()
    daily.index = SHOP_START + pd.to_timedelta(daily.index, unit="D")  # the calendar of features_at
    result = champion.champion_backtest(
        evaluation_rows, horizon, selection_rows, daily_revenue=daily, candidates=candidates
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
    shop = cdnow_shop(argv[0])
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
