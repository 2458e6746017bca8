"""`python -m bench.spark_audiences DATA_DIR`: every audience selected on both engines over a finished Spark run.

DATA_DIR is the data folder of a finished `SEGMINT_ENGINE=spark` run (a kept `python -m bench.run --engine spark
--keep` shop: `<work>/<size>/data`), holding `warehouse.duckdb` (the Python steps' side, in which the Spark tables
are views over their Parquet files) and `spark-warehouse/` (the Parquet tables and the Derby metastore). A local
Spark Connect server (local[2]) is started over that warehouse, then for each audience of config/audiences.yaml:
- spark: `spark_audiences.select_members_on_spark` (the rule in Spark SQL, only the members returned);
- duckdb: `activation.audiences.select_members` over the same Parquet files through DuckDB's views (the path
  audiences took on Spark before they ran in Spark SQL).
Prints one JSON line per audience: members, control, seconds per engine, and whether the members, control group
and values are the same. Real-time audiences run with no live members (their log is the run's, not kept).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb
import pandas as pd

from activation.audiences import load_audiences, select_members
from orchestration.lib import spark_audiences, spark_compute, spark_connect
from orchestration.lib.settings import CONFIG_DIR


def same_members(on_spark: pd.DataFrame, on_duckdb: pd.DataFrame) -> bool:
    """Same customers in the same order, same control group, values within 1e-9 relative."""
    if list(on_spark["customer_id"]) != list(on_duckdb["customer_id"]):
        return False
    if list(on_spark["is_control"]) != list(on_duckdb["is_control"]):
        return False
    values = pd.to_numeric(on_spark["value"], errors="coerce"), pd.to_numeric(on_duckdb["value"], errors="coerce")
    close = (values[0] - values[1]).abs() <= 1e-9 * values[1].abs().clip(lower=1.0)
    return bool((close | (values[0].isna() & values[1].isna())).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    server = spark_connect.start_server(args.data_dir / "spark-warehouse", args.master)
    session = spark_compute.spark_session(server.url)
    try:
        with duckdb.connect(str(args.data_dir / "warehouse.duckdb"), read_only=True) as conn:
            for audience in load_audiences(CONFIG_DIR / "audiences.yaml"):
                live = [] if audience.realtime_segment else None
                started = time.perf_counter()
                on_spark = spark_audiences.select_members_on_spark(session, conn, audience, live)
                spark_seconds = time.perf_counter() - started
                started = time.perf_counter()
                on_duckdb = select_members(conn, audience, live)
                duckdb_seconds = time.perf_counter() - started
                row = {
                    "audience": audience.name,
                    "members": len(on_spark),
                    "control": int(on_spark["is_control"].sum()),
                    "spark_seconds": round(spark_seconds, 2),
                    "duckdb_views_seconds": round(duckdb_seconds, 2),
                    "same_members": same_members(on_spark, on_duckdb),
                }
                print(json.dumps(row), flush=True)
    finally:
        session.stop()
        server.stop()


if __name__ == "__main__":
    main()
