"""Results of one benchmark size, the issue's targets, and BENCHMARKS.md rendered from them (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

GIB = 1024**3
# The feature build: the dbt step of the staging and feature marts, plus the back-test marts' own step
# (`dbt_backtest_models`, which builds customer_features_train/_selection when the model chain refits: on every full
# run of a new shop), so the figure covers the four marts the pandas baseline computes. Results recorded before
# issue 18 had the daily-partitioned staging `dbt_daily_models` apart; every step present is counted.
FEATURE_STEPS = ("dbt_daily_models", "dbt_feature_models", "dbt_backtest_models")
TOP_STEP_COUNT = 5
DAILY_TOP_STEP_COUNT = 3
# Issue 18's targets on the 2-core machine: at 1 million customers, and at 100 k.
TARGET_CUSTOMERS = 1_000_000
TARGET_END_TO_END_SECONDS = 300.0
TARGET_DAILY_SECONDS = 90.0
TARGET_PEAK_RSS_BYTES = 3 * GIB
TARGET_MAX_FLOOR_RATIO = 5.0  # feature build / raw scan: at most
TARGET_MIN_PANDAS_RATIO = 1.5  # pandas / feature build: at least
SMALL_TARGET_CUSTOMERS = 100_000
SMALL_TARGET_DAILY_SHARE = 0.20  # daily refresh / full run: at most
SMALL_TARGET_MIN_PANDAS_RATIO = 1.0  # the feature build faster than pandas
# What the pandas baseline computed when a result was recorded (results before issue 18: 14 columns of one mart).
OLD_PANDAS_BASELINE = "14 columns of customer_features"
HONEST_PANDAS_BASELINE = "every column of the 5 feature marts"


@dataclass(frozen=True)
class SizeResult:
    """One benchmark size: data volume, seconds, peak memory (bytes) and the baselines' seconds."""

    customers: int
    orders: int
    events: int
    generation_seconds: float
    end_to_end_seconds: float  # `dagster job execute` from launch to exit, start-up included
    run_seconds: float | None  # Dagster's own run start -> end events
    peak_tree_rss_bytes: int
    max_single_rss_bytes: int
    step_seconds: dict[str, float]
    pandas_seconds: float
    pandas_peak_rss_bytes: int
    floor_seconds: float
    succeeded: bool
    load_average: tuple[float, float, float]  # 1, 5 and 15 minute load when the pipeline finished
    model_seconds: dict[str, float] = field(default_factory=dict)
    # Runs recorded before `make run` moved to orchestration.cli used `dagster job execute` (same in-process run).
    pipeline_command: str = "dagster job execute -m orchestration.definitions -j segmint_refresh"
    # The daily refresh after it: the same job over the last DAILY_WINDOW_DAYS days' partitions (None: not run).
    daily_end_to_end_seconds: float | None = None
    daily_step_seconds: dict[str, float] = field(default_factory=dict)
    pandas_baseline: str = OLD_PANDAS_BASELINE
    pandas_cpu_seconds: float | None = None  # the baseline process's own CPU time (user + system)
    # Peak RSS per process kind (bench/procmem.py); empty in results recorded before issue 19.
    peak_rss_by_kind: dict[str, int] = field(default_factory=dict)
    # Per step: the largest tree RSS sampled while it ran, and how much the tree grew within it (bench.procmem
    # .step_peaks); the steps running when the tree peaked. Empty in results recorded before the per-step split.
    step_peak_rss_bytes: dict[str, int] = field(default_factory=dict)
    step_rss_rise_bytes: dict[str, int] = field(default_factory=dict)
    steps_at_peak: list[str] = field(default_factory=list)

    @property
    def feature_seconds(self) -> float:
        """The feature build of a run over every day: both dbt steps (start-up, staging, marts and their tests)."""
        return _feature_seconds(self.step_seconds)

    @property
    def daily_feature_seconds(self) -> float:
        """The feature build of the daily refresh: the last days staged, the marts rebuilt from the staging."""
        return _feature_seconds(self.daily_step_seconds)

    @property
    def pandas_ratio(self) -> float:
        """How many times slower the notebook build is than segmint's (target: >= 1.5 at 1 M, > 1 at 100 k)."""
        return self.pandas_seconds / self.feature_seconds

    @property
    def floor_ratio(self) -> float:
        """How many times slower segmint's feature build is than one raw scan (target: <= 5 at 1 M)."""
        return self.feature_seconds / self.floor_seconds

    @property
    def daily_share(self) -> float:
        """The daily refresh as a share of the full run (target: <= 20 % at 100 k); NaN when not run."""
        if self.daily_end_to_end_seconds is None:
            return float("nan")
        return self.daily_end_to_end_seconds / self.end_to_end_seconds


@dataclass(frozen=True)
class SparkResult:
    """One size run with SEGMINT_ENGINE=spark (issue 19): the same generated shop and end-to-end measurement as a
    `SizeResult`, plus peak RSS per process kind (bench/procmem.py). No daily refresh and no pandas or floor
    baselines: those compare DuckDB feature builds and are engine-independent (the DuckDB row of the size has them)."""

    customers: int
    orders: int
    events: int
    generation_seconds: float
    end_to_end_seconds: float
    run_seconds: float | None
    peak_tree_rss_bytes: int
    max_single_rss_bytes: int
    peak_rss_by_kind: dict[str, int]  # bench.procmem.PROCESS_KINDS -> bytes
    step_seconds: dict[str, float]
    succeeded: bool
    load_average: tuple[float, float, float]
    spark_master: str
    spark_driver_memory: str  # SPARK_DRIVER_MEMORY given to the Connect server's JVM
    pipeline_command: str
    engine: str = "spark"
    # Per step: the largest tree RSS sampled while it ran, and how much the tree grew within it (bench.procmem
    # .step_peaks); the steps running when the tree peaked. Empty in results recorded before the per-step split.
    step_peak_rss_bytes: dict[str, int] = field(default_factory=dict)
    step_rss_rise_bytes: dict[str, int] = field(default_factory=dict)
    steps_at_peak: list[str] = field(default_factory=list)

    @property
    def feature_seconds(self) -> float:
        """The dbt feature step (Spark Connect server start included: the run's first Spark step starts it)."""
        return _feature_seconds(self.step_seconds)


def _feature_seconds(step_seconds: Mapping[str, float]) -> float:
    # Older results have one dbt step for staging and features; a missing step counts as not measured.
    present = [step_seconds[step] for step in FEATURE_STEPS if step in step_seconds]
    return sum(present) if present else float("nan")


@dataclass(frozen=True)
class Verdict:
    """One target: what was asked, what was measured, met or not, and the margin in words."""

    target: str
    measured: str
    met: bool
    margin: str


def to_json(result: SizeResult) -> dict:
    """A result as plain JSON-able data."""
    return asdict(result)


def from_json(data: Mapping) -> SizeResult | SparkResult:
    """A result back from `to_json`'s output (a Spark row says `"engine": "spark"`; DuckDB rows have no engine key,
    as before issue 19)."""
    kind = SparkResult if data.get("engine") == "spark" else SizeResult
    return kind(**{**data, "load_average": tuple(data["load_average"])})


def _times(value: float) -> str:
    if value != value:  # NaN: the feature step is missing from the run
        return "n/a"
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def verdicts(result: SizeResult) -> list[Verdict]:
    """Issue 18's targets at 1 million customers, judged on one result."""
    seconds, peak, daily = result.end_to_end_seconds, result.peak_tree_rss_bytes, result.daily_end_to_end_seconds
    daily_value = float("nan") if daily is None else daily
    floor, pandas = result.floor_ratio, result.pandas_ratio
    return [
        Verdict(
            f"full run <= {TARGET_END_TO_END_SECONDS:.0f} s",
            f"{seconds:.0f} s",
            result.succeeded and seconds <= TARGET_END_TO_END_SECONDS,
            _margin(seconds, TARGET_END_TO_END_SECONDS, "s", lower_is_better=True),
        ),
        Verdict(
            f"daily refresh (3 days of late data) <= {TARGET_DAILY_SECONDS:.0f} s",
            "not run" if daily is None else f"{daily:.0f} s",
            daily is not None and daily <= TARGET_DAILY_SECONDS,
            _margin(daily_value, TARGET_DAILY_SECONDS, "s", lower_is_better=True),
        ),
        Verdict(
            f"feature build >= {TARGET_MIN_PANDAS_RATIO}x faster than honest pandas",
            _times(pandas) + ("" if result.pandas_baseline == HONEST_PANDAS_BASELINE else " (old 14-column baseline)"),
            pandas >= TARGET_MIN_PANDAS_RATIO and result.pandas_baseline == HONEST_PANDAS_BASELINE,
            _margin(pandas, TARGET_MIN_PANDAS_RATIO, "x", lower_is_better=False),
        ),
        Verdict(
            f"feature build <= {TARGET_MAX_FLOOR_RATIO:.0f}x the raw-scan floor",
            _times(floor),
            floor <= TARGET_MAX_FLOOR_RATIO,
            _margin(floor, TARGET_MAX_FLOOR_RATIO, "x", lower_is_better=True),
        ),
        Verdict(
            f"peak RSS <= {TARGET_PEAK_RSS_BYTES / GIB:.0f} GiB",
            f"{peak / GIB:.2f} GiB",
            peak <= TARGET_PEAK_RSS_BYTES,
            _margin(peak / GIB, TARGET_PEAK_RSS_BYTES / GIB, " GiB", lower_is_better=True),
        ),
    ]


def small_verdicts(result: SizeResult) -> list[Verdict]:
    """Issue 18's targets at 100 k customers: the daily refresh a fifth of the full run, features beat pandas."""
    share, pandas = result.daily_share, result.pandas_ratio
    return [
        Verdict(
            f"daily refresh <= {SMALL_TARGET_DAILY_SHARE:.0%} of the full run",
            "not run" if share != share else f"{share:.0%}",
            result.succeeded and share <= SMALL_TARGET_DAILY_SHARE,
            _margin(share * 100, SMALL_TARGET_DAILY_SHARE * 100, " points", lower_is_better=True),
        ),
        Verdict(
            "feature build faster than honest pandas",
            _times(pandas) + ("" if result.pandas_baseline == HONEST_PANDAS_BASELINE else " (old 14-column baseline)"),
            pandas > SMALL_TARGET_MIN_PANDAS_RATIO and result.pandas_baseline == HONEST_PANDAS_BASELINE,
            _margin(pandas, SMALL_TARGET_MIN_PANDAS_RATIO, "x", lower_is_better=False),
        ),
    ]


def _margin(measured: float, target: float, unit: str, lower_is_better: bool) -> str:
    """Distance to the target in words: the headroom when met, the excess (as a factor) when missed."""
    if measured != measured:
        return "not measured"
    if lower_is_better:
        if measured <= target:
            return f"met with {target - measured:.1f}{unit} ({(target - measured) / target:.0%}) headroom"
        return f"missed by {measured - target:.1f}{unit}: {measured / target:.1f} times the limit"
    if measured >= target:
        return f"met: {measured / target:.1f} times the minimum"
    return f"missed: {target / measured:.1f} times short of the minimum"


def _gib(value: int) -> str:
    return f"{value / GIB:.2f}"


def _top_steps_cell(step_seconds: Mapping[str, float], count: int = TOP_STEP_COUNT) -> str:
    ranked = sorted(step_seconds.items(), key=lambda item: (-item[1], item[0]))[:count]
    return "<br>".join(f"{name} {seconds:.1f}s" for name, seconds in ranked)


def _memory_steps_cell(result: SizeResult | SparkResult, count: int = TOP_STEP_COUNT) -> str:
    """The steps with the largest peaks (GiB, the growth within the step in parentheses), then those at the peak."""
    if not result.step_peak_rss_bytes:
        return "n/a"
    ranked = sorted(result.step_peak_rss_bytes.items(), key=lambda item: (-item[1], item[0]))[:count]
    lines = [f"{name} {_gib(peak)} (+{_gib(result.step_rss_rise_bytes.get(name, 0))})" for name, peak in ranked]
    if result.steps_at_peak:
        lines.append("at the peak: " + ", ".join(result.steps_at_peak))
    return "<br>".join(lines)


def results_table(results: Sequence[SizeResult]) -> str:
    """The Markdown table of all sizes, smallest first."""
    header = (
        "| customers | orders | events | generate (s) | end to end (s) | dagster run (s) | peak RSS tree (GiB) "
        "| largest process (GiB) | feature build (s) | pandas (s) | floor scan (s) | pandas ratio | floor ratio "
        "| daily refresh (s) | daily feature build (s) | load avg (1/5/15) | top 5 steps | daily refresh: top 3 steps "
        "| top 5 steps by peak RSS tree (GiB, growth in the step) |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|"
    )
    rows = []
    for r in sorted(results, key=lambda r: r.customers):
        status = "" if r.succeeded else " (FAILED)"
        run = f"{r.run_seconds:.1f}" if r.run_seconds is not None else "n/a"
        load = "/".join(f"{x:.1f}" for x in r.load_average)
        daily = f"{r.daily_end_to_end_seconds:.1f}" if r.daily_end_to_end_seconds is not None else "n/a"
        daily_features = f"{r.daily_feature_seconds:.1f}" if r.daily_step_seconds else "n/a"
        pandas = f"{r.pandas_seconds:.1f}" + ("" if r.pandas_baseline == HONEST_PANDAS_BASELINE else " (14 cols)")
        pandas += f" (cpu {r.pandas_cpu_seconds:.1f})" if r.pandas_cpu_seconds is not None else ""
        daily_top = _top_steps_cell(r.daily_step_seconds, DAILY_TOP_STEP_COUNT) or "n/a"
        rows.append(
            f"| {r.customers:,}{status} | {r.orders:,} | {r.events:,} | {r.generation_seconds:.1f} "
            f"| {r.end_to_end_seconds:.1f} | {run} | {_gib(r.peak_tree_rss_bytes)} | {_gib(r.max_single_rss_bytes)} "
            f"| {r.feature_seconds:.1f} | {pandas} | {r.floor_seconds:.2f} | {_times(r.pandas_ratio)} "
            f"| {_times(r.floor_ratio)} | {daily} | {daily_features} | {load} | {_top_steps_cell(r.step_seconds)} "
            f"| {daily_top} | {_memory_steps_cell(r)} |"
        )
    return "\n".join([header, *rows])


def verdict_table(results: Sequence[SizeResult]) -> str:
    """Issue 18's targets as one Markdown table: the 1 M targets and the 100 k ones, each on its size's result."""
    lines = ["| size | target | measured | met | margin |", "|---|---|---|---|---|"]
    by_size = {r.customers: r for r in results}
    for size, judge in ((TARGET_CUSTOMERS, verdicts), (SMALL_TARGET_CUSTOMERS, small_verdicts)):
        result = by_size.get(size)
        if result is None:
            lines.append(
                f"| {size:,} | every target of this size | not run yet | n/a | run `python -m bench.run --sizes {size}` |"
            )
            continue
        for v in judge(result):
            lines.append(f"| {size:,} | {v.target} | {v.measured} | {'met' if v.met else 'MISSED'} | {v.margin} |")
    return "\n".join(lines)


def model_table(results: Sequence[SizeResult]) -> str:
    """dbt's own execution time per feature model and size: the SQL work inside the feature step."""
    ordered = sorted(results, key=lambda r: r.customers)
    models = sorted({m for r in ordered for m in r.model_seconds})
    if not models:
        return "_No dbt model timings recorded._"
    header = "| dbt model | " + " | ".join(f"{r.customers:,}" for r in ordered) + " |"
    lines = [header, "|---|" + "---:|" * len(ordered)]
    for model in models:
        cells = " | ".join(f"{r.model_seconds[model]:.1f}" if model in r.model_seconds else "" for r in ordered)
        lines.append(f"| {model} | {cells} |")
    return "\n".join(lines)


# Column headings of bench.procmem's process kinds (imported names would tie this pure module to /proc reading).
KIND_HEADINGS = {
    "dagster": "Dagster process",
    "dbt": "dbt processes",
    "spark_jvm": "Spark Connect JVM",
    "spark_python_workers": "Spark Python workers",
    "other": "other",  # Dagster's compute-log `tail`s, shells
}


def spark_table(spark_results: Sequence[SparkResult], duckdb_results: Sequence[SizeResult]) -> str:
    """The Spark rows: engine, size, end to end beside DuckDB's on the same size, peak RSS per process kind, top steps."""
    if not spark_results:
        return "_No Spark run recorded yet: `python -m bench.run --engine spark --sizes 100000 1000000`._"
    duckdb_by_size = {r.customers: r for r in duckdb_results}
    kinds = " | ".join(f"peak {heading} (GiB)" for heading in KIND_HEADINGS.values())
    header = (
        f"| engine | customers | orders | events | end to end (s) | DuckDB end to end (s) | Spark / DuckDB "
        f"| dagster run (s) | feature build (s) | peak RSS tree (GiB) | {kinds} | master, driver memory "
        f"| load avg (1/5/15) | top 5 steps |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(KIND_HEADINGS) + "---|---|---|"
    )
    rows = []
    for r in sorted(spark_results, key=lambda r: r.customers):
        status = "" if r.succeeded else " (FAILED)"
        duckdb_row = duckdb_by_size.get(r.customers)
        same_shop = duckdb_row is not None and (duckdb_row.orders, duckdb_row.events) == (r.orders, r.events)
        if duckdb_row is None:
            duckdb_cell, ratio = "not run", "n/a"
        else:
            duckdb_cell = f"{duckdb_row.end_to_end_seconds:.1f}" + ("" if same_shop else " (other shop)")
            ratio = _times(r.end_to_end_seconds / duckdb_row.end_to_end_seconds)
        run = f"{r.run_seconds:.1f}" if r.run_seconds is not None else "n/a"
        kind_cells = " | ".join(
            _gib(r.peak_rss_by_kind[kind]) if kind in r.peak_rss_by_kind else "0" for kind in KIND_HEADINGS
        )
        load = "/".join(f"{x:.1f}" for x in r.load_average)
        rows.append(
            f"| {r.engine} | {r.customers:,}{status} | {r.orders:,} | {r.events:,} | {r.end_to_end_seconds:.1f} "
            f"| {duckdb_cell} | {ratio} | {run} | {r.feature_seconds:.1f} | {_gib(r.peak_tree_rss_bytes)} "
            f"| {kind_cells} | {r.spark_master}, {r.spark_driver_memory} | {load} | {_top_steps_cell(r.step_seconds)} |"
        )
    return "\n".join([header, *rows])


def render_benchmarks(
    results: Sequence[SizeResult],
    machine: Mapping[str, str],
    command: str,
    notes: str,
    spark_results: Sequence[SparkResult] = (),
) -> str:
    """BENCHMARKS.md: machine, command, the table for every size, targets on the 1-million size, then the notes."""
    commands = " / ".join(sorted({f"`{r.pipeline_command}`" for r in results}))
    machine_lines = "\n".join(f"- {key}: {value}" for key, value in machine.items())
    return f"""# Benchmarks

Produced by `{command}` (`bench/run.py`); regenerate with `make bench`. Numbers are wall-clock seconds on a shared
machine: the load average column says how busy it was (other jobs were running; 2.0 = both cores busy).

## Machine
{machine_lines}

## What is measured
- **generate**: `python -m demo_shop --format parquet --profile bench` (~5 orders and ~30 events per customer, plus
  ~40 % extra anonymous prospects); not part of the pipeline time.
- **end to end**: the job `segmint_refresh` run exactly as `make run` runs it ({commands}),
  with `SEGMINT_LANDING_DIR` on the generated files, a fresh `DAGSTER_HOME` and a fresh warehouse; launch to exit,
  Python and Dagster start-up included. **dagster run** is the run's own start -> end events.
- **peak RSS tree**: the sum of VmRSS over the process and all its children (on DuckDB dbt runs inside the run's
  process since 2026-11-27, `SEGMINT_DBT_IN_PROCESS`; as a subprocess before, and on Spark), sampled every 0.2 s from
  `/proc`. **largest process** is the kernel's `ru_maxrss` for the tree: a floor for the peak. Each sample
  is also split by process kind, read from the command line (`bench/procmem.py`): the Dagster process (and
  Dagster's Python helpers), dbt processes, the Spark Connect JVM (and its launcher scripts), Spark's Python workers
  (`pyspark.daemon` and its forks), other (Dagster's compute-log `tail`s); recorded in `bench/results.json` for
  every row since issue 19, shown in the Spark table. **top 5 steps by peak RSS**: the samples laid over the run's
  step start and end events: a step's peak is the largest tree sum sampled while it ran, the growth is that peak less
  the sample at its start (`make run` executes in one process, so memory a step keeps is still counted in the steps
  after it: the growth says which step took it); **at the peak** names the step(s) running when the tree peaked.
- **feature build**: the dbt steps `dbt_feature_models` and `dbt_backtest_models` of the full run: one dbt
  invocation that stages orders and events (`stg_orders`, `stg_visitor_event_days`, `stg_visitor_event_type_days`:
  every day) and builds the feature marts, and one that builds the back-test marts (`customer_features_train`,
  `_selection`; on a full run of a new shop the model chain always refits), dbt start-ups, dbt tests and row counts
  included. Results recorded before issue 18 add the separate
  daily-partitioned staging step `dbt_daily_models` (two dbt start-ups and one Dagster record per day and asset).
  Per-model SQL time is in the second table. The targets are judged on this figure.
- **daily refresh**: the next day. The full run is made as of the day before the generated export's last order date
  (`SEGMINT_AS_OF`; that day's rows are quarantined as `after_as_of`); right after, the same job runs as the daily
  schedule does, one day later (`SEGMINT_AS_OF=<last order date> python -m orchestration.cli segmint_refresh --from
  <as-of - 2> --to <as-of>`, same files): one more day of orders and events arrives, the ingest appends the records now due
  (landing/README "append ingest"; rows recorded before 2026-11-27 re-read every file), every customer's features and scores move with the date, the model stays
  pinned unless its cadence says otherwise. Rows recorded before 2026-11-26 21:00 UTC ran it at the same as-of with
  `SEGMINT_FORCE_INGEST=1`. **daily feature build** is its dbt feature step: 3 days of orders and events staged, the
  customer marts brought forward from their last build (README "Customer marts on a real next day"; rows recorded
  before 2026-11-27 rebuilt them from the whole staged history).
- **pandas**: the notebook way, `bench/baselines.py`: read the Parquet files (only the needed columns, ids as
  categoricals), vectorised group-bys over integer codes, and compute every column of the five feature marts the
  feature build produces (`customer_features`, `_train`, `_selection`, `customer_prepurchase_behaviour`,
  `prospect_features`: sessions, labels and top event types included), in memory, without tests or writes.
  `tests/integration/test_pandas_baseline.py` checks it reproduces every column of the warehouse's marts. Fresh
  process. Results recorded before issue 18 timed a notebook of 14 columns of one mart: marked "(14 cols)".
- **floor scan**: one DuckDB query over the raw Parquet files, grouped by customer: count, sum, min, max of orders
  and a count per event type (14) over events. **pandas ratio** = pandas / feature build (target >= 1.5 at 1 M);
  **floor ratio** = feature build / floor scan (target <= 5 at 1 M).

## Results
{results_table(results)}

### dbt's own time per model, the feature and score steps (seconds, "Execution Duration" reported by dagster-dbt)
{model_table(results)}

## Spark engine (issue 19: `SEGMINT_ENGINE=spark`, `python -m bench.run --engine spark`)
The same generated shop (same seed and profile: the orders and events columns match the DuckDB row) and the same
end-to-end measurement with `SEGMINT_ENGINE=spark`: one local Spark Connect server for the run (`local[2]` by
default), every dbt step on it, CLV scoring in Spark. Spark in local mode on these 2 cores is expected to be slower
than DuckDB (a JVM, a Hive metastore, Parquet tables written per model, the raw tables copied across): the point is
that the same run scales out on a cluster, not that it wins here. Not run for Spark rows: the daily refresh and the
pandas and floor baselines (they judge the DuckDB feature build). Peak per process kind: the largest sum of that
kind's processes in one 0.2 s sample (`bench/procmem.py`, kind from the command line); the kinds peak at different
moments, so they add up to more than the tree's peak.

{spark_table(spark_results, results)}

## Targets (issue 18, on this 2-core machine)
{verdict_table(results)}

{notes.strip()}
"""
