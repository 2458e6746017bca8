"""`python -m bench.model_budget <warehouse> <model> <budget> [setting=value ...] [--no-hooks]`: one dbt model's SQL
under a budget.

Runs the statement dbt last ran for a model (`<data dir>/dbt_target/dbt_feature_models/run/.../<model>.sql`, the
`create table ... as` of a kept warehouse's feature step) into a scratch table of that warehouse (a copy: it is
written) with DuckDB's `memory_limit` = budget and any other settings given, then drops it. The model's `set ...`
pre-hooks from the parsed manifest run first, as dbt runs them (`--no-hooks`: without them, the before of a
before/after). Prints one JSON line: ok or the first line of DuckDB's error, the hooks run, wall and CPU seconds,
the process's peak RSS. Issue 18 chose the default SEGMINT_DUCKDB_MEMORY_LIMIT with it. DuckDB runs the plan's
pipelines on two threads in an order that varies: a budget near the edge fails on some runs only, so repeat one.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import duckdb

SCRATCH = '"main"."_model_budget_scratch"'
MANIFEST = Path(__file__).resolve().parents[1] / "dbt_project" / "target" / "manifest.json"


def scratch_statement(sql: str, model: str) -> str:
    """dbt's `create table "<db>"."<schema>"."<model>__dbt_tmp" as (...)` re-aimed at the scratch table."""
    target = f'"{model}__dbt_tmp"'
    if target not in sql or "create" not in sql:
        raise ValueError(f"the statement does not create {target}")
    start, end = sql.index("create"), sql.index(target) + len(target)
    return sql[:start] + f"create table {SCRATCH}" + sql[end:]


def setting_hooks(manifest: dict, model: str) -> list[str]:
    """The model's pre-hooks that are plain `set` statements (a templated hook needs dbt to render it)."""
    hooks = []
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") == "model" and node.get("name") == model:
            hooks += [hook["sql"] for hook in node["config"].get("pre-hook", [])]
    return [hook for hook in hooks if hook.lstrip().lower().startswith("set ") and "{" not in hook]


def main(argv: list[str]) -> None:
    with_hooks = "--no-hooks" not in argv
    argv = [arg for arg in argv if arg != "--no-hooks"]
    if len(argv) < 3:
        sys.exit(__doc__.splitlines()[0])
    warehouse, model, budget, *settings = argv
    compiled = sorted((Path(warehouse).parent / "dbt_target").glob(f"*/run/**/{model}.sql"))
    if not compiled:
        sys.exit(f"no compiled {model}.sql under {Path(warehouse).parent / 'dbt_target'}: run the step once first")
    try:
        sql = scratch_statement(compiled[0].read_text(encoding="utf-8"), model)
    except ValueError as error:
        sys.exit(f"{compiled[0]}: {error}")
    config = {"memory_limit": budget, "temp_directory": warehouse + ".tmp"}
    config |= dict(setting.split("=", 1) for setting in settings)
    hooks = setting_hooks(json.loads(MANIFEST.read_text(encoding="utf-8")), model) if with_hooks else []
    conn = duckdb.connect(warehouse, config=config)
    try:
        conn.execute(f"drop table if exists {SCRATCH}")
        for hook in hooks:
            conn.execute(hook)
        started, outcome = time.perf_counter(), "ok"
        try:
            conn.execute(sql)
        except duckdb.Error as error:
            outcome = str(error).splitlines()[0]
        wall = time.perf_counter() - started
        conn.execute(f"drop table if exists {SCRATCH}")
    finally:
        conn.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "model": model,
                "config": config,
                "hooks": hooks,
                "outcome": outcome,
                "wall_seconds": round(wall, 1),
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
                "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),
                "load_average": [round(x, 1) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
