"""The Dagster code location `segmint`: everything under orchestration/defs/, found by Dagster's defs-folder loader.

A new module in orchestration/defs/ joins the location without an edit here: its module-level assets, asset
checks, jobs, schedules and sensors (and lists of them) are picked up; a module that needs something else (the
resources in resources.py) returns a `dg.Definitions` from a `@dg.definitions` function. The loader finds the
folder through `[tool.dg.project]` in pyproject.toml. Two things apply to the whole location and live here: the
automation and freshness defaults (automation.py) and the in-process executor (DuckDB has one writer).
"""

from pathlib import Path

import dagster as dg

from orchestration.defs.automation import with_automation_spec
from orchestration.lib.memory import in_process_executor


def _location() -> dg.Definitions:
    # A function, not module-level names: Dagster refuses a module with two Definitions objects at its top level.
    folder = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    # A module that imports another's asset (jobs.py imports dbt_models) exposes the same object twice; the
    # loader keeps both references, so drop repeats before the specs are mapped into new objects.
    assets = list({id(asset): asset for asset in folder.assets or []}.values())
    return dg.Definitions(
        assets=dg.map_asset_specs(with_automation_spec, assets),
        asset_checks=folder.asset_checks,
        jobs=folder.jobs,
        schedules=folder.schedules,
        sensors=folder.sensors,
        resources=folder.resources,
        # One process (DuckDB has one writer), under the run's garbage-collector policy (orchestration/lib/memory.py).
        executor=in_process_executor,
        metadata=folder.metadata,
        component_tree=folder.component_tree,
    )


defs = _location()
