"""`python -m bench.step_cpu <op> [<op> ...]`: steps of segmint_refresh alone, with wall and CPU seconds each.

Runs the named ops (assets or asset checks, as the run's event log spells them: `ml__behavioral_segments`,
`marts__customer_scores_gx_customer_scores`) in one in-process run of segmint_refresh on the warehouse of
SEGMINT_WAREHOUSE (a copy of a kept `make bench` warehouse: it is written), like `bench.step_memory`. A thread samples
this process's CPU time every 20 ms; each step's CPU seconds are the samples' difference over the step's window in
the event log, so Dagster's import and start-up are not counted. On a shared machine CPU seconds compare two
versions of a step better than the wall clock; both are printed, with the load average, one JSON line per step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path

from bench.steps import read_run_timings

SAMPLE_SECONDS = 0.02


def _cpu_at(samples: list[tuple[float, float]], moment: float) -> float:
    """Process CPU seconds at a wall-clock moment (the first sample at or after it)."""
    index = min(bisect_left(samples, (moment, -1.0)), len(samples) - 1)
    return samples[index][1]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.step_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="+", help="op names (assets or asset checks)")
    args = parser.parse_args(argv)
    if not os.environ.get("SEGMINT_WAREHOUSE") or not os.environ.get("DAGSTER_HOME"):
        sys.exit("set SEGMINT_WAREHOUSE (a copy of a kept warehouse) and DAGSTER_HOME")
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.lib.memory import collector_paused

    by_op = {asset.op.name: list(asset.keys) for asset in defs.assets if getattr(asset, "op", None)}
    checks = {
        check.node_def.name: list(check.check_keys)
        for check in defs.asset_checks or []
        if getattr(check, "node_def", None)
    }
    missing = [step for step in args.steps if step not in by_op and step not in checks]
    if missing:
        sys.exit(f"unknown step(s): {', '.join(missing)}")
    asset_keys = [key for step in args.steps for key in by_op.get(step, [])]
    check_keys = [key for step in args.steps for key in checks.get(step, [])]

    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.time(), time.process_time()))
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # A non-empty check selection runs exactly those checks; an empty one runs none of the selected assets' checks.
    job = defs.resolve_job_def("segmint_refresh").get_subset(
        asset_selection=set(asset_keys), asset_check_selection=set(check_keys)
    )
    # As `make run` runs it (orchestration/cli.py): under the run's garbage-collector policy.
    with dg.DagsterInstance.get() as instance, collector_paused(collect_in_hooks=True):
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    done.set()
    sampler.join()
    samples.append((time.time(), time.process_time()))
    timings = read_run_timings(Path(os.environ["DAGSTER_HOME"]))
    load = [round(x, 2) for x in os.getloadavg()]
    for step, (start, end) in sorted(timings.step_windows.items(), key=lambda item: item[1][0]):
        print(
            json.dumps(
                {
                    "step": step,
                    "success": result.success,
                    "wall_seconds": round(end - start, 2),
                    "cpu_seconds": round(_cpu_at(samples, end) - _cpu_at(samples, start), 2),
                    "load_average": load,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
