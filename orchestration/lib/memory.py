"""Giving memory a finished step freed back to the operating system (issue 18: the whole run under 3 GiB).

`make run` executes every step in one process (in-process executor), so whatever a step's frames and DuckDB
database left in the C heap is still resident while the next step (or dbt, which runs in this process too on
DuckDB, orchestration/lib/dbt_cli.py) runs. The run's steps share one DuckDB handle (orchestration/defs/resources.py,
Warehouse): after a step whose queries left more than KEPT_CACHE_BYTES in DuckDB's buffers, or after a failed step,
the hook closes it first, so its memory goes back as a step's own connection's did. Python frees a step's pandas frames and numpy arrays as soon as the step returns, but glibc keeps
the freed pages of its heaps and arenas unless asked: `malloc_trim(0)` hands every free page back. It costs about a
millisecond, so the run calls it after every step (`release_memory_hook`, on the refresh jobs). No `gc.collect()`:
the frames are freed by reference counting, and a full collection of a process that imported Dagster, dbt and
scikit-learn costs ~1 s (measured), which a 75-step run would pay 75 times.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from pathlib import Path

import dagster as dg

PROC_STATUS = Path("/proc/self/status")


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where there is none (macOS, musl): there the release is a no-op."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def resident_bytes(status: Path = PROC_STATUS) -> int | None:
    """This process's resident memory (VmRSS) in bytes; None where /proc is not there."""
    try:
        text = status.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def release_freed_memory() -> int:
    """Return the C heap's free pages to the operating system; how many bytes of resident memory that gave back
    (0 where malloc_trim or /proc is missing)."""
    trim = _malloc_trim()
    if trim is None:
        return 0
    before = resident_bytes()
    trim(0)
    after = resident_bytes()
    return max(before - after, 0) if before is not None and after is not None else 0


def _close_large_warehouse_cache(context: dg.HookContext, always: bool = False) -> None:
    """Close the run's kept DuckDB handle (orchestration/defs/resources.py, Warehouse) when its buffers hold more than
    KEPT_CACHE_BYTES, or `always` (after a failure): its memory then goes back like a step's own connection's did."""
    from orchestration.defs.resources import KEPT_CACHE_BYTES  # the resources module imports Dagster's defs

    warehouse = getattr(context.resources, "warehouse", None)
    if warehouse is None or not hasattr(warehouse, "release"):
        return
    try:
        cached = warehouse.cached_bytes()
    except Exception as error:  # a handle DuckDB invalidated: close it, the next step opens the file again
        context.log.debug(f"closing the kept warehouse handle: {error}")
        always = True
        cached = 0
    if (always or cached > KEPT_CACHE_BYTES) and warehouse.release():
        context.log.debug(f"closed the kept warehouse handle after {context.op.name} ({cached / 2**20:.0f} MiB cached)")


@dg.success_hook(name="release_freed_memory", required_resource_keys={"warehouse"})
def release_memory_on_success(context: dg.HookContext) -> None:
    _close_large_warehouse_cache(context)
    released = release_freed_memory()
    if released:
        context.log.debug(f"gave back {released / 2**20:.0f} MiB of freed memory after {context.op.name}")


@dg.failure_hook(name="release_freed_memory_after_failure", required_resource_keys={"warehouse"})
def release_memory_on_failure(context: dg.HookContext) -> None:
    _close_large_warehouse_cache(context, always=True)
    release_freed_memory()


# Both: a failed step (e.g. a blocking check) frees its frames too, and the run goes on with the other branches.
release_memory_hooks = {release_memory_on_success, release_memory_on_failure}
