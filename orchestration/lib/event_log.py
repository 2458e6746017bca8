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

import functools
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

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
            return bool(path) and _path_is_under(path, home)
    return False


@functools.lru_cache(maxsize=256)
def _path_is_under(path: str, home: str) -> bool:
    # Resolved once per file: every event opens a new connection to one of a run's few files.
    return Path(path).resolve().is_relative_to(home)


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


# --- The run history's SQLite engines and connections, made once (issue 18: the fixed cost of a step) ----------------
#
# Dagster's SQLite storages build a new SQLAlchemy engine for every read and write of the run history (sharded event
# log: `_connect(shard)`; run storage: `connect()`) and throw it away: each time SQLAlchemy creates the engine,
# initializes its dialect on the first connection and compiles every statement anew (its compiled cache lives on the
# engine). A run of the refresh records ~800 events with one to three writes each, and reads the asset records for
# every step's data versions: ~2.5 ms per engine here against ~0.5 ms for a new connection of a kept engine. The
# classes below keep one engine per database file (an LRU of EVENT_LOG_ENGINES shards: a webserver reads many runs)
# and the same schema set-up and lock.
#
# Each engine also keeps its SQLite connection between uses (a pool of one, SQLAlchemy's default for a SQLite file;
# Dagster uses NullPool): opening a connection costs more than most of the writes it serves (SQLite opens the file,
# maps the WAL index and reads the schema on the first statement, and `_set_sync` asks where the file is), and so does
# closing it (the WAL checkpoint of the last connection). Sharing is unchanged: SQLite locks a file for the length
# of a transaction, not of a connection, every use still ends its transaction (commit, or SQLAlchemy's rollback when
# the connection returns to the pool), so the daemon and the webserver read and write the files exactly as while the
# run's connections came and went; in WAL mode the WAL is checkpointed as it grows (SQLite's auto-checkpoint), and
# at the end when the instance is disposed. A second use at the same time (another thread) gets a connection of its
# own, closed after it, as before. The schema checks Dagster repeats before writes (`has_table` with a new engine of
# its own for every check event, the asset-key index columns for every materialization, the secondary indexes) are
# remembered once true: a table or column Dagster's migrations added does not go away while the run writes.
# `make run` gives them to the instance it records the run in (`keep_engines`): the same objects, files and layout.
# (Not through dagster.yaml's `storage: custom:`: its base_dir cannot name the folder the file is read from, so
# `DagsterInstance.from_config(<home>)`, which bench/steps.py uses, would read another home's history.)

EVENT_LOG_ENGINES = 32


def _kept_engine(url: str, **connect_args) -> Engine:
    """An engine whose one SQLite connection is kept between uses; a concurrent use gets one of its own (overflow),
    closed when it is returned."""
    return create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=-1, connect_args=connect_args)


class SegmintSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's sharded SQLite event log with one engine per shard, kept (see above)."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        super().__init__(base_dir, inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        # Its own lock, not _db_lock: the schema checks ask for the index engine inside a write that holds that one.
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is None:
                engine = _kept_engine(self.conn_string_for_shard(shard), timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
                self._engines[shard] = engine
                while len(self._engines) > EVENT_LOG_ENGINES:
                    self._engines.popitem(last=False)[1].dispose()
            else:
                self._engines.move_to_end(shard)
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator:
        # Dagster's _connect, with the engine kept instead of created and disposed for every use.
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    # Schema checks, remembered once true (see above).
    def has_table(self, table_name: str) -> bool:
        known = self.__dict__.setdefault("_known", set())
        if ("table", table_name) in known:
            return True
        with self._engine(INDEX_SHARD_NAME).connect() as conn:
            present = bool(conn.dialect.has_table(conn, table_name))
        if present:
            known.add(("table", table_name))
        return present

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        known = self.__dict__.setdefault("_known", set())
        if ("asset_key_column", column_name) in known:
            return True
        present = super()._has_asset_key_col_on_connection(conn, column_name)
        if present:
            known.add(("asset_key_column", column_name))
        return present

    def has_secondary_index(self, name: str) -> bool:
        known = self.__dict__.setdefault("_known", set())
        if ("secondary_index", name) in known:
            return True
        present = super().has_secondary_index(name)
        if present:
            known.add(("secondary_index", name))
        return present

    def wipe(self) -> None:
        self.__dict__.get("_known", set()).clear()
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        with self._engines_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()


class SegmintSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage with its one engine kept (see above)."""

    _engine_lock = threading.Lock()

    @contextmanager
    def connect(self) -> Iterator:
        engine = self.__dict__.get("_kept_engine")
        if engine is None:
            with self._engine_lock:
                engine = self.__dict__.setdefault("_kept_engine", _kept_engine(self._conn_string))
        with engine.connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        super().dispose()
        engine = self.__dict__.pop("_kept_engine", None)
        if engine is not None:
            engine.dispose()


def keep_engines(instance) -> list[str]:
    """Make `instance`'s SQLite run and event storages keep their engines (the classes above), when they are Dagster's
    default SQLite ones; the storages' names it changed. `make run` (orchestration/cli.py) calls it on the instance it
    records the run in; the webserver and daemon keep Dagster's classes. Postgres or a custom storage: nothing."""
    changed = []
    event_storage = instance.event_log_storage
    if type(event_storage) is SqliteEventLogStorage:
        event_storage._engines = OrderedDict()
        event_storage._engines_lock = threading.Lock()
        event_storage.__class__ = SegmintSqliteEventLogStorage
        changed.append("event_log")
    run_storage = instance.run_storage
    if type(run_storage) is SqliteRunStorage:
        run_storage.__class__ = SegmintSqliteRunStorage
        changed.append("runs")
    return changed
