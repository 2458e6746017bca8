"""`python -m bench.clv_explain_cost full|none`: CPU seconds of ml/clv_predictions' body, with or without top_drivers.

Loads the stored champion and the scoring BTYD fits from SEGMINT_WAREHOUSE (a copy of a kept `make bench` warehouse:
ml.clv_predictions is rewritten) and runs `_predict_in_chunks` as the asset does; `none` scores with
`explain=False`, the ceiling of any design that explains fewer customers (issue 18, README "top_drivers on a real
next day"). Run it from the tree to measure (its cwd comes first on sys.path), alternating the two modes or two
trees; one line per run: mode, CPU s (every thread), wall s, load average.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import duckdb

import orchestration.defs.clv as clv_defs
from orchestration.defs.btyd import read_btyd_fits
from orchestration.defs.resources import Warehouse


def main(mode: str) -> None:
    if mode not in ("full", "none"):
        sys.exit("usage: python -m bench.clv_explain_cost full|none")
    path = os.environ["SEGMINT_WAREHOUSE"]
    with duckdb.connect(path) as conn:
        version, blob = conn.execute(f"select model_version, model_blob from {clv_defs.MODEL_TABLE}").fetchone()
        fits = read_btyd_fits(conn, "scoring")
    model = clv_defs.load_model(bytes(blob), version)
    if mode == "none":
        clv_defs.predict_champion = functools.partial(clv_defs.predict_champion, explain=False)
    cpu, wall = time.process_time(), time.time()
    clv_defs._predict_in_chunks(Warehouse(path=path, engine="duckdb"), model, fits, version)
    print(mode, round(time.process_time() - cpu, 2), round(time.time() - wall, 2), os.getloadavg()[0], flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
