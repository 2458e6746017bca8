"""Erasure receipts: an append-only, hash-chained table `privacy.erasure_receipts`, and its verification.

Each row says what one erasure removed, from where and when, naming the person only by their salted hash
(privacy.subjects). Each row carries the hash of the previous row and its own hash over its content, so editing,
reordering or deleting any row breaks the chain; the chain head (last sequence number and hash) is also written
to `<data dir>/privacy/receipts_head`, outside the warehouse, so deleting the newest rows is detected too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

SCHEMA = "privacy"
RECEIPTS = f"{SCHEMA}.erasure_receipts"
GENESIS_HASH = "0" * 64
HEAD_FILE = "receipts_head"
DDL = (
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {RECEIPTS} (
        seq bigint not null primary key, subject_hash varchar not null, requested_at timestamp,
        erased_at timestamp not null, source varchar not null, removed_json varchar not null,
        previous_hash varchar not null, row_hash varchar not null)""",
)
CHAINED_FIELDS = ("seq", "subject_hash", "requested_at", "erased_at", "source", "removed_json", "previous_hash")


def ensure_receipts(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the receipts table when missing (idempotent)."""
    for statement in DDL:
        conn.execute(statement)


def _iso(value: Any) -> str | None:
    return value.isoformat(sep=" ") if isinstance(value, datetime) else (None if value is None else str(value))


def row_hash(row: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a receipt's chained fields (timestamps as ISO text)."""
    canonical = {name: (_iso(row[name]) if name.endswith("_at") else row[name]) for name in CHAINED_FIELDS}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def append_receipt(
    conn: duckdb.DuckDBPyConnection,
    subject_hash: str,
    requested_at: datetime | None,
    erased_at: datetime,
    source: str,
    removed: dict[str, Any],
    head_path: Path,
) -> dict[str, Any]:
    """Append one receipt chained to the last one and move the chain head file; returns the row written."""
    ensure_receipts(conn)
    last = conn.execute(f"select seq, row_hash from {RECEIPTS} order by seq desc limit 1").fetchone()
    seq, previous = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    # Microseconds are dropped so the hash of what is written equals the hash of what is read back.
    row = {
        "seq": seq,
        "subject_hash": subject_hash,
        "requested_at": requested_at.replace(microsecond=0) if requested_at else None,
        "erased_at": erased_at.replace(microsecond=0),
        "source": source,
        "removed_json": json.dumps(removed, sort_keys=True, separators=(",", ":")),
        "previous_hash": previous,
    }
    row["row_hash"] = row_hash(row)
    conn.execute(
        f"insert into {RECEIPTS} values (?, ?, ?, ?, ?, ?, ?, ?)", [row[k] for k in (*CHAINED_FIELDS, "row_hash")]
    )
    head_path.parent.mkdir(parents=True, exist_ok=True)
    head_path.write_text(f"{seq} {row['row_hash']}\n", encoding="utf-8")
    return row


@dataclass(frozen=True)
class ChainVerification:
    """Outcome of verify_chain: `ok`, the number of receipts, and the first problem found (None when ok)."""

    ok: bool
    receipts: int
    problem: str | None = None


def verify_chain(conn: duckdb.DuckDBPyConnection, head_path: Path | None) -> ChainVerification:
    """Recompute every receipt's hash and link in sequence order, then compare the last one with the head file."""
    ensure_receipts(conn)
    cursor = conn.execute(f"select {', '.join(CHAINED_FIELDS)}, row_hash from {RECEIPTS} order by seq")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, values)) for values in cursor.fetchall()]
    previous = GENESIS_HASH
    for expected_seq, row in enumerate(rows, start=1):
        if row["seq"] != expected_seq:
            return ChainVerification(False, len(rows), f"receipt {expected_seq} is missing (found seq {row['seq']})")
        if row["previous_hash"] != previous:
            return ChainVerification(
                False, len(rows), f"receipt {row['seq']} does not link to receipt {row['seq'] - 1}"
            )
        if row_hash(row) != row["row_hash"]:
            return ChainVerification(False, len(rows), f"receipt {row['seq']} was altered (its hash does not match)")
        previous = row["row_hash"]
    head = head_path.read_text(encoding="utf-8").split() if head_path is not None and head_path.is_file() else None
    if head is None:
        return ChainVerification(
            not rows, len(rows), None if not rows else f"the chain head file {HEAD_FILE} is missing"
        )
    head_seq, head_hash = int(head[0]), head[1]
    if head_seq != len(rows) or head_hash != previous:
        return ChainVerification(
            False,
            len(rows),
            f"the chain ends at receipt {len(rows)} but its head file says {head_seq}: "
            "receipts were removed or replaced",
        )
    return ChainVerification(True, len(rows))
