"""The dbt CLI resource, without two fixed costs dagster-dbt pays on every run that segmint has no use for.

dagster-dbt's `DbtCliResource.cli()` does two things before it starts dbt (dagster-dbt 0.29):
- it learns dbt's version by running `dbt --version` in a subprocess, once per resource instance (once per run):
  a whole dbt start (~2 s of CPU) that also asks pypi.org for the latest dbt-core and each adapter (three HTTP
  requests of up to 1 s each; measured 8.7-12 s wall here). A local-first pipeline should not call the internet
  on every run, and the dbt next to this Python is the one the package metadata names;
- it builds a dbt adapter inside the Dagster process (profile, project and every macro loaded: ~0.5 s of CPU per
  dbt step, ~1.5 s for the first) for `fetch_row_counts()` / `fetch_column_metadata()`. segmint uses neither: it
  counts rows with its own short DuckDB connection once dbt has exited (orchestration/defs/dbt_models.py), because
  a second in-process DuckDB connection blocks every later step.

Both are private hooks of dagster-dbt, so tests/orchestration/test_dbt_cli.py fails if an upgrade renames them
(the cost would silently come back) and checks the version matches the installed dbt.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import version as package_version

from dagster_dbt import DbtCliResource
from packaging import version


class SegmintDbtCliResource(DbtCliResource):
    """`DbtCliResource` that reads dbt's version from the installed package and builds no in-process adapter."""

    @cached_property
    def _cli_version(self) -> version.Version:
        # The dbt executable is the one installed next to this Python (orchestration/defs/resources.py): its
        # version is the dbt-core package's. No subprocess, no request to pypi.org.
        return version.parse(package_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        # Only fetch_row_counts()/fetch_column_metadata() use the adapter; without one they are unavailable, and
        # segmint never calls them (dagster-dbt checks `adapter is None`).
        return None
