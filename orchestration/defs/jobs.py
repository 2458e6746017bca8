"""Jobs: the whole refresh (what `make run` and the schedule execute)."""


import dagster as dg

from orchestration.defs.resources import DUCKDB_TAG

# Steps may run in parallel processes, but at most one that opens the DuckDB file at a time (single writer).
single_writer_executor = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 2,
        "tag_concurrency_limits": [
            {"key": key, "value": value, "limit": 1} for key, value in DUCKDB_TAG.items()
        ],
    },
    name="single_writer_multiprocess",
)

refresh_job = dg.define_asset_job(
    name="segmint_refresh",
    selection=dg.AssetSelection.all(),
    description="Materialize the whole graph: landing -> features -> checks -> segments and models -> scores -> audiences.",
    executor_def=single_writer_executor,
)
