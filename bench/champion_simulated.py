"""The CLV champion's production step on simulated shops, without Dagster: a light stand-in for the demo part of
`python -m bench.clv` when comparing candidate sets.

Usage: python -m bench.champion_simulated [--candidates a,b,...] [--seeds 1,2,...] [--horizons 90,180]
Shops: tests/unit/test_clv.py's simulate_shop(5000, 1100, seed) (the 12 shops of ml/clv.py's table by default).
Each goes through bench.champion_cdnow.run_cut at as_of = 1099 - h: the back-test on the cut-offs as_of - 2h and
as_of - h, the champion refitted at as_of - h and scored at as_of against the real spend in (as_of, as_of + h].
Prints the shipped champion's future metrics per shop and their means (|sum ratio - 1| included).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from bench.champion_cdnow import run_cut
from ml import champion
from tests.unit.test_clv import simulate_shop

N_CUSTOMERS, N_DAYS = 5000, 1100


def run(candidates: tuple[str, ...], seeds: list[int], horizons: list[int]) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        shop = simulate_shop(N_CUSTOMERS, N_DAYS, seed)
        for horizon in horizons:
            result, production = run_cut(shop, N_DAYS - 1 - horizon, horizon, candidates)
            ours = production.iloc[0]
            rows.append(
                {
                    "seed": seed,
                    "horizon": horizon,
                    "champion": result.champion,
                    **{m: ours[m] for m in ("spearman", "propensity_auc", "decile_mape", "calibration_ratio")},
                }
            )
            print(f"seed {seed} horizon {horizon}: {result.champion}", flush=True)
    table = pd.DataFrame(rows)
    return table.assign(abs_ratio_error=(table["calibration_ratio"] - 1).abs())


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", default=",".join(champion.CANDIDATES))
    parser.add_argument("--seeds", default="1,2,3,4,5,6")
    parser.add_argument("--horizons", default="90,180")
    args = parser.parse_args(argv)
    table = run(
        tuple(args.candidates.split(",")),
        [int(v) for v in args.seeds.split(",")],
        [int(v) for v in args.horizons.split(",")],
    )
    print(table.round(4).to_string(index=False))
    means = table[["spearman", "propensity_auc", "decile_mape", "calibration_ratio", "abs_ratio_error"]].mean()
    print("mean:", ", ".join(f"{name} {value:.4f}" for name, value in means.items()))
    print("champions:", table["champion"].value_counts().to_dict())


if __name__ == "__main__":
    main(sys.argv[1:])
