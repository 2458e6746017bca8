"""Jobs: the whole refresh (what `make run` and the schedule execute).

Every step of the graph opens the same DuckDB file, and DuckDB allows one writing process, so steps run one
after another either way. The default job therefore runs in-process: a subprocess per step only adds start-up
time (measured: 5-20 s per step on 2 cores, against about 1 s in-process). The multiprocess variant keeps the
single-writer guarantee with a tag concurrency limit of 1; use it once the warehouse moves to a server (or
swap in the Celery/Kubernetes executor and drop the limit).

A run of the refresh jobs re-stages the days of its staging window (the feature step's run config; none = every
day; orchestration/lib/partitions.py); everything after the staging is rebuilt whole, whatever the window.
"""

import dagster as dg

from orchestration.defs.dbt_models import DAILY_STAGING_KEYS
from orchestration.defs.resources import DUCKDB_TAG
from orchestration.lib.keys import CLV_ACTIVATION_GATE, CUSTOMER_MATCH_FORMS, SEGMENT_CARDS, SEGMENT_CARDS_VIEW
from orchestration.lib.memory import in_process_executor, release_memory_hooks

REFRESH_SELECTION = dg.AssetSelection.all()

single_writer_executor = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 2,
        "tag_concurrency_limits": [{"key": key, "value": value, "limit": 1} for key, value in DUCKDB_TAG.items()],
    },
    name="single_writer_multiprocess",
)

refresh_job = dg.define_asset_job(
    name="segmint_refresh",
    selection=REFRESH_SELECTION,
    description="Materialize the whole graph: landing -> features -> checks -> segments and models -> scores -> audiences.",
    executor_def=in_process_executor,
    # One process runs every step: each step's freed memory goes back to the OS before the next (issue 18).
    hooks=release_memory_hooks,
)

refresh_job_multiprocess = dg.define_asset_job(
    name="segmint_refresh_multiprocess",
    selection=REFRESH_SELECTION,
    description="The same refresh with one process per step; at most one step holds the DuckDB file at a time.",
    executor_def=single_writer_executor,
)

daily_staging_job = dg.define_asset_job(
    name="daily_staging",
    selection=dg.AssetSelection.assets(*sorted(DAILY_STAGING_KEYS, key=lambda key: key.path)),
    description=(
        "Re-stage orders and events for a window of days (launchpad: ops.dbt_feature_models.config.stage_from / "
        "stage_to; empty = every day) from the current raw tables. The customer marts pick the days up on the next "
        "segmint_refresh; `make backfill FROM=... TO=...` does both in one run."
    ),
    executor_def=in_process_executor,
    hooks=release_memory_hooks,
)

export_job = dg.define_asset_job(
    name="audience_exports",
    # The activation gate comes along so value-based exports wait for the model check here too, and the stored
    # match forms so the files match people on their current contact fields.
    selection=(
        dg.AssetSelection.key_prefixes(["audiences"], ["exports"])
        | dg.AssetSelection.assets(CLV_ACTIVATION_GATE, CUSTOMER_MATCH_FORMS)
    ),
    description=(
        "Rebuild every audience and write its upload files (data/exports/*.csv) from the current scores; "
        "value-based exports only when the CLV activation gate passes."
    ),
    executor_def=in_process_executor,
    hooks=release_memory_hooks,
)

report_job = dg.define_asset_job(
    name="segment_report",
    # The cards (Python, ml.segment_cards, which writes the HTML too) and their dbt view marts.segment_cards.
    selection=dg.AssetSelection.assets(SEGMENT_CARDS, SEGMENT_CARDS_VIEW),
    description="Rebuild the segment cards and data/reports/segment_report.html from the current scores.",
    executor_def=in_process_executor,
    hooks=release_memory_hooks,
)
