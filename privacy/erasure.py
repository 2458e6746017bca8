"""Erasure (GDPR art. 17, CCPA deletion): remove a person from the warehouse and the data folder, suppress them
at ingest, and write a receipt.

What `erase_subject` does, in this order:
1. finds the person's identifiers in the raw tables: the customer id, their e-mail and phone (as given and
   normalized), and the anonymous ids their web events carry;
2. deletes every warehouse row that names one of them, in every schema but `privacy` (exact match on identifier
   columns, JSON-string match on JSON columns such as raw.quarantine.raw_record); the sync ledger's rows
   (sync.destination_members, sync.erasure_removals) are kept until the next sync has removed the person from
   each destination, which then deletes them (a removal needs the identifiers that were sent);
3. deletes every file under the data folder that names one of them (exports, dry-run requests, reports, models,
   snapshots: all rebuilt by the next run), except line-based logs under `realtime/`, where only the person's
   lines are removed; the landing zone is the shop's input and is never rewritten (see `skip_dirs`);
4. adds the salted hashes of the customer id and anonymous ids to `privacy.suppression`, which ingest applies;
5. appends a receipt (privacy.receipts) listing the row counts per table and the files removed.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from activation import identifiers as ids
from privacy.receipts import SCHEMA, append_receipt
from privacy.subjects import PrivacyError, hashes_of, subject_hash

SUPPRESSION = f"{SCHEMA}.suppression"
SUPPRESSION_DDL = (
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {SUPPRESSION} (
        subject_hash varchar not null primary key, identifier_kind varchar not null, added_at timestamp not null)""",
)
DELETION_REQUESTS_FILE = "deletion_requests.csv"
# Columns that hold one identifier each (matched exactly) and columns that hold JSON text (matched as a JSON string).
IDENTIFIER_COLUMNS = frozenset({"customer_id", "prospect_id", "member_key", "anonymous_id", "email", "phone"})
JSON_COLUMNS = frozenset({"raw_record", "identifiers_json", "response_json"})
JSON_IDENTIFIER_KEYS = "customer|user|anonymous|email|phone|member|prospect|profile|contact|external"
# Kept by erasure, emptied by the sync path: the ledger rows a destination still holds and the removals owed to
# dry-run destinations (see the module docstring).
KEPT_TABLES = ("sync.destination_members", "sync.erasure_removals")
REALTIME_DIR = "realtime"
LINE_LOG_SUFFIXES = (".jsonl", ".ndjson", ".log")


@dataclass(frozen=True)
class ErasureRequest:
    """One person to forget: their customer id, when they asked, and where the request came from."""

    customer_id: str
    requested_at: datetime | None
    source: str


@dataclass
class Subject:
    """Every identifier of one person found in the raw tables."""

    customer_id: str
    emails: set[str] = field(default_factory=set)
    phones: set[tuple[str, str | None]] = field(default_factory=set)  # (phone as given, country)
    anonymous_ids: set[str] = field(default_factory=set)

    @property
    def terms(self) -> set[str]:
        """The strings that name this person anywhere (ids, e-mails and phones as given and normalized)."""
        terms = {self.customer_id, *self.anonymous_ids}
        for email in self.emails:
            terms |= {email, email.strip().lower(), ids.normalize_email(email), ids.normalize_email_google(email)}
        for phone, country in self.phones:
            digits = re.sub(r"\D", "", phone)
            terms |= {phone, digits, "+" + digits, ids.normalize_phone_e164(phone, country)}
        return {term for term in terms if term and len(term) >= 3}

    @property
    def hashed_terms(self) -> set[str]:
        """The SHA-256 forms sent to ad platforms (files naming them are derived from the person too)."""
        hashed = set()
        for email in self.emails:
            hashed |= {
                ids.hashed_or_empty(ids.normalize_email(email)),
                ids.hashed_or_empty(ids.normalize_email_google(email)),
            }
        for phone, country in self.phones:
            hashed |= {
                ids.hashed_or_empty(ids.normalize_phone_e164(phone, country)),
                ids.hashed_or_empty(ids.normalize_phone_meta(phone, country)),
            }
        return {h for h in hashed if h}


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def read_deletion_requests(path: Path) -> list[ErasureRequest]:
    """Rows of a `deletion_requests.csv` (customer_id, requested_at); a malformed file is one-line PrivacyError."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = {(name or "").strip().lower() for name in reader.fieldnames or []}
        if "customer_id" not in header:
            raise PrivacyError(
                f"{path.name}: required column 'customer_id' is missing (columns: customer_id, requested_at)"
            )
        requests = []
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            if not row.get("customer_id"):
                raise PrivacyError(f"{path.name}: line {line}: customer_id is empty")
            requested_at = None
            if row.get("requested_at"):
                try:
                    requested_at = datetime.fromisoformat(row["requested_at"])
                except ValueError:
                    raise PrivacyError(
                        f"{path.name}: line {line}: requested_at {row['requested_at']!r} "
                        "is not a date or timestamp (YYYY-MM-DD[ HH:MM:SS])"
                    ) from None
                if requested_at.tzinfo is not None:
                    requested_at = requested_at.astimezone(UTC).replace(tzinfo=None)
            requests.append(ErasureRequest(row["customer_id"], requested_at, DELETION_REQUESTS_FILE))
    return requests


def ensure_suppression(conn: duckdb.DuckDBPyConnection) -> None:
    for statement in SUPPRESSION_DDL:
        conn.execute(statement)


SALT_FINGERPRINT = f"{SCHEMA}.salt_fingerprint"


def verify_salt(conn: duckdb.DuckDBPyConnection, salt: str) -> None:
    """Record the salt's fingerprint on first use; a different salt later is a one-line PrivacyError.

    With another salt no hash on the suppression list matches anyone any more, so erased persons would quietly
    come back with the next ingest: stopping is the only safe answer.
    """
    ensure_suppression(conn)
    conn.execute(f"create table if not exists {SALT_FINGERPRINT} (fingerprint varchar not null)")
    fingerprint = subject_hash(salt, "segmint salt fingerprint")
    stored = conn.execute(f"select fingerprint from {SALT_FINGERPRINT}").fetchall()
    if not stored:
        conn.execute(f"insert into {SALT_FINGERPRINT} values (?)", [fingerprint])
    elif stored[0][0] != fingerprint:
        raise PrivacyError(
            "the privacy salt changed since the suppression list was written, so erased persons would "
            "come back: restore SEGMINT_PRIVACY_SALT or data/privacy/salt from your backup"
        )


def suppressed_hashes(conn: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """Every salted hash on the suppression list."""
    ensure_suppression(conn)
    return frozenset(row[0] for row in conn.execute(f"select subject_hash from {SUPPRESSION}").fetchall())


def is_suppressed(conn: duckdb.DuckDBPyConnection, salt: str, customer_id: str) -> bool:
    ensure_suppression(conn)
    row = conn.execute(
        f"select count(*) from {SUPPRESSION} where subject_hash = ?", [subject_hash(salt, customer_id)]
    ).fetchone()
    return row[0] > 0


def _table_exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return (
        conn.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
        ).fetchone()[0]
        > 0
    )


def find_subject(conn: duckdb.DuckDBPyConnection, customer_id: str) -> Subject:
    """The person's e-mails, phones and anonymous ids from raw.customers and raw.events (when they exist)."""
    subject = Subject(customer_id.strip())
    if _table_exists(conn, "raw", "customers"):
        for email, phone, country in conn.execute(
            "select email, phone, country from raw.customers where customer_id = ?", [subject.customer_id]
        ).fetchall():
            subject.emails |= {email} if email else set()
            subject.phones |= {(phone, country)} if phone else set()
    if _table_exists(conn, "raw", "events"):
        rows = conn.execute(
            "select distinct anonymous_id from raw.events where customer_id = ? and anonymous_id is not null",
            [subject.customer_id],
        ).fetchall()
        subject.anonymous_ids = {row[0] for row in rows}
    return subject


def _base_tables(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """`schema.table` -> [(column, type)] for every base table outside the privacy schema."""
    rows = conn.execute(
        "select c.table_schema, c.table_name, c.column_name, c.data_type from information_schema.columns c "
        "join information_schema.tables t using (table_catalog, table_schema, table_name) "
        "where t.table_type = 'BASE TABLE' and c.table_schema not in (?, 'information_schema', 'pg_catalog') "
        "and c.table_catalog = current_database() order by 1, 2, c.ordinal_position",
        [SCHEMA],
    ).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for schema, table, column, data_type in rows:
        tables.setdefault(f"{schema}.{table}", []).append((column, data_type))
    return tables


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def subject_rows_predicate(columns: Iterable[tuple[str, str]]) -> str | None:
    """SQL predicate over a table's columns that is true for rows naming a term of the list `$terms`; None: no column."""
    parts = []
    for column, data_type in columns:
        if data_type != "VARCHAR":
            continue
        name = column.lower()
        if name in IDENTIFIER_COLUMNS:
            parts.append(f"trim({_quote(column)}) in (select unnest($terms))")
        elif name in JSON_COLUMNS or name.endswith("_json"):
            # Only values under keys that name a person (customer_id, Email, anonymousId, ...): an order id that
            # happens to equal the customer id must not take another person's quarantined row with it.
            document = f"case when json_valid({_quote(column)}) then {_quote(column)} else '{{}}' end"
            parts.append(
                f"exists (select 1 from json_tree({document}) as e where regexp_matches(lower(e.key), "
                f"'{JSON_IDENTIFIER_KEYS}') and list_contains($terms, trim(e.value ->> '$')))"
            )
    return " or ".join(parts) or None


def erase_from_warehouse(
    conn: duckdb.DuckDBPyConnection, subject: Subject, keep: Iterable[str] = KEPT_TABLES
) -> dict[str, int]:
    """Delete every row naming the person outside the privacy schema (and `keep`); rows deleted per table."""
    terms = sorted(subject.terms)
    removed: dict[str, int] = {}
    kept = set(keep)
    for table, columns in _base_tables(conn).items():
        predicate = subject_rows_predicate(columns)
        if table in kept or predicate is None:
            continue
        schema, name = table.split(".", 1)
        qualified = f"{_quote(schema)}.{_quote(name)}"
        count = conn.execute(f"select count(*) from {qualified} where {predicate}", {"terms": terms}).fetchone()[0]
        if count:
            conn.execute(f"delete from {qualified} where {predicate}", {"terms": terms})
            removed[table] = int(count)
    return removed


def term_pattern(terms: Iterable[str]) -> re.Pattern[bytes]:
    """Bytes regex matching any term as a whole token (not inside a longer id, number or hash)."""
    alternatives = b"|".join(re.escape(t.encode("utf-8")) for t in sorted(set(terms), key=len, reverse=True))
    return re.compile(rb"(?<![A-Za-z0-9])(?:" + alternatives + rb")(?![A-Za-z0-9])", re.IGNORECASE)


def files_naming(root: Path, terms: Iterable[str], skip_dirs: Iterable[Path] = ()) -> list[Path]:
    """Files under `root` (not under `skip_dirs`) whose bytes name one of the terms."""
    pattern = term_pattern(terms)
    skipped = [Path(p).resolve() for p in skip_dirs]
    found = []
    for path in sorted(Path(root).rglob("*")):
        resolved = path.resolve()
        if not path.is_file() or any(resolved.is_relative_to(s) for s in skipped):
            continue
        if pattern.search(path.read_bytes()):
            found.append(path)
    return found


def erase_from_files(data_dir: Path, subject: Subject, skip_dirs: Iterable[Path]) -> dict[str, list[str]]:
    """Delete the files under the data folder naming the person; drop only their lines from realtime logs."""
    terms = subject.terms | subject.hashed_terms
    pattern = term_pattern(terms)
    deleted, rewritten = [], []
    for path in files_naming(data_dir, terms, skip_dirs):
        relative = path.relative_to(data_dir).as_posix()
        if relative.startswith(REALTIME_DIR + "/") and path.suffix in LINE_LOG_SUFFIXES:
            lines = path.read_bytes().splitlines(keepends=True)
            path.write_bytes(b"".join(line for line in lines if not pattern.search(line)))
            rewritten.append(relative)
        else:
            path.unlink()
            deleted.append(relative)
    return {"files_deleted": deleted, "log_lines_removed_from": rewritten}


def suppress(conn: duckdb.DuckDBPyConnection, salt: str, subject: Subject) -> int:
    """Add the salted hashes of the person's customer id and anonymous ids to the suppression list."""
    ensure_suppression(conn)
    now = utc_now()
    rows = [(h, "customer_id", now) for h in hashes_of(salt, [subject.customer_id]).values()]
    rows += [(h, "anonymous_id", now) for h in hashes_of(salt, subject.anonymous_ids).values()]
    conn.executemany(f"insert or ignore into {SUPPRESSION} values (?, ?, ?)", rows)
    return len(rows)


def erase_subject(
    conn: duckdb.DuckDBPyConnection,
    request: ErasureRequest,
    salt: str,
    data_dir: Path,
    skip_dirs: Iterable[Path],
    head_path: Path,
    destinations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Forget one person everywhere segmint keeps data (module docstring); returns the receipt written.

    `destinations`: what the caller arranged with the destinations (which audiences and destinations get a
    removal at the next sync), recorded in the receipt as is.
    """
    subject = find_subject(conn, request.customer_id)
    removed_rows = erase_from_warehouse(conn, subject)
    files = erase_from_files(Path(data_dir), subject, skip_dirs)
    suppressed = suppress(conn, salt, subject)
    removed = {
        "warehouse_rows": removed_rows,
        **files,
        "suppressed_hashes": suppressed,
        "identifiers_found": {
            "emails": len(subject.emails),
            "phones": len(subject.phones),
            "anonymous_ids": len(subject.anonymous_ids),
        },
        "destinations": destinations or {},
    }
    return append_receipt(
        conn,
        subject_hash(salt, subject.customer_id),
        request.requested_at,
        utc_now(),
        request.source,
        removed,
        head_path,
    )


COMPACTION_DUE_FILE = "compaction_due"


def mark_compaction_due(data_dir: Path) -> None:
    """Remember that the warehouse must be rewritten once the syncs after an erasure have sent its removals."""
    path = Path(data_dir) / SCHEMA / COMPACTION_DUE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("the syncs after an erasure delete ledger rows; rewrite the warehouse after them\n")


def take_compaction_due(data_dir: Path) -> bool:
    """True (and the mark cleared) when an erasure asked for a rewrite of the warehouse after the syncs."""
    path = Path(data_dir) / SCHEMA / COMPACTION_DUE_FILE
    if not path.is_file():
        return False
    path.unlink()
    return True


def compact_warehouse(path: Path) -> None:
    """Rewrite the DuckDB file so deleted rows leave no bytes behind in its free blocks (call with no open connection).

    DuckDB reuses freed blocks but does not overwrite them, so a deleted e-mail may survive in the file until
    then; copying the database into a fresh file and swapping it in removes it.
    """
    path = Path(path)
    fresh = path.with_name(path.name + ".compact")
    fresh.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as conn:
        conn.execute("checkpoint")
        conn.execute(f"attach '{fresh}' as _compact")
        conn.execute(
            f"copy from database {_quote(conn.execute('select current_database()').fetchone()[0])} to _compact"
        )
        conn.execute("detach _compact")
    fresh.replace(path)
