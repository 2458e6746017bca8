"""How hard Dagster's local SQLite run history waits for the disk (SEGMINT_EVENT_LOG_SYNC).

Dagster's default storage keeps the run history in SQLite files under $DAGSTER_HOME (one file per run plus an
index). It opens a new connection for every event it records and closes it again, and with SQLite's default
`synchronous=FULL` every commit, and the WAL checkpoint SQLite runs when a file's last connection closes, waits for
an fsync. A run of the refresh records ~800 events (step start/output/success, materializations, the planned and
the finished evaluation of ~140 checks), each written to one or two files: measured here, 20-30 ms of fsync per
event, 15-30 s of a 100 k-customer daily refresh, whatever the data's size.

The run history is a record of runs: the warehouse, the model files and the pins the cadence reads
(ml/cadence.py) live elsewhere and keep their own durability. So `make run` records it with `synchronous=OFF` by
default: a crash of segmint or Python loses nothing (the data is in the OS's cache), an operating-system crash
or power cut during a run can lose or corrupt the history of that run (`make dev` then shows it broken; delete
the run's file under $DAGSTER_HOME/history/runs/). `normal` keeps SQLite's WAL guarantee (never corrupt, the
last events may be lost) at about half the saving; `full` is SQLite's default. A production deployment that
needs the history durable stores it in Postgres (dagster-postgres), where none of this applies.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

from orchestration.lib.settings import SettingsError

SYNC_ENV = "SEGMINT_EVENT_LOG_SYNC"
SYNC_LEVELS = ("off", "normal", "full")
DEFAULT_SYNC = "off"
_installed: dict[str, str] = {}


def event_log_sync(environ: os._Environ | dict = os.environ) -> str:
    """The SQLite `synchronous` level for the run history: off (default), normal or full."""
    value = (environ.get(SYNC_ENV) or DEFAULT_SYNC).strip().lower()
    if value not in SYNC_LEVELS:
        raise SettingsError(f"{SYNC_ENV}={value!r}: use one of {', '.join(SYNC_LEVELS)}")
    return value


def _is_under(connection: sqlite3.Connection, home: str) -> bool:
    """Whether the connection's main database file lives under $DAGSTER_HOME (only Dagster's own files)."""
    for _, name, path in connection.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return bool(path) and Path(path).resolve().is_relative_to(home)
    return False


def _set_sync(dbapi_connection, _record) -> None:
    home = _installed.get("home")
    if isinstance(dbapi_connection, sqlite3.Connection) and home and _is_under(dbapi_connection, home):
        dbapi_connection.execute(f"PRAGMA synchronous={_installed['level'].upper()}")


def install(home: str | os.PathLike | None = None, level: str | None = None) -> str:
    """Set `synchronous` on every SQLite connection SQLAlchemy opens to a file under `home` (default
    $DAGSTER_HOME) in this process, from now on; idempotent. Returns the level."""
    level = level or event_log_sync()
    home = home or os.environ.get("DAGSTER_HOME")
    if not home:
        return level
    _installed.update(home=str(Path(home).resolve()), level=level)
    if not event.contains(Engine, "connect", _set_sync):
        event.listen(Engine, "connect", _set_sync)
    return level
