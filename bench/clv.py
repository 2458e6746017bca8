"""`make bench-clv`: the CLV model against its baselines on generated shops, at two horizons.

For each seed and horizon it generates a demo shop, runs the whole graph exactly as `make run` does
(SEGMINT_CLV_HORIZON_DAYS=horizon) and reports two evaluations:
- backtest: the run's own in-data back-test (marts.clv_model_evaluation: held-out customers at as_of - horizon);
- future: true out-of-sample, predictions at the as-of date against the generator's hidden future orders in
  (as_of, as_of + horizon], for the model (ml.clv_predictions) and both baselines computed on the same features.
Writes the tables to bench/results/clv.md and prints them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from demo_shop import generate_shop
from ml.btyd import btyd_clv_baseline
from ml.clv import past_spend_rate
from ml.evaluation import BTYD_BASELINE, MODEL_NAME, PAST_SPEND_BASELINE, evaluate

PROJECT_ROOT = Path(__file__).resolve().parents[1]
END_DATE = date(2026, 6, 30)
COLUMNS = ["seed", "horizon", "evaluation", "model", "n_customers", "spearman", "normalized_gini", "decile_mape",
           "calibration_ratio", "top20_capture", "propensity_auc"]


def run_graph(workdir: Path, landing: Path, horizon: int) -> Path:
    """The whole graph as `make run` runs it; returns the warehouse path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMINT_")}
    env |= {
        "SEGMINT_LANDING_DIR": str(landing), "SEGMINT_DATA_DIR": str(workdir / "data"),
        "SEGMINT_WAREHOUSE": str(workdir / "data" / "warehouse.duckdb"), "SEGMINT_CLV_HORIZON_DAYS": str(horizon),
        "DAGSTER_HOME": str(workdir / "home"), "DO_NOT_TRACK": "1",
    }
    (workdir / "home").mkdir(parents=True, exist_ok=True)
    (workdir / "home" / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    subprocess.run([sys.executable, "-m", "orchestration.cli", "segmint_refresh"], cwd=PROJECT_ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return workdir / "data" / "warehouse.duckdb"


def future_evaluation(warehouse: Path, truth: Path, horizon: int) -> list[dict]:
    """Model and baselines scored at the as-of date against the true spend in the next `horizon` days."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        features = conn.execute("select * from marts.customer_features order by customer_id").df()
        predictions = conn.execute("select * from ml.clv_predictions order by customer_id").df()
        as_of = conn.execute("select as_of from raw.run_context").fetchone()[0]
    future = pd.read_csv(truth / "future_orders.csv", dtype={"customer_id": str}, parse_dates=["ordered_at"])
    window = future[(future["ordered_at"].dt.date > as_of) & (future["ordered_at"].dt.date <= as_of + timedelta(days=horizon))]
    spend = window.assign(amount=window["order_total"].clip(lower=0)).groupby("customer_id")["amount"].sum()
    actual = features["customer_id"].map(spend).fillna(0.0).to_numpy()
    bought = actual > 0
    model = features[["customer_id"]].merge(predictions, on="customer_id", how="left")
    past = past_spend_rate(features, horizon)
    btyd = btyd_clv_baseline(features, horizon).to_numpy()
    return [
        evaluate(MODEL_NAME, actual, model["predicted_clv"].to_numpy(), bought, model["purchase_propensity"].to_numpy()),
        evaluate(PAST_SPEND_BASELINE, actual, past, bought, past),
        evaluate(BTYD_BASELINE, actual, btyd, bought, btyd),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--horizons", type=int, nargs="+", default=[90, 180])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results" / "clv.md")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="segmint-bench-clv-") as tmp:
        for seed in args.seeds:
            shop = Path(tmp) / f"shop{seed}"
            generate_shop(shop / "landing", shop / "truth", n_customers=args.customers, seed=seed, end_date=END_DATE)
            for horizon in args.horizons:
                warehouse = run_graph(Path(tmp) / f"run{seed}_{horizon}", shop / "landing", horizon)
                with duckdb.connect(str(warehouse), read_only=True) as conn:
                    backtest = conn.execute("select * from marts.clv_model_evaluation").df()
                for row in backtest.to_dict("records"):
                    rows.append({**row, "seed": seed, "horizon": horizon, "evaluation": "backtest"})
                for row in future_evaluation(warehouse, shop / "truth", horizon):
                    rows.append({**row, "seed": seed, "horizon": horizon, "evaluation": "future"})
                print(f"seed {seed} horizon {horizon}: done", flush=True)
    table = pd.DataFrame(rows)[COLUMNS]
    summary = (table.groupby(["evaluation", "horizon", "model"], as_index=False)
               [["spearman", "normalized_gini", "decile_mape", "calibration_ratio", "top20_capture", "propensity_auc"]]
               .mean().round(3))
    text = (f"# CLV benchmark\n\n{args.customers} customers per shop, seeds {args.seeds}, horizons {args.horizons}; "
            f"`make bench-clv`.\n\n## Mean over seeds\n\n{summary.to_markdown(index=False)}\n\n"
            f"## Every run\n\n{table.round(3).to_markdown(index=False)}\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
