"""The two halves of issue 16 together: what the real service acknowledged, then `kill -9`, is in raw.events
after the next ingest (the raw-tables asset of `make run`, on the service's data folder)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import duckdb

from orchestration.defs.landing import landing_files, raw_tables
from orchestration.defs.quality_checks import check_ingest_counts_reconcile
from orchestration.defs.resources import SegmintSettings, Warehouse
from tests.realtime.helpers import KNOWN_CUSTOMER, Server, at, build_bundle


def test_every_event_acknowledged_before_a_kill_9_is_in_raw_events_after_the_next_ingest(tmp_path, monkeypatch):
    data = tmp_path / "data"
    build_bundle(data)
    server = Server(data).start()
    acknowledged = []
    try:
        for i in range(30):
            visitor = {"customer_id": KNOWN_CUSTOMER} if i % 5 == 0 else {"anonymous_id": f"v-{i}"}
            answer = server.post(
                {
                    "events": [
                        {
                            **visitor,
                            "event_type": "product_view",
                            "product_id": f"s{n}",
                            "category": "shoes",
                            "occurred_at": at(n),
                            "utm_medium": "affiliate",
                            "value": 19.5,
                        }
                        for n in range(3)
                    ]
                }
            )
            assert answer.status_code == 200
            acknowledged += [r["event_id"] for r in answer.json()["results"]]
    finally:
        server.kill()  # kill -9: no clean shutdown, nothing flushed on exit
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "orders.csv").write_text("order_id,customer_id,ordered_at,order_total\no1,C-0001,2026-01-05,10.5\n")
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(data))
    warehouse = tmp_path / "warehouse.duckdb"
    result = dg.materialize(
        [landing_files, raw_tables, check_ingest_counts_reconcile],
        resources={
            "warehouse": Warehouse(path=str(warehouse)),
            "settings": SegmintSettings(landing_dir=str(landing), as_of=datetime.now(UTC).date().isoformat()),
        },
    )
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        ingested = [
            r[0]
            for r in conn.execute(
                "select event_id from raw.events where origin_file like 'realtime/log/events-%'"
            ).fetchall()
        ]
        sample = conn.execute(
            "select category, utm_medium, value from raw.events where customer_id = ? limit 1", [KNOWN_CUSTOMER]
        ).fetchone()
    assert sorted(ingested) == sorted(acknowledged) and len(acknowledged) == 90
    assert sample == ("shoes", "affiliate", 19.5)
