"""The production CLV step on odd shop shapes (tests/unit/shop_shapes.py): champion, why, totals, any problem.

Usage: python -m bench.champion_shapes [--horizon DAYS] [shape substring ...]
--horizon: score every shape with that horizon (shop_shapes.at_horizon; default: each shape's own, 90 days).
Prints one row per shape: champion, mode, sum(predicted), sum(actual spend in the horizon after as-of), the
problems found by shop_shapes.problems (none expected), and the champion's reason.
"""

from __future__ import annotations

import sys
import time

import pandas as pd

from tests.unit.shop_shapes import SHAPES, at_horizon, problems, production_step
from tests.unit.test_clv import features_at


def main(argv: list[str]) -> None:
    horizon = None
    if "--horizon" in argv:
        at = argv.index("--horizon")
        horizon, argv = int(argv[at + 1]), argv[:at] + argv[at + 2 :]
    rows = []
    for name, make in SHAPES.items():
        if argv and not any(word in name for word in argv):
            continue
        started = time.process_time()
        shape = make() if horizon is None else at_horizon(make(), horizon)
        step = production_step(shape)
        future = features_at(shape.shop, shape.as_of, shape.horizon)["future_revenue"].sum()
        rows.append(
            {
                "shape": name,
                "as_of": shape.as_of,
                "horizon": shape.horizon,
                "customers": len(step.scoring_rows),
                "champion": step.backtest.champion,
                "mode": step.backtest.mode,
                "sum_predicted": round(float(step.scores["predicted_clv"].sum()), 1),
                "sum_actual_next": round(float(future), 1),
                "mean_propensity": round(float(step.scores["purchase_propensity"].mean()), 3),
                "problems": "; ".join(problems(step)) or "none",
                "cpu_s": round(time.process_time() - started, 1),
                "reason": step.backtest.reason,
            }
        )
        print(rows[-1], flush=True)
    with pd.option_context("display.max_colwidth", 200, "display.width", 250):
        print(pd.DataFrame(rows).drop(columns="reason").to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1:])
