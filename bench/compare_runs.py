"""Are two runs of the same cut bit-identical? `python -m bench.compare_runs A B [--schemas marts ml]`.

A and B are warehouse files, or folders holding them (two `python -m bench.clv --work-dir` folders: each
`cdnow_<as_of>/data/warehouse.duckdb` of A is compared with the same one in B). Per table or view of the schemas given, the
rows of A not in B and of B not in A (EXCEPT ALL both ways: doubles compare by value, so a last-bit difference
counts) and, when they differ, the columns whose values differ as multisets. Exit status 1 when anything differs.

Some columns record the run rather than the data (wall-clock seconds, run ids, the time a fit was stored): list them
with --ignore TABLE.COLUMN to compare the rest of the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

WAREHOUSE = Path("data") / "warehouse.duckdb"


def warehouse_pairs(a: Path, b: Path) -> list[tuple[str, Path, Path]]:
    """(name, warehouse of A, warehouse of B): the two files, or every run folder of A that B also has."""
    if a.is_file() and b.is_file():
        return [(a.name, a, b)]
    pairs = []
    for run in sorted(p for p in a.iterdir() if (p / WAREHOUSE).is_file()):
        other = b / run.name / WAREHOUSE
        if not other.is_file():
            raise SystemExit(f"{run.name}: no {WAREHOUSE} in {b}")
        pairs.append((run.name, run / WAREHOUSE, other))
    if not pairs:
        raise SystemExit(f"no run folder with {WAREHOUSE} in {a}")
    return pairs


def _missing(conn: duckdb.DuckDBPyConnection, table: str, select: str, left: str, right: str) -> int:
    """Rows of `select` (columns) in database `left`'s `table` that `right`'s lacks, duplicates counted."""
    query = f"select {select} from {left}.{table} except all select {select} from {right}.{table}"
    return conn.execute(f"select count(*) from ({query})").fetchone()[0]


def compare(a: Path, b: Path, schemas: list[str], ignore: set[str]) -> list[str]:
    """One line per table that differs (or exists on one side only); empty when the tables are identical."""
    problems = []
    with duckdb.connect() as conn:
        conn.execute(f"attach '{a}' as a (read_only)")
        conn.execute(f"attach '{b}' as b (read_only)")
        tables = {}
        for side in ("a", "b"):
            # Views too (marts.customer_explanations, ...): they compute when read, so they can differ by themselves.
            rows = conn.execute(
                "select schema_name, table_name from duckdb_tables() where database_name = $1 "
                "union all select schema_name, view_name from duckdb_views() where database_name = $1 and not internal",
                [side],
            ).fetchall()
            rows = [(schema, table) for schema, table in rows if schema in schemas]
            tables[side] = {f"{schema}.{table}" for schema, table in rows}
        for table in sorted(tables["a"] ^ tables["b"]):
            problems.append(f"{table}: only in {'A' if table in tables['a'] else 'B'}")
        for table in sorted(tables["a"] & tables["b"]):
            columns = [
                row[0]
                for row in conn.execute(
                    "select column_name from duckdb_columns() where database_name = 'a' "
                    "and schema_name || '.' || table_name = ? order by column_index",
                    [table],
                ).fetchall()
                if f"{table}.{row[0]}" not in ignore
            ]
            if not columns:
                continue
            select = ", ".join(f'"{c}"' for c in columns)
            only_a, only_b = _missing(conn, table, select, "a", "b"), _missing(conn, table, select, "b", "a")
            if only_a or only_b:
                differing = [
                    c
                    for c in columns
                    if _missing(conn, table, f'"{c}"', "a", "b") or _missing(conn, table, f'"{c}"', "b", "a")
                ]
                problems.append(
                    f"{table}: {only_a} rows only in A, {only_b} only in B; columns: {', '.join(differing)}"
                )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--schemas", nargs="+", default=["staging", "intermediate", "marts", "ml"])
    parser.add_argument("--ignore", nargs="*", default=[], metavar="TABLE.COLUMN")
    args = parser.parse_args(argv)
    differ = False
    for name, a, b in warehouse_pairs(args.a, args.b):
        problems = compare(a, b, args.schemas, set(args.ignore))
        differ |= bool(problems)
        print(f"{name}: {'identical' if not problems else 'DIFFERENT'}", flush=True)
        for line in problems:
            print(f"  {line}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
