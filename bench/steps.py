"""Wall time per step of one Dagster run, read from the run's event log after the run.

The arithmetic is pure (`step_seconds`, `top_steps`); only `read_run_timings` touches a Dagster instance, and it
imports Dagster when called so that importing this module stays free of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

STEP_START = "STEP_START"
STEP_ENDS = ("STEP_SUCCESS", "STEP_FAILURE")
RUN_START = "PIPELINE_START"  # Dagster's event type value for RUN_START
RUN_ENDS = ("PIPELINE_SUCCESS", "PIPELINE_FAILURE")
# dbt models whose own execution time (dagster-dbt's "Execution Duration") the report shows next to the step time.
MODEL_DURATION_KEY = "Execution Duration"


@dataclass(frozen=True)
class StepEvent:
    """One step event: step key (None for run-level events), Dagster event type value, unix timestamp in seconds."""

    step_key: str | None
    event_type: str
    timestamp: float


@dataclass(frozen=True)
class RunTimings:
    """Timings of one run: run seconds (start to end event), seconds per step, and per dbt model (asset path)."""

    run_id: str
    status: str
    run_seconds: float | None
    step_seconds: dict[str, float]
    model_seconds: dict[str, float] = field(default_factory=dict)
    # step -> (start, end) unix seconds: to lay the sampled memory over the steps (bench.procmem.step_peaks)
    step_windows: dict[str, tuple[float, float]] = field(default_factory=dict)


def step_windows(events: Iterable[StepEvent]) -> dict[str, tuple[float, float]]:
    """Each step's start and end (success or failure) timestamps; steps that never ended are left out."""
    started: dict[str, float] = {}
    windows: dict[str, tuple[float, float]] = {}
    for event in sorted(events, key=lambda e: e.timestamp):
        if event.step_key is None:
            continue
        if event.event_type == STEP_START:
            started[event.step_key] = event.timestamp
        elif event.event_type in STEP_ENDS and event.step_key in started:
            windows[event.step_key] = (started[event.step_key], event.timestamp)
    return windows


def step_seconds(events: Iterable[StepEvent]) -> dict[str, float]:
    """Seconds from each step's start to its success or failure; steps that never ended are left out."""
    return {step: end - start for step, (start, end) in step_windows(events).items()}


def run_seconds(events: Iterable[StepEvent]) -> float | None:
    """Seconds from the run's start event to its end event; None when either is missing."""
    starts = [e.timestamp for e in events if e.event_type == RUN_START]
    ends = [e.timestamp for e in events if e.event_type in RUN_ENDS]
    if not starts or not ends:
        return None
    return max(ends) - min(starts)


def top_steps(durations: Mapping[str, float], n: int = 5) -> list[tuple[str, float]]:
    """The n slowest steps, slowest first (ties broken by name so reports are stable)."""
    return sorted(durations.items(), key=lambda item: (-item[1], item[0]))[:n]


def read_run_timings(dagster_home: Path) -> RunTimings:
    """Timings of the latest run stored in a DAGSTER_HOME (the benchmark gives every run a fresh one)."""
    from dagster import DagsterEventType, DagsterInstance  # here, not at import: the pure parts stay Dagster-free

    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        runs = instance.get_runs(limit=1)
        if not runs:
            raise RuntimeError(f"no run stored in {dagster_home}")
        run = runs[0]
        wanted = {
            DagsterEventType.RUN_START,
            DagsterEventType.RUN_SUCCESS,
            DagsterEventType.RUN_FAILURE,
            DagsterEventType.STEP_START,
            DagsterEventType.STEP_SUCCESS,
            DagsterEventType.STEP_FAILURE,
        }
        events = [
            StepEvent(entry.step_key, entry.dagster_event.event_type_value, entry.timestamp)
            for entry in instance.all_logs(run.run_id, of_type=wanted)
            if entry.dagster_event is not None
        ]
        models: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.dagster_event.event_specific_data.materialization
            duration = materialization.metadata.get(MODEL_DURATION_KEY)
            if duration is not None:
                models["/".join(materialization.asset_key.path)] = float(duration.value)
        return RunTimings(
            run_id=run.run_id,
            status=run.status.value,
            run_seconds=run_seconds(events),
            step_seconds=step_seconds(events),
            model_seconds=models,
            step_windows=step_windows(events),
        )
    finally:
        instance.dispose()
