"""Coverage of the p10-p90 interval a `no back-test` champion ships, on real logs where the next horizon is known.

Usage: python -m bench.btyd_interval_coverage PATH AS_OF_DAY:HORIZON ... [--dataset NAME]   (PATH, --dataset: as
bench/champion_cdnow.py). For each cut, BG/NBD and Pareto/NBD x Gamma-Gamma fitted on all history at as-of (the
label-free champions, ml.champion.label_free_champion) forecast the next horizon; printed per model: the share of
customers whose real spend lies in [p10, p90] (ml.evaluation.interval_coverage; nominal 0.8, more where spend is
0 for many, since an atom at 0 is covered by p10 = 0), P(spend <= p90) (nominal 0.9) and P(spend < p10), for
 - `empty map`: p10 = 0, p90 = the forecast (what a champion without a measured interval map shipped until now),
 - `predictive`: p10 / p90 of the model's own predictive distribution (btyd.simulate_spend, champion's default).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from bench.champion_cdnow import SHOPS
from ml import btyd, champion
from ml.evaluation import interval_coverage
from tests.unit.test_clv import features_at


def coverage_rows(shop: dict[str, pd.DataFrame], as_of: int, horizon: int) -> list[dict]:
    rows = features_at(shop, as_of, horizon)
    actual = rows["future_revenue"].to_numpy(float).clip(min=0)
    fits = btyd.fit_btyd_models(rows)
    out = []
    for name in champion.LABEL_FREE_CHAMPIONS:
        fitted = fits.get(name)
        if not isinstance(fitted, btyd.FittedBTYD):
            continue
        forecast = fitted.forecast(rows, horizon)["predicted_clv"].to_numpy(float)
        quantiles = fitted.spend_quantiles(rows, horizon, champion.INTERVAL_QUANTILES)
        # As finish_chunk ships them: p10 <= forecast <= p90.
        intervals = {
            "empty map": (np.zeros_like(forecast), forecast),
            "predictive": (np.minimum(quantiles[:, 0], forecast), np.maximum(quantiles[:, 1], forecast)),
        }
        for kind, (low, high) in intervals.items():
            out.append(
                {
                    "cut": f"{as_of}:{horizon}",
                    "model": name,
                    "interval": kind,
                    "customers": len(rows),
                    "share_zero_spend": round(float(np.mean(actual <= 0)), 3),
                    "coverage_p10_p90": round(interval_coverage(actual, low, high), 3),
                    "below_p90": round(float(np.mean(actual <= high + 1e-9)), 3),
                    "below_p10": round(float(np.mean(actual < low - 1e-9)), 3),
                    "mean_width": round(float(np.mean(high - low)), 1),
                }
            )
    return out


def main(argv: list[str]) -> None:
    dataset = "cdnow"
    if "--dataset" in argv:
        at = argv.index("--dataset")
        dataset, argv = argv[at + 1], argv[:at] + argv[at + 2 :]
    shop = SHOPS[dataset](argv[0])
    rows = []
    for cut in argv[1:]:
        as_of, horizon = (int(v) for v in cut.split(":"))
        rows += coverage_rows(shop, as_of, horizon)
        print(pd.DataFrame(rows[-4:]).to_string(index=False), flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main(sys.argv[1:])
