"""The event vocabulary and the vocabulary-free features through the real dbt models, on a hand-made tiny shop.

Every expected number below is worked out by hand from the rows in `EVENTS`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest

from landing import ingest_landing
from landing.event_mapping import map_event_vocabulary, parse_event_mapping
from orchestration.defs.vocabulary import EVENT_VOCABULARY_TABLE, read_event_keys, read_source_format
from orchestration.lib.warehouse_io import write_table
from tests.conftest import PROJECT_ROOT, VENV_BIN, segmint_env

pytestmark = pytest.mark.slow

ORDERS = """order_id,customer_id,ordered_at,order_total
o1,alice,2026-03-02 12:00:00,50
o2,bob,2026-03-02 12:00:00,20
o3,carol,2026-03-02 12:00:00,20
"""
# alice: two sessions on 03-01 (09:00-09:10, then 10:00 after 50 minutes), evening on 03-02, on a phone.
# bob: three `catalog` events on a desktop, the night of 03-01. carol: no events.
EVENTS = """event_id,customer_id,occurred_at,event_type,device
e1,alice,2026-03-01 09:00:00,catalog,mobile
e2,alice,2026-03-01 09:05:00,product1,mobile
e3,alice,2026-03-01 09:10:00,product1,mobile
e4,alice,2026-03-01 10:00:00,payment_done,mobile
e5,alice,2026-03-02 19:00:00,heartbeat,mobile
e6,bob,2026-03-01 02:00:00,catalog,desktop
e7,bob,2026-03-01 02:01:00,catalog,desktop
e8,bob,2026-03-01 02:02:00,Catalog,desktop
"""
RULES = {
    "version": 1,
    "rules": [
        {"when": {"event": "catalog"}, "then": {"event_type": "page_view", "page_type": "category"}},
        {"when": {"event_regex": r"^product\d*$"}, "then": {"event_type": "product_view"}},
        {"when": {"event": "payment_done"}, "then": {"event_type": "purchase"}},
    ],
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("event_staging")
    landing = root / "landing"
    landing.mkdir()
    (landing / "orders.csv").write_text(ORDERS)
    (landing / "events.csv").write_text(EVENTS)
    path = root / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        ingest_landing(conn, landing, None, 365, False)
        vocabulary = map_event_vocabulary(read_event_keys(conn), parse_event_mapping(RULES), read_source_format(conn))
        write_table(conn, EVENT_VOCABULARY_TABLE, vocabulary)
    result = subprocess.run(
        [str(VENV_BIN / "dbt"), "build", "--profiles-dir", ".", "--target-path", str(root / "target"),
         "--select", "+customer_features", "+top_event_types", "stg_events", "--exclude", "path:models/marts/scores"],
        cwd=PROJECT_ROOT / "dbt_project", env=segmint_env(root, SEGMINT_WAREHOUSE=str(path)),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    return path


def _features(warehouse: Path) -> dict[str, dict]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        frame = conn.execute("select * from marts.customer_features order by customer_id").df()
    return {row["customer_id"]: row for row in frame.to_dict("records")}


def test_the_vocabulary_maps_the_shops_own_names_in_staging(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        staged = dict(conn.execute("select event_id, event_type from staging.stg_events").fetchall())
        raw = dict(conn.execute("select event_id, event_type from raw.events").fetchall())
    assert staged == {
        "e1": "page_view", "e2": "product_view", "e3": "product_view", "e4": "purchase", "e5": "",
        "e6": "page_view", "e7": "page_view", "e8": "page_view",
    }  # fmt: skip
    assert raw["e8"] == "Catalog"  # raw stays as delivered


def test_mapped_behaviour_sessions_device_and_time_of_day_per_customer(warehouse):
    features = _features(warehouse)
    alice, bob, carol = features["alice"], features["bob"], features["carol"]
    assert alice["event_count"] == 5 and alice["active_days"] == 2
    assert alice["mapped_event_share"] == pytest.approx(4 / 5)  # heartbeat maps to nothing
    assert alice["product_views_per_active_day"] == pytest.approx(2 / 2)
    # 03-01: 09:00-09:10 (600 s) and 10:00 alone; 03-02: 19:00 alone -> 3 sessions, 600 s in sessions.
    assert alice["session_count"] == 3
    assert alice["sessions_per_active_day"] == pytest.approx(1.5)
    assert alice["avg_session_minutes"] == pytest.approx(10 / 3)
    assert alice["events_per_session"] == pytest.approx(5 / 3)
    assert (alice["mobile_share"], alice["desktop_share"]) == (1.0, 0.0)
    assert alice["morning_share"] == pytest.approx(4 / 5) and alice["evening_share"] == pytest.approx(1 / 5)
    assert bob["session_count"] == 1 and bob["avg_session_minutes"] == pytest.approx(2.0)
    assert (bob["night_share"], bob["desktop_share"], bob["mapped_event_share"]) == (1.0, 1.0, 1.0)
    assert not carol["has_web_events"] and carol["session_count"] == 0 and carol["event_type_share_1"] == 0


def test_top_event_types_are_ranked_by_count_then_name_and_become_share_columns(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        top = conn.execute(
            "select type_rank, feature_column, source_event_type, mapped_event_type, event_count "
            "from marts.top_event_types order by type_rank"
        ).fetchall()
    assert top == [
        (1, "event_type_share_1", "catalog", "page_view", 4),
        (2, "event_type_share_2", "product1", "product_view", 2),
        (3, "event_type_share_3", "heartbeat", None, 1),
        (4, "event_type_share_4", "payment_done", "purchase", 1),
    ]
    features = _features(warehouse)
    assert features["alice"]["event_type_share_1"] == pytest.approx(1 / 5)
    assert features["alice"]["event_type_share_2"] == pytest.approx(2 / 5)
    assert features["bob"]["event_type_share_1"] == 1.0
    assert features["bob"]["event_type_share_8"] == 0.0  # fewer than 8 types: the column is 0, not missing
