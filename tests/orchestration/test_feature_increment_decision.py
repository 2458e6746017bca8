"""Which customer marts the feature step lets dbt bring forward (orchestration/defs/dbt_models.py), and how it
reads back the path each one took. The SQL side (exactness, its own fallbacks) is tests/integration/
test_feature_increment.py."""

from __future__ import annotations

import json
from datetime import date

from orchestration.defs.dbt_models import (
    DAILY_STAGING_KEYS,
    FEATURE_INCREMENT_ENV,
    INCREMENTAL_MART_KEYS,
    INCREMENTAL_MARTS,
    feature_build_paths,
    feature_increment_env,
    incremental_marts,
    last_invocation_lines,
)
from orchestration.lib.partitions import StagingWindow

WINDOW = StagingWindow(date(2026, 3, 9), date(2026, 3, 11))


def _record(staging: int | None, **marts: int | None) -> dict:
    record = {key: staging for key in DAILY_STAGING_KEYS}
    record.update({INCREMENTAL_MART_KEYS[name]: value for name, value in marts.items()})
    return record


def test_the_marts_built_after_the_staging_last_changed_may_be_brought_forward():
    allowed, why = incremental_marts(
        WINDOW, False, _record(10, customer_features=12, customer_prepurchase_behaviour=13, prospect_features=14)
    )
    assert allowed == list(INCREMENTAL_MARTS)
    assert why.startswith("incremental if exact")


def test_a_mart_left_behind_by_a_partial_run_builds_in_full():
    # A run re-staged (storage id 20) and built customer_features (21) but failed before the other marts.
    allowed, why = incremental_marts(
        WINDOW, False, _record(20, customer_features=21, customer_prepurchase_behaviour=13, prospect_features=12)
    )
    assert allowed == ["customer_features"]
    assert "customer_prepurchase_behaviour, prospect_features in full" in why


def test_every_day_force_ingest_and_an_empty_record_build_in_full():
    record = _record(10, customer_features=12, customer_prepurchase_behaviour=13)
    assert incremental_marts(None, False, record) == ([], "full build: every day is re-staged")
    assert incremental_marts(WINDOW, True, record) == ([], "full build: SEGMINT_FORCE_INGEST")
    allowed, why = incremental_marts(WINDOW, False, _record(None, customer_features=12))
    assert allowed == [] and "no materialization" in why
    allowed, _ = incremental_marts(WINDOW, False, _record(10))  # marts never built
    assert allowed == []


def test_the_environment_names_the_marts_and_why():
    env = feature_increment_env(["customer_features"], "because")
    assert env[FEATURE_INCREMENT_ENV] == "customer_features"
    assert feature_increment_env([], "full build: x")[FEATURE_INCREMENT_ENV] == ""


def _line(name: str, message: str) -> str:
    return json.dumps({"info": {"name": name, "msg": message, "ts": "2026-03-11T00:00:00Z"}})


def test_the_path_each_mart_took_is_read_from_the_last_invocation(tmp_path):
    log = tmp_path / "dbt.log"
    log.write_text(
        "\n".join(
            [
                _line("MainReportVersion", "Running with dbt"),
                _line("JinjaLogInfo", "feature build customer_features: full (--full-refresh)"),
                _line("MainReportVersion", "Running with dbt"),
                _line("JinjaLogInfo", "feature build customer_features: incremental (as-of a -> b)"),
                "not json",
                _line("JinjaLogInfo", "feature build customer_prepurchase_behaviour: full (no previous table)"),
            ]
        )
    )
    paths = feature_build_paths(last_invocation_lines(log))
    assert paths == {
        "customer_features": "incremental (as-of a -> b)",
        "customer_prepurchase_behaviour": "full (no previous table)",
    }
