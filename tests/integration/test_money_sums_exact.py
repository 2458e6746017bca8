"""Money sums in the feature and label marts do not depend on the order the orders are read in (issue 13's
reproducible CDNOW benchmark).

A DOUBLE sum does: 0.1 + 0.2 + 0.3 is 0.6000000000000001 read in that order and 0.6 read backwards, and DuckDB's
threads add partial sums in no fixed order, so two builds of the same orders gave different revenue in the last bits
and different models downstream. The real dbt models are built once, then staging.stg_orders is rewritten backwards (a
table this small is scanned by one thread, in the order it was written) and only the marts are rebuilt: every money
column must come out bit for bit the same, and equal to the exact decimal total. Both tests fail with the former
plain `sum(order_amount)` (checked on main 545ea3a).
"""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pytest

from landing import ingest_landing
from landing.event_mapping import map_event_vocabulary, parse_event_mapping
from orchestration.defs.vocabulary import EVENT_VOCABULARY_TABLE, read_event_keys, read_source_format
from orchestration.lib.warehouse_io import write_table
from tests.conftest import PROJECT_ROOT, VENV_BIN, segmint_env

pytestmark = pytest.mark.slow

AS_OF, HORIZON = "2026-03-31", 30  # training cut-off 2026-03-01, labels from (03-01, 03-31]
# alice: three orders on her first day, three refunds, three orders in the label window; amounts 0.1, 0.2, 0.3,
# whose DOUBLE sum depends on the order. bob: the same amounts spread over the features' 90- and 365-day windows.
ORDERS = """order_id,customer_id,ordered_at,order_total
o1,alice,2026-01-10 09:00:00,0.1
o2,alice,2026-01-10 10:00:00,0.2
o3,alice,2026-01-10 11:00:00,0.3
r1,alice,2026-02-02 09:00:00,-0.1
r2,alice,2026-02-03 09:00:00,-0.2
r3,alice,2026-02-04 09:00:00,-0.3
f1,alice,2026-03-10 09:00:00,0.1
f2,alice,2026-03-11 09:00:00,0.2
f3,alice,2026-03-12 09:00:00,0.3
b1,bob,2025-06-01 09:00:00,0.1
b2,bob,2026-02-10 09:00:00,0.2
b3,bob,2026-02-20 09:00:00,0.3
b4,bob,2026-02-21 09:00:00,0.1
b5,bob,2026-03-20 09:00:00,0.2
b6,bob,2026-03-21 09:00:00,0.3
b7,bob,2026-03-22 09:00:00,0.1
"""
MONEY = [
    "gross_revenue",
    "total_revenue",
    "avg_order_value",
    "first_order_day_revenue",
    "revenue_last_90d",
    "revenue_last_365d",
    "refund_amount",
]
MARTS = {"marts.customer_features": MONEY, "marts.customer_features_train": [*MONEY, "future_revenue"]}
# The second build reads the orders backwards (the first reads them as written).
BACKWARDS = "source_row desc"


def _dbt(root: Path, path: Path, *args: str) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "dbt"), *args, "--profiles-dir", ".", "--target-path", str(root / "target")],
        cwd=PROJECT_ROOT / "dbt_project", env=segmint_env(root, SEGMINT_WAREHOUSE=str(path)),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]


def _money(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every money column of both marts, per customer, each double as its exact hex text (all 64 bits)."""
    return {
        mart: [
            (row[0], *(float.hex(value) for value in row[1:]))
            for row in conn.execute(
                f"select customer_id, {', '.join(columns)} from {mart} order by customer_id"
            ).fetchall()
        ]
        for mart, columns in MARTS.items()
    }


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> list[dict[str, list[tuple]]]:
    root = tmp_path_factory.mktemp("money_sums")
    landing = root / "landing"
    landing.mkdir()
    (landing / "orders.csv").write_text(ORDERS)
    path = root / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        ingest_landing(conn, landing, date.fromisoformat(AS_OF), HORIZON, False)
        # No events: the vocabulary asset's table, empty, as the graph writes it before dbt.
        vocabulary = map_event_vocabulary(
            read_event_keys(conn), parse_event_mapping({"version": 1}), read_source_format(conn)
        )
        write_table(conn, EVENT_VOCABULARY_TABLE, vocabulary)
    _dbt(root, path, "run", "--select", "+customer_features", "+customer_features_train", "--exclude",
         "path:models/marts/scores")  # fmt: skip
    with duckdb.connect(str(path)) as conn:
        results = [_money(conn)]
        conn.execute(
            f"create or replace table staging.stg_orders as select * from staging.stg_orders order by {BACKWARDS}"
        )
    _dbt(root, path, "run", "--select", "customer_features", "customer_features_train")
    with duckdb.connect(str(path), read_only=True) as conn:
        results.append(_money(conn))
    return results


def test_money_columns_are_bit_identical_whatever_the_order_of_the_orders(builds):
    as_written, backwards = builds
    assert backwards == as_written


def test_money_sums_are_the_exact_decimal_totals(builds):
    rows = {row[0]: row[1:] for row in builds[0]["marts.customer_features_train"]}
    alice = dict(zip([*MONEY, "future_revenue"], rows["alice"], strict=True))
    assert alice["gross_revenue"] == float.hex(0.6)  # not 0.6000000000000001, the sum in the written order
    assert alice["first_order_day_revenue"] == float.hex(0.6)
    assert alice["refund_amount"] == float.hex(0.6)
    assert alice["future_revenue"] == float.hex(0.6)
