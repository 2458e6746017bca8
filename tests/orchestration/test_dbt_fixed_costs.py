"""What each dbt step pays besides its SQL (issue 18): no `dbt --version` subprocess, no in-process adapter, the
parse state kept across windows and steps, row counts in one query."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
from datetime import date
from functools import cached_property
from importlib.metadata import version as package_version

import dagster as dg
import duckdb
import pytest
from dagster_dbt import DbtCliResource
from packaging import version

from orchestration.defs.dbt_models import (
    DbtScoresConfig,
    feature_build_args,
    row_counts,
    score_build_args,
    seed_partial_parse,
    views_fingerprint,
)
from orchestration.defs.resources import dbt_resource
from orchestration.lib.dbt_cli import SegmintDbtCliResource
from orchestration.lib.partitions import (
    STAGE_MAX_DATE_ENV,
    STAGE_MIN_DATE_ENV,
    StagingWindow,
    dbt_window_env,
    dbt_window_vars,
)
from tests.conftest import PROJECT_ROOT


def test_dagster_dbt_still_has_the_two_hooks_the_resource_replaces():
    # An upgrade that renames them would silently bring back `dbt --version` (and its pypi.org requests) and the
    # in-process adapter on every run: fail here instead.
    assert isinstance(inspect.getattr_static(DbtCliResource, "_cli_version"), cached_property)
    assert "args" in inspect.signature(DbtCliResource._initialize_dbt_core_adapter).parameters
    assert "self._initialize_dbt_core_adapter(args)" in inspect.getsource(DbtCliResource.cli)


def test_the_dbt_version_comes_from_the_installed_package_without_starting_dbt(monkeypatch):
    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"started a process: {args}")

    monkeypatch.setattr(subprocess, "check_output", no_subprocess)
    resource = dbt_resource()
    assert isinstance(resource, SegmintDbtCliResource)
    assert resource._cli_version == version.parse(package_version("dbt-core"))
    assert resource._cli_version.major < 2  # dbt Core, not Fusion: dagster-dbt parses its JSON log lines
    assert resource._initialize_dbt_core_adapter(["build"]) is None


def test_the_window_reaches_dbt_in_its_environment_with_an_exclusive_end():
    window = StagingWindow(date(2026, 3, 1), date(2026, 3, 3))
    assert dbt_window_env(window) == {STAGE_MIN_DATE_ENV: "2026-03-01", STAGE_MAX_DATE_ENV: "2026-03-04"}
    assert dbt_window_env(window) == {
        STAGE_MIN_DATE_ENV: dbt_window_vars(window)["min_date"],
        STAGE_MAX_DATE_ENV: dbt_window_vars(window)["max_date"],
    }
    # Every day: both set empty, so a window left in the process environment by an earlier run cannot leak in.
    assert dbt_window_env(None) == {STAGE_MIN_DATE_ENV: "", STAGE_MAX_DATE_ENV: ""}
    macro = (PROJECT_ROOT / "dbt_project" / "macros" / "partition_window.sql").read_text()
    assert f"env_var('{STAGE_MIN_DATE_ENV}'" in macro and f"env_var('{STAGE_MAX_DATE_ENV}'" in macro


def test_no_dbt_step_passes_vars_by_default_so_every_step_keeps_its_parse_state():
    window = StagingWindow(date(2026, 3, 1), date(2026, 3, 3))
    assert feature_build_args(window) == ["build"]
    assert feature_build_args(None) == ["build", "--full-refresh"]
    assert score_build_args(DbtScoresConfig()) == ["build"]
    changed = score_build_args(DbtScoresConfig(margin=0.5, max_cpa_basis="p10"))
    assert changed[:2] == ["build", "--vars"] and json.loads(changed[2]) == {"margin": 0.5, "max_cpa_basis": "p10"}


def test_the_only_incremental_models_are_the_daily_staging_which_full_refresh_rebuilds():
    # `--full-refresh` on the feature step must touch nothing but the staging a run over every day rebuilds.
    manifest = json.loads((PROJECT_ROOT / "dbt_project" / "target" / "manifest.json").read_text())
    incremental = {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"]["materialized"] == "incremental"
    }
    daily = {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and "daily" in node["tags"]
    }
    assert incremental == daily == {"stg_orders", "stg_visitor_event_days", "stg_visitor_event_type_days"}
    assert all(
        node["config"].get("full_refresh") is None for node in manifest["nodes"].values() if node["name"] in daily
    )


def test_a_new_steps_target_takes_the_newest_sibling_parse_state(tmp_path):
    targets = tmp_path / "dbt_target"
    old, new, mine = targets / "dbt_score_models", targets / "dbt_feature_models", targets / "dbt_after_syncs_models"
    for folder in (old, new, mine):
        folder.mkdir(parents=True)
    assert seed_partial_parse(mine) is None  # nothing to copy yet
    (old / "partial_parse.msgpack").write_bytes(b"old")
    (new / "partial_parse.msgpack").write_bytes(b"new")
    os.utime(old / "partial_parse.msgpack", (1, 1))
    assert seed_partial_parse(mine) == new / "partial_parse.msgpack"
    assert (mine / "partial_parse.msgpack").read_bytes() == b"new"
    (new / "partial_parse.msgpack").write_bytes(b"newer")
    assert seed_partial_parse(mine) is None  # its own state is never replaced
    assert (mine / "partial_parse.msgpack").read_bytes() == b"new"


def test_row_counts_count_every_table_in_one_go_and_skip_views(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute("create schema marts")
        conn.execute("create table marts.t as select * from range(7)")
        conn.execute('create table marts."odd ""name" as select * from range(2)')
        conn.execute("create view marts.v as select * from marts.t")
        counts = row_counts(conn, [("marts", "t"), ("marts", 'odd "name'), ("marts", "v"), ("marts", "gone")])
    assert counts == {("marts", "t"): 7, ("marts", 'odd "name'): 2}


@pytest.mark.parametrize("relations", [[], [("marts", "gone")]])
def test_row_counts_of_nothing_countable_are_empty(tmp_path, relations):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        assert row_counts(conn, relations) == {}


def _view_manifest() -> dict:
    view = {
        "unique_id": "model.segmint.audience_lift",
        "resource_type": "model",
        "name": "audience_lift",
        "fqn": ["segmint", "marts", "after_syncs", "audience_lift"],
        "config": {"materialized": "view", "schema": "marts"},
        "schema": "marts",
        "alias": "audience_lift",
        "checksum": {"name": "sha256", "checksum": "abc"},
        "depends_on": {"nodes": ["source.segmint.activation.audience_lift"]},
    }
    source = {"schema": "activation", "identifier": "audience_lift", "resource_type": "source"}
    return {"nodes": {view["unique_id"]: view}, "sources": {"source.segmint.activation.audience_lift": source}}


def test_the_views_fingerprint_moves_with_the_model_and_the_columns_it_reads_and_needs_the_view(tmp_path):
    manifest = _view_manifest()
    keys = {dg.AssetKey(["marts", "audience_lift"])}
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        conn.execute("create schema activation; create schema marts")
        conn.execute("create table activation.audience_lift as select 'a' as audience, 1.5 as lift")
        assert views_fingerprint(conn, manifest, keys) is None  # no view yet: dbt must build it
        conn.execute("create view marts.audience_lift as select * from activation.audience_lift")
        first = views_fingerprint(conn, manifest, keys)
        assert first is not None and views_fingerprint(conn, manifest, keys) == first
        conn.execute("create or replace table activation.audience_lift as select 'b' as audience, 2.5 as lift")
        assert views_fingerprint(conn, manifest, keys) == first  # new rows, same columns: the view is unchanged
        conn.execute("create or replace table activation.audience_lift as select 'b' as audience, 2 as lift, 3 as n")
        changed_columns = views_fingerprint(conn, manifest, keys)
        assert changed_columns not in (None, first)
        manifest["nodes"]["model.segmint.audience_lift"]["checksum"]["checksum"] = "def"  # the SQL file changed
        assert views_fingerprint(conn, manifest, keys) not in (None, changed_columns)
        manifest["nodes"]["model.segmint.audience_lift"]["config"]["materialized"] = "table"
        assert views_fingerprint(conn, manifest, keys) is None


def _flag_sources() -> list[str]:
    # Built from this module, as an adapter builds its flags from its own: the source is the declaring module.
    from dbt_common.behavior_flags import Behavior

    flags = [{"name": f"segmint_probe_{i}", "default": False, "description": "a probe"} for i in range(2)]
    return [flag._behavior_change_event.flag_source for flag in Behavior(flags, {})._flags]


def test_in_process_behaviour_flags_name_the_module_dbt_common_names_without_reading_the_stack(monkeypatch):
    from dbt_common.behavior_flags import BehaviorFlagRendered

    from orchestration.lib import dbt_cli

    # The hook the resource replaces for the call: an upgrade that renames it must fail here (the cost comes back).
    assert isinstance(inspect.getattr_static(BehaviorFlagRendered, "_default_source"), staticmethod)
    original = BehaviorFlagRendered.__dict__["_default_source"]
    expected = _flag_sources()
    assert expected == [__name__] * 2
    monkeypatch.setattr(inspect, "stack", lambda *a, **k: pytest.fail("read the whole stack"))
    with dbt_cli._dbt_in_this_process():
        assert _flag_sources() == expected
    assert BehaviorFlagRendered.__dict__["_default_source"] is original
