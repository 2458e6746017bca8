"""Seed bagging of the CLV boosters on the 12 simulated shops (ml/clv.py's docstring: protocol and decision rule).

    python -m bench.clv_bagging [--out bench/results/clv_bagging.json]

For each setting (K boosters, learning-rate scale m, LightGBM seed) and each shop (horizons 90 and 180, simulator
seeds 1-6, 5,000 customers, 1,100 days), champion_backtest in forward mode exactly as the module docstring's table;
rows of the evaluation half. Prints per setting and candidate the 12-shop mean and [min, max] of Spearman, AUC,
decile MAPE and sum ratio, the champions, and the fit + back-test seconds; writes every row as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from ml import champion, clv

ROOT = Path(__file__).resolve().parents[1]
# (K, rate scale, LightGBM seed): today's model at three seeds (its noise), then the variants of the rule.
SETTINGS = ((1, 1.0, 0), (1, 1.0, 1), (1, 1.0, 2), (3, 3.0, 0), (5, 5.0, 0), (3, 1.0, 0), (5, 1.0, 0))
SHOPS = tuple((horizon, seed) for horizon in (90, 180) for seed in range(1, 7))
METRICS = ("spearman", "propensity_auc", "decile_mape", "calibration_ratio")


def _simulator():
    """The shop simulator of the unit tests (the one the module docstring's tables were measured on)."""
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    from test_clv import features_at, simulate_shop

    return simulate_shop, features_at


def run(settings=SETTINGS, shops=SHOPS) -> pd.DataFrame:
    simulate_shop, features_at = _simulator()
    tables = {}
    for horizon, shop_seed in shops:
        shop = simulate_shop(5000, 1100, shop_seed)
        tables[horizon, shop_seed] = (features_at(shop, 1099 - horizon, horizon), features_at(shop, 1099 - 2 * horizon, horizon))
    rows = []
    for members, scale, lgb_seed in settings:
        clv.BAG_MEMBERS, clv.BAG_RATE_SCALE = members, scale
        try:
            for (horizon, shop_seed), (evaluation, selection) in tables.items():
                started = time.perf_counter()
                result = champion.champion_backtest(evaluation, horizon, selection, seed=lgb_seed)
                seconds = time.perf_counter() - started
                frame = result.evaluation
                frame = frame[frame["backtest_window"] == champion.EVALUATION]
                for record in frame.to_dict("records"):
                    rows.append(
                        {"members": members, "rate_scale": scale, "lgb_seed": lgb_seed, "horizon": horizon,
                         "shop_seed": shop_seed, "candidate": record["model"], "champion": result.champion,
                         "seconds": seconds} | {m: record[m] for m in METRICS}
                    )
                print(f"K={members} m={scale} seed={lgb_seed} h={horizon} shop={shop_seed}: {seconds:.1f} s, "
                      f"champion {result.champion}", flush=True)
        finally:
            clv.BAG_MEMBERS, clv.BAG_RATE_SCALE = 1, 1.0
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """12-shop mean and [min, max] per setting and candidate; 'champion' = the chosen candidate's row per shop."""
    chosen = rows[rows["candidate"] == rows["champion"]].assign(candidate="champion (chosen)")
    rows = pd.concat([rows, chosen]).assign(calibration_error=lambda f: (f["calibration_ratio"] - 1).abs())
    keys = ["members", "rate_scale", "lgb_seed", "candidate"]
    table = rows.groupby(keys, sort=False)[[*METRICS, "calibration_error"]].agg(["mean", "min", "max"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    return table.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "clv_bagging.json"))
    args = parser.parse_args()
    rows = run()
    Path(args.out).write_text(json.dumps(rows.to_dict("records"), indent=1, default=float))
    table = summary(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_rows", 200):
        print(table.round(4).to_string(index=False))
        seconds = rows.drop_duplicates(["members", "rate_scale", "lgb_seed", "horizon", "shop_seed"])
        print(seconds.groupby(["members", "rate_scale", "lgb_seed"], sort=False)["seconds"].sum().round(1))
        champions = rows.drop_duplicates(["members", "rate_scale", "lgb_seed", "horizon", "shop_seed"])
        print(champions.groupby(["members", "rate_scale", "lgb_seed"], sort=False)["champion"].value_counts())


if __name__ == "__main__":
    main()
