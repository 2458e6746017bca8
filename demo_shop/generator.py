"""generate_shop: the seeded demo shop (landing files for the pipeline, ground truth for tests and benchmarks).

Same arguments -> byte-identical files. Customer-level state is drawn at once (cheap); events, the bulk of the rows,
are generated and written in fixed blocks of CUSTOMER_BLOCK_SIZE visitors so memory stays flat at any size.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from demo_shop import config as c
from demo_shop.clock import ShopWindow
from demo_shop.contact import contact_columns
from demo_shop.events import (
    Visitors,
    anonymous_ids,
    buyer_sessions,
    event_table,
    events_from_sessions,
    prospect_sessions,
)
from demo_shop.orders import Orders, simulate_orders
from demo_shop.population import Buyers, Prospects, draw_buyers, draw_prospects
from demo_shop.text import from_vocabulary, zero_padded
from demo_shop.writer import (
    CUSTOMERS_SCHEMA,
    CUSTOMERS_TRUTH_SCHEMA,
    EVENTS_SCHEMA,
    FILE_FORMATS,
    ORDERS_SCHEMA,
    PROSPECTS_TRUTH_SCHEMA,
    FileFormat,
    TableFileWriter,
    write_table,
)

Profile = Literal["demo", "bench"]

# Independent random streams, so changing how one part draws never shifts another part's numbers.
_STREAM_BUYERS, _STREAM_ORDERS, _STREAM_CONTACT, _STREAM_PROSPECTS = 1, 2, 3, 4
_STREAM_BUYER_EVENTS, _STREAM_PROSPECT_EVENTS = 5, 6


@dataclass(frozen=True)
class ShopSummary:
    """Row counts and file paths of one generated shop (orders/events = landing rows at or before end_date)."""

    customers: int
    buyers: int
    prospects: int
    orders: int
    events: int
    future_orders: int
    landing_dir: Path
    truth_dir: Path
    orders_path: Path
    customers_path: Path
    events_path: Path
    future_orders_path: Path
    customers_truth_path: Path
    prospects_truth_path: Path


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def _slice(population: Buyers | Prospects, start: int, stop: int) -> Buyers | Prospects:
    return type(population)(**{f.name: getattr(population, f.name)[start:stop] for f in fields(population)})


def customer_id_width(n_customers: int) -> int:
    """Digits of customer_id: at least 7 so ids keep leading zeros ("0004711")."""
    return max(c.CUSTOMER_ID_MIN_WIDTH, len(str(n_customers)))


def customers_table(buyers: Buyers, id_width: int, rng: np.random.Generator) -> pa.Table:
    """The landing `customers` columns, one row per buyer, in sign-up order."""
    number = np.arange(1, len(buyers) + 1)
    contact = contact_columns(number, rng)
    return pa.table(
        {
            "customer_id": zero_padded(number, id_width),
            **contact,
            "signed_up_at": pa.array(buyers.signed_up_at, pa.timestamp("s")),
            "acquisition_channel": from_vocabulary(c.ACQUISITION_CHANNELS, buyers.acquisition_channel),
            "marketing_consent": pa.array(buyers.marketing_consent),
        }
    )


def order_id_width(orders: Orders) -> int:
    """Digits of order numbers: at least ORDER_ID_WIDTH, more for a shop with more orders."""
    return max(c.ORDER_ID_WIDTH, len(str(int(orders.order_number.max(initial=0)))))


def orders_table(orders: Orders, id_width: int, order_width: int) -> pa.Table:
    """The landing `orders` columns in time order; a refund's order_id is its purchase's id + "-R"."""
    in_time_order = np.lexsort((orders.is_refund, orders.order_number, orders.ordered_at))
    rows = orders.select(in_time_order)
    purchase_id = zero_padded(rows.order_number, order_width, prefix="O")
    order_id = pc.if_else(pa.array(rows.is_refund), pc.binary_join_element_wise(purchase_id, "R", "-"), purchase_id)
    n = len(rows)
    return pa.table(
        {
            "order_id": order_id,
            "customer_id": zero_padded(rows.customer + 1, id_width),
            "ordered_at": pa.array(rows.ordered_at, pa.timestamp("s")),
            "order_total": pa.array(rows.order_total),
            "currency": pa.array(np.full(n, c.CURRENCY)),
            "discount_amount": pa.array(rows.discount_amount),
            "discount_code": from_vocabulary(c.DISCOUNT_CODES, rows.discount_code),
            "channel": from_vocabulary(c.ORDER_CHANNELS, rows.channel),
            "status": from_vocabulary((c.STATUS_COMPLETED, c.STATUS_REFUNDED), rows.is_refund.astype(np.int8)),
        }
    )


def customers_truth_table(buyers: Buyers, future: Orders, window: ShopWindow, id_width: int) -> pa.Table:
    """Ground truth per buyer: archetype, latent rates (per year), alive at end_date, future revenue and orders."""
    n = len(buyers)
    revenue = np.bincount(future.customer, weights=np.maximum(future.order_total, 0.0), minlength=n)
    order_count = np.bincount(future.customer[~future.is_refund], minlength=n)
    return pa.table(
        {
            "customer_id": zero_padded(np.arange(1, n + 1), id_width),
            "archetype": from_vocabulary(c.ARCHETYPES, buyers.archetype),
            "is_alive_at_end_date": pa.array(buyers.died_at >= window.cutoff),
            "purchase_rate": pa.array(np.round(buyers.purchase_rate, 6)),
            "dropout_rate": pa.array(np.round(buyers.dropout_rate, 6)),
            "future_revenue": pa.array(np.round(revenue, 2)),
            "future_order_count": pa.array(order_count.astype(np.int64)),
        }
    )


def prospects_truth_table(prospects: Prospects, n_buyers: int, seed: int) -> pa.Table:
    """Ground truth per prospect: archetype and whether (and for how much) they buy within the horizon."""
    return pa.table(
        {
            "anonymous_id": anonymous_ids(n_buyers + np.arange(len(prospects)), seed),
            "archetype": from_vocabulary(c.ARCHETYPES, prospects.archetype),
            "converts_in_future": pa.array(prospects.converts_in_future),
            "future_revenue": pa.array(prospects.future_revenue),
        }
    )


def _write_buyer_events(
    writer: TableFileWriter,
    buyers: Buyers,
    orders: Orders,
    params: c.ProfileParams,
    window: ShopWindow,
    id_width: int,
    seed: int,
) -> None:
    block_starts = range(0, len(buyers), c.CUSTOMER_BLOCK_SIZE)
    order_bounds = np.searchsorted(orders.customer, [*block_starts, len(buyers)])
    for block, start in enumerate(block_starts):
        stop = min(start + c.CUSTOMER_BLOCK_SIZE, len(buyers))
        block_buyers = _slice(buyers, start, stop)
        block_orders = orders.select(slice(order_bounds[block], order_bounds[block + 1]))
        block_orders = replace(block_orders, customer=block_orders.customer - start)
        rng = _rng(seed, _STREAM_BUYER_EVENTS, block)
        sessions = buyer_sessions(block_buyers, block_orders, params, window, rng)
        visitors = Visitors(
            archetype=block_buyers.archetype,
            channel=block_buyers.acquisition_channel,
            preferred_device=block_buyers.preferred_device,
            anonymous_key=np.arange(start, stop),
            customer_number=np.arange(start + 1, stop + 1),
        )
        events = events_from_sessions(sessions, visitors, window, rng)
        writer.write(event_table(events, visitors, writer.rows + 1, id_width, seed))


def _write_prospect_events(
    writer: TableFileWriter,
    prospects: Prospects,
    n_buyers: int,
    params: c.ProfileParams,
    window: ShopWindow,
    id_width: int,
    seed: int,
) -> None:
    for block, start in enumerate(range(0, len(prospects), c.CUSTOMER_BLOCK_SIZE)):
        stop = min(start + c.CUSTOMER_BLOCK_SIZE, len(prospects))
        block_prospects = _slice(prospects, start, stop)
        rng = _rng(seed, _STREAM_PROSPECT_EVENTS, block)
        sessions = prospect_sessions(block_prospects, params, window, rng)
        visitors = Visitors(
            archetype=block_prospects.archetype,
            channel=block_prospects.traffic_channel,
            preferred_device=block_prospects.preferred_device,
            anonymous_key=n_buyers + np.arange(start, stop),
            customer_number=None,
        )
        events = events_from_sessions(sessions, visitors, window, rng)
        writer.write(event_table(events, visitors, writer.rows + 1, id_width, seed))


def generate_shop(
    landing_dir: Path,
    truth_dir: Path,
    n_customers: int = 5000,
    seed: int = 42,
    file_format: FileFormat = "csv",
    end_date: date = date(2026, 6, 30),
    future_days: int = 365,
    profile: Profile = "demo",
) -> ShopSummary:
    """Write the demo shop's landing files (orders, customers, events up to end_date) and its ground truth."""
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if future_days < 1:
        raise ValueError(f"future_days must be at least 1, got {future_days}")
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {FILE_FORMATS}, got {file_format!r}")
    if profile not in c.PROFILES:
        raise ValueError(f"profile must be one of {tuple(c.PROFILES)}, got {profile!r}")
    params = c.PROFILES[profile]
    window = ShopWindow.from_end_date(end_date, future_days)
    landing_dir, truth_dir = Path(landing_dir), Path(truth_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "orders_path": landing_dir / f"orders.{file_format}",
        "customers_path": landing_dir / f"customers.{file_format}",
        "events_path": landing_dir / f"events.{file_format}",
        "future_orders_path": truth_dir / f"future_orders.{file_format}",
        "customers_truth_path": truth_dir / f"customers_truth.{file_format}",
        "prospects_truth_path": truth_dir / f"prospects_truth.{file_format}",
    }
    # A stale copy in the other format would leave the landing reader two versions of the same table.
    for path in paths.values():
        for other_format in set(FILE_FORMATS) - {file_format}:
            path.with_suffix(f".{other_format}").unlink(missing_ok=True)
    id_width = customer_id_width(n_customers)

    buyers = draw_buyers(n_customers, params, window, _rng(seed, _STREAM_BUYERS))
    orders = simulate_orders(buyers, window, _rng(seed, _STREAM_ORDERS))
    landing_orders = orders.select(orders.ordered_at < window.cutoff)
    future_orders = orders.select((orders.ordered_at >= window.cutoff) & (orders.ordered_at < window.horizon_end))
    order_width = order_id_width(orders)
    n_prospects = round(c.PROSPECT_SHARE * n_customers)
    prospects = draw_prospects(n_prospects, params, window, _rng(seed, _STREAM_PROSPECTS))

    customers = customers_table(buyers, id_width, _rng(seed, _STREAM_CONTACT))
    write_table(paths["customers_path"], customers, CUSTOMERS_SCHEMA, file_format)
    n_orders = write_table(
        paths["orders_path"], orders_table(landing_orders, id_width, order_width), ORDERS_SCHEMA, file_format
    )
    n_future = write_table(
        paths["future_orders_path"], orders_table(future_orders, id_width, order_width), ORDERS_SCHEMA, file_format
    )
    write_table(
        paths["customers_truth_path"],
        customers_truth_table(buyers, future_orders, window, id_width),
        CUSTOMERS_TRUTH_SCHEMA,
        file_format,
    )
    write_table(
        paths["prospects_truth_path"],
        prospects_truth_table(prospects, n_customers, seed),
        PROSPECTS_TRUTH_SCHEMA,
        file_format,
    )
    with TableFileWriter(paths["events_path"], EVENTS_SCHEMA, file_format) as events_writer:
        _write_buyer_events(events_writer, buyers, orders, params, window, id_width, seed)
        _write_prospect_events(events_writer, prospects, n_customers, params, window, id_width, seed)
        n_events = events_writer.rows

    return ShopSummary(
        customers=len(buyers),
        buyers=int(np.unique(landing_orders.customer).size),
        prospects=n_prospects,
        orders=n_orders,
        events=n_events,
        future_orders=n_future,
        landing_dir=landing_dir,
        truth_dir=truth_dir,
        **paths,
    )
