"""The two yardsticks for segmint's feature build, both over the raw landing Parquet files.

* `pandas_feature_marts`: every column of the feature marts the feature build produces (marts.customer_features,
  customer_features_train, customer_features_selection, customer_prepurchase_behaviour, prospect_features), the way
  a competent notebook builds them: only the needed columns read (ids and labels as categoricals), vectorised
  group-bys over integer codes, no dbt, no tests, nothing written. It applies the same rules as the dbt models
  (macros/customer_features_at.sql, behaviour_features.sql, future_labels.sql, the staging models) and the event
  vocabulary of config/event_mapping.yaml; `check` (below) and tests/integration/test_pandas_baseline.py verify
  that it reproduces the warehouse's marts column by column. The landing ingest's per-row quarantine is not repeated (the benchmark
  shop has no invalid rows); the as-of date is the last order date and rows after it are set aside, as the
  ingest does.
* `floor_scan`: the physical floor, one DuckDB scan-and-aggregate (orders: count, sum, min, max; events: count
  per event type, grouped by customer). Nothing that computes customer features can be much faster than this.

`python -m bench.baselines {pandas,floor} LANDING_DIR` times one of them in a fresh process (so its memory is
measured alone) and prints one JSON line: seconds, CPU seconds, rows, peak RSS. `python -m bench.baselines check
LANDING_DIR WAREHOUSE` compares the pandas marts with a warehouse built from the same files (e.g. a `make bench`
run kept with `--keep`).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from demo_shop.config import EVENT_TYPES
from landing.event_mapping import load_event_mapping, map_event_vocabulary

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EVENT_MAPPING = PROJECT_ROOT / "config" / "event_mapping.yaml"
# The same status vocabulary as dbt's stg_orders.
CANCELLED_STATUSES = ("cancelled", "canceled", "void", "voided")
REFUND_STATUSES = ("refunded", "refund", "returned")
DEFAULT_HORIZON_DAYS = 365  # SEGMINT_CLV_HORIZON_DAYS's default (orchestration/lib/settings.py)
TOP_EVENT_TYPE_COUNT = 8  # dbt var top_event_type_count
SESSION_GAP_SECONDS = 1800
NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
DAY_KEY_SPAN = 1 << 20  # days per visitor in the (visitor, day) group key: ~2,870 years
# macros/behaviour_features.sql, event_day_counts: what each per-day count counts.
RESEARCH_EVENTS, RESEARCH_PAGES = ("review_read", "compare_used"), ("reviews", "comparison")
VISUAL_EVENTS, VISUAL_PAGES = ("gallery_view", "video_play"), ("gallery",)
URGENCY_EVENTS = ("countdown_view", "low_stock_view")
BRAND_PAGES = ("about", "brand")
MOBILE_DEVICES, DESKTOP_DEVICES = ("mobile", "phone", "smartphone"), ("desktop", "computer", "pc", "laptop")
SHARES = ("research", "sale", "discount_event", "brand", "visual", "urgency")
GENERIC_COUNTS = ("mobile", "tablet", "desktop", "night", "morning", "afternoon", "evening")
DAY_COUNTS = ("product_view", *SHARES, "cart_add", "mapped")
ORDER_COLUMNS = ["order_id", "customer_id", "ordered_at", "order_total", "status", "discount_amount", "discount_code"]
ORDER_COLUMNS += ["channel", "currency"]
EVENT_COLUMNS = ["customer_id", "anonymous_id", "occurred_at", "event_type", "page_type", "device"]
CUSTOMER_COLUMNS = ["customer_id", "email", "phone", "country", "signed_up_at", "acquisition_channel"]
CUSTOMER_COLUMNS += ["marketing_consent"]
CATEGORICAL = ["customer_id", "anonymous_id", "event_type", "page_type", "device", "status", "channel", "country"]
CATEGORICAL += ["acquisition_channel", "currency", "discount_code"]


def read_landing(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """The file's wanted columns that exist (missing optional ones are all-null), text ids as categoricals."""
    present = set(pq.read_schema(path).names)
    wanted = [c for c in columns if c in present]
    table = pq.read_table(path, columns=wanted, read_dictionary=[c for c in wanted if c in CATEGORICAL])
    frame = table.to_pandas()
    for column in columns:
        if column not in frame:
            frame[column] = None
    return frame


def _lower_trim(values: pd.Series) -> pd.Series:
    """lower(trim(x)) as plain strings (NULL stays NULL)."""
    return values.astype(object).where(values.notna()).str.strip().str.lower()


@dataclass(frozen=True)
class Cutoffs:
    """int_cutoffs: the as-of date and the training and selection cut-offs (one and two horizons earlier)."""

    scoring: date
    training: date
    selection: date

    @classmethod
    def from_as_of(cls, as_of: date, horizon_days: int) -> Cutoffs:
        return cls(as_of, as_of - timedelta(days=horizon_days), as_of - timedelta(days=2 * horizon_days))


def _day_number(values: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of a timestamp column (the UTC date as an integer)."""
    return values.to_numpy(dtype="datetime64[ns]").astype("int64") // NS_PER_DAY


def _day(value: date) -> int:
    return (pd.Timestamp(value) - pd.Timestamp(0)).days


def stage_orders(orders: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """stg_orders: amounts, refund/cancel flags, discount and channel as dbt stages them (rows after as-of out)."""
    currencies = orders["currency"].dropna().astype(str).str.upper().unique()
    if len(currencies) > 1:  # nothing summed across currencies; the notebook has no fx table
        raise ValueError(f"orders in {len(currencies)} currencies ({', '.join(sorted(currencies))}): convert first")
    day = _day_number(orders["ordered_at"])
    orders = orders[day <= _day(as_of)].copy()
    status = _lower_trim(orders["status"].astype(object))
    is_cancelled = status.isin(CANCELLED_STATUSES).to_numpy()
    is_refund = ((orders["order_total"] < 0) | status.isin(REFUND_STATUSES)).to_numpy()
    code = orders["discount_code"].astype(object).where(orders["discount_code"].notna()).str.strip()
    code = code.where(code != "")
    channel = _lower_trim(orders["channel"].astype(object))
    staged = pd.DataFrame(
        {
            "order_id": orders["order_id"].astype(str).to_numpy(),
            "customer_id": orders["customer_id"].astype(str).to_numpy(),
            "ordered_at": orders["ordered_at"].to_numpy(),
            "day": _day_number(orders["ordered_at"]),
            "is_cancelled": is_cancelled,
            "is_refund": is_refund,
            "order_amount": orders["order_total"].abs().to_numpy(),
            "discount_code": code.to_numpy(),
            "has_discount": (code.notna() | (orders["discount_amount"].fillna(0) > 0)).to_numpy(),
            "channel": channel.where(channel.notna() & (channel != ""), "unknown").to_numpy(),
        }
    )
    return staged


def stage_customers(customers: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """stg_customers: the first row per customer_id, attributes normalised (sign-ups after as-of set aside)."""
    signed = customers["signed_up_at"]
    customers = customers[signed.isna().to_numpy() | (_day_number(signed.fillna(pd.Timestamp(0))) <= _day(as_of))]
    customers = customers.drop_duplicates("customer_id", keep="first")
    country = customers["country"].astype(object).where(customers["country"].notna()).str.strip()
    channel = _lower_trim(customers["acquisition_channel"].astype(object))
    filled = lambda column: customers[column].astype(object).where(customers[column].notna()).str.strip()  # noqa: E731
    return pd.DataFrame(
        {
            "customer_id": customers["customer_id"].astype(str).to_numpy(),
            "country": country.where(country != "").str.upper().to_numpy(),
            "signed_up_at": customers["signed_up_at"].to_numpy(),
            "acquisition_channel": channel.where(channel != "").to_numpy(),
            "marketing_consent": customers["marketing_consent"].to_numpy(),
            "has_email": (filled("email").fillna("") != "").to_numpy(),
            "has_phone": (filled("phone").fillna("") != "").to_numpy(),
        }
    )


@dataclass
class StagedEvents:
    """One row per accepted event (as arrays), vocabulary applied: what stg_events gives the marts."""

    visitor: np.ndarray  # int code of coalesce(customer_id, anonymous_id); -1 when both are null
    customer: np.ndarray  # int code of customer_id into `customer_ids`; -1 when null
    visitors: np.ndarray  # visitor code -> id
    customer_ids: np.ndarray  # customer code -> id
    occurred_ns: np.ndarray
    day: np.ndarray
    flags: dict[str, np.ndarray]  # the per-event counts of event_day_counts (bool arrays)
    source_type: pd.Categorical  # lower(trim(event_type)), for the top event types


def stage_events(events: pd.DataFrame, as_of: date) -> StagedEvents:
    """Per-event flags of macros/behaviour_features.sql over the mapped vocabulary (config/event_mapping.yaml)."""
    ns = events["occurred_at"].to_numpy(dtype="datetime64[ns]").astype("int64")
    keep = ns // NS_PER_DAY <= _day(as_of)
    if not keep.all():  # rows after the as-of date are set aside, as the ingest does
        events, ns = events[keep].reset_index(drop=True), ns[keep]
    source_event = _clean_categorical(events["event_type"])
    source_page = _clean_categorical(events["page_type"])
    # The vocabulary of the distinct (event, page) pairs, as raw.event_vocabulary maps them (no page_url here).
    pages = len(source_page.categories)
    pair_codes, pairs = pd.factorize(source_event.codes.astype("int64") * pages + source_page.codes)
    event_names, page_names = np.asarray(source_event.categories), np.asarray(source_page.categories)
    keys = pd.DataFrame(
        {"source_event_type": event_names[pairs // pages], "source_page_type": page_names[pairs % pages]}
    )
    keys["source_page_path"], keys["event_count"] = "", np.bincount(pair_codes, minlength=len(keys))
    vocabulary = map_event_vocabulary(keys, load_event_mapping(EVENT_MAPPING), "segmint")
    # Flags are computed once per distinct (event, page) pair or device, then looked up per event by its code.
    event_type = vocabulary["event_type"].fillna("").to_numpy(dtype=object)
    page_type = vocabulary["page_type"].fillna("").to_numpy(dtype=object)
    in_ = lambda values, names: pd.Series(values).isin(names).to_numpy()  # noqa: E731
    pair_flags = {
        "product_view": (event_type == "product_view") | (page_type == "product"),
        "research": in_(event_type, RESEARCH_EVENTS) | in_(page_type, RESEARCH_PAGES),
        "sale": page_type == "sale",
        "discount_event": event_type == "discount_code_applied",
        "brand": in_(page_type, BRAND_PAGES),
        "visual": in_(event_type, VISUAL_EVENTS) | in_(page_type, VISUAL_PAGES),
        "urgency": in_(event_type, URGENCY_EVENTS),
        "cart_add": event_type == "add_to_cart",
        "shipping": event_type == "shipping_info_viewed",
        "purchase": event_type == "purchase",
        "mapped": vocabulary["is_mapped"].to_numpy(dtype=bool),
    }
    device = _clean_categorical(events["device"])
    device_names = np.asarray(device.categories, dtype=object)
    device_flags = {
        "mobile": in_(device_names, MOBILE_DEVICES),
        "tablet": device_names == "tablet",
        "desktop": in_(device_names, DESKTOP_DEVICES),
    }
    hour = (ns // (3600 * NS_PER_SECOND)) % 24
    flags = {name: flag[pair_codes] for name, flag in pair_flags.items()}
    flags |= {name: flag[device.codes] for name, flag in device_flags.items()}
    flags |= {
        "night": hour < 6,
        "morning": (hour >= 6) & (hour < 12),
        "afternoon": (hour >= 12) & (hour < 18),
        "evening": hour >= 18,
    }
    customer_id = events["customer_id"].astype(object)
    customer, customer_ids = pd.factorize(customer_id)
    visitor, visitors = pd.factorize(customer_id.where(customer_id.notna(), events["anonymous_id"].astype(object)))
    return StagedEvents(
        visitor=visitor,
        customer=customer,
        visitors=np.asarray(visitors, dtype=object),
        customer_ids=np.asarray(customer_ids, dtype=object),
        occurred_ns=ns,
        day=ns // NS_PER_DAY,
        flags=flags,
        source_type=source_event,
    )


def _clean_categorical(values: pd.Series) -> pd.Categorical:
    """lower(trim(coalesce(x, ''))) as a categorical, computed on the distinct values."""
    categorical = pd.Categorical(values) if not isinstance(values.dtype, pd.CategoricalDtype) else values.array
    cleaned = pd.Series(categorical.categories.astype(str)).str.strip().str.lower()
    # The last entry is '' for NULL: code -1 indexes it.
    codes, uniques = pd.factorize(pd.concat([cleaned, pd.Series([""])], ignore_index=True))
    mapped = codes[categorical.codes]
    return pd.Categorical.from_codes(mapped, categories=pd.Index(uniques, dtype=object))


def visitor_days(events: StagedEvents, mask: np.ndarray | None = None, generic: bool = False) -> pd.DataFrame:
    """event_day_counts: one row per visitor and day with the counts every behaviour feature is a sum of.

    `generic` adds sessions (a gap over 30 minutes within the visitor's day starts one; gaps in whole seconds, as
    DuckDB's datediff('second')) and the device and time-of-day counts.
    """
    index = None if mask is None else np.flatnonzero(mask)
    take = (lambda values: values) if index is None else (lambda values: values[index])  # noqa: E731
    # One int64 key per visitor and day (visitor + 1, so no visitor is -1): one group-by key, no copies of the ids.
    visitor, day = take(events.visitor).astype("int64"), take(events.day)
    first_day = int(day.min()) if len(day) else 0
    frame = {"key": (visitor + 1) * DAY_KEY_SPAN + (day - first_day), "customer": take(events.customer)}
    frame["occurred_ns"] = take(events.occurred_ns)
    for name in (*DAY_COUNTS, "shipping", "purchase", *(GENERIC_COUNTS if generic else ())):
        frame[name] = take(events.flags[name])
    if generic:
        order = np.lexsort((frame["occurred_ns"], visitor))
        visitor, day, seconds = visitor[order], day[order], frame["occurred_ns"][order] // NS_PER_SECOND
        same_day = np.r_[False, (visitor[1:] == visitor[:-1]) & (day[1:] == day[:-1])]
        gap = np.where(same_day, seconds - np.r_[seconds[:1], seconds[:-1]], -1)
        del visitor, day, seconds
        starts, inside = np.empty(len(order), bool), np.zeros(len(order), "int64")
        starts[order] = ~same_day | (gap > SESSION_GAP_SECONDS)
        inside[order] = np.where(same_day & (gap <= SESSION_GAP_SECONDS), gap, 0)
        frame["session"], frame["session_seconds"] = starts, inside
        del order, same_day, gap
    frame = pd.DataFrame(frame, copy=False)
    grouped = frame.groupby("key", sort=False)
    sums = [c for c in frame.columns if c not in ("key", "customer", "occurred_ns", "shipping", "purchase")]
    days = grouped[sums].sum()
    days["event_count"] = grouped.size()
    days["customer"] = grouped["customer"].first()
    days["saw_shipping"] = grouped["shipping"].any()
    days["purchased"] = grouped["purchase"].any()
    days["first_event_ns"] = grouped["occurred_ns"].min()
    days["last_event_ns"] = grouped["occurred_ns"].max()
    keys = days.index.to_numpy()
    days["visitor"], days["day"] = keys // DAY_KEY_SPAN - 1, keys % DAY_KEY_SPAN + first_day
    return days.reset_index(drop=True)


def behaviour(days: pd.DataFrame, key: str, cutoff_day: pd.Series | int, generic: bool = False) -> pd.DataFrame:
    """behaviour_features: per-key web behaviour from visitor-days at or before the cut-off (`cutoff_day`: one day
    for every key, or a per-row Series)."""
    days = days.assign(cutoff_day=cutoff_day)
    grouped = days.groupby(key, sort=False)
    sums = grouped[[f"{name}" for name in ("event_count", *DAY_COUNTS)]].sum()
    out = pd.DataFrame(index=sums.index)
    events = sums["event_count"]
    active = grouped.size()  # one row per visitor and day: the distinct days
    out["event_count"], out["active_days"] = events, active
    out["first_event_ns"], out["last_event_ns"] = grouped["first_event_ns"].min(), grouped["last_event_ns"].max()
    out["days_since_last_event"] = grouped["cutoff_day"].max() - grouped["day"].max()
    recent = lambda days_back, column: (  # noqa: E731
        days[column].where(days["day"] > days["cutoff_day"] - days_back, 0).groupby(days[key], sort=False).sum()
    )
    out["event_count_last_30d"] = recent(30, "event_count")
    out["product_views_per_active_day"] = sums["product_view"] / active
    for name in SHARES:
        out[f"{name}_share"] = sums[name] / events
    out["cart_add_count_last_90d"] = recent(90, "cart_add")
    shipping = days["saw_shipping"].groupby(days[key], sort=False).sum()
    abandoned = (days["saw_shipping"] & ~days["purchased"]).groupby(days[key], sort=False).sum()
    out["shipping_abandon_rate"] = (abandoned / shipping.where(shipping > 0)).fillna(0.0)
    out["mapped_event_share"] = sums["mapped"] / events
    if generic:
        generic_sums = grouped[["session", "session_seconds", *GENERIC_COUNTS]].sum()
        sessions = generic_sums["session"]
        out["session_count"] = sessions
        out["sessions_per_active_day"] = sessions / active
        out["avg_session_minutes"] = generic_sums["session_seconds"] / 60.0 / sessions
        out["events_per_session"] = events / sessions
        for name in GENERIC_COUNTS:
            out[f"{name}_share"] = generic_sums[name] / events
    return out


def top_event_types(events: StagedEvents, scoring_day: int) -> list[str]:
    """marts.top_event_types: the shop's most frequent source event types at or before as-of, ties by name."""
    counts = pd.Series(events.source_type[events.day <= scoring_day]).value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [name for name, _ in ranked[:TOP_EVENT_TYPE_COUNT]]


def customer_features_at(
    orders: pd.DataFrame,
    customers: pd.DataFrame,
    events: StagedEvents,
    days: pd.DataFrame,
    top_types: list[str],
    cutoff: date,
) -> pd.DataFrame:
    """macros/customer_features_at.sql: one row per customer with a purchase at or before `cutoff`."""
    cutoff_day = _day(cutoff)
    scoped = orders[(orders["day"] <= cutoff_day) & ~orders["is_cancelled"]]
    purchases = scoped[~scoped["is_refund"]].sort_values(["customer_id", "ordered_at", "order_id"], kind="stable")
    by_customer = purchases.groupby("customer_id", sort=True)
    first = purchases.drop_duplicates("customer_id", keep="first").set_index("customer_id")
    previous_day = purchases["day"].shift(1).where(purchases["customer_id"].eq(purchases["customer_id"].shift(1)))
    recent = lambda back, column: (  # noqa: E731
        purchases[column].where(purchases["day"] > cutoff_day - back, 0).groupby(purchases["customer_id"]).sum()
    )
    f = pd.DataFrame(index=by_customer.size().index)
    f["cutoff_date"] = pd.Timestamp(cutoff)
    f["first_order_at"], f["last_order_at"] = by_customer["ordered_at"].min(), by_customer["ordered_at"].max()
    first_day, last_day = by_customer["day"].min(), by_customer["day"].max()
    f["order_count"] = by_customer.size()
    f["repeat_order_count"] = by_customer["day"].nunique() - 1
    f["recency_days"] = cutoff_day - last_day
    f["tenure_days"] = cutoff_day - first_day
    f["btyd_recency_days"] = last_day - first_day
    gross = by_customer["order_amount"].sum()
    refunds = scoped[scoped["is_refund"]].groupby("customer_id")["order_amount"].agg(["size", "sum"])
    refunds = refunds.reindex(f.index, fill_value=0)
    f["total_revenue"] = gross - refunds["sum"]
    f["gross_revenue"] = gross
    f["avg_order_value"] = gross / f["order_count"]
    f["max_order_value"] = by_customer["order_amount"].max()
    f["first_order_value"] = first["order_amount"]
    on_first_day = purchases["day"].eq(purchases["customer_id"].map(first_day))
    f["first_order_day_revenue"] = (
        purchases["order_amount"].where(on_first_day, 0).groupby(purchases["customer_id"]).sum()
    )
    f["revenue_last_90d"] = recent(90, "order_amount")
    f["order_count_last_90d"] = (purchases["day"] > cutoff_day - 90).groupby(purchases["customer_id"]).sum()
    f["revenue_last_365d"] = recent(365, "order_amount")
    f["order_count_last_365d"] = (purchases["day"] > cutoff_day - 365).groupby(purchases["customer_id"]).sum()
    f["refund_count"], f["refund_amount"] = refunds["size"], refunds["sum"].astype(float)
    f["discounted_order_share"] = by_customer["has_discount"].mean()
    f["mean_days_between_orders"] = (purchases["day"] - previous_day).groupby(purchases["customer_id"]).mean()
    f["entry_offer"] = np.where(
        first["discount_code"].notna(),
        first["discount_code"].astype(object).str.upper(),
        np.where(first["has_discount"], "UNNAMED_DISCOUNT", "none"),
    )
    f["first_order_channel"] = first["channel"]
    c = customers.set_index("customer_id").reindex(f.index)
    f["acquisition_channel"] = c["acquisition_channel"].fillna(f["first_order_channel"]).fillna("unknown")
    f["country"] = c["country"].fillna("unknown")
    f["marketing_consent"] = c["marketing_consent"]
    f["has_email"] = c["has_email"].fillna(False).astype(bool)
    f["has_phone"] = c["has_phone"].fillna(False).astype(bool)
    f["signed_up_at"] = c["signed_up_at"]

    # Behaviour of the customer's own events (visitor = customer) at or before the cut-off.
    scoped_days = days[(days["day"] <= cutoff_day) & (days["customer"] >= 0)]
    web = behaviour(scoped_days, "customer", cutoff_day, generic=True)
    web.index = events.customer_ids[web.index.to_numpy()]
    web = web.reindex(f.index)
    f["has_web_events"] = web["event_count"].notna()
    f["event_count"] = web["event_count"].fillna(0).astype("int64")
    f["active_days"] = web["active_days"].fillna(0).astype("int64")
    f["days_since_last_event"] = web["days_since_last_event"]
    f["event_count_last_30d"] = web["event_count_last_30d"].fillna(0).astype("int64")
    for column in ("product_views_per_active_day", "research_share", "sale_share", "discount_event_share"):
        f[column] = web[column].fillna(0.0)
    f["shipping_abandon_rate"] = web["shipping_abandon_rate"].fillna(0.0)
    for column in ("brand_share", "visual_share", "urgency_share"):
        f[column] = web[column].fillna(0.0)
    f["cart_add_count_last_90d"] = web["cart_add_count_last_90d"].fillna(0).astype("int64")
    f["mapped_event_share"] = web["mapped_event_share"].fillna(0.0)
    f["session_count"] = web["session_count"].fillna(0).astype("int64")
    for column in ("sessions_per_active_day", "avg_session_minutes", "events_per_session"):
        f[column] = web[column].fillna(0.0)
    for name in GENERIC_COUNTS:
        f[f"{name}_share"] = web[f"{name}_share"].fillna(0.0)
    # Shares of the shop's top event types (ranks at as-of), among the customer's events up to the cut-off.
    mask = (events.day <= cutoff_day) & (events.customer >= 0)
    rank_of_type = pd.Index(top_types).get_indexer(events.source_type.categories)  # -1: not a top type
    type_codes = rank_of_type[events.source_type.codes[mask]]
    counted = type_codes >= 0
    ranks = max(len(top_types), 1)
    cells = events.customer[mask][counted].astype("int64") * ranks + type_codes[counted]
    per_customer = np.bincount(cells, minlength=len(events.customer_ids) * ranks).reshape(-1, ranks)
    counts = pd.DataFrame(per_customer, index=events.customer_ids).reindex(f.index, fill_value=0)
    for rank in range(1, TOP_EVENT_TYPE_COUNT + 1):
        column = counts[rank - 1] if rank - 1 < len(top_types) else 0
        f[f"event_type_share_{rank}"] = (column / f["event_count"].where(f["event_count"] > 0)).fillna(0.0)
    f.index.name = "customer_id"
    return f.reset_index()


def with_labels(features: pd.DataFrame, orders: pd.DataFrame, after: date, until: date) -> pd.DataFrame:
    """macros/future_labels.sql: spend, orders and the next order day in (after, until], refunds counting 0."""
    window = orders[(orders["day"] > _day(after)) & (orders["day"] <= _day(until)) & ~orders["is_cancelled"]]
    bought = window[~window["is_refund"]].groupby("customer_id")
    labels = pd.DataFrame(index=pd.Index(window["customer_id"].unique(), name="customer_id"))
    labels["future_revenue"] = bought["order_amount"].sum().reindex(labels.index, fill_value=0.0)
    labels["future_order_count"] = bought.size().reindex(labels.index, fill_value=0)
    labels["next_order_day"] = bought["day"].min().reindex(labels.index)
    out = features.join(labels, on="customer_id")
    out["future_revenue"] = out["future_revenue"].fillna(0.0)
    out["future_order_count"] = out["future_order_count"].fillna(0).astype("int64")
    out["has_future_order"] = out["future_order_count"] > 0
    out["days_to_next_order"] = out.pop("next_order_day") - _day(after)
    return out


def prepurchase_behaviour(orders: pd.DataFrame, events: StagedEvents, scoring: date) -> pd.DataFrame:
    """customer_prepurchase_behaviour: each buyer's events strictly before the first order's timestamp."""
    bought = orders[(orders["day"] <= _day(scoring)) & ~orders["is_refund"] & ~orders["is_cancelled"]]
    first_order = bought.groupby("customer_id")["ordered_at"].min()
    first_ns = first_order.reindex(events.customer_ids).to_numpy(dtype="datetime64[ns]").astype("int64")
    has_order = first_order.reindex(events.customer_ids).notna().to_numpy()
    per_event_first = np.where(events.customer >= 0, first_ns[np.maximum(events.customer, 0)], 0)
    mask = (events.customer >= 0) & has_order[np.maximum(events.customer, 0)] & (events.occurred_ns < per_event_first)
    days = visitor_days(events, mask)
    cutoff_day = pd.Series(per_event_first[mask] // NS_PER_DAY).groupby(events.customer[mask]).first()
    days = days[days["customer"] >= 0]
    web = behaviour(days, "customer", days["customer"].map(cutoff_day).to_numpy())
    columns = ["event_count", "active_days", "days_since_last_event", "product_views_per_active_day"]
    columns += ["research_share", "sale_share", "discount_event_share", "shipping_abandon_rate", "brand_share"]
    columns += ["visual_share", "urgency_share", "cart_add_count_last_90d"]
    out = web[columns].copy()
    out.index = events.customer_ids[out.index.to_numpy()]
    out.index.name = "customer_id"
    return out.reset_index()


def prospect_features(orders: pd.DataFrame, events: StagedEvents, days: pd.DataFrame, scoring: date) -> pd.DataFrame:
    """prospect_features: visitors with events and no order (of any status) at or before as-of."""
    scoring_day = _day(scoring)
    buyers = orders.loc[orders["day"] <= scoring_day, "customer_id"].unique()
    is_buyer = pd.Index(events.customer_ids).isin(buyers)
    scoped = days[days["day"] <= scoring_day]
    scoped = scoped[(scoped["customer"] < 0) | ~is_buyer[np.maximum(scoped["customer"].to_numpy(), 0)]]
    web = behaviour(scoped[scoped["visitor"] >= 0], "visitor", scoring_day)
    out = pd.DataFrame({"prospect_id": events.visitors[web.index.to_numpy()]})
    out["first_event_at"] = pd.to_datetime(web["first_event_ns"].to_numpy(), unit="ns")
    out["last_event_at"] = pd.to_datetime(web["last_event_ns"].to_numpy(), unit="ns")
    for column in ("event_count", "active_days", "days_since_last_event", "event_count_last_30d"):
        out[column] = web[column].to_numpy()
    for column in ("product_views_per_active_day", "research_share", "sale_share", "discount_event_share"):
        out[column] = web[column].to_numpy()
    out["shipping_abandon_rate"] = web["shipping_abandon_rate"].to_numpy()
    for column in ("brand_share", "visual_share", "urgency_share", "cart_add_count_last_90d"):
        out[column] = web[column].to_numpy()
    return out


def pandas_feature_marts(
    landing_dir: Path, horizon_days: int = DEFAULT_HORIZON_DAYS, as_of: date | None = None
) -> dict[str, pd.DataFrame]:
    """Every feature mart of the feature build, from the landing files: name (as in `marts`) -> table. `as_of`
    as SEGMINT_AS_OF; by default the last order date, as raw.run_context derives it."""
    orders = read_landing(landing_dir / "orders.parquet", ORDER_COLUMNS)
    as_of = as_of or pd.Timestamp(orders["ordered_at"].max()).date()
    cutoffs = Cutoffs.from_as_of(as_of, horizon_days)
    orders = stage_orders(orders, as_of)
    customers_path = landing_dir / "customers.parquet"
    customers = (
        stage_customers(read_landing(customers_path, CUSTOMER_COLUMNS), as_of)
        if customers_path.exists()
        else pd.DataFrame(columns=["customer_id", "country", "signed_up_at", "acquisition_channel"]).assign(
            marketing_consent=None, has_email=False, has_phone=False
        )
    )
    events = stage_events(read_landing(landing_dir / "events.parquet", EVENT_COLUMNS), as_of)
    days = visitor_days(events, generic=True)
    top_types = top_event_types(events, _day(cutoffs.scoring))
    at = lambda cutoff: customer_features_at(orders, customers, events, days, top_types, cutoff)  # noqa: E731
    return {
        "customer_features": at(cutoffs.scoring),
        "customer_features_train": with_labels(at(cutoffs.training), orders, cutoffs.training, cutoffs.scoring),
        "customer_features_selection": with_labels(at(cutoffs.selection), orders, cutoffs.selection, cutoffs.training),
        "customer_prepurchase_behaviour": prepurchase_behaviour(orders, events, cutoffs.scoring),
        "prospect_features": prospect_features(orders, events, days, cutoffs.scoring),
    }


MART_KEYS = {"prospect_features": "prospect_id"}  # every other mart: customer_id


def mismatches(expected: pd.DataFrame, actual: pd.DataFrame, key: str) -> list[str]:
    """What differs between a warehouse mart and the pandas one: [] when the same rows (by `key`), the same columns
    in the same order and every value equal (NULLs in the same places, floats to 1e-9 relative)."""
    expected = expected.sort_values(key).reset_index(drop=True)
    actual = actual.sort_values(key).reset_index(drop=True)
    if list(actual.columns) != list(expected.columns):
        return [f"columns: {list(actual.columns)} != {list(expected.columns)}"]
    if actual[key].tolist() != expected[key].tolist():
        return [f"rows: {len(actual)} keys != {len(expected)} keys"]
    wrong = []
    for column in expected.columns:
        want, got = expected[column], actual[column]
        present = want.notna()
        if want.isna().tolist() != got.isna().tolist():
            wrong.append(f"{column} (NULLs)")
        elif pd.api.types.is_float_dtype(want) or pd.api.types.is_float_dtype(got):
            if not np.allclose(got[present].astype(float), want[present].astype(float), rtol=1e-9, atol=1e-9):
                wrong.append(column)
        elif pd.api.types.is_datetime64_any_dtype(want):
            if not (pd.to_datetime(got[present]) == pd.to_datetime(want[present])).all():
                wrong.append(column)
        elif got[present].tolist() != want[present].tolist():
            wrong.append(column)
    return wrong


def check_against_warehouse(landing_dir: Path, warehouse: Path) -> dict[str, list[str]]:
    """Each mart's mismatches between the pandas baseline and a warehouse built from the same landing files (at the
    warehouse's as-of date)."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        as_of, horizon_days = conn.execute("select as_of, horizon_days from raw.run_context").fetchone()
        marts = pandas_feature_marts(landing_dir, int(horizon_days), as_of)
        return {
            name: mismatches(
                conn.execute(f"select * from marts.{name}").df(), frame, MART_KEYS.get(name, "customer_id")
            )
            for name, frame in marts.items()
        }


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
    """Times one baseline and prints {"baseline", "seconds", "cpu_seconds", "rows", "peak_rss_bytes"} as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    parser.add_argument("baseline", choices=("pandas", "floor", "check"))
    parser.add_argument("landing_dir", type=Path)
    parser.add_argument("warehouse", type=Path, nargs="?", help="check: a warehouse built from LANDING_DIR")
    parser.add_argument(
        "--as-of", type=date.fromisoformat, default=None, help="pandas: SEGMINT_AS_OF (default: the last order date)"
    )
    args = parser.parse_args(argv)
    if args.baseline == "check":  # not timed: does pandas reproduce the warehouse's marts, column by column?
        if args.warehouse is None:
            parser.error("check needs the warehouse built from LANDING_DIR")
        for name, wrong in check_against_warehouse(args.landing_dir, args.warehouse).items():
            print(f"{name}: {'every column equal' if not wrong else 'MISMATCH ' + ', '.join(wrong)}")
        return
    started = time.perf_counter()
    if args.baseline == "pandas":
        rows = sum(len(table) for table in pandas_feature_marts(args.landing_dir, as_of=args.as_of).values())
    else:
        rows = floor_scan(args.landing_dir)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds beside the wall clock: on a shared machine the wall clock measures the load as much as the work.
    cpu = usage.ru_utime + usage.ru_stime
    line = {"baseline": args.baseline, "seconds": seconds, "cpu_seconds": cpu, "rows": rows}
    print(json.dumps(line | {"peak_rss_bytes": usage.ru_maxrss * 1024}))


if __name__ == "__main__":
    main()
