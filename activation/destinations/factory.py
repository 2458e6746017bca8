"""Build a destination from its audiences.yaml entry plus credentials the orchestrator resolved (dg.EnvVar).

A destination runs live when every variable it needs has a value, else in dry-run (request files only), so a
fresh checkout syncs nothing but still shows exactly what it would send. This module never reads the
environment itself: the caller passes the values (each type's variables are registered with it, registry.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from activation.audiences import Audience, DestinationConfig
from activation.destinations.base import Destination
from activation.destinations.registry import BuildRequest, destination_types
from activation.http import RetryPolicy

DRY_RUN_PLACEHOLDER = "dry-run"


def required_env_vars(destination_type: str) -> tuple[str, ...]:
    """Names of the variables a destination type needs to run live."""
    return destination_types()[destination_type].env


def build_destination(
    config: DestinationConfig,
    audience: Audience,
    env: Mapping[str, str | None],
    dry_run_dir: str | Path,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
) -> tuple[Destination, bool]:
    """(destination, dry_run): live when every required variable is set, else writing requests to dry_run_dir."""
    dtype = destination_types()[config.type]
    values = {name: env.get(name) for name in dtype.env}
    dry_run = not all(values.values())
    request = BuildRequest(
        name=config.name,
        settings=dict(config.settings),
        audience=audience,
        env=env,
        secrets={name: (value or DRY_RUN_PLACEHOLDER) for name, value in values.items()},
        policy=policy,
        sleep=sleep,
        dry_run_dir=Path(dry_run_dir) / audience.name if dry_run else None,
        base_url=env.get(dtype.base_url_env) if dtype.base_url_env else None,
    )
    return dtype.build(request), dry_run
