"""Run a module (`python -m tests.integration.lowered_thresholds -m orchestration.cli segmint_refresh`) with the size
thresholds of the Spark engine's large-data branches lowered, so a 2,000-customer shop takes the branches a
1 M-customer shop takes (issue 19: the 1 M Spark bench stopped in gx_customer_features on a branch that only runs
above MAX_VALIDATION_ROWS, which no test had run on Spark).

Lowered, in the run's process (the in-process executor runs every step there):
- quality_checks.MAX_VALIDATION_ROWS: the GX checks validate a seeded sample (on Spark the marts are DuckDB views
  over Parquet: no row ids);
- spark_segments.FIT_SAMPLE_ROWS: the clustering is fitted on a hashed sample pulled from Spark
  (spark_compute.sample_table's `total > limit` branch);
- the rows per Arrow chunk of every mapInArrow pass (spark_compute.map_table): many chunks per task, as at 1 M.
Test-only: the thresholds stay constants of their modules (one owner each); nothing here changes what the run does
above them.
"""

from __future__ import annotations

import runpy
import sys
from functools import partial

GX_SAMPLE_ROWS = 300  # < 2,000 customers and < the raw tables
FIT_SAMPLE_ROWS = 1_500  # < 2,000 customers: the sample branch, large enough that the fit stays close to DuckDB's
CHUNK_ROWS = 300  # ~7 chunks of 2,000 customers


def lower_thresholds() -> None:
    from orchestration.defs import quality_checks
    from orchestration.lib import spark_compute, spark_segments

    quality_checks.MAX_VALIDATION_ROWS = GX_SAMPLE_ROWS
    spark_segments.FIT_SAMPLE_ROWS = FIT_SAMPLE_ROWS
    # map_table's default is bound when it is defined: callers reach it through the module, so wrap it there.
    spark_compute.map_table = partial(spark_compute.map_table, chunk_rows=CHUNK_ROWS)


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "-m":
        raise SystemExit("usage: python -m tests.integration.lowered_thresholds -m <module> [args...]")
    lower_thresholds()
    module, sys.argv = argv[1], [argv[1], *argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
