"""`python -m bench.step_memory <step> [<step> ...]`: some steps of segmint_refresh alone, with their peak RSS.

Runs the named steps (op names as the run's event log spells them, e.g. `ml__clv_predictions`, `dbt_score_models`)
in process on the warehouse of SEGMINT_WAREHOUSE (a copy of a whole run's warehouse: `make bench --keep` leaves one),
the same way `bench.feature_step` runs the feature step, in a child process whose tree RSS is sampled every 0.2 s
(`bench.procmem`). Prints one JSON line per step: seconds, peak tree RSS, the growth within the step (the child
starts at Dagster's import size, ~0.3 GiB) and what the tree still holds once the step has ended (`held_after_gib`:
under `make run`'s in-process executor the steps after it start from there); then one line for the whole child:
wall and CPU seconds (the child and its dbt processes: on a shared machine CPU compares runs better than the wall
clock), the peak per process kind and the DuckDB budget it ran with (SEGMINT_DUCKDB_MEMORY_LIMIT). SEGMINT_FORCE_REFIT=1 refits the model chain instead of keeping the
pinned fits, as a full run after a change does. Finding and shrinking issue 18's memory peak step by step costs
seconds this way instead of a whole-graph run per try.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.procmem import held_after, run_measured, step_peaks
from bench.run import DAGSTER_YAML
from bench.steps import read_run_timings
from orchestration.defs.resources import duckdb_memory_limit

GIB = 1024**3


def run_steps(steps: Sequence[str]) -> None:
    """The child: materialize every asset of the named ops in one in-process run of segmint_refresh."""
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.lib.memory import collector_paused

    known = {asset.op.name: asset for asset in defs.assets if getattr(asset, "op", None)}
    missing = [step for step in steps if step not in known]
    if missing:
        sys.exit(f"unknown step(s): {', '.join(missing)}; known: {', '.join(sorted(known))}")
    keys = [key for step in steps for key in known[step].keys]
    # As `make run` runs it (orchestration/cli.py): under the run's garbage-collector policy.
    with dg.DagsterInstance.get() as instance, collector_paused(collect_in_hooks=True):
        result = defs.resolve_job_def("segmint_refresh").execute_in_process(
            instance=instance, asset_selection=keys, raise_on_error=False
        )
    sys.exit(0 if result.success else 1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.step_memory", description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="+", help="op names, run in the graph's order")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_steps(args.steps)
        return
    if not os.environ.get("SEGMINT_WAREHOUSE"):
        sys.exit("set SEGMINT_WAREHOUSE to a copy of a whole run's warehouse (it is written)")
    home = Path(os.environ.get("DAGSTER_HOME") or tempfile.mkdtemp(prefix="segmint-step-memory-"))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(DAGSTER_YAML, home / "dagster.yaml")  # telemetry off, like every run of the bench
    env = dict(os.environ) | {"DAGSTER_HOME": str(home), "DO_NOT_TRACK": "1"}
    log = home / "step_memory.log"
    measured = run_measured([sys.executable, "-m", "bench.step_memory", "--child", *args.steps], env, Path.cwd(), log)
    timings = read_run_timings(home)
    peaks = step_peaks(measured.samples, timings.step_windows)
    held = held_after(measured.samples, timings.step_windows)
    for step in args.steps:
        peak = peaks.get(step)
        print(
            json.dumps(
                {
                    "step": step,
                    "status": timings.status,
                    "seconds": round(timings.step_seconds.get(step, float("nan")), 1),
                    "peak_tree_rss_gib": round(peak.peak_bytes / GIB, 3) if peak else None,
                    "growth_gib": round(peak.rise_bytes / GIB, 3) if peak else None,
                    "held_after_gib": round(held[step] / GIB, 3) if step in held else None,
                    "load_average": [round(x, 1) for x in os.getloadavg()],
                }
            )
        )
    print(
        json.dumps(
            {
                "steps": list(args.steps),
                "wall_seconds": round(measured.seconds, 1),
                "cpu_seconds": round(measured.cpu_seconds, 1),
                "peak_tree_rss_gib": round(measured.peak_tree_rss_bytes / GIB, 3),
                "peak_by_kind_gib": {kind: round(b / GIB, 3) for kind, b in measured.peak_rss_by_kind.items()},
                "duckdb_memory_limit": duckdb_memory_limit(),
            }
        )
    )
    if measured.returncode != 0:
        sys.exit(f"the run failed; see {log}")


if __name__ == "__main__":
    main()
