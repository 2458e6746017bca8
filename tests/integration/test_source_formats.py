"""`make run` on a shop's own exports (landing/formats/): the demo shop rewritten as a source format, end to end.

One whole-graph run (~2-5 min on 2 cores) for the cheapest format, Shopify (no events to stage); GA4 and Segment
run the same way with SEGMINT_TEST_ALL_SOURCE_FORMATS=1 (see landing/README.md, "Source formats").
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import duckdb
import pytest

from demo_shop import generate_shop
from demo_shop.source_formats import write_source_format
from tests.conftest import make_run

DEMO_CUSTOMERS = 1500
ALL_FORMATS = bool(os.environ.get("SEGMINT_TEST_ALL_SOURCE_FORMATS"))
slower = pytest.mark.skipif(not ALL_FORMATS, reason="set SEGMINT_TEST_ALL_SOURCE_FORMATS=1 to run every format")


def shopify_revenue(landing: Path) -> float:
    """sum(Total) - sum(Refunded Amount) over non-cancelled orders whose buyer is known, read from the export."""
    with (landing / "orders_export.csv").open(newline="") as handle:
        first_rows: dict[str, dict[str, str]] = {}
        for row in csv.DictReader(handle):
            first_rows.setdefault(row["Name"], row)
    return sum(
        float(row["Total"]) - float(row["Refunded Amount"] or 0)
        for row in first_rows.values()
        if not row["Cancelled at"] and (row["Email"] or row["Phone"])
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "source_format", ["shopify", pytest.param("ga4", marks=slower), pytest.param("segment", marks=slower)]
)
def test_make_run_on_a_source_format_exits_0_and_revenue_reconciles(tmp_path, source_format):
    generate_shop(tmp_path / "contract", tmp_path / "truth", n_customers=DEMO_CUSTOMERS, seed=42)
    landing = tmp_path / source_format
    write_source_format(tmp_path / "contract", landing, source_format)
    result = make_run(tmp_path, SEGMINT_LANDING_DIR=str(landing))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT source_format FROM raw.run_context").fetchall() == [(source_format,)]
        log = conn.execute("SELECT sum(rows_in), sum(rows_accepted + rows_quarantined) FROM raw.ingest_log").fetchall()
        assert log[0][0] == log[0][1]
        revenue = conn.execute(
            "SELECT sum(order_total) FROM raw.orders WHERE coalesce(status, '') NOT IN ('cancelled', 'voided')"
        ).fetchall()[0][0]
        customers = conn.execute("SELECT count(*) FROM marts.customer_features").fetchall()[0][0]
        contract_revenue = duckdb.sql(
            f"SELECT sum(order_total) FROM read_csv('{tmp_path / 'contract' / 'orders.csv'}') "
            "WHERE CAST(ordered_at AS DATE) <= (SELECT max(CAST(ordered_at AS DATE)) FROM "
            f"read_csv('{tmp_path / 'contract' / 'orders.csv'}'))"
        ).fetchall()[0][0]
    assert customers > 0.9 * DEMO_CUSTOMERS
    if source_format == "shopify":
        assert revenue == pytest.approx(shopify_revenue(landing))
    else:
        # GA4 purchases and Segment Order Completed calls carry every demo order and refund.
        assert revenue == pytest.approx(contract_revenue)
