"""`python -m bench.feature_step`: one dbt step alone on an existing warehouse, with its CPU seconds and dbt's phases.

Runs `dbt_feature_models` (staging and feature marts, one dbt invocation) of segmint_refresh, or another dbt step
named by `--step` (`dbt_score_models`, `dbt_after_scores_models`, `dbt_after_syncs_models`), in process on the
warehouse of SEGMINT_WAREHOUSE (raw tables and ML outputs already there, e.g. a `make bench` run kept with `--keep`),
records the run in $DAGSTER_HOME like any run, and prints one JSON line: wall seconds, the step's own seconds (its
start to end events), CPU seconds of this process and of dbt (its children), the number of materializations and
check results recorded, the load average, dbt's own time split from the step's dbt.log (`dbt_phases`), and which
path each customer mart took (`feature_build`: incremental or full, and why). On a
shared machine the CPU seconds compare runs better than the wall clock. `--from/--to` re-stage a window, as the
daily schedule does.

`dbt_phases` (seconds, from the last invocation in `<data dir>/dbt_target/<step>/dbt.log`): `startup` (dbt's first
log line to the start of parsing: flags, profile, adapter), `parse` (partial or full: `parse_kind`), `cache` (the
relation cache and on-run-start hooks, before the first node), `models` and `tests` (each node's start to end, summed),
`nodes` (first node start to last end, incl. dbt's bookkeeping between them), `artifacts` (after the last node:
manifest and run_results written), `command` (first log line to the end). Not in the log: the interpreter start and
dbt's imports before its first line; `step - command` is that plus dagster-dbt's and Dagster's share.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from orchestration.lib.partitions import FEATURE_STEP, StagingWindow

DBT_STEPS = ("dbt_feature_models", "dbt_score_models", "dbt_after_scores_models", "dbt_after_syncs_models")


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def dbt_log_phases(lines: Iterable[str]) -> dict[str, object]:
    """The phases of the last dbt invocation in a dbt.log written with `--log-format json` (dagster-dbt's format).

    Pure: reads the lines' `info.name`, `info.ts` and node ids; an invocation starts at `MainReportVersion`."""
    events: list[tuple[float, str, str, str]] = []
    for line in lines:
        try:
            record = json.loads(line)
            info = record["info"]
        except (ValueError, KeyError, TypeError):
            continue
        if info.get("name") == "MainReportVersion":
            events = []
        node = ((record.get("data") or {}).get("node_info") or {}).get("unique_id", "")
        events.append((_seconds(info["ts"]), info["name"], info.get("msg", ""), node))
    if not events:
        return {}
    first: dict[str, float] = {}
    for stamp, name, _, _ in events:
        first.setdefault(name, stamp)
    start = events[0][0]
    parse_start = first.get("StateCheckVarsHash", first.get("UnableToPartialParse"))
    parsed = first.get("FoundStats")
    node_starts: dict[str, float] = {}
    spans: dict[str, float] = {}
    for stamp, name, _, node in events:
        if name == "NodeStart":
            node_starts[node] = stamp
        elif name == "NodeFinished" and node in node_starts:
            spans[node] = stamp - node_starts[node]
    first_node = min(node_starts.values(), default=None)
    last_node = first.get("FinishedRunningStats")
    end = first.get("CommandCompleted", events[-1][0])
    full = any(name == "UnableToPartialParse" for _, name, _, _ in events)
    phases: dict[str, object] = {
        "parse_kind": "full" if full else "partial",
        "startup": parse_start - start if parse_start else None,
        "parse": parsed - parse_start if parsed and parse_start else None,
        "cache": first_node - parsed if first_node and parsed else None,
        "models": sum(s for node, s in spans.items() if node.startswith("model.")),
        "tests": sum(s for node, s in spans.items() if node.startswith("test.")),
        "test_count": sum(1 for node in spans if node.startswith("test.")),
        "nodes": last_node - first_node if last_node and first_node else None,
        "artifacts": end - last_node if last_node else None,
        "command": end - start,
    }
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in phases.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.feature_step", description=__doc__.splitlines()[0])
    parser.add_argument("--step", default=FEATURE_STEP, choices=DBT_STEPS, help="the dbt step to run")
    parser.add_argument("--from", dest="first", type=date.fromisoformat, help="first day to re-stage")
    parser.add_argument("--to", dest="last", type=date.fromisoformat, help="last day to re-stage")
    args = parser.parse_args(argv)
    if args.first and args.step != FEATURE_STEP:
        parser.error("--from/--to re-stage days: only the feature step takes them")
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.defs.dbt_models import dbt_target_path, feature_build_paths, last_invocation_lines
    from orchestration.lib import event_log
    from orchestration.lib.settings import load_settings

    event_log.install()  # the run history's fsync policy, as `make run` records it (orchestration/cli.py)

    window = StagingWindow(args.first, args.last or args.first) if args.first else None
    keys = [
        key for asset in defs.assets if getattr(asset, "op", None) and asset.op.name == args.step for key in asset.keys
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
        stamps = [entry.timestamp for entry in instance.all_logs(result.run_id) if entry.step_key == args.step]
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    events = result.all_events
    recorded = sum(1 for e in events if e.event_type_value == "ASSET_MATERIALIZATION")
    checks = sum(1 for e in events if e.event_type_value == "ASSET_CHECK_EVALUATION")
    log = dbt_target_path(str(load_settings().warehouse), args.step) / "dbt.log"
    # dbt rotates its log at 10 MB: the last invocation may begin in dbt.log.1.
    lines = [
        line
        for path in (log.with_name("dbt.log.1"), log)
        if path.exists()
        for line in path.read_text("utf-8").splitlines()
    ]
    # The step may not start dbt at all (a view step keeping its views): then there is nothing of this run to split.
    ran = log.exists() and log.stat().st_mtime >= time.time() - wall
    phases = dbt_log_phases(lines) if ran else {}
    print(
        json.dumps(
            {
                "step": args.step,
                "success": result.success,
                "wall_seconds": round(wall, 1),
                "step_seconds": round(max(stamps) - min(stamps), 1) if stamps else None,
                "cpu_seconds": round(own.ru_utime + own.ru_stime, 1),
                "dbt_cpu_seconds": round(children.ru_utime + children.ru_stime, 1),
                "materializations": recorded,
                "check_results": checks,
                "dbt_phases": phases,
                # Which path each customer mart took (dbt_project/macros/feature_increment.sql), and why.
                "feature_build": feature_build_paths(last_invocation_lines(log)) if ran else {},
                "load_average": [round(x, 1) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
