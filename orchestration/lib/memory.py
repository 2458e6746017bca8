"""Memory of an in-process run (issue 18: the whole run under 3 GiB) and the cost of Python's cyclic collector.

`make run` executes every step in one process (in-process executor), so whatever a step's frames and DuckDB
database left in the C heap is still resident while the next step (or dbt, which runs in this process too on
DuckDB, orchestration/lib/dbt_cli.py) runs. The run's steps share one DuckDB handle (orchestration/defs/resources.py,
Warehouse): after a step whose queries left more than KEPT_CACHE_BYTES in DuckDB's buffers, or after a failed step,
the hook closes it first, so its memory goes back as a step's own connection's did. Python frees a step's pandas frames and numpy arrays as soon as the step returns, but glibc keeps
the freed pages of its heaps and arenas unless asked: `malloc_trim(0)` hands every free page back. It costs about a
millisecond, so the run calls it after every step (`release_memory_hook`, on the refresh jobs).

The cyclic garbage collector, one policy for the whole run (`collector_paused`; applied by `in_process_executor`,
the executor of every job and of the location, and by `make run` from before it loads the definitions, whose
`execute_in_process` runs Dagster's own in-process executor, so there the release-memory hooks of every job collect
between steps): the objects alive when
the run starts (the imports and definitions of Dagster, dbt, scikit-learn, about 0.55 M objects) are frozen, so no
collection walks them again; the collector does not run inside a step; after each step one collection frees the
cycles that step left (`collect_garbage`: it walks what the step made, and the run's older survivors only when they
grew by a quarter); at the run's end the collector is back as it was. Inside a step, a full collection walked every
object of the process, the imports included, each time the young objects outgrew a quarter of the old ones:
building 10^6 records took 4.8 CPU s with the collector on, 0.7 s paused (0.55 M imported objects, this machine);
py-spy put about half of a 1 M-customer sync or export step in gc_collect_main. Reference counting still frees
every acyclic object at once; a cycle made in a step waits until the step ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def _collect_after_step(context: dg.HookContext) -> None:
    if _collect_in_hooks:
        freed, seconds = collect_garbage()
        context.log.debug(f"collector after {context.op.name}: {freed} objects freed in {seconds:.3f} CPU s")


@dg.success_hook(name="release_freed_memory", required_resource_keys={"warehouse"})
def release_memory_on_success(context: dg.HookContext) -> None:
    _close_large_warehouse_cache(context)
    _collect_after_step(context)
    released = release_freed_memory()
    if released:
        context.log.debug(f"gave back {released / 2**20:.0f} MiB of freed memory after {context.op.name}")


@dg.failure_hook(name="release_freed_memory_after_failure", required_resource_keys={"warehouse"})
def release_memory_on_failure(context: dg.HookContext) -> None:
    _close_large_warehouse_cache(context, always=True)
    _collect_after_step(context)
    release_freed_memory()


# Both: a failed step (e.g. a blocking check) frees its frames too, and the run goes on with the other branches.
release_memory_hooks = {release_memory_on_success, release_memory_on_failure}


# Set while a run that Dagster executes with its own in-process executor (`execute_in_process`: `make run`, the
# CLI) is under the policy: there the job's hooks collect after each step, as the executor below does elsewhere.
_collect_in_hooks = False
# Objects of the oldest generation now and after its last full collection, as counted by collect_garbage, and the
# objects frozen when the run started.
_old_objects = _old_after_full = _frozen = 0


@contextmanager
def collector_paused(collect_in_hooks: bool = False) -> Iterator[None]:
    """The run's collector policy (module docstring): freeze what is alive and pause the collector until the end,
    then restore both. `collect_in_hooks`: the release-memory hooks collect after each step (`collect_garbage`)."""
    global _collect_in_hooks, _old_objects, _old_after_full, _frozen
    was_enabled, was_collecting = gc.isenabled(), _collect_in_hooks
    gc.freeze()
    gc.disable()
    _collect_in_hooks, _old_objects, _old_after_full, _frozen = collect_in_hooks, 0, 0, gc.get_freeze_count()
    try:
        yield
    finally:
        _collect_in_hooks = was_collecting
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def freeze_loaded() -> None:
    """Under a running policy, freeze what is alive now too: `make run` starts the policy before it loads the
    definitions (~0.6 M objects), which would otherwise be walked by the collection after the first step and then
    again by the full one it set off (~0.5 CPU s a run, issue 18); they also set the scale of a quarter more."""
    global _frozen
    gc.freeze()
    _frozen = gc.get_freeze_count()


def collect_garbage() -> tuple[int, float]:
    """The collection between two steps: objects freed and the CPU seconds it took.

    The young generations hold exactly what was made since the last one (the collector is paused), so collecting
    them frees the step's cycles and walks only its survivors; the old generation (earlier steps' survivors) is
    collected too once it grew by a quarter of the objects the run holds (the frozen ones included) since its last
    collection. A full collection every step walked every survivor of the run each time: 7 of a 100 k daily run's
    47 CPU s. Python's own rule (a quarter of the old generation alone) counted from an empty generation after the
    freeze, so a step that imported GX or LightGBM, or dbt's manifest, set off a full collection of little
    garbage: ~6 a 100 k daily, 2.5 of its CPU s under load (issue 18); the frozen objects are never walked, but
    they set the scale of what a quarter more is.

    The old generation's size is counted, not listed, between full collections: `gc.get_count()[0]` is the tracked
    objects made since the last collection less those freed meanwhile (it stops at 0, so it can miss deaths of older
    objects: then the count runs high and the full collection comes early, never late), and what the young
    collection did not free moved to the old generation. Listing it after every step
    (`gc.get_objects(generation=2)`, a million-odd objects once dbt loaded its manifest) cost ~60 ms a step, 5 of a
    quiet 100 k daily's 26 s (issue 18); it is listed only after a full collection, which walked it anyway."""
    global _old_objects, _old_after_full
    started = time.process_time()
    made = gc.get_count()[0]
    freed = gc.collect(1)
    _old_objects += max(made - freed, 0)
    if _old_objects - _old_after_full > (_frozen + _old_after_full) // 4:
        freed += gc.collect()
        _old_objects = _old_after_full = len(gc.get_objects(generation=2))
    return freed, time.process_time() - started


class CollectorPolicyExecutor(dg.Executor):
    """Dagster's in-process executor under the run's collector policy: one collection after each step ends."""

    def __init__(self, inner: dg.Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        with collector_paused():
            for event in self._inner.execute(plan_context, execution_plan):
                yield event
                # Before the step's hooks run (they follow its success or failure event): the memory the
                # collection frees is then handed back to the operating system by release_freed_memory.
                if event.is_step_success or event.is_step_failure or event.is_step_up_for_retry:
                    freed, seconds = collect_garbage()
                    plan_context.log.debug(
                        f"collector after {event.step_key}: {freed} objects freed in {seconds:.3f} CPU s"
                    )


@dg.executor(
    name="in_process",
    config_schema=dg.in_process_executor.config_schema,
)
def in_process_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Execute all steps in a single process, under the run's collector policy (orchestration/lib/memory.py)."""
    return CollectorPolicyExecutor(dg.in_process_executor.executor_creation_fn(init_context))
