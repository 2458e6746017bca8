"""The destination types: one module in activation/destinations/ each, which registers itself.

A destination module ends with a builder decorated by `register`: the `type` name that config/audiences.yaml uses,
the environment variables that carry its credentials (all set: live; any missing: dry-run) and an optional
base-URL variable (the tests point it at a fake server). `destination_types()` imports every module of the
package before answering, so a new file is found without editing a list: the audiences file accepts the type,
`build_destination` builds it, and the orchestrator's credentials resource reads its variables.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from activation.audiences import Audience
    from activation.destinations.base import Destination
    from activation.http import RetryPolicy

PACKAGE = "activation.destinations"


@dataclass(frozen=True)
class BuildRequest:
    """What a builder gets: the audiences.yaml entry, its audience, the credentials and the sync's HTTP settings.

    `secret(name)` is the variable's value, or a placeholder in dry-run (nothing is sent then); `common` holds the
    keyword arguments every destination class takes (name, retry policy, sleep, dry-run folder, base URL if set).
    """

    name: str
    settings: Mapping[str, Any]
    audience: Audience
    env: Mapping[str, str | None]
    secrets: Mapping[str, str]
    policy: RetryPolicy | None = None
    sleep: Callable[[float], None] | None = None
    dry_run_dir: Path | None = None
    base_url: str | None = None

    def secret(self, variable: str) -> str:
        return self.secrets[variable]

    @property
    def common(self) -> dict[str, Any]:
        common: dict[str, Any] = {
            "name": self.name,
            "policy": self.policy,
            "sleep": self.sleep,
            "dry_run_dir": self.dry_run_dir,
        }
        if self.base_url:
            common["base_url"] = self.base_url
        return common

    def pick(self, *names: str) -> dict[str, Any]:
        """The optional settings among `names` that the entry sets, as keyword arguments."""
        return {name: self.settings[name] for name in names if self.settings.get(name) is not None}


@dataclass(frozen=True)
class DestinationType:
    """One `type` of config/audiences.yaml: its credentials' variables and how to build it."""

    name: str
    env: tuple[str, ...]
    base_url_env: str | None
    build: Callable[[BuildRequest], Destination] = field(compare=False)
    module: str = ""


_TYPES: dict[str, DestinationType] = {}


def register(name: str, *, env: tuple[str, ...], base_url_env: str | None = None):
    """Decorator for a module's builder: makes `name` a destination type built by it."""

    def decorate(build: Callable[[BuildRequest], Destination]) -> Callable[[BuildRequest], Destination]:
        known = _TYPES.get(name)
        if known is not None and known.module != build.__module__:
            raise ValueError(f"destination type '{name}' is registered twice: {known.module} and {build.__module__}")
        if not env:
            raise ValueError(f"destination type '{name}' needs at least one environment variable to run live")
        _TYPES[name] = DestinationType(name, tuple(env), base_url_env, build, build.__module__)
        return build

    return decorate


def destination_types() -> dict[str, DestinationType]:
    """Every registered type by name, after importing each module of the package (importing twice is free)."""
    package = importlib.import_module(PACKAGE)
    for module in pkgutil.iter_modules(package.__path__, PACKAGE + "."):
        importlib.import_module(module.name)
    return dict(sorted(_TYPES.items()))


def env_var_names() -> list[str]:
    """Every variable any destination type reads (credentials and base URLs), sorted."""
    names = {name for dtype in destination_types().values() for name in (*dtype.env, dtype.base_url_env) if name}
    return sorted(names)
