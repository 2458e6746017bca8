"""`python -m bench.ingest_step LANDING_DIR WAREHOUSE`: the raw ingest and the raw GX checks alone, timed.

Runs `landing.ingest_landing` on LANDING_DIR into a fresh DuckDB file WAREHOUSE (replaced if it exists; same
connection settings as the Dagster resource: memory limit and temp folder), then the three raw GX suites the way
their asset checks do, and prints one JSON line: wall and CPU seconds of the ingest and of each check, the load
average, and with `--statements` the slowest SQL statements of the ingest as [wall, CPU seconds, SQL]. On a shared
machine the CPU seconds compare runs better than the wall clock.

`--append-from DATE` first runs a full ingest as of DATE (timed as `prepare`), then the timed ingest at
`--as-of` (default: the last order date) with the same input digests, as raw_tables does on the next day over
the same files: an append ingest (landing/append.py). `digest` times hashing the landing files and the code,
which raw_tables does on every run (before this change too, for its fingerprint).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

SLOWEST_SHOWN = 15


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _TimedConnection:
    """A DuckDB connection that records the wall and CPU time of every statement it executes."""

    def __init__(self, conn):
        self._conn = conn
        self.timings: list[tuple[float, float, str]] = []

    def execute(self, sql, *args, **kwargs):
        started, cpu = time.perf_counter(), _cpu()
        try:
            return self._conn.execute(sql, *args, **kwargs)
        finally:
            wall = time.perf_counter() - started
            self.timings.append((wall, _cpu() - cpu, " ".join(str(sql).split())[:160]))

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _timed_since(started: float, cpu: float) -> dict[str, float]:
    return {"wall_seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(_cpu() - cpu, 1)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_step", description=__doc__.splitlines()[0])
    parser.add_argument("landing_dir", type=Path)
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--statements", action="store_true", help="also list the slowest SQL statements")
    parser.add_argument("--no-gx", action="store_true", help="skip the raw GX checks")
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="as-of date (default: last order)")
    parser.add_argument(
        "--append-from", type=date.fromisoformat, default=None, help="full ingest at this date first, then append"
    )
    args = parser.parse_args(argv)
    import duckdb

    from landing import ingest_landing
    from orchestration.defs.resources import duckdb_config

    for path in (args.warehouse, Path(str(args.warehouse) + ".wal")):
        path.unlink(missing_ok=True)
    result: dict = {}
    conn = duckdb.connect(str(args.warehouse), config=duckdb_config(str(args.warehouse)))
    timed = _TimedConnection(conn) if args.statements else conn
    digests = None
    if args.append_from is not None:
        from orchestration.lib.ingest_fingerprint import code_digest, files_digest

        started, cpu = time.perf_counter(), _cpu()
        digests = {"landing": files_digest(args.landing_dir.iterdir()), "code": code_digest()}
        result["digest"] = _timed_since(started, cpu)
        started, cpu = time.perf_counter(), _cpu()
        ingest_landing(conn, args.landing_dir, args.append_from, 365, False, append_inputs=digests)
        result["prepare"] = _timed_since(started, cpu)
    started, cpu = time.perf_counter(), _cpu()
    report = ingest_landing(timed, args.landing_dir, args.as_of, 365, False, append_inputs=digests)
    result["ingest"] = _timed_since(started, cpu)
    result["ingest_mode"] = [report.ingest_mode, report.ingest_mode_reason]
    result["as_of"] = report.as_of.isoformat()
    result["rows_in"] = {f.table_name: f.rows_in for f in report.files}
    result["rows_accepted"] = {f.table_name: f.rows_accepted for f in report.files}
    if args.statements:
        slowest = sorted(timed.timings, reverse=True)[:SLOWEST_SHOWN]
        result["slowest_statements"] = [[round(wall, 2), round(cpu, 2), sql] for wall, cpu, sql in slowest]
    if not args.no_gx:
        from expectations.suites import SUITES
        from expectations.validate import validate
        from orchestration.defs.quality_checks import GX_CHECKED_TABLES, read_for_validation

        result["gx"] = {}
        for table, (_, suite) in GX_CHECKED_TABLES.items():
            if not table.startswith("raw."):
                continue
            started, cpu = time.perf_counter(), _cpu()
            df, total = read_for_validation(conn, table)
            summary = validate(df, SUITES[suite]())
            result["gx"][suite] = {
                "wall_seconds": round(time.perf_counter() - started, 1),
                "cpu_seconds": round(_cpu() - cpu, 1),
                "rows": total,
                "failed": [f.describe() for f in summary.failed],
            }
    conn.close()
    result["load_average"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
