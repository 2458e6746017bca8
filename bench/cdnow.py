"""The CDNOW master log as a segmint landing zone: real orders of 23,570 customers, January 1997 - June 1998.

The file ships inside the `lifetimes` wheel on PyPI (`lifetimes/datasets/CDNOW_master.txt`); it is downloaded at
benchmark time with pip (never vendored) and read straight out of the wheel. Its lines are whitespace-separated:
customer id, date (YYYYMMDD), number of CDs, dollar value; a header line may come first. The cohort is every
first-time buyer of January-March 1997, followed until 1998-06-30 (Fader & Hardie's BG/NBD and Pareto/NBD data).

Conversion to the landing contract (landing/README.md): one order per line, `order_id` = the 1-based line number
of the record (`cdnow-<n>`: the log has no order id, and two same-day lines of one customer are two orders; the
features count purchase days, as BTYD models do), `customer_id` as written (leading zeros kept), `ordered_at` the
ISO date, `order_total` the dollar value as written. A line that does not parse stops the conversion with its
number (the file is fixed; a silent drop would change the benchmark).
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from bench.wheels import download_wheel

WHEEL_MEMBER = "lifetimes/datasets/CDNOW_master.txt"
LANDING_COLUMNS = ("order_id", "customer_id", "ordered_at", "order_total")
LAST_DATE = "1998-06-30"  # the end of the observation period: every cut's horizon must end by then


class CdnowFormatError(ValueError):
    """A line of the CDNOW log that does not have the four documented fields."""


def parse_lines(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """Landing-contract rows (order_id, customer_id, ordered_at, order_total) from the log's lines."""
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or (number == 1 and not fields[0].isdigit()):  # blank line, or the header
            continue
        if len(fields) != 4:
            raise CdnowFormatError(f"CDNOW line {number}: expected 4 fields, got {len(fields)}: {line.strip()!r}")
        customer_id, day, _quantity, amount = fields
        try:
            ordered_at = datetime.strptime(day, "%Y%m%d").date().isoformat()
            float(amount)
        except ValueError:
            raise CdnowFormatError(f"CDNOW line {number}: bad date or amount: {line.strip()!r}") from None
        yield {
            "order_id": f"cdnow-{number}",
            "customer_id": customer_id,
            "ordered_at": ordered_at,
            "order_total": amount,
        }


def write_landing(lines: Iterable[str], landing_dir: Path) -> int:
    """Write `landing_dir/orders.csv` from the log's lines; returns the number of orders written."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    with (landing_dir / "orders.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LANDING_COLUMNS)
        writer.writeheader()
        for row in parse_lines(lines):
            writer.writerow(row)
            count += 1
    return count


def download_master(directory: Path) -> list[str]:
    """The lines of CDNOW_master.txt, from the `lifetimes` wheel pip downloads into `directory`."""
    return read_master(download_wheel("lifetimes", directory))


def read_master(path: Path) -> list[str]:
    """The lines of CDNOW_master.txt from a `lifetimes` wheel (`*.whl`, e.g. kept from an earlier `pip download`, so
    a re-run needs no network) or from the text file itself."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as archive:
            return archive.read(WHEEL_MEMBER).decode("ascii").splitlines()
    return path.read_text(encoding="ascii").splitlines()
