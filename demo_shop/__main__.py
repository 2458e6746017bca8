"""Command line: python -m demo_shop --landing DIR --truth DIR --customers N --seed S --format csv --profile demo."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from demo_shop import config
from demo_shop.generator import generate_shop
from demo_shop.writer import FILE_FORMATS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line's options (see module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m demo_shop", description="Generate the seeded demo shop.")
    parser.add_argument("--landing", type=Path, required=True, help="directory for orders/customers/events")
    parser.add_argument("--truth", type=Path, required=True, help="directory for the ground truth files")
    parser.add_argument("--customers", type=int, default=5000, help="number of buyers (default 5000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--format", choices=FILE_FORMATS, default="csv")
    parser.add_argument("--profile", choices=tuple(config.PROFILES), default="demo")
    parser.add_argument("--end-date", type=date.fromisoformat, default=date(2026, 6, 30))
    parser.add_argument("--future-days", type=int, default=365)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Generate the shop and print its summary with the elapsed time."""
    args = parse_args(argv)
    started = time.perf_counter()
    summary = generate_shop(
        landing_dir=args.landing,
        truth_dir=args.truth,
        n_customers=args.customers,
        seed=args.seed,
        file_format=args.format,
        end_date=args.end_date,
        future_days=args.future_days,
        profile=args.profile,
    )
    elapsed = time.perf_counter() - started
    print(
        f"customers={summary.customers} buyers={summary.buyers} prospects={summary.prospects} "
        f"orders={summary.orders} events={summary.events} future_orders={summary.future_orders} "
        f"seconds={elapsed:.1f}"
    )


if __name__ == "__main__":
    main()
