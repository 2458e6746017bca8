"""The real-time service's durable event log (`<data dir>/realtime/log/events-*.jsonl`) as landing events.

The service (package `realtime/`) appends one JSON object per acknowledged event before it answers
(the shared contract: docs in README "Real-time segments"). The next ingest reads every log file as one more
source of the events table, through the normal events contract, so the record rules, the as-of date, the
quarantine and the reconciliation are the ones every landing file gets:

- each non-blank line is a record; `origin_file` = `realtime/log/<file name>`, `origin_row` = its line number,
  kept in raw.events (and as `source_file`/`source_row` of its quarantine row and raw.events row);
- a line that is not valid JSON is `malformed_json`, except the last line of a file: a crash (or a write in
  progress while the ingest reads) leaves a torn last line, never acknowledged, so it is `torn_last_line`
  (quarantined and counted like any record: rows in = accepted + quarantined still holds);
- the event fields map one to one to the events contract (`category`, `utm_medium`, `utm_content`, `value`
  included); `received_at` is not a contract column and stays in the log;
- events after the as-of date are `after_as_of` like any event; the log is never modified, so the next run with
  a later as-of date ingests them;
- an event_id already in the shop's events file (whatever its fate there) is `duplicate_in_landing_file`: the
  shop's file is the record of that event and its copy alone is judged, so an event is never in raw.events
  twice; repeated ids within the log follow the usual duplicate rules (identical copies kept once, conflicting
  copies all quarantined), comparing the contract values only (not the line a copy was read from).
Re-runs cannot ingest an event twice either: the raw tables are rebuilt from the files on every run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from landing.contract import EVENTS, ORIGIN_COLUMN_NAMES, SUPPRESSED_TABLE, SUPPRESSED_TABLE_SQL
from landing.formats.common import drop_lines, json_reason_sql, load_json_lines, raw_record_sql
from landing.sources import sql_string

# Relative to the data folder (SEGMINT_DATA_DIR), as the service writes it (shared contract, issue 16).
LOG_SUBDIR = "realtime/log"
EVENT_LOG_PATTERN = "events-*.jsonl"
TRANSITION_LOG_PATTERN = "transitions-*.jsonl"
# The contract file the log is translated into (under the landing work folder), read by the events contract.
WORK_FILE = "realtime_events.parquet"
# The stage of the log's events before they join the shop's in raw.events (a second events source).
STAGE_TABLE = "events_realtime"
REJECTS_TABLE = "_rt_rejects"
COUNTS_TABLE = "_rt_counts"  # records read per log file (rows_in of raw.ingest_log)
TORN_LAST_LINE = "torn_last_line"
DUPLICATE_IN_LANDING_FILE = "duplicate_in_landing_file"
# The event line's fields: the events contract's columns except those the real-time service never logs (the page
# URL, and the lineage of translated exports). One owner, landing/contract.py: a column added there is read from
# the log too.
NOT_IN_LOG = ("page_url", *ORIGIN_COLUMN_NAMES)
EVENT_FIELDS = tuple(name for name in EVENTS.column_names if name not in NOT_IN_LOG)
_STRUCTURE = json.dumps({name: "VARCHAR" for name in EVENT_FIELDS})


def _log_files(log_dir: Path | None, pattern: str) -> list[Path]:
    # Sub-folders too: the logs of several instances (realtime/router.py) are gathered as realtime/log/<instance>/.
    if log_dir is None or not Path(log_dir).is_dir():
        return []
    return sorted(path for path in Path(log_dir).rglob(pattern) if path.is_file())


def event_log_files(log_dir: Path | None) -> list[Path]:
    """The service's event log files (sub-folders included), in path order (names start with the start time)."""
    return _log_files(log_dir, EVENT_LOG_PATTERN)


def transition_log_files(log_dir: Path | None) -> list[Path]:
    """The service's transition log files (sub-folders included), in path order."""
    return _log_files(log_dir, TRANSITION_LOG_PATTERN)


def origin_names(files: list[Path], log_dir: Path | None) -> dict[str, str]:
    """Path -> how the file is named in raw.events.origin_file, raw.quarantine and raw.ingest_log.

    `realtime/log/<path under the log folder>` (None: the file name only).
    """
    return {
        str(path): f"{LOG_SUBDIR}/{path.relative_to(log_dir).as_posix() if log_dir else path.name}" for path in files
    }


def _load_log_lines(conn: duckdb.DuckDBPyConnection, files: list[Path], log_dir: Path | None) -> int:
    """Every non-blank line of the files into temp `_rt_raw(origin_file, origin_row, line)`; returns the count.

    The JSON-lines reader of the source formats (one scan, line numbers per file), with the files named by
    their path under the log folder (instances' logs may share file names in sub-folders).
    """
    load_json_lines(conn, files)
    conn.execute("CREATE OR REPLACE TEMP TABLE _rt_names (filename VARCHAR, origin_file VARCHAR)")
    conn.executemany(
        "INSERT INTO _rt_names VALUES (?, ?)", [list(pair) for pair in origin_names(files, log_dir).items()]
    )
    conn.execute("""
CREATE OR REPLACE TEMP TABLE _rt_raw AS
SELECT n.origin_file, f.rowid - o.first + 1 AS origin_row, f.line
FROM _fmt_file AS f JOIN _fmt_offsets AS o USING (filename) JOIN _rt_names AS n USING (filename)
WHERE f.line IS NOT NULL AND (ascii(f.line) > 32 OR trim(f.line) <> '')""")
    drop_lines(conn)
    conn.execute("DROP TABLE temp._rt_names")
    return conn.execute("SELECT count(*) FROM _rt_raw").fetchall()[0][0]


def translate_event_log(
    conn: duckdb.DuckDBPyConnection, files: list[Path], work_path: Path, log_dir: Path | None = None
) -> int:
    """Write the log's events as an events contract file (text columns + origin) at `work_path`.

    Lines that cannot be a record (torn, malformed, not an object) go to temp `_rt_rejects` (origin_file,
    origin_row, reason, raw_record). Returns the number of records read (rejected ones included).
    """
    count = _load_log_lines(conn, files, log_dir)
    torn = (
        f"'{TORN_LAST_LINE}: the last line of the file is not valid JSON (a write cut short by a crash or still "
        "in progress: never acknowledged)'"
    )
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _rt_lines AS
SELECT origin_file, origin_row, line,
       CASE WHEN NOT json_valid(line) AND origin_row = max(origin_row) OVER (PARTITION BY origin_file) THEN {torn}
            ELSE {json_reason_sql("line")} END AS reason
FROM _rt_raw""")
    conn.execute("DROP TABLE temp._rt_raw")
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {COUNTS_TABLE} AS SELECT origin_file, count(*) AS rows_in FROM _rt_lines GROUP BY 1"
    )
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE {REJECTS_TABLE} AS
SELECT origin_file, origin_row, reason, {raw_record_sql("line")} AS raw_record FROM _rt_lines WHERE reason IS NOT NULL
ORDER BY origin_file, origin_row""")
    columns = ", ".join(f"r.{name} AS {name}" for name in EVENT_FIELDS)
    conn.execute(f"""
COPY (SELECT {columns}, NULL::VARCHAR AS page_url, origin_file, origin_row
      FROM (SELECT origin_file, origin_row, json_transform(line, '{_STRUCTURE}') AS r FROM _rt_lines
            WHERE reason IS NULL)
      ORDER BY origin_file, origin_row) TO {sql_string(str(work_path))} (FORMAT parquet)""")
    conn.execute("DROP TABLE temp._rt_lines")
    return count


def mark_landing_duplicates_sql(log_stage: str, events_stage: str, events_file: str, row_reason: str) -> str:
    """UPDATE setting aside log events whose event_id is in the shop's events file (see the module docstring)."""
    reason = (
        f"'{DUPLICATE_IN_LANDING_FILE}: event_id=''' || left(p.event_id, 80) || ''' is also in "
        f"{events_file} (row ' || d.first_row || '), whose copy is the one judged'"
    )
    return f"""
UPDATE {log_stage} AS p SET {row_reason} = {reason}
FROM (SELECT event_id, min(source_row) AS first_row FROM {events_stage} WHERE event_id IS NOT NULL GROUP BY 1) AS d
WHERE p.{row_reason} IS NULL AND p.event_id = d.event_id"""


def stage_event_log(
    conn: duckdb.DuckDBPyConnection, log_stage: str, events_stage: str, quarantine: str, ingest_log: str
) -> list[tuple[str, int, int, int, int]]:
    """Join the log's accepted events to the staged raw.events and count every record per log file.

    Quarantine rows of the work file point back at the log file and line; the lines rejected before the
    contract (torn, malformed) are added; raw.ingest_log gets one `events` row per log file, checked to
    reconcile (every record accepted or quarantined exactly once) before anything is swapped in.
    """
    work = sql_string(WORK_FILE)
    conn.execute(f"""
UPDATE {quarantine} SET source_file = json_extract_string(raw_record, '$.origin_file'),
       source_row = CAST(json_extract_string(raw_record, '$.origin_row') AS BIGINT)
WHERE source_file = {work}""")
    conn.execute(
        f"INSERT INTO {quarantine} SELECT origin_file, origin_row, raw_record, reason FROM {REJECTS_TABLE} "
        "ORDER BY origin_file, origin_row"
    )
    conn.execute(f"UPDATE {log_stage} SET source_file = origin_file, source_row = origin_row")
    conn.execute(f"DELETE FROM {ingest_log} WHERE source_file = {work}")
    conn.execute(
        SUPPRESSED_TABLE_SQL
    )  # rows of erased persons, dropped unread by the ingest (landing.ingest._suppress)
    rows = conn.execute(f"""
SELECT c.origin_file, c.rows_in, coalesce(a.n, 0), coalesce(q.n, 0), coalesce(q.after, 0), coalesce(s.n, 0)
FROM {COUNTS_TABLE} AS c
LEFT JOIN (SELECT origin_file, count(*) AS n FROM {log_stage} GROUP BY 1) AS a USING (origin_file)
LEFT JOIN (SELECT source_file AS origin_file, count(*) AS n,
                  count(*) FILTER (WHERE split_part(reason, ':', 1) = 'after_as_of') AS after
           FROM {quarantine} GROUP BY 1) AS q USING (origin_file)
LEFT JOIN (SELECT origin_file, sum(n) AS n FROM {SUPPRESSED_TABLE} WHERE table_name = 'events' GROUP BY 1) AS s
    USING (origin_file)
ORDER BY 1""").fetchall()
    unexplained = [
        (name, rows_in, accepted, quarantined, suppressed)
        for name, rows_in, accepted, quarantined, _, suppressed in rows
        if rows_in != accepted + quarantined + suppressed
    ]
    if unexplained:
        # An internal invariant: every log record is accepted or quarantined, exactly once.
        raise RuntimeError(
            f"log records neither accepted, quarantined nor suppressed (file, in, accepted, quarantined, suppressed): "
            f"{unexplained}"
        )
    conn.executemany(
        f"INSERT INTO {ingest_log} VALUES (?, 'events', ?, ?, ?, ?, 0, 0, ?)",
        [list(row) for row in rows],
    )
    conn.execute(f"INSERT INTO {events_stage} BY NAME SELECT * FROM {log_stage} ORDER BY source_file, source_row")
    conn.execute(f"DROP TABLE {log_stage}")
    drop_work_tables(conn)
    return rows


def drop_work_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Free the temp tables of translate_event_log (also after a failed ingest)."""
    for table in (REJECTS_TABLE, COUNTS_TABLE, "_rt_lines", "_rt_raw", "_rt_names"):
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")


# ---- transitions (transitions-*.jsonl): read for marts.segment_membership_history --------------------------------

TRANSITION_COLUMNS = ("id", "known_customer", "segment", "change", "event_id", "occurred_at", "source")
TRANSITION_CHANGES = ("entered", "exited")


@dataclass(frozen=True)
class TransitionLog:
    """The transitions of a log folder, and what was set aside (counted per reason, never silently dropped).

    `transitions`: one row per usable line, in log order: id, known_customer, segment, change, event_id,
    occurred_at (UTC, naive), source, origin_file, origin_row. `set_aside`: reason code -> lines (`torn_last_line`,
    `malformed_json`, `not_a_json_object`, `missing_field`, `invalid_change`, `invalid_timestamp`); `examples`:
    the first line of each reason (`file:line: reason`).
    """

    transitions: pd.DataFrame
    lines_read: int
    set_aside: dict[str, int]
    examples: tuple[str, ...]


def read_transitions(conn: duckdb.DuckDBPyConnection, files: list[Path], log_dir: Path | None = None) -> TransitionLog:
    """Every transition line of the files (see TransitionLog); a torn last line is counted, not read."""
    empty = pd.DataFrame({name: pd.Series(dtype="object") for name in (*TRANSITION_COLUMNS, "origin_file")})
    if not files:
        return TransitionLog(empty.assign(origin_row=pd.Series(dtype="int64")), 0, {}, ())
    lines = _load_log_lines(conn, files, log_dir)
    structure = json.dumps({name: "VARCHAR" for name in TRANSITION_COLUMNS})
    changes = ", ".join(sql_string(change) for change in TRANSITION_CHANGES)
    with _utc_session(conn):
        conn.execute(f"""
CREATE OR REPLACE TEMP TABLE _rt_transitions AS
SELECT origin_file, origin_row, r.*, timezone('UTC', try_cast(r.occurred_at AS TIMESTAMPTZ)) AS occurred_utc,
       CASE WHEN reason IS NOT NULL THEN reason
            WHEN r.id IS NULL OR r.segment IS NULL OR r.change IS NULL OR r.occurred_at IS NULL
                THEN 'missing_field: id, segment, change and occurred_at are required'
            WHEN r.change NOT IN ({changes}) THEN 'invalid_change: change=''' || left(r.change, 40) || ''''
            WHEN try_cast(r.occurred_at AS TIMESTAMPTZ) IS NULL
                THEN 'invalid_timestamp: occurred_at=''' || left(r.occurred_at, 40) || ''''
       END AS reason
FROM (SELECT origin_file, origin_row, reason,
             CASE WHEN reason IS NULL THEN json_transform(line, '{structure}') END AS r
      FROM (SELECT *, CASE WHEN NOT json_valid(line) AND origin_row = max(origin_row) OVER (PARTITION BY origin_file)
                           THEN '{TORN_LAST_LINE}: not valid JSON (a write cut short: never acknowledged)'
                           ELSE {json_reason_sql("line")} END AS reason
            FROM _rt_raw))""")
    conn.execute("DROP TABLE temp._rt_raw")
    transitions = conn.execute("""
SELECT id, known_customer IN ('true', '1') AS known_customer, segment, change, event_id,
       occurred_utc AS occurred_at, coalesce(source, 'realtime') AS source, origin_file, origin_row
FROM _rt_transitions WHERE reason IS NULL ORDER BY origin_file, origin_row""").df()
    reasons = conn.execute("""
SELECT split_part(reason, ':', 1) AS code, count(*),
       arg_min(origin_file || ':' || origin_row || ': ' || reason,
       (origin_file, origin_row))
FROM _rt_transitions WHERE reason IS NOT NULL GROUP BY 1 ORDER BY 1""").fetchall()
    conn.execute("DROP TABLE temp._rt_transitions")
    return TransitionLog(transitions, lines, {code: n for code, n, _ in reasons}, tuple(e for _, _, e in reasons))


@contextmanager
def _utc_session(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Offsets are applied and a naive time is UTC while the transitions are read (then the zone is restored)."""
    saved = conn.execute("SELECT current_setting('TimeZone')").fetchall()[0][0]
    conn.execute("SET TimeZone = 'UTC'")
    try:
        yield
    finally:
        conn.execute(f"SET TimeZone = {sql_string(saved)}")
