"""The run's garbage-collector policy (orchestration/lib/memory.py): no collection inside a step, one after each,
the collector restored when the run ends; every in-process job and the location use it."""

from __future__ import annotations

import gc
import weakref

import dagster as dg

from orchestration.defs import jobs
from orchestration.defs.resources import Warehouse
from orchestration.lib import memory
from orchestration.lib.memory import (
    collect_garbage,
    collector_paused,
    freeze_loaded,
    in_process_executor,
    release_memory_hooks,
)

seen: dict[str, object] = {}


class Node:
    def __init__(self):
        self.other = self


@dg.asset
def makes_a_cycle() -> None:
    seen["enabled_in_step"] = gc.isenabled()
    seen["frozen_in_step"] = gc.get_freeze_count()
    cycle = Node()  # garbage once the step returns, freed only by a collection
    seen["cycle"] = weakref.ref(cycle)


@dg.asset(deps=[makes_a_cycle])
def next_step() -> None:
    seen["cycle_alive_in_next_step"] = seen["cycle"]() is not None


@dg.asset
def fails() -> None:
    raise ValueError("planted")


def cycle_job() -> dg.JobDefinition:
    # execute_in_process always runs Dagster's own in-process executor: the job runs through execute_job instead.
    job = dg.define_asset_job("j", executor_def=in_process_executor)
    return dg.Definitions(assets=[makes_a_cycle, next_step], jobs=[job]).resolve_job_def("j")


def failing_job() -> dg.JobDefinition:
    job = dg.define_asset_job("f", executor_def=in_process_executor)
    return dg.Definitions(assets=[fails], jobs=[job]).resolve_job_def("f")


def test_the_collector_is_paused_in_steps_runs_between_them_and_is_restored_after_the_run():
    assert gc.isenabled()
    frozen_before = gc.get_freeze_count()
    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.execute_job(dg.reconstructable(cycle_job), instance).success
    assert seen["enabled_in_step"] is False
    assert seen["frozen_in_step"] > 10_000  # Dagster's and the test session's objects
    # The cycle is referenced by nothing but itself when the step ends; the collection between steps frees it.
    assert seen["cycle_alive_in_next_step"] is False
    assert gc.isenabled() and gc.get_freeze_count() == frozen_before


def test_a_failed_step_restores_the_collector_too():
    frozen_before = gc.get_freeze_count()
    with dg.DagsterInstance.ephemeral() as instance:
        assert not dg.execute_job(dg.reconstructable(failing_job), instance).success
    assert gc.isenabled() and gc.get_freeze_count() == frozen_before


def test_make_run_applies_the_policy_around_execute_in_process_and_the_hooks_collect_between_steps(tmp_path):
    # execute_in_process (orchestration/cli.py) runs Dagster's own executor: the policy wraps it, the hooks collect.
    job = dg.define_asset_job("h", hooks=release_memory_hooks)
    defs = dg.Definitions(
        assets=[makes_a_cycle, next_step],
        jobs=[job],
        resources={"warehouse": Warehouse(path=str(tmp_path / "w.duckdb"))},
    )
    seen.clear()
    with collector_paused(collect_in_hooks=True):
        assert defs.resolve_job_def("h").execute_in_process().success
    assert seen["enabled_in_step"] is False
    assert seen["cycle_alive_in_next_step"] is False
    assert gc.isenabled()
    # Without the policy the hooks leave the collector alone.
    seen.clear()
    gc.disable()
    try:
        assert defs.resolve_job_def("h").execute_in_process().success
        assert seen["cycle_alive_in_next_step"] is True
    finally:
        gc.enable()


def test_every_in_process_job_and_the_location_run_under_the_policy():
    from orchestration.definitions import defs

    assert defs.executor is in_process_executor
    for job in (jobs.refresh_job, jobs.daily_staging_job, jobs.export_job, jobs.report_job):
        assert job.executor_def is in_process_executor, job.name
        assert job.hooks == release_memory_hooks, job.name


def test_the_cli_loads_the_definitions_under_the_run_policy_and_restores_the_collector(monkeypatch):
    # The definitions' load (inside _run_job) makes most of the process's long-lived objects: no collection walks
    # them while they are made (orchestration/cli.py, run_job).
    from orchestration import cli

    seen.clear()

    def run(job_name, window):
        seen["enabled_while_loading"] = gc.isenabled()
        return 0

    monkeypatch.setattr(cli, "_run_job", run)
    frozen_before = gc.get_freeze_count()
    assert cli.run_job("segmint_refresh") == 0
    assert seen["enabled_while_loading"] is False
    assert gc.isenabled() and gc.get_freeze_count() == frozen_before


class Survivor:
    """Kept alive across 'steps': one tracked object each."""


def test_the_collection_between_steps_counts_the_old_generation_and_collects_it_whole_when_it_grew_a_quarter(
    monkeypatch,
):
    kept: list[list[Survivor]] = []
    full_collections = []
    with collector_paused():
        gc.collect()  # the test session's stray garbage is not the steps'
        monkeypatch.setattr(memory, "_frozen", 40_000)  # the objects alive when the run started, whatever pytest holds
        for made in (20_000, 20_000, 5_000, 10_000, 20_000):
            kept.append([Survivor() for _ in range(made)])
            before = gc.get_stats()[2]["collections"]
            collect_garbage()
            full_collections.append(gc.get_stats()[2]["collections"] - before)
            # Counted from gc.get_count() between full collections: the generation's real size here.
            assert abs(memory._old_objects - len(gc.get_objects(generation=2))) < 100
        # A full collection once the survivors grew by a quarter of frozen + old since the last one:
        # +20 k of 40 k (full), +20 k of 60 k (full), +5 k and +15 k of 80 k, +35 k of 80 k (full).
        assert full_collections == [1, 1, 0, 0, 1]
        kept.clear()
        collect_garbage()
        # Deaths of older objects can go uncounted: the count runs high, so the full collection comes early, not late.
        assert memory._old_objects >= len(gc.get_objects(generation=2))


def test_what_a_run_loaded_under_the_policy_is_frozen_and_thawed_with_the_rest():
    frozen_before = gc.get_freeze_count()
    with collector_paused():
        loaded = [Survivor() for _ in range(10_000)]  # the definitions `make run` loads once the policy is on
        freeze_loaded()
        # A frozen object that dies (another thread's, between the two reads) leaves the count: it can only fall.
        assert memory._frozen >= gc.get_freeze_count() >= frozen_before + len(loaded)
        assert len(gc.get_objects(generation=0)) < 100  # nothing left for the collection after the first step
    assert gc.isenabled() and gc.get_freeze_count() == frozen_before
