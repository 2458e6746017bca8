"""raw_tables keeps the raw tables when nothing it reads changed (orchestration/lib/ingest_fingerprint.py), and
ingests again when a file's bytes, a setting, the suppression list or SEGMINT_FORCE_INGEST say so."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from orchestration.defs.landing import KEPT, KEPT_UNCHANGED, landing_files, raw_tables
from orchestration.defs.resources import SegmintSettings, Warehouse
from orchestration.lib.ingest_fingerprint import ingest_inputs, inputs_fingerprint
from orchestration.lib.keys import raw

ORDERS = "order_id,customer_id,ordered_at,order_total,currency\n1,0042,2025-01-05,10.50,USD\n2,7,2025-01-07,5,USD\n"


def _run(instance, landing, warehouse, as_of="2025-03-01"):
    result = dg.materialize(
        [landing_files, raw_tables],
        instance=instance,
        resources={
            "warehouse": Warehouse(path=str(warehouse)),
            "settings": SegmintSettings(landing_dir=str(landing), as_of=as_of),
        },
    )
    orders = result.asset_materializations_for_node("raw_tables")
    by_key = {m.asset_key: m for m in orders}
    return by_key[raw("orders")]


@pytest.mark.slow  # seven runs of the ingest asset: ~25 s quiet, ~55 s at load 9
def test_unchanged_inputs_keep_the_tables_and_changed_ones_ingest(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "orders.csv").write_text(ORDERS)
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SEGMINT_FORCE_INGEST", raising=False)
    warehouse = tmp_path / "warehouse.duckdb"
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        first = _run(instance, landing, warehouse)
        assert first.metadata[KEPT].value == "no: ingested"
        assert first.metadata["dagster/row_count"].value == 2

        again = _run(instance, landing, warehouse)  # same bytes, settings, suppression list, code
        assert again.metadata[KEPT].value == KEPT_UNCHANGED
        assert again.metadata["rows_in"].value == 2  # the ingest's own metadata is shown again
        assert again.tags["dagster/data_version"] == first.tags["dagster/data_version"]

        (landing / "orders.csv").write_text(ORDERS + "3,8,2025-01-09,20.00,USD\n")  # a new export
        changed = _run(instance, landing, warehouse)
        assert changed.metadata[KEPT].value == "no: ingested"
        assert changed.metadata["dagster/row_count"].value == 3
        assert changed.tags["dagster/data_version"] != first.tags["dagster/data_version"]

        backwards = _run(instance, landing, warehouse, as_of="2025-01-06")
        assert backwards.metadata["dagster/row_count"].value == 1
        assert backwards.metadata["ingest_mode"].value == "full"
        assert backwards.metadata["ingest_mode_reason"].value.startswith("the as-of date moved backwards")

        # The tables changed behind Dagster's back (a restored warehouse): the recorded counts differ, ingest again.
        assert _run(instance, landing, warehouse, as_of="2025-01-06").metadata[KEPT].value == KEPT_UNCHANGED
        with duckdb.connect(str(warehouse)) as conn:
            conn.execute("delete from raw.orders")
        assert _run(instance, landing, warehouse, as_of="2025-01-06").metadata["dagster/row_count"].value == 1

        monkeypatch.setenv("SEGMINT_FORCE_INGEST", "1")
        forced = _run(instance, landing, warehouse, as_of="2025-01-06")
        assert forced.metadata[KEPT].value == "no: ingested"
        assert forced.metadata["ingest_mode_reason"].value == "forced (SEGMINT_FORCE_INGEST=1)"

        # The next day over the same files: the held records now due are appended (landing/append.py).
        monkeypatch.delenv("SEGMINT_FORCE_INGEST")
        next_day = _run(instance, landing, warehouse, as_of="2025-01-08")
        assert next_day.metadata["ingest_mode"].value == "append"
        assert next_day.metadata["dagster/row_count"].value == 2
        assert next_day.metadata["rows_after_as_of"].value == 1


def test_fingerprint_follows_bytes_settings_suppression_and_code(tmp_path):
    data = tmp_path / "orders.csv"
    data.write_text(ORDERS)
    base = dict(landing_files=[data], realtime_log_files=[], settings={"as_of": "2025-03-01"}, suppression=[], salt="s")
    first = inputs_fingerprint(ingest_inputs(**base, code="c1"))
    data.touch()  # a new date, the same bytes
    assert inputs_fingerprint(ingest_inputs(**base, code="c1")) == first
    assert inputs_fingerprint(ingest_inputs(**(base | {"settings": {"as_of": "2025-03-02"}}), code="c1")) != first
    assert inputs_fingerprint(ingest_inputs(**(base | {"suppression": ["abc"]}), code="c1")) != first
    assert inputs_fingerprint(ingest_inputs(**(base | {"salt": "t"}), code="c1")) != first
    assert inputs_fingerprint(ingest_inputs(**base, code="c2")) != first
    data.write_text(ORDERS + "3,8,2025-01-09,20.00,USD\n")
    assert inputs_fingerprint(ingest_inputs(**base, code="c1")) != first


def test_fingerprint_tells_apart_instances_whose_log_files_share_a_name(tmp_path):
    """The real-time log keeps one folder per service instance, with the same file names in each."""
    logs = [tmp_path / instance / "events.jsonl" for instance in ("a", "b")]
    for log in logs:
        log.parent.mkdir()
        log.write_text('{"event_id": "1"}\n')
    base = dict(landing_files=[], realtime_log_files=logs, settings={}, suppression=[], salt="s", code="c1")
    first = inputs_fingerprint(ingest_inputs(**base))
    logs[0].write_text('{"event_id": "2"}\n')
    assert inputs_fingerprint(ingest_inputs(**base)) != first
