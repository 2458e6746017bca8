"""ml/segment_membership_history against a tmp DuckDB: the history advances inside the warehouse (ADVANCE_SQL) and
gives what the frame version (ml.segment_history.advance_history) gives, day after day, idempotent per day."""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb
import pandas as pd

from ml.segment_history import advance_history, empty_history
from orchestration.defs.membership import HISTORY_TABLE, segment_membership_history
from orchestration.defs.resources import SegmintSettings, Warehouse


def _scores(path, as_of: date, rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "rfm_segment", "behavioral_segment"]).assign(
        as_of_date=pd.Timestamp(as_of)
    )
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema if not exists marts")
        conn.register("frame", frame)
        conn.execute("create or replace table marts.customer_scores as select * from frame")
    return frame


def _materialize(path, tmp_path) -> dict:
    result = dg.materialize(
        [segment_membership_history],
        resources={"warehouse": Warehouse(path=str(path)), "settings": SegmintSettings(landing_dir=str(tmp_path))},
    )
    return result.asset_materializations_for_node("ml__segment_membership_history")[0].metadata


def _melted(scores: pd.DataFrame) -> pd.DataFrame:
    return scores.melt(
        id_vars="customer_id", value_vars=["rfm_segment", "behavioral_segment"], var_name="segment_kind",
        value_name="segment",
    )  # fmt: skip


def test_the_warehouse_history_advances_like_the_frame_rule_and_a_rerun_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "warehouse.duckdb"
    days = [
        (date(2025, 1, 1), [("1", "Champions", "Researchers"), ("2", "Lost", "Bargain hunters")]),
        (date(2025, 1, 2), [("1", "At Risk", "Researchers"), ("3", "New Customers", "Researchers")]),
        (date(2025, 1, 2), [("1", "At Risk", "Researchers"), ("3", "New Customers", "Researchers")]),  # re-run
        (date(2025, 1, 5), [("1", "Champions", "Researchers"), ("3", "New Customers", "Bargain hunters")]),
    ]
    expected = empty_history()
    for as_of, rows in days:
        scores = _scores(path, as_of, rows)
        metadata = _materialize(path, tmp_path)
        expected = advance_history(expected, _melted(scores), as_of)
        with duckdb.connect(str(path), read_only=True) as conn:
            table = conn.execute(f"select * from {HISTORY_TABLE}").df()
        assert (table["source"] == "batch").all()
        got = table.drop(columns="source")
        for column in ("customer_id", "segment_kind", "segment"):
            got[column] = got[column].astype("string")
        for column in ("valid_from", "valid_to"):
            got[column] = got[column].astype("datetime64[us]")
        pd.testing.assert_frame_equal(got, expected)
    # On 2025-01-05 customer 1 went back to Champions and customer 3 changed cluster: two transitions.
    assert metadata["transitions_on_as_of"].value == 2
    # Customer 2 was not scored after day one: closed on 2025-01-02, nothing open.
    mine = expected[expected["customer_id"] == "2"]
    assert (mine["valid_to"] == pd.Timestamp("2025-01-02")).all()


def test_an_older_as_of_keeps_the_history_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "warehouse.duckdb"
    _scores(path, date(2025, 3, 1), [("1", "Champions", "Researchers")])
    _materialize(path, tmp_path)
    with duckdb.connect(str(path), read_only=True) as conn:
        before = conn.execute(f"select * from {HISTORY_TABLE}").df()
    _scores(path, date(2025, 1, 1), [("1", "Lost", "Researchers")])
    _materialize(path, tmp_path)
    with duckdb.connect(str(path), read_only=True) as conn:
        after = conn.execute(f"select * from {HISTORY_TABLE}").df()
    pd.testing.assert_frame_equal(before, after)
