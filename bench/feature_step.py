"""`python -m bench.feature_step`: the dbt feature step alone on an existing warehouse, with its CPU seconds.

Runs `dbt_feature_models` (staging and feature marts, one dbt invocation) of segmint_refresh in process on the
warehouse of SEGMINT_WAREHOUSE (raw tables already loaded, e.g. by a `make bench` run kept with `--keep`), records
the run in $DAGSTER_HOME like any run, and prints one JSON line: wall seconds, CPU seconds of this process and of
dbt (its children), the number of materializations recorded, and the load average. On a shared machine the CPU
seconds compare runs better than the wall clock. `--from/--to` re-stage a window, as the daily schedule does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Sequence
from datetime import date

from orchestration.lib.partitions import FEATURE_STEP, StagingWindow


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.feature_step", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="first", type=date.fromisoformat, help="first day to re-stage")
    parser.add_argument("--to", dest="last", type=date.fromisoformat, help="last day to re-stage")
    args = parser.parse_args(argv)
    import dagster as dg

    from orchestration.definitions import defs

    window = StagingWindow(args.first, args.last or args.first) if args.first else None
    keys = [
        key
        for asset in defs.assets
        if getattr(asset, "op", None) and asset.op.name == FEATURE_STEP
        for key in asset.keys
    ]
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("segmint_refresh").execute_in_process(
            instance=instance,
            asset_selection=keys,
            run_config=window.run_config if window else None,
            raise_on_error=False,
        )
    wall = time.perf_counter() - started
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    recorded = sum(1 for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION")
    print(
        json.dumps(
            {
                "success": result.success,
                "wall_seconds": round(wall, 1),
                "cpu_seconds": round(own.ru_utime + own.ru_stime, 1),
                "dbt_cpu_seconds": round(children.ru_utime + children.ru_stime, 1),
                "materializations": recorded,
                "load_average": [round(x, 1) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
