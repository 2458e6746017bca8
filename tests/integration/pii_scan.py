"""Find a shop's e-mails, phones and names where they must not be: outside raw tables and the sync edge.

Used by tests/integration/test_pii_at_edges.py on the shared whole-graph deployment, and runnable by hand on any
run folder: `python -m tests.integration.pii_scan <customers.csv> <warehouse.duckdb> <folder> [<folder> ...]`.

What counts as found (all case-insensitive):
- e-mail: an address of customers.csv anywhere in a value or a file (addresses are pulled out with a regex);
- phone: a phone of customers.csv, compared on its digits (10 or more), anywhere;
- name: a table cell equal to a first or last name, or "first last" of one customer as two adjacent words
  anywhere in a text or a file (a first name alone in prose, "Will", "May", would be noise, not a leak).
Where is not scanned (the edges, by design): schemas `raw`, `edge` and `edge_forms`; the landing files (`demo/`, `landing_work/`)
and the upload files and dry-run requests for destinations (`exports/`).
"""

from __future__ import annotations

import csv
import re
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

EDGE_SCHEMAS = ("raw", "edge", "edge_forms")  # edge_forms: the stored match forms of the sync edge
# Folders under the data dir that are the edges: the landing zone (input) and what goes to destinations.
EDGE_FOLDERS = ("demo", "landing_work", "exports")
EMAIL = re.compile(r"[a-z0-9._%+'-]+@[a-z0-9.-]+\.[a-z]{2,}")
PHONE_LIKE = re.compile(r"\+?\d[\d\s().\-]{8,}\d")
WORD = re.compile(r"[^\W\d_]+")
MIN_PHONE_DIGITS = 10


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@dataclass(frozen=True)
class ShopPii:
    """The identifiers of one shop's customers.csv, normalized for matching."""

    emails: frozenset[str]
    phones: frozenset[str]  # digits only
    names: frozenset[str]  # single first or last names (for exact cell matches)
    full_names: frozenset[tuple[str, str]]  # (first, last) as lower-case words

    @classmethod
    def from_customers_csv(cls, path: Path) -> ShopPii:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        emails = {(r.get("email") or "").strip().lower() for r in rows}
        phones = {_digits(r.get("phone") or "") for r in rows}
        firsts = [(r.get("first_name") or "").strip().lower() for r in rows]
        lasts = [(r.get("last_name") or "").strip().lower() for r in rows]
        return cls(
            emails=frozenset(e for e in emails if "@" in e),
            phones=frozenset(p for p in phones if len(p) >= MIN_PHONE_DIGITS),
            names=frozenset(n for n in firsts + lasts if n),
            full_names=frozenset((first, last) for first, last in zip(firsts, lasts, strict=True) if first and last),
        )

    def in_text(self, text: str) -> list[str]:
        """What of this shop's PII a free text holds: `email a@b.c`, `phone 4955555396`, `name noah gonzalez`."""
        lowered = text.lower()
        found = [f"email {e}" for e in sorted(set(EMAIL.findall(lowered)) & self.emails)]
        phones = {_digits(match) for match in PHONE_LIKE.findall(lowered)}
        found += [f"phone {p}" for p in sorted(p for p in phones if p in self.phones or p[-10:] in self.phones)]
        words = WORD.findall(lowered)
        found += [f"name {first} {last}" for first, last in sorted(set(zip(words, words[1:])) & self.full_names)]
        return found

    def in_cells(self, values: set[str]) -> list[str]:
        """What a column's distinct values hold: exact names, and anything in_text finds."""
        found = [f"name {v}" for v in sorted(values & self.names)]
        for value in values:
            found += self.in_text(value)
        return sorted(set(found))


def scan_warehouse(warehouse: Path, pii: ShopPii) -> list[str]:
    """`schema.table.column: <what>` for every non-edge text column holding the shop's PII."""
    findings = []
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        columns = conn.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR' and table_schema not in (" + ", ".join(f"'{s}'" for s in EDGE_SCHEMAS) + ") "
            "order by all"
        ).fetchall()
        for schema, table, column in columns:
            values = conn.execute(
                f'select distinct lower(cast("{column}" as varchar)) from "{schema}"."{table}" where "{column}" is not null'
            ).fetchall()
            found = pii.in_cells({row[0] for row in values})
            findings += [f"{schema}.{table}.{column}: {what}" for what in found[:3]]
    return findings


def scan_event_log(dagster_home: Path, pii: ShopPii) -> list[str]:
    """`<db file> event_logs: <what>` for the Dagster event log (every materialization, check, log message)."""
    findings = []
    for database in sorted(dagster_home.rglob("*.db")):
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
            tables = {row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")}
            if "event_logs" not in tables:
                continue
            text = "\n".join(row[0] for row in conn.execute("select event from event_logs") if row[0])
        findings += [f"{database.name} event_logs: {what}" for what in pii.in_text(text)[:3]]
    return findings


def scan_files(folder: Path, pii: ShopPii, skip: tuple[Path, ...] = ()) -> list[str]:
    """`<file>: <what>` for every file under `folder` (text or binary) except `skip` and DuckDB files."""
    findings = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if any(path.is_relative_to(s) for s in skip) or ".duckdb" in path.name:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        findings += [f"{path}: {what}" for what in pii.in_text(text)[:3]]
    return findings


def scan_run(customers_csv: Path, warehouse: Path, data_dir: Path, dagster_home: Path) -> list[str]:
    """Every place outside the edges where the shop's PII was found (empty = clean)."""
    pii = ShopPii.from_customers_csv(customers_csv)
    edges = tuple(data_dir / folder for folder in EDGE_FOLDERS)
    return (
        scan_warehouse(warehouse, pii)
        + scan_event_log(dagster_home, pii)
        + scan_files(data_dir, pii, skip=edges)
        + scan_files(dagster_home, pii, skip=edges)
    )


if __name__ == "__main__":
    csv_path, warehouse_path, data, home = (Path(arg) for arg in sys.argv[1:5])
    results = scan_run(csv_path, warehouse_path, data, home)
    print("\n".join(results) or "no PII outside raw tables and the sync edge")
    sys.exit(1 if results else 0)
