"""Shared fixtures: the dbt manifest (Dagster reads it at import) and a runner for the real `make run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest(tmp_path_factory) -> Path:
    """`dbt parse` once per session, so importing orchestration.definitions works on a clean clone.

    The warehouse file is named like the real one: dbt-duckdb names the database after the file, and dagster-dbt
    reuses this parse (partial_parse.msgpack) in every dbt run.
    """
    manifest = PROJECT_ROOT / "dbt_project" / "target" / "manifest.json"
    env = {
        **os.environ,
        "DO_NOT_TRACK": "1",
        "SEGMINT_WAREHOUSE": str(tmp_path_factory.mktemp("parse") / "warehouse.duckdb"),
    }
    subprocess.run(
        [str(VENV_BIN / "dbt"), "parse", "--profiles-dir", ".", "--quiet"],
        cwd=PROJECT_ROOT / "dbt_project",
        env=env,
        check=True,
        capture_output=True,
    )
    return manifest


def segmint_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """An environment that keeps every file of a run inside `tmp_path`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEGMINT_") and key != "DAGSTER_HOME"}
    env |= {
        "SEGMINT_DATA_DIR": str(tmp_path / "data"),
        "SEGMINT_WAREHOUSE": str(tmp_path / "data" / "warehouse.duckdb"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "DO_NOT_TRACK": "1",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return env | overrides


def make_run(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    """Run `make run` exactly as a user does, with every path inside `tmp_path`."""
    return subprocess.run(
        ["make", "--no-print-directory", "run"],
        cwd=PROJECT_ROOT,
        env=segmint_env(tmp_path, **overrides),
        capture_output=True,
        text=True,
        timeout=1200,
    )
