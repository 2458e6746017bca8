"""The event vocabulary asset and its warning check, in-process against a hand-made raw.events."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from orchestration.defs.resources import SegmintSettings, Warehouse
from orchestration.defs.vocabulary import check_unmapped_event_share, event_vocabulary, read_source_format
from orchestration.lib.settings import SettingsError, load_settings

MAPPING = """version: 1
rules:
  - when: {event: catalog}
    then: {event_type: page_view, page_type: category}
"""


def _warehouse(tmp_path, events: list[tuple[str, str | None]], source_format: str | None = None) -> str:
    path = str(tmp_path / "warehouse.duckdb")
    with duckdb.connect(path) as conn:
        conn.execute("create schema raw")
        conn.execute("create table raw.events (event_type varchar, page_type varchar)")
        conn.executemany("insert into raw.events values (?, ?)", events)
        if source_format is None:
            conn.execute("create table raw.run_context (as_of date)")
        else:
            conn.execute(
                "create table raw.run_context as select date '2026-01-01' as as_of, ? as source_format", [source_format]
            )
    return path


def _run(tmp_path, monkeypatch, warehouse: str, mapping_text: str | None):
    if mapping_text is None:
        monkeypatch.delenv("SEGMINT_EVENT_MAPPING", raising=False)
    else:
        mapping = tmp_path / "event_mapping.yaml"
        mapping.write_text(mapping_text)
        monkeypatch.setenv("SEGMINT_EVENT_MAPPING", str(mapping))
    return dg.materialize(
        [event_vocabulary, check_unmapped_event_share],
        resources={"warehouse": Warehouse(path=warehouse), "settings": SegmintSettings(landing_dir=str(tmp_path))},
        raise_on_error=False,
    )


def _check(result) -> dg.AssetCheckEvaluation:
    evaluations = (e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION")
    return next(e.asset_check_evaluation_data for e in evaluations)


def test_unmapped_names_are_listed_with_their_share_and_warn_without_blocking(tmp_path, monkeypatch):
    events = [("catalog", None)] * 5 + [("cart", None)] * 3 + [("payment_done", None)] * 2
    result = _run(tmp_path, monkeypatch, _warehouse(tmp_path, events), MAPPING)
    assert result.success  # a warning never stops the run
    metadata = result.asset_materializations_for_node("raw__event_vocabulary")[0].metadata
    assert metadata["unmapped_share"].value == 0.5
    assert metadata["preset"].value == "segmint" and metadata["user_rules"].value == 1
    assert "| cart | 3 | 0.3 |" in metadata["unmapped"].value
    check = _check(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description.startswith("50.0% of events unmapped (threshold 20%); most frequent: cart (30%)")


def test_the_preset_follows_the_run_source_format_and_the_check_passes_when_events_map(tmp_path, monkeypatch):
    events = [("view_item", None)] * 8 + [("purchase", None), ("scroll", None)]
    warehouse = _warehouse(tmp_path, events, source_format="GA4")
    result = _run(tmp_path, monkeypatch, warehouse, None)
    assert result.success and _check(result).passed
    with duckdb.connect(warehouse, read_only=True) as conn:
        assert read_source_format(conn) == "ga4"
        mapped = dict(conn.execute("select source_event_type, event_type from raw.event_vocabulary").fetchall())
    assert mapped == {"view_item": "product_view", "purchase": "purchase", "scroll": "other"}


def test_a_bad_mapping_file_stops_the_run_with_one_line(tmp_path, monkeypatch):
    bad = "version: 1\nrules: [{when: {event: x}, then: {event_type: buy}}]\n"
    result = _run(tmp_path, monkeypatch, _warehouse(tmp_path, [("x", None)]), bad)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "rule 1: event_type 'buy' is not segmint vocabulary" in failure.step_failure_data.error.message


def test_the_mapping_path_setting_must_name_a_file(tmp_path):
    assert load_settings({}).event_mapping.name == "event_mapping.yaml"
    with pytest.raises(SettingsError, match="SEGMINT_EVENT_MAPPING='/nowhere.yaml' is not a file"):
        load_settings({"SEGMINT_EVENT_MAPPING": "/nowhere.yaml"})
