"""The feature marts brought forward a day (dbt_project/macros/feature_increment.sql) equal a full build, bit for bit.

A hand-made shop is built in full as of D0, then its next day's files arrive (as of D0 + 1) and the daily window
(the last 3 days) is re-staged: once with the increment, once with a full build, from the same warehouse copy.
Every column of every row of customer_features, customer_prepurchase_behaviour and prospect_features must be
identical, and the increment must really have run (dbt logs which path each mart took). The shop holds each case the
increment must get right: an order leaving the 90-day window, an event leaving the 30-day window, a new customer
(with events before the first order), a refund, a late event in a re-staged day, an order cancelled in a re-staged
day, a customer-table change for a customer carried over, and customers untouched (shifted only); for the prospects:
an anonymous visitor untouched, one whose event leaves the 30-day window, one whose event of a re-staged day is gone,
a registered prospect, a prospect who becomes a buyer, a buyer who becomes a prospect again (her only order, on a
re-staged day, is gone from the next export; she is in no customer table), and a customer whose only order was
cancelled (a buyer for the prospects, absent from customer_features).
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pytest

from landing import ingest_landing
from landing.event_mapping import map_event_vocabulary, parse_event_mapping
from orchestration.defs.dbt_models import FEATURE_INCREMENT_ENV, INCREMENTAL_MARTS, feature_build_paths
from orchestration.defs.vocabulary import EVENT_VOCABULARY_TABLE, read_event_keys, read_source_format
from orchestration.lib.partitions import STAGE_MAX_DATE_ENV, STAGE_MIN_DATE_ENV
from orchestration.lib.warehouse_io import write_table
from tests.conftest import PROJECT_ROOT, VENV_BIN, segmint_env

pytestmark = pytest.mark.slow

AS_OF, NEXT_DAY = "2026-03-10", "2026-03-11"
WINDOW = ("2026-03-09", "2026-03-12")  # the daily schedule's 3 days up to NEXT_DAY (max exclusive)

ORDERS_HEADER = "order_id,customer_id,ordered_at,order_total,status,discount_code,channel\n"
# alice: old orders only (carried; her country changes). bob: an order on NEXT_DAY - 90 (leaves the 90-day window).
# carol: a refund on the new day. hank: an order on AS_OF that the next day's export says was cancelled.
# frank: an order, and a late event for a re-staged day. gina: an event on NEXT_DAY - 30 (leaves the 30-day window).
ORDERS_DAY1 = """a1,alice,2025-12-01 10:00:00,80,,WELCOME,web
a2,alice,2026-02-15 10:00:00,20,,,app
b1,bob,2025-06-01 09:00:00,30,,,web
b2,bob,2025-12-11 09:00:00,45.5,,,web
c1,carol,2026-02-01 12:00:00,60,,,web
f1,frank,2026-01-15 08:00:00,25,,,
g1,gina,2026-01-01 08:00:00,15,,,web
h1,hank,2026-01-20 08:00:00,40,,,web
h2,hank,2026-03-10 08:00:00,55,,,web
j1,judy,2026-03-09 10:00:00,35,,,web
k1,kim,2026-02-01 10:00:00,20,cancelled,,web
"""
# The next day's export: judy's order (a re-staged day) gone, hank's AS_OF order cancelled, carol refunded, erin's
# first order (she was a prospect).
ORDERS_DAY2 = (
    ORDERS_DAY1.replace("j1,judy,2026-03-09 10:00:00,35,,,web\n", "").replace(
        "h2,hank,2026-03-10 08:00:00,55,,,web", "h2,hank,2026-03-10 08:00:00,55,cancelled,,web"
    )
    + "c2,carol,2026-03-11 09:00:00,-60,refunded,,web\ne1,erin,2026-03-11 15:00:00,99.99,,SPRING,app\n"
)
CUSTOMERS_DAY1 = """customer_id,country,acquisition_channel,marketing_consent,email
alice,de,search,true,alice@example.com
bob,fr,,false,
carol,de,social,true,carol@example.com
dave,de,,false,
"""
CUSTOMERS_DAY2 = CUSTOMERS_DAY1.replace("alice,de,", "alice,nl,") + "erin,se,ads,true,erin@example.com\n"
EVENTS_HEADER = "event_id,customer_id,anonymous_id,occurred_at,event_type,device\n"
EVENTS_DAY1 = """e1,alice,,2026-02-15 09:50:00,product1,mobile
e2,alice,,2026-02-15 09:55:00,add_to_cart,mobile
e3,gina,,2026-02-09 20:00:00,catalog,desktop
e4,gina,,2025-12-31 20:00:00,catalog,desktop
e5,hank,,2026-03-10 07:50:00,product1,tablet
e6,,anon1,2026-03-10 11:00:00,catalog,mobile
e7,erin,,2026-03-08 21:00:00,catalog,mobile
e8,erin,,2026-03-10 22:00:00,product1,mobile
e12,,anon2,2026-02-01 10:00:00,catalog,desktop
e13,,anon3,2026-02-09 10:00:00,catalog,mobile
e14,,anon4,2026-02-01 11:00:00,catalog,mobile
e15,,anon4,2026-03-10 11:00:00,product1,mobile
e16,dave,,2026-02-20 10:00:00,product1,desktop
e17,judy,,2026-03-01 10:00:00,product1,mobile
e18,kim,,2026-02-10 10:00:00,catalog,mobile
"""
# frank's event of 03-09 arrives late (a re-staged day); erin browses on her first order's day, before and after it.
# The ranking of the top event types stays as it was (a new ranking renames share columns: a full build).
# anon4's event of 03-10 (a re-staged day) is gone from the next export.
EVENTS_DAY2 = (
    EVENTS_DAY1.replace("e15,,anon4,2026-03-10 11:00:00,product1,mobile\n", "")
    + """e9,frank,,2026-03-09 13:00:00,product1,desktop
e10,erin,,2026-03-11 14:30:00,add_to_cart,mobile
e11,erin,,2026-03-11 16:00:00,catalog,mobile
"""
)
RULES = {
    "version": 1,
    "rules": [
        {"when": {"event": "catalog"}, "then": {"event_type": "page_view", "page_type": "category"}},
        {"when": {"event_regex": r"^product\d*$"}, "then": {"event_type": "product_view"}},
    ],
}
MARTS = {
    "customer_features": "customer_id",
    "customer_prepurchase_behaviour": "customer_id",
    "prospect_features": "prospect_id",
}


def _ingest(root: Path, warehouse: Path, as_of: str, orders: str, customers: str, events: str) -> None:
    landing = root / f"landing-{as_of}"
    landing.mkdir()
    (landing / "orders.csv").write_text(ORDERS_HEADER + orders)
    (landing / "customers.csv").write_text(customers)
    (landing / "events.csv").write_text(EVENTS_HEADER + events)
    with duckdb.connect(str(warehouse)) as conn:
        ingest_landing(conn, landing, date.fromisoformat(as_of), 365, False)
        vocabulary = map_event_vocabulary(read_event_keys(conn), parse_event_mapping(RULES), read_source_format(conn))
        write_table(conn, EVENT_VOCABULARY_TABLE, vocabulary)


def _dbt_run(root: Path, warehouse: Path, *, increment: bool) -> dict[str, str]:
    """dbt run of the customer marts and their upstream, as the feature step runs it; {mart: path taken}."""
    target = root / f"target-{warehouse.stem}"
    if increment:  # the daily window, and the step's permission (orchestration/defs/dbt_models.py)
        extra = {
            STAGE_MIN_DATE_ENV: WINDOW[0],
            STAGE_MAX_DATE_ENV: WINDOW[1],
            FEATURE_INCREMENT_ENV: ",".join(INCREMENTAL_MARTS),
        }
        args = []
    else:
        extra, args = {}, ["--full-refresh"]
    result = subprocess.run(
        [str(VENV_BIN / "dbt"), "--log-format-file", "json", "run", "--profiles-dir", ".", "--target-path", str(target),
         "--log-path", str(target), "--select", *(f"+{mart}" for mart in MARTS), *args],
        cwd=PROJECT_ROOT / "dbt_project", env=segmint_env(root, SEGMINT_WAREHOUSE=str(warehouse), **extra),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    return feature_build_paths((target / "dbt.log").read_text("utf-8").splitlines())


@pytest.fixture(scope="module")
def next_day(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(warehouse brought forward by the increment, warehouse built in full, paths the increment took)."""
    root = tmp_path_factory.mktemp("feature_increment")
    first = root / "first.duckdb"
    _ingest(root, first, AS_OF, ORDERS_DAY1, CUSTOMERS_DAY1, EVENTS_DAY1)
    built = _dbt_run(root, first, increment=False)
    assert built["customer_features"].startswith("full")
    _ingest(root, first, NEXT_DAY, ORDERS_DAY2, CUSTOMERS_DAY2, EVENTS_DAY2)
    incremental, full = root / "incremental.duckdb", root / "full.duckdb"
    shutil.copy(first, incremental)
    shutil.copy(first, full)
    paths = _dbt_run(root, incremental, increment=True)
    _dbt_run(root, full, increment=False)
    return incremental, full, paths


def _rows(warehouse: Path, mart: str) -> tuple[list[tuple], list[tuple]]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        columns = conn.execute(
            "select column_name, data_type from duckdb_columns() where schema_name = 'marts' and table_name = ?"
            " order by column_index",
            [mart],
        ).fetchall()
        rows = conn.execute(f"select * from marts.{mart} order by {MARTS[mart]}").fetchall()
    return columns, rows


def test_the_increment_ran_for_every_mart(next_day):
    _, _, paths = next_day
    for mart in MARTS:
        assert paths[mart].startswith("incremental"), paths


@pytest.mark.parametrize("mart", sorted(MARTS))
def test_the_increment_equals_a_full_build_bit_for_bit(next_day, mart):
    incremental, full, _ = next_day
    columns, rows = _rows(incremental, mart)
    expected_columns, expected = _rows(full, mart)
    assert columns == expected_columns
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected):
        # Python floats compare exactly: == on every value (NaN never occurs here: nulls are None).
        assert got == want, (mart, got[0], [c[0] for c, a, b in zip(columns, got, want) if a != b])


def test_the_shop_holds_the_cases_the_increment_must_get_right(next_day):
    incremental, _, _ = next_day
    with duckdb.connect(str(incremental), read_only=True) as conn:
        features = {
            row[0]: row[1:]
            for row in conn.execute(
                "select customer_id, country, order_count_last_90d, refund_count, recency_days, event_count_last_30d,"
                " event_count, cutoff_date::varchar from marts.customer_features"
            ).fetchall()
        }
        early = dict(
            conn.execute("select customer_id, event_count from marts.customer_prepurchase_behaviour").fetchall()
        )
        prospects = {
            row[0]: row[1:]
            for row in conn.execute(
                "select prospect_id, event_count, event_count_last_30d, days_since_last_event from marts.prospect_features"
            ).fetchall()
        }
    assert features["alice"][0] == "NL"  # the customer table re-joined for a carried customer
    assert features["bob"][1] == 0  # his 2025-12-11 order left the 90-day window
    assert features["carol"][2] == 1  # the refund of the new day
    assert features["hank"][3] == 50  # his last order is 01-20 again (03-10 was cancelled): 50 days
    assert features["gina"][4] == 0  # her 02-09 event left the 30-day window
    assert features["frank"][5] == 1  # the late event of a re-staged day
    assert early["erin"] == 3  # a new customer: 03-08, 03-10 and the first order day's event before the order
    assert {row[6] for row in features.values()} == {NEXT_DAY}
    # erin became a buyer, judy a prospect again (her only order is gone), kim is a buyer (a cancelled order).
    assert sorted(prospects) == ["anon1", "anon2", "anon3", "anon4", "dave", "judy"]
    assert prospects["anon2"] == (1, 0, 38)  # carried: days since its event shifted by a day
    assert prospects["anon3"][1] == 0  # its 02-09 event left the 30-day window
    assert prospects["anon4"] == (1, 0, 38)  # its 03-10 event is gone: 02-01 is its last
