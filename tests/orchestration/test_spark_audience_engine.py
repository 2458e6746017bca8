"""Which engine selects an audience under SEGMINT_ENGINE=spark (orchestration/defs/audiences.py).

In a refresh the dbt steps have started the run's Spark, so every audience is selected in Spark SQL (the whole graph
on Spark checks that: tests/integration/test_spark_engine.py). A real-time audience's event-triggered run (the
sensor's: the audience and its syncs only) must not wait for a JVM: without a running Spark it selects through
DuckDB's views of the same Parquet tables. No Spark is needed here: starting one fails the test.
"""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pytest

from activation.audiences import select_members
from orchestration.definitions import defs
from orchestration.defs.audiences import AUDIENCES
from orchestration.defs.resources import resources
from orchestration.lib import keys, spark_connect
from orchestration.lib.settings import load_settings
from tests.servers.warehouse import build_warehouse

AUDIENCE = next(a for a in AUDIENCES if a.realtime_segment == "cart_abandoner")


def test_a_realtime_audience_without_a_running_spark_starts_none(tmp_path, monkeypatch):
    data = tmp_path / "data"
    log_dir = data / "realtime" / "log"
    log_dir.mkdir(parents=True)
    warehouse = data / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        build_warehouse(conn, 40)
    lines = [
        {
            "id": customer,
            "known_customer": True,
            "segment": "cart_abandoner",
            "change": "entered",
            "event_id": f"rt_{customer}",
            "occurred_at": "2026-11-26T04:00:00+00:00",
            "received_at": "2026-11-26T04:00:00.002+00:00",
            "source": "realtime",
        }
        for customer in ("c0001", "c0002", "c0005")
    ]
    (log_dir / "transitions-20261126T040000-4242.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(data))
    monkeypatch.setenv("SEGMINT_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("SEGMINT_ENGINE", "spark")
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.setattr(spark_connect, "start_server", lambda *a, **k: pytest.fail("started a Spark for it"))
    assert load_settings().engine == "spark"

    result = dg.materialize([defs.get_assets_def(keys.audience(AUDIENCE.name))], resources=resources())
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["selected_in"].value == "duckdb views"
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        stored = conn.execute(f"select customer_id from audiences.{AUDIENCE.name} order by customer_id").fetchall()
        expected = select_members(conn, AUDIENCE, ["c0001", "c0002", "c0005"])
    assert [row[0] for row in stored] == list(expected["customer_id"]) and len(stored) > 0
