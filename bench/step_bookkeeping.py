"""`python -m bench.step_bookkeeping [dagster|kept]`: CPU seconds of Dagster's bookkeeping for one step.

A chain of 30 trivial assets, each with one asset check (60 steps, nothing to compute), runs in process three times
in a fresh SQLite history under a temporary DAGSTER_HOME (`synchronous=OFF`, as `make run` records): `dagster` with
Dagster's storage as it is, `kept` with the run history `make run` uses (orchestration/lib/event_log.py,
keep_engines). Prints the process's CPU seconds per run and per step: what every step of a real run pays for its
events, data versions and checks whatever it does. CPU seconds, so a loaded machine changes the figure little.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg

from orchestration.lib import event_log
from orchestration.lib.settings import PROJECT_ROOT

ASSETS = 30
RUNS = 3


def _definitions() -> dg.JobDefinition:
    assets, checks, previous = [], [], None
    for i in range(ASSETS):

        @dg.asset(name=f"a{i}", deps=[previous] if previous is not None else [])
        def _asset() -> dg.MaterializeResult:
            return dg.MaterializeResult(metadata={"rows": 1})

        @dg.asset_check(asset=_asset, name="c")
        def _check() -> dg.AssetCheckResult:
            return dg.AssetCheckResult(passed=True)

        assets.append(_asset)
        checks.append(_check)
        previous = _asset
    job = dg.define_asset_job("bookkeeping", executor_def=dg.in_process_executor)
    return dg.Definitions(assets=assets, asset_checks=checks, jobs=[job]).resolve_job_def("bookkeeping")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.step_bookkeeping", description=__doc__.splitlines()[0])
    parser.add_argument("storage", choices=["dagster", "kept"], nargs="?", default="kept")
    args = parser.parse_args(argv)
    job = _definitions()
    home = Path(tempfile.mkdtemp(prefix="segmint_bookkeeping_"))
    try:
        (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
        event_log.install(home, "off")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            if args.storage == "kept":
                event_log.keep_engines(instance)
            job.execute_in_process(instance=instance)  # the first run creates the history's files
            started = time.process_time()
            for _ in range(RUNS):
                assert job.execute_in_process(instance=instance).success
            cpu = (time.process_time() - started) / RUNS
    finally:
        shutil.rmtree(home, ignore_errors=True)
    steps = 2 * ASSETS
    print(f"{args.storage}: {cpu:.2f} CPU s per run of {steps} steps, {1000 * cpu / steps:.1f} ms per step")


if __name__ == "__main__":
    main()
