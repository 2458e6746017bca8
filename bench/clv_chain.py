"""Paired timings of the CLV chain on a copy of a warehouse a whole run has built:
`python -m bench.clv_chain <warehouse.duckdb> <work folder>`.

1. full: the chain refitted (SEGMINT_FORCE_REFIT=1), as every run did before the refit cadence (ml/cadence.py);
2. daily: the same chain again with nothing changed: every step keeps its pinned fit, only the scores are recomputed;
3. ml/clv_predictions with LightGBM's per-row TreeSHAP (the code before tree_shap_by_pattern) and with it, and
   whether both give the same table.
Each line carries the load average, since the machine is shared. The source warehouse is never written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import dagster as dg
import duckdb

from ml import clv
from orchestration.defs.btyd import btyd_models
from orchestration.defs.clv import clv_model, clv_model_evaluation, clv_predictions
from orchestration.defs.resources import SegmintSettings, Warehouse

CHAIN = [btyd_models, clv_model_evaluation, clv_model, clv_predictions]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(warehouse: Path, label: str, assets: list, force: bool = False) -> None:
    """Materialize `assets` in process; print wall time, seconds per step and each step's cadence line."""
    os.environ.pop("SEGMINT_FORCE_REFIT", None)
    if force:
        os.environ["SEGMINT_FORCE_REFIT"] = "1"
    load = load_average()
    started = time.perf_counter()
    result = dg.materialize(
        assets, resources={"warehouse": Warehouse(path=str(warehouse)), "settings": SegmintSettings()}
    )
    seconds = time.perf_counter() - started
    os.environ.pop("SEGMINT_FORCE_REFIT", None)
    steps = {
        event.step_key: event.event_specific_data.duration_ms / 1000
        for event in result.all_events
        if event.event_type_value == "STEP_SUCCESS"
    }
    print(f"{label}: {seconds:.1f} s (load {load}); " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))
    for step in steps:
        materializations = result.asset_materializations_for_node(step)
        if materializations and "cadence" in materializations[0].metadata:
            print(f"    {step}: {materializations[0].metadata['cadence'].value}")


def scores(warehouse: Path):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute("select * from ml.clv_predictions order by customer_id").df()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("work", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    warehouse = args.work / "warehouse.duckdb"
    shutil.copy(args.warehouse, warehouse)
    os.environ.update(SEGMINT_WAREHOUSE=str(warehouse), SEGMINT_DATA_DIR=str(args.work / "data"))
    os.environ.pop("SEGMINT_MODEL_REFIT_DAYS", None)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        print("customers:", conn.execute("select count(*) from marts.customer_features").fetchone()[0])
    run(warehouse, "full (refit forced)", CHAIN, force=True)
    run(warehouse, "daily (pinned model)", CHAIN)
    after = scores(warehouse)
    by_pattern = clv.pattern_trees
    clv.pattern_trees = lambda *args, **kwargs: None  # _explain falls back to LightGBM's per-row TreeSHAP
    try:
        run(warehouse, "ml/clv_predictions, LightGBM per-row TreeSHAP (before)", [clv_predictions])
    finally:
        clv.pattern_trees = by_pattern
    before = scores(warehouse)
    run(warehouse, "ml/clv_predictions, TreeSHAP by decision pattern (after)", [clv_predictions])
    print("identical ml.clv_predictions before/after:", before.equals(scores(warehouse)) and before.equals(after))


if __name__ == "__main__":
    main()
