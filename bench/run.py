"""`python -m bench.run --sizes 10000 100000 1000000`: the benchmark behind `make bench` (issue 9).

For each size: generate the shop as Parquet (timed apart), run the whole graph exactly as `make run` does in a fresh
DAGSTER_HOME and warehouse while sampling the process tree's memory, read the step times from the run's event log,
time the pandas and raw-scan baselines on the same files, then merge the result into bench/results.json and render
BENCHMARKS.md from every size recorded there (so sizes can be run one at a time).

`--engine spark` (issue 19) runs the same generated shop with SEGMINT_ENGINE=spark and records the Spark row: end to
end, step times and peak RSS per process kind (Dagster, dbt, the Spark Connect JVM, Spark's Python workers); no
daily refresh and no baselines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from bench.procmem import peak_moment, run_measured, step_peaks, steps_running_at
from bench.report import HONEST_PANDAS_BASELINE, SizeResult, SparkResult, from_json, render_benchmarks, to_json
from bench.steps import read_run_timings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = PROJECT_ROOT / "bench" / "results.json"
NOTES_PATH = PROJECT_ROOT / "bench" / "notes.md"
BENCHMARKS_PATH = PROJECT_ROOT / "BENCHMARKS.md"
REALTIME_RESULTS_PATH = PROJECT_ROOT / "bench" / "results" / "realtime.md"
REALTIME_SECTION = "<!-- bench-realtime:start -->\n{}<!-- bench-realtime:end -->\n"
DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"
MANIFEST = PROJECT_ROOT / "dbt_project" / "target" / "manifest.json"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
SEED = 42
ENGINES = ("duckdb", "spark")
DEFAULT_SPARK_MASTER = "local[2]"  # orchestration/lib/settings.py's default: the 2 cores of this machine
# The Connect server's heap (spark-submit's SPARK_DRIVER_MEMORY, default 1g): the 100 k and 1 M rows of BENCHMARKS.md
# (2026-11-27) ran with 6g (JVM RSS 4.4 and 7.6 GiB); 3g, the earlier default, was never run at 1 M.
DEFAULT_SPARK_DRIVER_MEMORY = "6g"
JOB = "segmint_refresh"
DAILY_WINDOW_DAYS = 3  # orchestration/defs/schedules.py, LATE_ARRIVAL_DAYS
VERSIONED_PACKAGES = (
    "dagster",
    "dagster-dbt",
    "dbt-core",
    "dbt-duckdb",
    "duckdb",
    "pandas",
    "scikit-learn",
    "lightgbm",
)


def bin_path(name: str) -> str:
    """A console script of the running venv (the same `dagster` that `make run` calls as $(BIN)/dagster)."""
    return str(Path(sys.executable).parent / name)


def generate_command(size: int, landing: Path, truth: Path, seed: int = SEED) -> list[str]:
    """The generator's command line for one size (profile bench: ~5 orders, ~30 events per customer)."""
    return [
        sys.executable,
        "-m",
        "demo_shop",
        "--landing",
        str(landing),
        "--truth",
        str(truth),
        "--customers",
        str(size),
        "--seed",
        str(seed),
        "--format",
        "parquet",
        "--profile",
        "bench",
    ]


def pipeline_command() -> list[str]:
    """What `make run` executes (`$(BIN)/python -m orchestration.cli segmint_refresh`: the job in process, recorded in
    $DAGSTER_HOME, one console line per step; the same execution as `dagster job execute -j segmint_refresh`)."""
    return [sys.executable, "-m", "orchestration.cli", JOB]


def daily_refresh_command(as_of: date) -> list[str]:
    """The daily schedule's run: the same job re-staging the last DAILY_WINDOW_DAYS days."""
    first = as_of - timedelta(days=DAILY_WINDOW_DAYS - 1)
    return [*pipeline_command(), "--from", first.isoformat(), "--to", as_of.isoformat()]


def last_order_day(landing: Path) -> date:
    """The generated export's last order date: the daily refresh's as-of; the full run is made the day before."""
    with duckdb.connect() as conn:
        path = str(landing / "orders.parquet").replace("'", "''")
        return conn.execute(f"select max(ordered_at)::date from read_parquet('{path}')").fetchone()[0]


def pipeline_env(base: Mapping[str, str], landing: Path, data: Path, home: Path) -> dict[str, str]:
    """The environment of one pipeline run: the landing files, a fresh warehouse and DAGSTER_HOME, no telemetry."""
    env = {key: value for key, value in base.items() if not key.startswith("SEGMINT_")}
    return env | {
        "SEGMINT_LANDING_DIR": str(landing),
        "SEGMINT_DATA_DIR": str(data),
        "SEGMINT_WAREHOUSE": str(data / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
        "DO_NOT_TRACK": "1",
    }


def spark_env(env: Mapping[str, str], data: Path, master: str, driver_memory: str) -> dict[str, str]:
    """A pipeline environment switched to Spark: its own Spark warehouse under the run's data folder, a local master,
    the Connect server's heap, and no SPARK_REMOTE (the run starts and stops its own server, as `make run` does)."""
    spark = {key: value for key, value in env.items() if key != "SPARK_REMOTE"}
    return spark | {
        "SEGMINT_ENGINE": "spark",
        "SEGMINT_SPARK_MASTER": master,
        "SEGMINT_SPARK_WAREHOUSE": str(data / "spark-warehouse"),
        "SPARK_DRIVER_MEMORY": driver_memory,
    }


def parquet_rows(path: Path) -> int:
    """Row count from a Parquet file's footer (no data read)."""
    return pq.read_metadata(path).num_rows


Result = SizeResult | SparkResult


def engine_of(result: Result) -> str:
    """The engine a recorded result ran on (DuckDB results carry no engine field)."""
    return "spark" if isinstance(result, SparkResult) else "duckdb"


def merge_results(existing: Sequence[Result], new: Sequence[Result]) -> list[Result]:
    """Every engine and size once, the new measurement replacing an older one of the same engine and size; DuckDB
    first, then smallest first."""
    by_key = {(engine_of(r), r.customers): r for r in existing} | {(engine_of(r), r.customers): r for r in new}
    return [by_key[key] for key in sorted(by_key, key=lambda key: (ENGINES.index(key[0]), key[1]))]


def machine_facts() -> dict[str, str]:
    """Cores, memory, CPU, OS, versions and the date: what a reader needs to compare these numbers."""
    meminfo = Path("/proc/meminfo").read_text()
    mem_kib = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:")))
    cpuinfo = Path("/proc/cpuinfo").read_text()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    versions = ", ".join(f"{name} {_version(name)}" for name in VERSIONED_PACKAGES)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kib / 1024**2:.1f} GiB",
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def run_baseline(kind: str, landing: Path, as_of: date | None = None) -> dict:
    """Times one baseline (`bench.baselines`) in a fresh process and returns its JSON line; the pandas one builds the
    marts at `as_of` (the full run's), the raw-scan floor reads every row."""
    as_of_args = ["--as-of", as_of.isoformat()] if as_of else []
    completed = subprocess.run(
        [sys.executable, "-m", "bench.baselines", kind, str(landing), *as_of_args],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def generate_shop(size: int, work: Path, log=print):
    """The folders of one size's run and its generated shop: (landing, data, home, generation, orders, events)."""
    landing, truth, data, home = (work / name for name in ("landing", "truth", "data", "home"))
    for folder in (landing, truth, data, home):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")

    log(f"[{size:,}] generating the shop ...")
    generated = run_measured(generate_command(size, landing, truth), os.environ, PROJECT_ROOT, work / "generate.log")
    if generated.returncode != 0:
        raise RuntimeError(f"the generator failed; see {work / 'generate.log'}")
    orders, events = parquet_rows(landing / "orders.parquet"), parquet_rows(landing / "events.parquet")
    log(f"[{size:,}] {orders:,} orders, {events:,} events in {generated.seconds:.1f}s; running {JOB} ...")
    return landing, data, home, generated, orders, events


def measured_run(size: int, orders: int, events: int, generated, pipeline, timings, load_average) -> dict:
    """The fields of a bench row every engine has: the shop, its generation, the measured run and its steps (time and
    memory: the run's samples laid over its steps' start and end events)."""
    peaks = step_peaks(pipeline.samples, timings.step_windows)
    moment = peak_moment(pipeline.samples)
    return dict(
        customers=size,
        orders=orders,
        events=events,
        generation_seconds=generated.seconds,
        end_to_end_seconds=pipeline.seconds,
        run_seconds=timings.run_seconds,
        peak_tree_rss_bytes=pipeline.peak_tree_rss_bytes,
        max_single_rss_bytes=pipeline.max_single_rss_bytes,
        peak_rss_by_kind=pipeline.peak_rss_by_kind,
        step_seconds=timings.step_seconds,
        succeeded=pipeline.returncode == 0 and timings.status == "SUCCESS",
        load_average=load_average,
        step_peak_rss_bytes={step: peak.peak_bytes for step, peak in peaks.items()},
        step_rss_rise_bytes={step: peak.rise_bytes for step, peak in peaks.items()},
        steps_at_peak=[] if moment is None else steps_running_at(moment, timings.step_windows),
    )


def bench_spark_size(
    size: int,
    work: Path,
    master: str = DEFAULT_SPARK_MASTER,
    driver_memory: str = DEFAULT_SPARK_DRIVER_MEMORY,
    log=print,
) -> SparkResult:
    """Generates one shop (the DuckDB row's: same seed and profile) and runs the graph on it with SEGMINT_ENGINE=spark,
    sampling memory per process kind; leaves logs in `work` (the Connect server's in data/spark-warehouse)."""
    landing, data, home, generated, orders, events = generate_shop(size, work, log)
    env = spark_env(pipeline_env(os.environ, landing, data, home), data, master, driver_memory)
    pipeline = run_measured(pipeline_command(), env, PROJECT_ROOT, work / "pipeline.log")
    load_average = os.getloadavg()
    timings = read_run_timings(home)
    by_kind = ", ".join(f"{kind} {rss / 1024**3:.2f}" for kind, rss in pipeline.peak_rss_by_kind.items())
    log(
        f"[{size:,} spark] pipeline {timings.status} in {pipeline.seconds:.1f}s, peak tree RSS "
        f"{pipeline.peak_tree_rss_bytes / 1024**3:.2f} GiB (GiB per kind: {by_kind})"
    )
    return SparkResult(
        **measured_run(size, orders, events, generated, pipeline, timings, load_average),
        spark_master=master,
        spark_driver_memory=driver_memory,
        pipeline_command="SEGMINT_ENGINE=spark " + " ".join(["python", *pipeline_command()[1:]]),
    )


def bench_size(size: int, work: Path, log=print) -> SizeResult:
    """Generates one shop, runs the graph on it and times both baselines; leaves logs in `work`."""
    landing, data, home, generated, orders, events = generate_shop(size, work, log)

    # A real day, not a re-run: the full run is made as of the day before the export's last order date (that day's
    # rows are quarantined as after_as_of), and the daily refresh the next day over the same export, so one more
    # day of orders and events arrives, the ingest's fingerprint moves (as-of) and every score is made anew. A
    # re-run over the same as-of would let steps keep their outputs (inputs unchanged), which no real day gets.
    next_day = last_order_day(landing)
    as_of = next_day - timedelta(days=1)
    env = pipeline_env(os.environ, landing, data, home)
    pipeline = run_measured(
        pipeline_command(), env | {"SEGMINT_AS_OF": as_of.isoformat()}, PROJECT_ROOT, work / "pipeline.log"
    )
    load_average = os.getloadavg()
    timings = read_run_timings(home)
    log(
        f"[{size:,}] pipeline {timings.status} in {pipeline.seconds:.1f}s, peak tree RSS "
        f"{pipeline.peak_tree_rss_bytes / 1024**3:.2f} GiB; timing the baselines ..."
    )
    daily_timings, daily_seconds = None, None
    if timings.status == "SUCCESS":
        log(f"[{size:,}] daily refresh as of {next_day} (re-staging the last {DAILY_WINDOW_DAYS} days) ...")
        daily_env = env | {"SEGMINT_AS_OF": next_day.isoformat()}
        daily = run_measured(daily_refresh_command(next_day), daily_env, PROJECT_ROOT, work / "daily.log")
        daily_timings, daily_seconds = read_run_timings(home), daily.seconds
        log(f"[{size:,}] daily refresh {daily_timings.status} in {daily.seconds:.1f}s")
    pandas, floor = run_baseline("pandas", landing, as_of), run_baseline("floor", landing)
    result = SizeResult(
        **measured_run(size, orders, events, generated, pipeline, timings, load_average),
        pandas_seconds=pandas["seconds"],
        pandas_peak_rss_bytes=pandas["peak_rss_bytes"],
        floor_seconds=floor["seconds"],
        model_seconds=timings.model_seconds,
        pipeline_command=" ".join(["python", *pipeline_command()[1:]]),
        daily_end_to_end_seconds=daily_seconds,
        daily_step_seconds=daily_timings.step_seconds if daily_timings else {},
        pandas_baseline=HONEST_PANDAS_BASELINE,
        pandas_cpu_seconds=pandas.get("cpu_seconds"),
    )
    log(
        f"[{size:,}] feature build {result.feature_seconds:.1f}s, pandas {result.pandas_seconds:.1f}s "
        f"({result.pandas_ratio:.1f}x), floor {result.floor_seconds:.2f}s ({result.floor_ratio:.1f}x)"
    )
    return result


def load_results(path: Path) -> list[Result]:
    """Results recorded by earlier runs (none when the file is absent)."""
    if not path.exists():
        return []
    return [from_json(item) for item in json.loads(path.read_text())]


def write_outputs(results: Sequence[Result], command: str) -> None:
    """bench/results.json (every engine's rows) and BENCHMARKS.md (with bench/notes.md appended)."""
    RESULTS_PATH.write_text(json.dumps([to_json(r) for r in results], indent=2) + "\n")
    notes = NOTES_PATH.read_text() if NOTES_PATH.exists() else ""
    duckdb_rows = [r for r in results if engine_of(r) == "duckdb"]
    spark_rows = [r for r in results if engine_of(r) == "spark"]
    text = render_benchmarks(duckdb_rows, machine_facts(), command, notes, spark_rows)
    if REALTIME_RESULTS_PATH.exists():  # `make bench-realtime`'s section (bench/realtime.py) stays in the file
        text = text.rstrip("\n") + "\n\n" + REALTIME_SECTION.format(REALTIME_RESULTS_PATH.read_text())
    BENCHMARKS_PATH.write_text(text)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="customers per shop")
    parser.add_argument(
        "--engine", choices=ENGINES, default="duckdb", help="SEGMINT_ENGINE of the runs (spark: the Spark rows)"
    )
    parser.add_argument("--spark-master", default=DEFAULT_SPARK_MASTER, help="SEGMINT_SPARK_MASTER of Spark runs")
    parser.add_argument(
        "--spark-driver-memory",
        default=os.environ.get("SPARK_DRIVER_MEMORY") or DEFAULT_SPARK_DRIVER_MEMORY,
        help="SPARK_DRIVER_MEMORY of the Spark Connect server (default: $SPARK_DRIVER_MEMORY or 6g)",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="where shops and warehouses go (default: a tmp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files, warehouses and logs")
    parser.add_argument("--report-only", action="store_true", help="re-render BENCHMARKS.md from bench/results.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Runs every size in turn, then writes results.json and BENCHMARKS.md."""
    args = parse_args(argv)
    command = "python -m bench.run --sizes " + " ".join(str(s) for s in args.sizes)
    command += " --engine spark" if args.engine == "spark" else ""
    results = load_results(RESULTS_PATH)
    if args.report_only:
        write_outputs(results, command)
        return
    if not MANIFEST.exists():
        sys.exit("dbt manifest missing: run `make manifest` first (make bench does).")
    base = args.work_dir or Path(tempfile.mkdtemp(prefix="segmint-bench-"))
    for size in args.sizes:
        work = base / str(size)
        shutil.rmtree(work, ignore_errors=True)
        try:
            if args.engine == "spark":
                result = bench_spark_size(size, work, args.spark_master, args.spark_driver_memory)
            else:
                result = bench_size(size, work)
        finally:
            if not args.keep:
                # Keep the logs of a failed run, drop the gigabytes of data.
                # (a Spark run's Connect server log stays: it is the one log of the JVM)
                log_file = work / "data" / "spark-warehouse" / "spark-connect.log"
                if log_file.exists():
                    shutil.copy(log_file, work / "spark-connect.log")
                for folder in ("landing", "truth", "data"):
                    shutil.rmtree(work / folder, ignore_errors=True)
        results = merge_results(results, [result])
        write_outputs(results, command)  # after every size, so a long run leaves its finished sizes behind
    print(f"Wrote {BENCHMARKS_PATH} and {RESULTS_PATH}; logs under {base}")


if __name__ == "__main__":
    main()
