"""`python -m bench.explanation_reads <warehouse.duckdb>`: what explanations cost now that they are a view.

On an existing warehouse after a full run (use a COPY: this writes the three small tables and rebuilds the view):
1. the Python step ml__explanation_texts alone (read ml.cluster_profiles, write the three tables of texts);
2. `dbt run --select customer_explanations` (the view; dbt's own start-up included, and the node's time alone as
   dbt reports it: inside the dbt_score_models step only the latter is added);
3. reading every customer's rows (`create temp table as select * from` the view: all text materialized) and one
   customer's rows (median of 5 customers, `where customer_id = ?`).
Prints one JSON line with the wall seconds of each and the load average.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from ml.explanations import cluster_texts, model_texts, rfm_rule_texts
from orchestration.lib.warehouse_io import read_table, write_table

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def main(warehouse: str) -> None:
    figures: dict[str, object] = {"warehouse": warehouse}
    started = time.perf_counter()
    with duckdb.connect(warehouse) as conn:
        profiles = read_table(conn, "ml.cluster_profiles", order_by="cluster_id, feature")
        for table, frame in (("ml.explanation_rfm_rules", rfm_rule_texts()), ("ml.explanation_clusters",
                             cluster_texts(profiles)), ("ml.explanation_models", model_texts())):  # fmt: skip
            write_table(conn, table, frame)
    figures["texts_step_seconds"] = round(time.perf_counter() - started, 2)

    target = Path(tempfile.mkdtemp(prefix="explanation_reads_"))
    env = {**os.environ, "DO_NOT_TRACK": "1", "SEGMINT_WAREHOUSE": str(Path(warehouse).resolve())}
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "run", "--select", "customer_explanations", "--profiles-dir", ".",
         "--target-path", str(target), "--log-path", str(target / "logs"), "--quiet"],
        cwd=PROJECT_ROOT / "dbt_project", env=env, check=True,
    )  # fmt: skip
    figures["dbt_run_view_seconds"] = round(time.perf_counter() - started, 2)
    results = json.loads((target / "run_results.json").read_text())["results"]
    figures["dbt_view_node_seconds"] = round(results[0]["execution_time"], 3)

    with duckdb.connect(warehouse) as conn:
        started = time.perf_counter()
        conn.execute("create temp table every_explanation as select * from marts.customer_explanations")
        figures["read_all_seconds"] = round(time.perf_counter() - started, 2)
        figures["rows"] = conn.execute("select count(*) from every_explanation").fetchone()[0]
        customers = [row[0] for row in conn.execute(
            "select customer_id from marts.customer_features using sample 5 rows (reservoir, 7)").fetchall()]  # fmt: skip
        times = []
        for customer in customers:
            started = time.perf_counter()
            rows = conn.execute(
                "select * from marts.customer_explanations where customer_id = ?", [customer]
            ).fetchall()
            times.append(time.perf_counter() - started)
            assert len(rows) == 3, (customer, rows)
        figures["read_one_customer_seconds_median"] = round(statistics.median(times), 3)
    figures["load_average"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv[1])
