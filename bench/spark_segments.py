"""`python -m bench.spark_segments WAREHOUSE WORKDIR`: behavioural segments on both engines, peak memory per process.

Runs the work of `ml/behavioral_segments` on the `marts.customer_features` of an existing DuckDB warehouse (a copy of
a kept `make bench` warehouse; it is only read), once per engine, each in its own measured process tree
(bench/procmem.py: peak RSS by process kind, sampled every 0.2 s):
- duckdb: what the asset does on DuckDB: the whole table read into the process, `cluster_customers`, names.
- spark: the table exported as a Parquet table into WORKDIR/lake, a local Spark Connect server (local[2]) over it,
  then `spark_segments.cluster_on_spark` (bounded fit sample, assignment and profile sums in Spark chunks).
Prints one JSON line per engine (wall seconds, peak RSS by kind in MiB, rows, k) and one comparing the two:
the share of customers with the same behavioural segment name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import duckdb

FEATURES = "marts.customer_features"
MIB = 1024 * 1024


def _labels(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = conn.execute(
        "select feature_column, source_event_type from marts.top_event_types order by type_rank"
    ).fetchall()
    return dict(rows)


def run_duckdb(warehouse: Path, workdir: Path) -> dict:
    from ml.archetypes import label_segments, name_clusters
    from ml.clustering import cluster_customers
    from orchestration.lib.warehouse_io import read_table

    started = time.perf_counter()
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        features = read_table(conn, FEATURES, order_by="customer_id")
        labels = _labels(conn)
    result = cluster_customers(features)
    segments = label_segments(result.labels, name_clusters(result.profiles, result.mode, labels))
    seconds = time.perf_counter() - started
    duckdb.from_df(segments).write_parquet(str(workdir / "duckdb_segments.parquet"))
    return {"rows": len(segments), "k": result.k, "mode": result.mode, "work_seconds": round(seconds, 1)}


def run_spark(warehouse: Path, workdir: Path) -> dict:
    from ml.archetypes import name_clusters
    from orchestration.lib import spark_compute, spark_connect, spark_segments, spark_tables

    lake = workdir / "lake"
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        spark_tables.export_table(conn, FEATURES, lake)
        labels = _labels(conn)
    server = spark_connect.start_server(lake, "local[2]")
    try:
        session = spark_compute.spark_session(server.url)
        session.sql("create database if not exists marts")
        session.sql(f"drop table if exists {FEATURES}")
        session.sql(f"create table {FEATURES} using parquet location '{spark_tables.table_dir(lake, FEATURES)}'")
        started = time.perf_counter()
        done = spark_segments.cluster_on_spark(
            session,
            lake,
            lambda profiles, mode: name_clusters(profiles, mode, labels),
            seed=0,
            k_range=range(3, 9),
            n_bootstrap=20,
        )
        seconds = time.perf_counter() - started
        session.stop()
    finally:
        server.stop()
    return {
        "rows": done.n_customers,
        "k": done.fitted.k,
        "mode": done.fitted.mode,
        "sample_rows": done.sample_rows,
        "work_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spark_segments", description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--inner", choices=["duckdb", "spark"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.inner:
        work = run_duckdb if args.inner == "duckdb" else run_spark
        (args.workdir / f"{args.inner}.json").write_text(json.dumps(work(args.warehouse.resolve(), args.workdir)))
        return

    from bench.procmem import run_measured

    for engine in args.engines.split(","):
        command = [sys.executable, "-m", "bench.spark_segments", str(args.warehouse), str(args.workdir)]
        measured = run_measured([*command, "--inner", engine], os.environ, Path.cwd(), args.workdir / f"{engine}.log")
        if measured.returncode != 0:
            raise SystemExit(f"{engine}: exit {measured.returncode}, see {args.workdir / f'{engine}.log'}")
        inner = json.loads((args.workdir / f"{engine}.json").read_text())
        peaks = {kind: round(value / MIB) for kind, value in measured.peak_rss_by_kind.items()}
        print(
            json.dumps({"engine": engine, "wall_seconds": round(measured.seconds, 1), "peak_rss_mib": peaks, **inner})
        )
    duckdb_out, spark_out = args.workdir / "duckdb_segments.parquet", args.workdir / "lake" / "ml.db"
    if duckdb_out.exists() and (spark_out / "behavioral_segments").exists():
        query = (
            "select count(*) filter (where d.behavioral_segment = s.behavioral_segment), count(*) "
            f"from '{duckdb_out}' d join read_parquet('{spark_out}/behavioral_segments/*.parquet') s using (customer_id)"
        )
        same, total = duckdb.connect().execute(query).fetchone()
        print(json.dumps({"same_segment_share": round(same / total, 4), "customers": total}))


if __name__ == "__main__":
    main()
