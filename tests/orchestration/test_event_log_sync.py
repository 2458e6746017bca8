"""The run history's fsync policy (orchestration/lib/event_log.py): set on Dagster's SQLite files only."""

import sqlite3

import dagster as dg
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from orchestration.lib import event_log
from orchestration.lib.settings import SettingsError

SYNC_NUMBER = {"off": 0, "normal": 1, "full": 2}


def _synchronous(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text("PRAGMA synchronous")).scalar()
    engine.dispose()
    return value


def test_setting_defaults_to_off_and_refuses_unknown_levels():
    assert event_log.event_log_sync({}) == "off"
    assert event_log.event_log_sync({"SEGMINT_EVENT_LOG_SYNC": " Normal "}) == "normal"
    with pytest.raises(SettingsError, match="SEGMINT_EVENT_LOG_SYNC='sometimes'"):
        event_log.event_log_sync({"SEGMINT_EVENT_LOG_SYNC": "sometimes"})


@pytest.mark.parametrize("level", ["off", "normal", "full"])
def test_level_applies_under_dagster_home_only(tmp_path, level):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    event_log.install(home, level)
    assert _synchronous(f"sqlite:///{home / 'runs.db'}") == SYNC_NUMBER[level]
    assert _synchronous(f"sqlite:///{elsewhere / 'other.db'}") == SYNC_NUMBER["full"]  # SQLite's default


def test_a_run_is_recorded_with_the_level(tmp_path, monkeypatch):
    """A real in-process run against a real instance: every connection Dagster opens to its files gets the level,
    and the run's events are stored."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    event_log.install(level="off")
    seen: list[int] = []

    def record(dbapi_connection, _record):  # runs after event_log's listener (registered later)
        if isinstance(dbapi_connection, sqlite3.Connection):
            seen.append(dbapi_connection.execute("PRAGMA synchronous").fetchone()[0])

    @dg.asset
    def one():
        return 1

    event.listen(Engine, "connect", record)
    try:
        with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
            assert dg.materialize([one], instance=instance).success
            assert instance.get_latest_materialization_event(dg.AssetKey("one")) is not None
    finally:
        event.remove(Engine, "connect", record)
    assert len(seen) > 5 and set(seen) == {SYNC_NUMBER["off"]}
