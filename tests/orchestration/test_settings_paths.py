"""Where a run's files go: the data folder follows the warehouse unless SEGMINT_DATA_DIR is set, so two shops run
from one checkout never share a demo shop, model copies, exports or a report."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.lib.settings import DEFAULT_DATA_DIR, PROJECT_ROOT, load_settings
from realtime.cli import data_dir as realtime_data_dir


def test_without_settings_everything_stays_in_the_projects_data_folder():
    settings = load_settings({})
    assert settings.data_dir == DEFAULT_DATA_DIR == PROJECT_ROOT / "data"
    assert settings.warehouse == PROJECT_ROOT / "data" / "warehouse.duckdb"


def test_the_warehouse_make_exports_by_default_keeps_the_readme_paths():
    settings = load_settings({"SEGMINT_WAREHOUSE": str(PROJECT_ROOT / "data" / "warehouse.duckdb")})
    assert settings.reports_dir / "segment_report.html" == PROJECT_ROOT / "data" / "reports" / "segment_report.html"
    assert settings.exports_dir == PROJECT_ROOT / "data" / "exports"
    assert settings.models_dir == PROJECT_ROOT / "data" / "models"


def test_a_warehouse_named_warehouse_duckdb_keeps_its_files_beside_it(tmp_path):
    settings = load_settings({"SEGMINT_WAREHOUSE": str(tmp_path / "acme" / "warehouse.duckdb")})
    assert settings.data_dir == tmp_path / "acme"
    assert settings.demo_landing_dir == tmp_path / "acme" / "demo" / "landing"


def test_two_warehouses_in_one_folder_get_separate_data_folders(tmp_path):
    # Regression: the data folder used to be data/ whatever SEGMINT_WAREHOUSE said, so two shops shared it.
    acme = load_settings({"SEGMINT_WAREHOUSE": str(tmp_path / "acme.duckdb")})
    globex = load_settings({"SEGMINT_WAREHOUSE": str(tmp_path / "globex.duckdb")})
    assert acme.data_dir == tmp_path / "acme_data" and globex.data_dir == tmp_path / "globex_data"
    for kind in ("demo_landing_dir", "landing_work_dir", "models_dir", "exports_dir", "reports_dir"):
        assert getattr(acme, kind) != getattr(globex, kind)


def test_an_explicit_data_folder_wins_over_the_warehouse(tmp_path):
    settings = load_settings(
        {"SEGMINT_WAREHOUSE": str(tmp_path / "acme.duckdb"), "SEGMINT_DATA_DIR": str(tmp_path / "files")}
    )
    assert settings.data_dir == tmp_path / "files" and settings.warehouse == tmp_path / "acme.duckdb"


def test_a_data_folder_alone_holds_the_warehouse_too(tmp_path):
    settings = load_settings({"SEGMINT_DATA_DIR": str(tmp_path / "files")})
    assert settings.warehouse == tmp_path / "files" / "warehouse.duckdb"


def test_relative_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"SEGMINT_WAREHOUSE": "shops/acme.duckdb"})
    assert settings.warehouse == tmp_path / "shops" / "acme.duckdb"
    assert settings.data_dir == Path(tmp_path / "shops" / "acme_data")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"SEGMINT_WAREHOUSE": "shops/acme.duckdb"},
        {"SEGMINT_WAREHOUSE": "acme/warehouse.duckdb"},
        {"SEGMINT_WAREHOUSE": "shops/acme.duckdb", "SEGMINT_DATA_DIR": "files"},
        {"SEGMINT_DATA_DIR": "files"},
    ],
)
def test_the_realtime_service_reads_the_data_folder_the_run_writes(env, tmp_path, monkeypatch):
    # realtime/ does not import orchestration/, so `make serve` repeats the rule; the bundle must be where it looks.
    monkeypatch.chdir(tmp_path)
    assert realtime_data_dir(env) == load_settings(env).data_dir
