"""The CLV model chain's steps alone, timed (wall and CPU) and their outputs kept for an exact before/after diff.

    python -m bench.lgbm_steps run <warehouse.duckdb> <out folder> [--steps ...] [--force]
    python -m bench.lgbm_steps compare <out folder A> <out folder B>

`run` materializes each named step (op names as the run's event log spells them) of segmint_refresh in process on
<warehouse.duckdb> (a COPY of a whole run's warehouse: it is written), one after another, and prints one JSON line
per step: wall seconds, CPU seconds of this process (every thread: LightGBM predicts on all cores), load average.
--force refits the model chain (SEGMINT_FORCE_REFIT=1), as a full run after a change does; without it a daily run's
pinned fits are kept and only the scores are recomputed. Afterwards every table the steps write is saved as
Parquet in <out folder> (the pickled model blobs as their sha256), so two runs (say, main's code and a branch's,
each from its own checkout on its own copy) are compared with `compare`: every column must be equal, floats to
1e-12 relative.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

STEPS = ("ml__btyd_models", "ml__clv_model_evaluation", "ml__clv_model", "ml__clv_predictions", "ml__btyd_predictions")
# Tables the steps write, and the column order that makes two dumps comparable row by row.
OUTPUTS = {
    "ml.btyd_models": "cutoff, model",
    "ml.clv_model_evaluation": "model, backtest_window",
    "ml.clv_model": "model_version",
    "ml.clv_predictions": "customer_id",
    "ml.btyd_predictions": "customer_id",
}
# Columns that differ between two runs by construction (seconds measured, pickles of objects holding them).
VOLATILE = {"fit_seconds", "fitted_blob"}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(warehouse: Path, out: Path, steps: list[str], force: bool) -> None:
    os.environ["SEGMINT_WAREHOUSE"] = str(warehouse)
    os.environ.setdefault("SEGMINT_DATA_DIR", str(out / "data"))
    if force:
        os.environ["SEGMINT_FORCE_REFIT"] = "1"
    import dagster as dg
    import duckdb

    from orchestration.definitions import defs

    known = {asset.op.name: asset for asset in defs.assets if getattr(asset, "op", None)}
    job = defs.resolve_job_def("segmint_refresh")
    out.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.ephemeral() as instance:
        for step in steps:
            load = [round(x, 2) for x in os.getloadavg()]
            cpu, wall = _cpu_seconds(), time.perf_counter()
            result = job.execute_in_process(instance=instance, asset_selection=list(known[step].keys))
            line = {
                "step": step,
                "success": result.success,
                "wall_seconds": round(time.perf_counter() - wall, 2),
                "cpu_seconds": round(_cpu_seconds() - cpu, 2),
                "load_average_before": load,
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            }
            print(json.dumps(line), flush=True)
            with open(out / "timings.jsonl", "a") as handle:
                handle.write(json.dumps(line) + "\n")
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for table, order in OUTPUTS.items():
            frame = conn.execute(f"select * from {table} order by {order}").df()
            for column in ("model_blob", "fitted_blob"):
                if column in frame:
                    frame[column] = [
                        hashlib.sha256(bytes(b)).hexdigest() if b is not None else None for b in frame[column]
                    ]
            frame.to_parquet(out / f"{table}.parquet")


def _differences(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    if list(a.columns) != list(b.columns):
        return [f"columns differ: {list(a.columns)} vs {list(b.columns)}"]
    if len(a) != len(b):
        return [f"rows differ: {len(a)} vs {len(b)}"]
    found = []
    for column in a.columns:
        if column in VOLATILE:
            continue
        x, y = a[column], b[column]
        if str(x.dtype) != str(y.dtype):
            found.append(f"{column}: dtype {x.dtype} vs {y.dtype}")
        elif pd.api.types.is_float_dtype(x):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            same_nan = np.isnan(xv) == np.isnan(yv)
            close = np.isclose(xv, yv, rtol=1e-12, atol=0.0) | (np.isnan(xv) & np.isnan(yv))
            if not (same_nan.all() and close.all()):
                worst = np.nanmax(np.abs(xv - yv) / np.maximum(np.abs(xv), 1e-300))
                found.append(f"{column}: {int((~close).sum())} values differ, worst relative {worst:.3g}")
            elif not np.array_equal(xv, yv, equal_nan=True):
                found.append(f"{column}: equal to 1e-12 relative, not bit for bit")
        elif not x.equals(y):
            found.append(f"{column}: {int((x.astype(str) != y.astype(str)).sum())} values differ")
    return found


def compare(first: Path, second: Path) -> int:
    failed = 0
    for table in OUTPUTS:
        a, b = first / f"{table}.parquet", second / f"{table}.parquet"
        if not (a.exists() and b.exists()):
            print(f"{table}: missing in one of the folders")
            failed += 1
            continue
        found = _differences(pd.read_parquet(a), pd.read_parquet(b))
        notes = [f for f in found if "not bit for bit" in f]
        real = [f for f in found if f not in notes]
        failed += bool(real)
        print(
            f"{table}: {'IDENTICAL' if not found else 'DIFFERENT' if real else 'EQUAL to 1e-12'}"
            + ("" if not found else "\n    " + "\n    ".join(found))
        )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lgbm_steps", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run")
    runner.add_argument("warehouse", type=Path)
    runner.add_argument("out", type=Path)
    runner.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    runner.add_argument("--force", action="store_true")
    comparer = sub.add_parser("compare")
    comparer.add_argument("first", type=Path)
    comparer.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.warehouse.resolve(), args.out.resolve(), args.steps, args.force)
        return 0
    return compare(args.first, args.second)


if __name__ == "__main__":
    sys.exit(main())
