"""`python -m bench.btyd_step`: the BTYD steps alone on an existing warehouse, with wall seconds and peak RSS each.

Runs ml/btyd_models (a forced refit of all six fits), ml/btyd_predictions and ml/clv_model_evaluation (the champion
back-test that reads those fits) of segmint_refresh in process, one step at a time, on the warehouse of
SEGMINT_WAREHOUSE (feature marts already built, e.g. a copy of a `make bench --keep` warehouse), and prints one JSON
line per step: wall seconds, peak RSS of this process while it ran (sampled from /proc every 0.2 s), load average.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence

from bench.procmem import SAMPLE_INTERVAL_SECONDS, tree_rss_bytes
from orchestration.lib.keys import BTYD_FITS, BTYD_PREDICTIONS, CLV_MODEL_EVALUATION

STEPS = (BTYD_FITS, BTYD_PREDICTIONS, CLV_MODEL_EVALUATION)


def _measured(run):
    """(run(), wall seconds, peak RSS of this process in bytes while it ran)."""
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(os.getpid()))
            done.wait(SAMPLE_INTERVAL_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        return run(), time.perf_counter() - started, peak
    finally:
        done.set()
        sampler.join()


def main(argv: Sequence[str] | None = None) -> int:
    import dagster as dg

    from orchestration.definitions import defs

    os.environ["SEGMINT_FORCE_REFIT"] = "1"  # the fit step refits whatever the cadence says
    job = defs.resolve_job_def("segmint_refresh")
    ok = True
    with dg.DagsterInstance.get() as instance:
        for key in STEPS:
            result, wall, peak = _measured(
                lambda key=key: job.execute_in_process(instance=instance, asset_selection=[key], raise_on_error=False)
            )
            ok &= result.success
            print(
                json.dumps(
                    {
                        "step": key.to_user_string(),
                        "success": result.success,
                        "wall_seconds": round(wall, 1),
                        "peak_rss_gib": round(peak / 2**30, 2),
                        "load_average": [round(x, 1) for x in os.getloadavg()],
                    }
                ),
                flush=True,
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
