"""`python -m bench.activation_steps`: the audience, guard, export and sync steps alone, wall and CPU seconds each.

Runs the real bodies of the Dagster assets and checks of orchestration/defs/audiences.py (invoked directly with the
run's resources, no event log) on the warehouse of SEGMINT_WAREHOUSE (a copy of a whole run's warehouse: it is
written), each step in a fresh child process so that imports are not counted and each step is alone on the
machine. CPU seconds are the child's own (DuckDB's threads included): on a shared machine they compare runs better
than the wall clock. `--code DIR` runs the steps on another checkout's code (e.g. /work/main, before a change):
`--code A --code B` alternates A and B step by step, so both see the same machine state (paired figures).
With no destination credentials every sync is a dry-run, which records nothing in the ledger: repeated runs
redo the same work (a full send, as `make bench`'s daily refresh does). Prints one JSON line per step and code.

    SEGMINT_WAREHOUSE=/tmp/w.duckdb SEGMINT_DATA_DIR=/tmp/d python -m bench.activation_steps \\
        --code /work/main --code . sync__champions__google_data_manager exports__champions
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

DEFAULT_STEPS = (
    "edge_forms__customer_match_forms",
    "audiences__champions",
    "audiences__lookalike_seed",
    "audiences__champions_check_size_change_within_guard",
    "exports__champions",
    "sync__champions__google_data_manager",
    "sync__champions__webhook",
    "sync__champions__meta",
    "sync__champions__klaviyo",
    "sync__champions__hubspot",
    "audiences__lookalike_seed_check_size_change_within_guard",
    "exports__lookalike_seed",
    "sync__lookalike_seed__google_data_manager",
    "sync__lookalike_seed__meta",
    "activation__audience_lift",
)


def run_step(step: str) -> dict[str, object]:
    """The child: invoke one asset or check body of the audiences module with the run's resources."""
    import dagster as dg

    from orchestration.defs import audiences as module
    from orchestration.defs.resources import ActivationCredentials, SegmintSettings, SparkEngine, Warehouse

    resources = {
        "warehouse": Warehouse(),
        "settings": SegmintSettings(),
        "credentials": ActivationCredentials(),
        "spark": SparkEngine(),
    }
    forms = [module.customer_match_forms] if hasattr(module, "customer_match_forms") else []  # this branch on
    for definition in [*forms, *module.audience_assets, *module.audience_checks, module.audience_lift]:
        if definition.op.name != step:
            continue
        wanted = {key: value for key, value in resources.items() if key in definition.required_resource_keys}
        takes_context = "context" in inspect.signature(definition.op.compute_fn.decorated_fn).parameters
        # The context (an ephemeral Dagster instance: ~1 s of imports) exists before a real step starts: not timed.
        context = dg.build_asset_context() if takes_context else None
        started, cpu = time.perf_counter(), _cpu()
        result = definition(context, **wanted) if takes_context else definition(**wanted)
        outcome = getattr(result, "passed", True)
        return {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": round(_cpu() - cpu, 2), "ok": outcome}
    sys.exit(f"unknown step {step}")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.activation_steps", description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="*", default=list(DEFAULT_STEPS), help="op names (default: the 1 M list)")
    parser.add_argument("--code", action="append", help="checkout whose code runs the steps (repeat to pair)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the steps")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_step(args.child)))
        return
    if not os.environ.get("SEGMINT_WAREHOUSE"):
        sys.exit("set SEGMINT_WAREHOUSE to a copy of a whole run's warehouse (it is written)")
    codes = [str(Path(code).resolve()) for code in (args.code or ["."])]
    for round_ in range(args.repeat):
        for step in args.steps:
            for code in codes:
                env = dict(os.environ) | {"PYTHONPATH": code, "DO_NOT_TRACK": "1"}
                done = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--child", step],
                    cwd=code,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                lines = done.stdout.strip().splitlines()
                figures = json.loads(lines[-1]) if done.returncode == 0 and lines else {"error": done.stderr[-400:]}
                record = {"step": step, "code": code, "round": round_ + 1, **figures}
                print(json.dumps(record | {"load_average": [round(x, 1) for x in os.getloadavg()]}), flush=True)


if __name__ == "__main__":
    main()
