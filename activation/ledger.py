"""Sync ledger in the warehouse (schema `sync`): what each destination holds per audience, runs, batches,
control group and per-member provenance.

States of `sync.destination_members.state`:
  pending_add     written just before an add batch is sent; becomes `confirmed` only after the API confirms it
  confirmed       the destination holds this member with these identifiers and this value
  pending_remove  written just before a remove batch is sent; the row is deleted once the API confirms it
A crash leaves pending_* rows; the next run re-sends exactly those (every destination's add/remove is
idempotent: set semantics at the ad platforms, upserts at the CRMs, event ids at the webhook), so nothing is
lost and nothing is duplicated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import duckdb
import orjson
import pandas as pd

SCHEMA = "sync"
PENDING_ADD = "pending_add"
CONFIRMED = "confirmed"
PENDING_REMOVE = "pending_remove"
VALUE_DECIMALS = 2  # values are compared at cent precision so float noise never triggers a re-send

DDL = [
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {SCHEMA}.destination_members (
        destination varchar not null, audience varchar not null, member_key varchar not null,
        identifiers_json varchar not null, fingerprint varchar not null, value double, external_id varchar,
        state varchar not null, run_id varchar not null, model_version varchar, segment_rule varchar,
        updated_at timestamp not null, primary key (destination, audience, member_key))""",
    f"""create table if not exists {SCHEMA}.runs (
        run_id varchar not null, audience varchar not null, destination varchar not null,
        model_version varchar, segment_rule varchar, dry_run boolean not null, status varchar not null,
        started_at timestamp not null, finished_at timestamp, previous_size bigint, planned_size bigint,
        added bigint, removed bigint, unchanged bigint, failed bigint, batches bigint, message varchar)""",
    f"""create table if not exists {SCHEMA}.batches (
        run_id varchar not null, audience varchar not null, destination varchar not null, batch_seq integer not null,
        action varchar not null, size integer not null, confirmed integer not null, failed integer not null,
        response_json varchar, recorded_at timestamp not null)""",
    f"""create table if not exists {SCHEMA}.control_group (
        run_id varchar not null, audience varchar not null, customer_id varchar not null,
        recorded_at timestamp not null)""",
    # Removals owed to destinations that ran as dry-runs when a person was erased (no ledger rows to diff
    # against): the identifiers a removal needs, captured before the person's rows were deleted; the next sync
    # sends them and deletes the rows (privacy/erasure: README "Erasure and consent").
    f"""create table if not exists {SCHEMA}.erasure_removals (
        destination varchar not null, audience varchar not null, member_key varchar not null,
        identifiers_json varchar not null, value double, external_id varchar, recorded_at timestamp not null,
        primary key (destination, audience, member_key))""",
    f"""create table if not exists {SCHEMA}.members_provenance (
        run_id varchar not null, audience varchar not null, customer_id varchar not null, is_control boolean not null,
        model_version varchar, segment_rule varchar, recorded_at timestamp not null)""",
]
LEDGER_COLUMNS = [
    "member_key",
    "identifiers_json",
    "fingerprint",
    "value",
    "external_id",
    "state",
    "run_id",
    "model_version",
    "segment_rule",
]


def utc_now() -> datetime:
    """Current UTC time as a naive timestamp (the warehouse stores UTC without zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the `sync` schema and its tables when missing (idempotent)."""
    for statement in DDL:
        conn.execute(statement)


@dataclass(frozen=True)
class SyncRecord:
    """One member as a destination sees it: a stable key, what is sent to identify it, an optional value."""

    member_key: str
    identifiers: Mapping[str, Any]
    value: float | None = None
    external_id: str | None = None
    origin_run_id: str | None = None  # run that first sent this change; stable across resumed runs

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of the identifiers (changes when what we send for the member changes).

        Cached per record (the identifiers are not changed after construction); member_records.to_record seeds it
        with the fingerprint the plan already computed.
        """
        return fingerprint_of(self.identifiers)


def fingerprint_of(identifiers: Mapping[str, Any]) -> str:
    """SHA-256 hex of identifiers serialized as sorted, compact JSON (canonical_json)."""
    return hashlib.sha256(canonical_json(identifiers)).hexdigest()


def canonical_json(identifiers: Mapping[str, Any]) -> bytes:
    """`json.dumps(identifiers, sort_keys=True, separators=(",", ":"), default=str)` as UTF-8, byte for byte.

    A flat dict of plain values (str, None, bool, int, float of Python's non-exponent range) is written by orjson's
    C encoder, a few times faster (the webhook's fingerprint per member was a third of its dry-run step); its text
    is used when it is plain ASCII without an escape, where the two encoders agree. Anything else: json.dumps."""
    if type(identifiers) is dict and all(_orjson_writes_as_json(value) for value in identifiers.values()):
        try:
            text = orjson.dumps(identifiers, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # a key that is not a str, an int beyond 64 bits
            text = b"\\"
        if text.isascii() and b"\\" not in text and b"\x7f" not in text:
            return text
    return json.dumps(identifiers, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def _orjson_writes_as_json(value: Any) -> bool:
    """True when orjson writes this value as json.dumps does (floats: below 1e-4 Python switches to an exponent
    orjson writes differently; 1e16 and above are kept out too)."""
    kind = type(value)
    if kind is float:
        return value == 0.0 or 1e-4 <= abs(value) < 1e16
    return value is None or kind is str or kind is bool or kind is int


def rounded_value(value: Any) -> float | None:
    """A member value at cent precision, or None when missing."""
    if value is None or value != value:
        return None
    return round(float(value), VALUE_DECIMALS)


@dataclass
class Diff:
    """What to send: keys to add (new, changed or unconfirmed), keys to remove, keys already in place.

    `replace` lists keys whose identifiers changed: the old identity is removed and the new one added.
    """

    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)


def plan_diff(current: pd.DataFrame, ledger: pd.DataFrame) -> Diff:
    """Diff of current members (member_key, fingerprint, value) against the ledger rows of one destination."""
    current_rows = {row.member_key: row for row in current.itertuples(index=False)}
    ledger_rows = {row.member_key: row for row in ledger.itertuples(index=False)}
    diff = Diff()
    for key in sorted(ledger_rows.keys() - current_rows.keys()):
        diff.remove.append(key)
    for key in sorted(current_rows):
        now = current_rows[key]
        held = ledger_rows.get(key)
        if held is None:
            diff.add.append(key)
        elif held.fingerprint != now.fingerprint:
            diff.replace.append(key)
            diff.remove.append(key)
            diff.add.append(key)
        elif held.state == CONFIRMED and rounded_value(held.value) == rounded_value(now.value):
            diff.unchanged.append(key)
        else:
            diff.add.append(key)  # value changed, or a pending row from an interrupted run
    diff.remove.sort()
    return diff


def diff_in_warehouse(
    conn: duckdb.DuckDBPyConnection, destination: str, audience: str, current: pd.DataFrame
) -> tuple[Diff, pd.DataFrame]:
    """`plan_diff` of current members against the ledger, computed in DuckDB; call ensure_schema first.

    `current`: member_key (unique), fingerprint, value. Returns the diff and the ledger rows a sync needs besides:
    those to remove (their exact identifiers) and those left pending_add by an interrupted run.
    Values compare at cent precision: the ledger stores rounded_value, and current values are rounded the same
    (Python) way before the comparison.
    """
    held_any = conn.execute(
        f"select exists (select 1 from {SCHEMA}.destination_members where destination = ? and audience = ?)",
        [destination, audience],
    ).fetchall()[0][0]
    if not held_any:  # a first sync, and every dry-run: each current member is an add, nothing else is owed
        diff = Diff(add=sorted(current["member_key"].tolist()), remove=[], unchanged=[], replace=[])
        return diff, _ledger_rows_for(conn, destination, audience, [])
    frame = pd.DataFrame(
        {
            "member_key": current["member_key"].astype(object).to_numpy(),
            "fingerprint": current["fingerprint"].astype(object).to_numpy(),
            "value": pd.Series([rounded_value(v) for v in current["value"].tolist()], dtype="float64"),
        }
    )
    name = "_segmint_current"
    conn.register(name, frame)
    try:
        actions = conn.execute(
            f"""
            with current as (
                select member_key::varchar as member_key, fingerprint::varchar as fingerprint, value::double as value
                from {name}
            ), held as (
                select member_key, fingerprint, value, state from {SCHEMA}.destination_members
                where destination = ? and audience = ?
            )
            select coalesce(c.member_key, h.member_key) as member_key,
                case when c.member_key is null then 'remove'
                     when h.member_key is null then 'add'
                     when h.fingerprint <> c.fingerprint then 'replace'
                     when h.state = ? and h.value is not distinct from c.value then 'unchanged'
                     else 'add' end as action
            from current as c full outer join held as h on c.member_key = h.member_key
            """,
            [destination, audience, CONFIRMED],
        ).df()
    finally:
        conn.unregister(name)
    by_action = {action: sorted(group["member_key"].tolist()) for action, group in actions.groupby("action")}
    replace = by_action.get("replace", [])
    diff = Diff(
        add=sorted(by_action.get("add", []) + replace),
        remove=sorted(by_action.get("remove", []) + replace),
        unchanged=by_action.get("unchanged", []),
        replace=replace,
    )
    return diff, _ledger_rows_for(conn, destination, audience, diff.remove)


def _ledger_rows_for(conn: duckdb.DuckDBPyConnection, destination: str, audience: str, keys: list[str]) -> pd.DataFrame:
    """Ledger rows of these member keys plus every pending_add row (load_ledger's columns and order)."""
    name = "_segmint_keys"
    conn.register(name, pd.DataFrame({"member_key": pd.Series(keys, dtype=object)}))
    try:
        return conn.execute(
            f"select {', '.join(LEDGER_COLUMNS)} from {SCHEMA}.destination_members "
            f"where destination = ? and audience = ? and (state = ? or member_key in (select member_key::varchar from {name})) "
            "order by member_key",
            [destination, audience, PENDING_ADD],
        ).df()
    finally:
        conn.unregister(name)


def held_member_keys(conn: duckdb.DuckDBPyConnection, destination: str, audience: str) -> set[str]:
    """Keys of the members the ledger has a row for (any state) for one destination and audience."""
    rows = conn.execute(
        f"select member_key from {SCHEMA}.destination_members where destination = ? and audience = ?",
        [destination, audience],
    ).fetchall()
    return {row[0] for row in rows}


def confirmed_external_ids(conn: duckdb.DuckDBPyConnection, destination: str, audience: str) -> set[str]:
    """Record ids the destination assigned to the members it is known to hold (confirmed rows)."""
    rows = conn.execute(
        f"select external_id from {SCHEMA}.destination_members where destination = ? and audience = ? "
        "and state = ? and external_id is not null",
        [destination, audience, CONFIRMED],
    ).fetchall()
    return {str(row[0]) for row in rows}


def load_ledger(conn: duckdb.DuckDBPyConnection, destination: str, audience: str) -> pd.DataFrame:
    """Every ledger row of one destination and audience (any state); call ensure_schema first."""
    return conn.execute(
        f"select {', '.join(LEDGER_COLUMNS)} from {SCHEMA}.destination_members "
        "where destination = ? and audience = ? order by member_key",
        [destination, audience],
    ).df()


def confirmed_size(conn: duckdb.DuckDBPyConnection, destination: str, audience: str) -> int:
    """Number of members the destination is known to hold for this audience (confirmed rows)."""
    row = conn.execute(
        f"select count(*) from {SCHEMA}.destination_members where destination = ? and audience = ? and state = ?",
        [destination, audience, CONFIRMED],
    ).fetchone()
    return int(row[0])


def previous_audience_size(conn: duckdb.DuckDBPyConnection, destination: str, audience: str) -> int:
    """Audience size the last executed (non-dry) run planned for this destination; else the confirmed count.

    The guard compares against what the last run meant to hold, so a run that failed half-way does not make
    the next, resuming run look like a big jump.
    """
    row = conn.execute(
        f"select planned_size from {SCHEMA}.runs where destination = ? and audience = ? and not dry_run "
        "order by started_at desc limit 1",
        [destination, audience],
    ).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else confirmed_size(conn, destination, audience)


def mark_pending_add(
    conn: duckdb.DuckDBPyConnection,
    destination: str,
    audience: str,
    records: Iterable[SyncRecord],
    run_id: str,
    model_version: str | None,
    segment_rule: str | None,
) -> None:
    """Write/overwrite rows as pending_add with the identifiers about to be sent (provenance of this run)."""
    records = list(records)
    if not records:
        return
    frame = pd.DataFrame(
        {
            "destination": destination,
            "audience": audience,
            "member_key": [r.member_key for r in records],
            "identifiers_json": [json.dumps(dict(r.identifiers), sort_keys=True, default=str) for r in records],
            "fingerprint": [r.fingerprint for r in records],
            "value": pd.Series([rounded_value(r.value) for r in records], dtype="float64"),
            "external_id": pd.Series([r.external_id for r in records], dtype="object"),
            "state": PENDING_ADD,
            "run_id": [r.origin_run_id or run_id for r in records],
            "model_version": model_version,
            "segment_rule": segment_rule,
            "updated_at": utc_now(),
        }
    )
    _insert_frame(conn, "insert or replace into {table} select * from {frame}", frame)


def _insert_frame(conn: duckdb.DuckDBPyConnection, statement: str, frame: pd.DataFrame) -> None:
    """Run a statement over a registered DataFrame (one vectorized statement instead of row-by-row inserts)."""
    name = "_segmint_frame"
    conn.register(name, frame)
    try:
        conn.execute(statement.format(table=f"{SCHEMA}.destination_members", frame=name))
    finally:
        conn.unregister(name)


def mark_pending_remove(
    conn: duckdb.DuckDBPyConnection, destination: str, audience: str, member_keys: Iterable[str]
) -> None:
    """Flag held rows as pending_remove just before their removal is sent."""
    keys = list(member_keys)
    if keys:
        conn.execute(
            f"update {SCHEMA}.destination_members set state = ?, updated_at = ? "
            "where destination = ? and audience = ? and member_key in (select unnest(?))",
            [PENDING_REMOVE, utc_now(), destination, audience, keys],
        )


def confirm_adds(
    conn: duckdb.DuckDBPyConnection,
    destination: str,
    audience: str,
    member_keys: Iterable[str],
    external_ids: Mapping[str, str] | None = None,
) -> None:
    """Mark rows confirmed after the API confirmed them, storing the destination's record id where it gave one."""
    keys = list(member_keys)
    if not keys:
        return
    conn.execute(
        f"update {SCHEMA}.destination_members set state = ?, updated_at = ? "
        "where destination = ? and audience = ? and member_key in (select unnest(?))",
        [CONFIRMED, utc_now(), destination, audience, keys],
    )
    if external_ids:
        frame = pd.DataFrame({"member_key": list(external_ids), "external_id": list(external_ids.values())})
        conn.register("_segmint_ids", frame)
        try:
            conn.execute(
                f"update {SCHEMA}.destination_members as held set external_id = ids.external_id "
                "from _segmint_ids as ids where held.member_key = ids.member_key "
                "and held.destination = ? and held.audience = ?",
                [destination, audience],
            )
        finally:
            conn.unregister("_segmint_ids")


def confirm_removes(
    conn: duckdb.DuckDBPyConnection, destination: str, audience: str, member_keys: Iterable[str]
) -> None:
    """Delete rows whose removal the API confirmed (the destination no longer holds them)."""
    keys = list(member_keys)
    if keys:
        conn.execute(
            f"delete from {SCHEMA}.destination_members "
            "where destination = ? and audience = ? and member_key in (select unnest(?)) and state = ?",
            [destination, audience, keys, PENDING_REMOVE],
        )


def records_from_ledger(ledger: pd.DataFrame, member_keys: Iterable[str]) -> list[SyncRecord]:
    """SyncRecords rebuilt from ledger rows (the exact identifiers that were sent), in the given key order."""
    by_key = {row.member_key: row for row in ledger.itertuples(index=False)}
    records = []
    for key in member_keys:
        row = by_key[key]
        external_id = row.external_id if isinstance(row.external_id, str) else None
        records.append(
            SyncRecord(
                key, json.loads(row.identifiers_json), rounded_value(row.value), external_id, origin_run_id=row.run_id
            )
        )
    return records


def start_run(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    audience: str,
    destination: str,
    model_version: str | None,
    segment_rule: str,
    dry_run: bool,
    previous_size: int,
    planned_size: int,
) -> None:
    """Insert the run row with status `running` (finish_run completes it)."""
    conn.execute(
        f"insert into {SCHEMA}.runs values (?, ?, ?, ?, ?, ?, 'running', ?, null, ?, ?, 0, 0, 0, 0, 0, null)",
        [run_id, audience, destination, model_version, segment_rule, dry_run, utc_now(), previous_size, planned_size],
    )


def finish_run(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    audience: str,
    destination: str,
    status: str,
    counts: Mapping[str, int],
    message: str | None = None,
) -> None:
    """Complete a run row with its status, counts and message (the destination's error on failure)."""
    conn.execute(
        f"update {SCHEMA}.runs set status = ?, finished_at = ?, added = ?, removed = ?, unchanged = ?, failed = ?, "
        "batches = ?, message = ? where run_id = ? and audience = ? and destination = ? and status = 'running'",
        [
            status,
            utc_now(),
            counts.get("added", 0),
            counts.get("removed", 0),
            counts.get("unchanged", 0),
            counts.get("failed", 0),
            counts.get("batches", 0),
            message,
            run_id,
            audience,
            destination,
        ],
    )


def record_batch(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    audience: str,
    destination: str,
    batch_seq: int,
    action: str,
    size: int,
    confirmed: int,
    failed: int,
    response: Any,
) -> None:
    """Log one sent batch with what the destination answered."""
    conn.execute(
        f"insert into {SCHEMA}.batches values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            audience,
            destination,
            batch_seq,
            action,
            size,
            confirmed,
            failed,
            json.dumps(response, default=str)[:20000],
            utc_now(),
        ],
    )


def record_membership(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    audience: str,
    members: pd.DataFrame,
    model_version: str | None,
    segment_rule: str,
) -> None:
    """Record provenance of every member and the held-out control group for this run (idempotent per run)."""
    now = utc_now()
    for table in ("members_provenance", "control_group"):
        conn.execute(f"delete from {SCHEMA}.{table} where run_id = ? and audience = ?", [run_id, audience])
    frame = pd.DataFrame(
        {
            "run_id": run_id,
            "audience": audience,
            "customer_id": members["customer_id"].astype(str),
            "is_control": members["is_control"].astype(bool),
            "model_version": model_version,
            "segment_rule": segment_rule,
            "recorded_at": now,
        }
    )
    conn.register("_segmint_members", frame)
    try:
        conn.execute(
            f"insert into {SCHEMA}.members_provenance select run_id, audience, customer_id, is_control, "
            "model_version, segment_rule, recorded_at from _segmint_members"
        )
        conn.execute(
            f"insert into {SCHEMA}.control_group select run_id, audience, customer_id, recorded_at "
            "from _segmint_members where is_control"
        )
    finally:
        conn.unregister("_segmint_members")


def add_erasure_removals(
    conn: duckdb.DuckDBPyConnection, destination: str, audience: str, records: Iterable[SyncRecord]
) -> int:
    """Owe these removals to a dry-run destination (sent by its next sync); returns how many were recorded."""
    ensure_schema(conn)
    rows = [
        [
            destination,
            audience,
            r.member_key,
            json.dumps(dict(r.identifiers), sort_keys=True, default=str),
            rounded_value(r.value),
            r.external_id,
            utc_now(),
        ]
        for r in records
    ]
    if rows:
        conn.executemany(f"insert or replace into {SCHEMA}.erasure_removals values (?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def erasure_removals(conn: duckdb.DuckDBPyConnection, destination: str, audience: str) -> list[SyncRecord]:
    """The removals owed to one destination and audience (oldest first)."""
    rows = conn.execute(
        f"select member_key, identifiers_json, value, external_id from {SCHEMA}.erasure_removals "
        "where destination = ? and audience = ? order by recorded_at, member_key",
        [destination, audience],
    ).fetchall()
    return [
        SyncRecord(key, json.loads(identifiers), value, external_id) for key, identifiers, value, external_id in rows
    ]


def settle_erasure_removals(
    conn: duckdb.DuckDBPyConnection, destination: str, audience: str, member_keys: Iterable[str]
) -> None:
    """Forget the owed removals that were sent (the identifiers they carried are deleted with them)."""
    keys = list(member_keys)
    if keys:
        conn.execute(
            f"delete from {SCHEMA}.erasure_removals where destination = ? and audience = ? "
            "and member_key in (select unnest(?))",
            [destination, audience, keys],
        )
