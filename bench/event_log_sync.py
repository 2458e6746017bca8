"""Time Dagster's own run-history writes under each SEGMINT_EVENT_LOG_SYNC level (orchestration/lib/event_log.py).

`python -m bench.event_log_sync [assets]`: a chain of `assets` assets (default 40) with two checks each, run in
process on a fresh instance per level, the way `make run` records a refresh (~800 events); prints seconds per level.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import dagster as dg

from orchestration.lib import event_log


def chain(size: int) -> list[dg.AssetsDefinition]:
    assets, previous = [], None
    for i in range(size):
        checks = [dg.AssetCheckSpec(name, asset=f"a{i}") for name in ("c1", "c2")]

        @dg.asset(name=f"a{i}", deps=[previous] if previous else [], check_specs=checks)
        def _asset():
            yield dg.MaterializeResult(metadata={"rows": 1})
            yield dg.AssetCheckResult(check_name="c1", passed=True)
            yield dg.AssetCheckResult(check_name="c2", passed=True)

        assets.append(_asset)
        previous = _asset
    return assets


def time_level(level: str, size: int) -> float:
    with tempfile.TemporaryDirectory() as home:
        os.environ["DAGSTER_HOME"] = home
        with open(os.path.join(home, "dagster.yaml"), "w") as handle:
            handle.write("telemetry:\n  enabled: false\n")
        event_log.install(home, level)
        job = dg.Definitions(
            assets=chain(size), jobs=[dg.define_asset_job("j", executor_def=dg.in_process_executor)]
        ).resolve_job_def("j")
        with dg.DagsterInstance.get() as instance:
            started = time.perf_counter()
            assert job.execute_in_process(instance=instance).success
            return time.perf_counter() - started


def main(argv: list[str]) -> None:
    size = int(argv[0]) if argv else 40
    for level in ("full", *event_log.SYNC_LEVELS[:2], "full"):
        print(f"{level:6s} {time_level(level, size):6.1f} s  ({size} assets, {2 * size} checks)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
