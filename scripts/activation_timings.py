"""Seconds per audience, guard, export and sync step: re-runs only the `audiences` asset group on a warehouse the
whole graph already built (issue 18's measurement of the activation steps, before and after vectorization).

Usage (the environment of the run that built the warehouse):
    SEGMINT_LANDING_DIR=... SEGMINT_DATA_DIR=... SEGMINT_WAREHOUSE=... DAGSTER_HOME=... \
        PYTHONPATH=. .venv/bin/python scripts/activation_timings.py
Prints one line per step (seconds, from the run's event log) and the totals per kind. With no destination
credentials every sync is a dry-run, which records nothing in the ledger: repeated runs measure the same work.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import dagster as dg

from bench.steps import read_run_timings
from orchestration.definitions import defs
from orchestration.lib import groups


def kind_of(step: str) -> str:
    if step.startswith("sync__"):
        return "sync"
    if step.startswith("exports__"):
        return "export"
    if step.endswith("_check_size_change_within_guard"):
        return "guard"
    return "audience" if step.startswith("audiences__") else "other"


def main() -> None:
    job = dg.define_asset_job("activation_timings", selection=dg.AssetSelection.groups(groups.AUDIENCES))
    merged = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = merged.resolve_job_def("activation_timings").execute_in_process(instance=instance)
    wall = time.monotonic() - started
    timings = read_run_timings(Path(os.environ["DAGSTER_HOME"]))
    totals: dict[str, float] = defaultdict(float)
    for step, seconds in sorted(timings.step_seconds.items(), key=lambda item: -item[1]):
        print(f"{seconds:8.2f}s  {step}")
        totals[kind_of(step)] += seconds
    print("totals: " + ", ".join(f"{kind} {seconds:.1f}s" for kind, seconds in sorted(totals.items())))
    print(f"run {'succeeded' if result.success else 'FAILED'}: {wall:.1f}s wall; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
