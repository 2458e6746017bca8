"""Resident memory of a process tree, read from /proc (Linux), and a sampler that keeps its peak.

The sampled sum over the tree is the honest figure for a pipeline that starts subprocesses (dbt under Dagster):
`ru_maxrss` only reports the largest single process, so it is kept as a floor, not as the answer.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class MeasuredProcess:
    """One finished command: wall seconds, exit code, sampled peak tree RSS and the kernel's largest-process RSS."""

    seconds: float
    returncode: int
    peak_tree_rss_bytes: int
    max_single_rss_bytes: int  # ru_maxrss of the reaped tree: the largest single process, a floor for the peak


def run_measured(
    command: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    interval_seconds: float = SAMPLE_INTERVAL_SECONDS,
) -> MeasuredProcess:
    """Runs a command with stdout and stderr to a log file, sampling the RSS of its process tree until it exits."""
    peak = 0
    done = threading.Event()
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT)

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss_bytes(process.pid))
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
    )
