"""Resident memory of a process tree, read from /proc (Linux), and a sampler that keeps its peak.

The sampled sum over the tree is the honest figure for a pipeline that starts subprocesses (dbt under Dagster):
`ru_maxrss` only reports the largest single process, so it is kept as a floor, not as the answer.

Each sample also splits the tree by process kind (`process_kind`, from the command line): the Dagster process, dbt
processes, the Spark Connect JVM and Spark's Python workers. The peak of each kind is the largest sum of that kind's
processes in one sample; the kinds peak at different moments, so their peaks add up to more than the tree's peak.

Every sample also keeps its wall-clock time and the tree's sum, so that the peak can be laid over the run's steps
afterwards (`step_peaks`, `steps_running_at`): a step's peak is the largest tree sum sampled between its start and end
events. That works the same under the in-process executor (one Dagster process, steps one after another: memory a
step leaves behind shows up in the next steps' figures too, so `StepPeak.rise_bytes` gives the growth within the
step) and under the multiprocess one (a process per step, two at a time: both steps of an overlap see the sum).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROC_ROOT = Path("/proc")
SAMPLE_INTERVAL_SECONDS = 0.2
KIB = 1024


def parse_vmrss_kib(status_text: str) -> int | None:
    """VmRSS in KiB from the text of /proc/<pid>/status; None for a process without one (a zombie, a kernel thread)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def parse_parent_pid(stat_text: str) -> int:
    """Parent pid from the text of /proc/<pid>/stat (field 4; the command name in parentheses may hold spaces)."""
    after_name = stat_text.rsplit(")", 1)[1].split()
    return int(after_name[1])


def descendants(root_pid: int, parent_of: Mapping[int, int]) -> set[int]:
    """The root pid and every pid whose chain of parents reaches it."""
    children: dict[int, list[int]] = {}
    for pid, parent in parent_of.items():
        children.setdefault(parent, []).append(pid)
    found, stack = {root_pid}, [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


# Process kinds, in the order the report lists them.
KIND_DAGSTER = "dagster"  # the run's own process (`python -m orchestration.cli`, in-process executor) and any Python
KIND_DBT = "dbt"  # the `dbt build` subprocesses dagster-dbt starts
KIND_SPARK_JVM = "spark_jvm"  # the Spark Connect server (spark-submit's java) and its launcher scripts
KIND_SPARK_PYTHON = "spark_python_workers"  # pyspark.daemon and the workers it forks (mapInArrow, UDFs)
KIND_OTHER = "other"
PROCESS_KINDS = (KIND_DAGSTER, KIND_DBT, KIND_SPARK_JVM, KIND_SPARK_PYTHON, KIND_OTHER)
DBT_EXECUTABLES = {"dbt", "dbtf"}
SPARK_SCRIPTS = {"spark-submit", "spark-class", "load-spark-env.sh", "find-spark-home"}


def parse_cmdline(raw: bytes) -> list[str]:
    """argv from /proc/<pid>/cmdline (NUL-separated, NUL-terminated); empty for a zombie or a kernel thread."""
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def process_kind(argv: Sequence[str]) -> str:
    """Which part of a run a process is, from its command line (see PROCESS_KINDS)."""
    if not argv:
        return KIND_OTHER
    names = [Path(arg).name for arg in argv[:3]]
    if any(arg.startswith("pyspark.") for arg in argv[1:4]):  # `python -m pyspark.daemon` (its forks keep the argv)
        return KIND_SPARK_PYTHON
    if names[0] == "java" or any(name in SPARK_SCRIPTS for name in names):
        return KIND_SPARK_JVM
    # `dbt` is a console script: `python .../bin/dbt build ...` once the kernel has read its shebang.
    if names[0] in DBT_EXECUTABLES or (names[0].startswith("python") and names[1:2] and names[1] in DBT_EXECUTABLES):
        return KIND_DBT
    if names[0].startswith("python"):
        return KIND_DAGSTER
    return KIND_OTHER


def _read(path: Path) -> str | None:
    # Processes come and go between listing /proc and reading it: a vanished one simply does not count.
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def parent_pids(proc_root: Path = PROC_ROOT) -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc."""
    parents = {}
    for entry in proc_root.iterdir():
        if entry.name.isdigit():
            text = _read(entry / "stat")
            if text is not None:
                parents[int(entry.name)] = parse_parent_pid(text)
    return parents


def tree_rss_bytes(root_pid: int, proc_root: Path = PROC_ROOT) -> int:
    """Sum of VmRSS over a process and all its descendants, in bytes (shared pages are counted per process)."""
    total_kib = 0
    for pid in descendants(root_pid, parent_pids(proc_root)):
        text = _read(proc_root / str(pid) / "status")
        total_kib += (parse_vmrss_kib(text) or 0) if text is not None else 0
    return total_kib * KIB


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def tree_rss_by_kind(root_pid: int, proc_root: Path = PROC_ROOT) -> dict[str, int]:
    """Sum of VmRSS per process kind over a process and all its descendants, in bytes (kinds without one: absent)."""
    by_kind: dict[str, int] = {}
    for pid in descendants(root_pid, parent_pids(proc_root)):
        text = _read(proc_root / str(pid) / "status")
        rss_kib = (parse_vmrss_kib(text) or 0) if text is not None else 0
        raw = _read_bytes(proc_root / str(pid) / "cmdline")
        if not rss_kib or raw is None:
            continue
        kind = process_kind(parse_cmdline(raw))
        by_kind[kind] = by_kind.get(kind, 0) + rss_kib * KIB
    return by_kind


def merge_peaks(peaks: Mapping[str, int], sample: Mapping[str, int]) -> dict[str, int]:
    """Per-kind peaks so far, updated with one sample."""
    return {kind: max(peaks.get(kind, 0), sample.get(kind, 0)) for kind in {*peaks, *sample}}


@dataclass(frozen=True)
class MeasuredProcess:
    """One finished command: wall seconds, exit code, sampled peak tree RSS and the kernel's largest-process RSS."""

    seconds: float
    returncode: int
    peak_tree_rss_bytes: int
    max_single_rss_bytes: int  # ru_maxrss of the reaped tree: the largest single process, a floor for the peak
    peak_rss_by_kind: dict[str, int] = field(default_factory=dict)  # process kind -> its largest one-sample sum
    # (unix seconds, tree RSS bytes) of every sample, in time order: for laying the memory over the run's steps.
    samples: tuple[tuple[float, int], ...] = ()
    cpu_seconds: float = 0.0  # user + system CPU of the reaped tree (the command and the children it waited for)


@dataclass(frozen=True)
class StepPeak:
    """The tree's memory while one step ran: its largest sample, the sample at its start, and the difference."""

    peak_bytes: int
    start_bytes: int

    @property
    def rise_bytes(self) -> int:
        """How much the tree grew within the step (under the in-process executor: what the step itself added)."""
        return max(self.peak_bytes - self.start_bytes, 0)


def step_peaks(samples: Sequence[tuple[float, int]], windows: Mapping[str, tuple[float, float]]) -> dict[str, StepPeak]:
    """Per step (start and end unix seconds), the largest tree sample taken while it ran and the last sample at or
    before its start (its first sample when none is). A step too short to be sampled has no entry."""
    peaks = {}
    for step, (start, end) in windows.items():
        inside = [rss for at, rss in samples if start <= at <= end]
        if not inside:
            continue
        before = [rss for at, rss in samples if at <= start]
        peaks[step] = StepPeak(peak_bytes=max(inside), start_bytes=before[-1] if before else inside[0])
    return peaks


def held_after(samples: Sequence[tuple[float, int]], windows: Mapping[str, tuple[float, float]]) -> dict[str, int]:
    """Per step, the first tree sample at or after its end: what it leaves resident for the steps after it (under
    the in-process executor the run's one process keeps whatever a step did not give back). A step that ended after
    the last sample has no entry."""
    held = {}
    for step, (_, end) in windows.items():
        after = [rss for at, rss in samples if at >= end]
        if after:
            held[step] = after[0]
    return held


def steps_running_at(moment: float, windows: Mapping[str, tuple[float, float]]) -> list[str]:
    """The steps whose start-end window holds a moment (two under the multiprocess executor's overlaps), by name."""
    return sorted(step for step, (start, end) in windows.items() if start <= moment <= end)


def peak_moment(samples: Sequence[tuple[float, int]]) -> float | None:
    """When the tree's largest sample was taken (the first of equal ones); None without samples."""
    if not samples:
        return None
    return max(samples, key=lambda sample: (sample[1], -sample[0]))[0]


def run_measured(
    command: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    interval_seconds: float = SAMPLE_INTERVAL_SECONDS,
) -> MeasuredProcess:
    """Runs a command with stdout and stderr to a log file, sampling the RSS of its process tree until it exits."""
    peak, peak_by_kind = 0, {}
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT)

        def sample() -> None:
            nonlocal peak, peak_by_kind
            while not done.is_set():
                at = time.time()  # wall clock, the same clock as Dagster's event timestamps
                by_kind = tree_rss_by_kind(process.pid)
                total = sum(by_kind.values())
                samples.append((at, total))
                peak = max(peak, total)
                peak_by_kind = merge_peaks(peak_by_kind, by_kind)
                done.wait(interval_seconds)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # wait4 rather than Popen.wait: it returns the rusage of this child's tree alone.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    return MeasuredProcess(
        seconds=seconds,
        returncode=process.returncode,
        peak_tree_rss_bytes=peak,
        max_single_rss_bytes=usage.ru_maxrss * KIB,
        peak_rss_by_kind={kind: peak_by_kind[kind] for kind in PROCESS_KINDS if kind in peak_by_kind},
        samples=tuple(samples),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )
