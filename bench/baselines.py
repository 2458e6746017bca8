"""The two yardsticks for segmint's feature build, both over the raw landing Parquet files.

* `pandas_customer_features`: the customer feature table the way a competent notebook builds it (vectorised
  group-bys, only the needed columns read): order_count, revenues, recency, tenure, per-customer event shares.
* `floor_scan`: the physical floor, one DuckDB scan-and-aggregate (orders: count, sum, min, max; events: count
  per event type, grouped by customer). Nothing that computes customer features can be much faster than this.

`python -m bench.baselines {pandas,floor} LANDING_DIR` times one of them in a fresh process (so its memory is
measured alone) and prints one JSON line: seconds, rows, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

# The same status vocabulary as dbt's stg_orders.
CANCELLED_STATUSES = ("cancelled", "canceled", "void", "voided")
REFUND_STATUSES = ("refunded", "refund", "returned")
# docs/ARCHITECTURE.md, "Event vocabulary": the floor counts each type, so the scan does the same work per row.
EVENT_TYPES = (
    "page_view",
    "product_view",
    "add_to_cart",
    "begin_checkout",
    "shipping_info_viewed",
    "purchase",
    "review_read",
    "compare_used",
    "gallery_view",
    "video_play",
    "countdown_view",
    "low_stock_view",
    "discount_code_applied",
    "search",
)
# The notebook's shares, with the dbt definitions (macros/behaviour_features.sql) written as pandas masks.
RESEARCH_EVENTS, RESEARCH_PAGES = ("review_read", "compare_used"), ("reviews", "comparison")
VISUAL_EVENTS, VISUAL_PAGES = ("gallery_view", "video_play"), ("gallery",)
URGENCY_EVENTS = ("countdown_view", "low_stock_view")
EVENT_COLUMNS = ["customer_id", "occurred_at", "event_type", "page_type"]
ORDER_COLUMNS = ["customer_id", "ordered_at", "order_total", "status"]


def pandas_customer_features(landing_dir: Path) -> pd.DataFrame:
    """One row per customer with >= 1 purchase: the core features a notebook computes with pandas group-bys."""
    orders = pd.read_parquet(landing_dir / "orders.parquet", columns=ORDER_COLUMNS)
    events = pd.read_parquet(landing_dir / "events.parquet", columns=EVENT_COLUMNS)
    as_of = orders["ordered_at"].max().normalize()

    status = orders["status"].fillna("completed").str.lower()
    orders = orders[~status.isin(CANCELLED_STATUSES)]
    is_refund = (orders["order_total"] < 0) | status.loc[orders.index].isin(REFUND_STATUSES)
    purchases = orders[~is_refund]
    by_customer = purchases.groupby("customer_id")
    features = by_customer.agg(
        order_count=("order_total", "size"),
        gross_revenue=("order_total", "sum"),
        first_order_at=("ordered_at", "min"),
        last_order_at=("ordered_at", "max"),
    )
    refund_amount = orders.loc[is_refund, "order_total"].abs().groupby(orders.loc[is_refund, "customer_id"]).sum()
    features["total_revenue"] = features["gross_revenue"] - refund_amount.reindex(features.index, fill_value=0.0)
    features["avg_order_value"] = features["gross_revenue"] / features["order_count"]
    features["recency_days"] = (as_of - features["last_order_at"].dt.normalize()).dt.days
    features["tenure_days"] = (as_of - features["first_order_at"].dt.normalize()).dt.days

    events = events[events["customer_id"].notna()]
    event_type, page_type = events["event_type"].str.lower(), events["page_type"].str.lower()
    flags = pd.DataFrame(
        {
            "customer_id": events["customer_id"],
            "occurred_on": events["occurred_at"].dt.normalize(),
            "research": event_type.isin(RESEARCH_EVENTS) | page_type.isin(RESEARCH_PAGES),
            "sale": page_type.eq("sale"),
            "discount_event": event_type.eq("discount_code_applied"),
            "brand": page_type.isin(("about", "brand")),
            "visual": event_type.isin(VISUAL_EVENTS) | page_type.isin(VISUAL_PAGES),
            "urgency": event_type.isin(URGENCY_EVENTS),
        }
    )
    by_visitor = flags.groupby("customer_id")
    behaviour = (
        by_visitor[["research", "sale", "discount_event", "brand", "visual", "urgency"]].mean().add_suffix("_share")
    )
    behaviour["event_count"] = by_visitor.size()
    behaviour["active_days"] = by_visitor["occurred_on"].nunique()

    features = features.join(behaviour, how="left")
    count_columns = ["event_count", "active_days"]
    features[count_columns] = features[count_columns].fillna(0).astype("int64")
    return features.fillna({column: 0.0 for column in behaviour.columns if column.endswith("_share")}).reset_index()


def floor_sql(landing_dir: Path) -> str:
    """One scan-and-aggregate over the raw files, grouped by customer, materialised as a table."""
    orders, events = landing_dir / "orders.parquet", landing_dir / "events.parquet"
    per_type = ",\n        ".join(f"count(*) filter (where event_type = '{t}') as {t}_events" for t in EVENT_TYPES)
    return f"""
create table floor_features as
with order_totals as (
    select customer_id, count(*) as order_rows, sum(order_total) as order_total,
           min(ordered_at) as first_order_at, max(ordered_at) as last_order_at
    from read_parquet('{orders}')
    group by customer_id
),
event_counts as (
    select customer_id,
        {per_type}
    from read_parquet('{events}')
    where customer_id is not null
    group by customer_id
)
select * from order_totals left join event_counts using (customer_id)
"""


def floor_scan(landing_dir: Path) -> int:
    """Runs the floor query in an in-memory DuckDB (default threads, like dbt-duckdb) and returns its row count."""
    with duckdb.connect() as conn:
        conn.execute(floor_sql(landing_dir))
        return conn.execute("select count(*) from floor_features").fetchone()[0]


def main(argv: Sequence[str] | None = None) -> None:
    """Times one baseline and prints {"baseline", "seconds", "rows", "peak_rss_bytes"} as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    parser.add_argument("baseline", choices=("pandas", "floor"))
    parser.add_argument("landing_dir", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.baseline == "pandas":
        rows = len(pandas_customer_features(args.landing_dir))
    else:
        rows = floor_scan(args.landing_dir)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"baseline": args.baseline, "seconds": seconds, "rows": rows, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
