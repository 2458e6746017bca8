"""Rules that must be written in two languages (Python and dbt) are pinned together here, so changing one side alone
fails a unit test instead of a run: feature column lists, the share ranges, the top event-type count, coverage
thresholds and the launchpad defaults of the score marts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from landing.event_mapping import UNMAPPED_WARN_SHARE
from ml import archetypes, clustering, feature_columns
from orchestration.defs.dbt_models import DbtScoresConfig
from orchestration.lib.warehouse_io import MONEY_DECIMAL, money_sum
from reporting.cards import ATTRIBUTE_COLUMNS

DBT = Path(__file__).resolve().parents[2] / "dbt_project"
UNIT_RANGE = {"min_value": 0, "max_value": 1}


def _columns(model: str) -> dict[str, list]:
    """Column -> its dbt data tests, from the model's .yml (anywhere under models/marts). A model-level
    `columns_between` test (one test for many columns) counts as `value_between` of each column it names."""
    [path] = (DBT / "models" / "marts").rglob(f"{model}.yml")
    document = yaml.safe_load(path.read_text())
    [spec] = [m for m in document["models"] if m["name"] == model]
    columns = {column["name"]: list(column.get("data_tests", [])) for column in spec["columns"]}
    for test in spec.get("data_tests", []):
        if isinstance(test, dict) and "columns_between" in test:
            arguments = dict(test["columns_between"]["arguments"])
            for name in arguments.pop("columns"):
                columns[name].append({"value_between": {"arguments": arguments}})
    return columns


def _has_unit_range(tests: list) -> bool:
    ranges = [
        test["value_between"].get("arguments") for test in tests if isinstance(test, dict) and "value_between" in test
    ]
    return UNIT_RANGE in ranges


def test_every_python_feature_column_list_is_documented_in_the_feature_mart():
    documented = set(_columns("customer_features"))
    listed = {*feature_columns.BEHAVIOUR_SHARES, *feature_columns.GENERIC_BEHAVIOUR, feature_columns.MAPPED_EVENT_SHARE}
    assert listed - documented == set()


@pytest.mark.parametrize(
    ("reader", "names"),
    [
        (
            "archetype signatures (ml/archetypes.py)",
            {name for a in (*archetypes.BEHAVIOUR_ARCHETYPES, *archetypes.PURCHASE_ARCHETYPES) for name in a.signature},
        ),
        ("cluster-name phrases (ml/archetypes.py)", set(archetypes.FEATURE_PHRASES)),
        ("segment-card attributes (reporting/cards.py)", set(ATTRIBUTE_COLUMNS)),
    ],
)
def test_every_feature_python_reads_by_name_is_a_column_of_the_feature_mart(reader, names):
    assert names - set(_columns("customer_features")) == set(), reader


def test_every_share_and_rate_of_the_feature_mart_is_range_checked_by_dbt():
    # dbt owns the [0, 1] range of every ratio (expectations/suites.py docstring); a new *_share column needs its test.
    columns = _columns("customer_features")
    ratios = {name for name in columns if name.endswith(("_share", "_rate"))}
    assert set(feature_columns.BEHAVIOUR_RATIOS) <= ratios
    assert {name for name in ratios if not _has_unit_range(columns[name])} == set()


def test_the_top_event_type_count_is_one_number_in_dbt_and_python():
    project = yaml.safe_load((DBT / "dbt_project.yml").read_text())
    assert project["vars"]["top_event_type_count"] == feature_columns.TOP_EVENT_TYPE_COUNT
    assert set(feature_columns.EVENT_TYPE_SHARES) <= set(_columns("customer_features"))


def test_the_launchpad_defaults_of_the_score_marts_are_dbts_vars():
    project = yaml.safe_load((DBT / "dbt_project.yml").read_text())
    defaults = DbtScoresConfig()
    for name in ("margin", "target_roas", "max_cpa_basis"):
        assert getattr(defaults, name) == project["vars"][name], name


def test_clustering_needs_the_mapped_share_the_unmapped_warning_stops_at():
    assert clustering.MIN_MAPPED_COVERAGE == pytest.approx(1 - UNMAPPED_WARN_SHARE)


def test_money_is_summed_as_one_exact_type_in_dbt_and_in_python():
    # dbt's money_sum and the SQL Python runs (orchestration/lib/warehouse_io.py) sum money the same exact way.
    macro = (DBT / "macros" / "money.sql").read_text()
    assert f"{{% macro money_sum(amount, where=none, exact_type='{MONEY_DECIMAL}') -%}}" in macro
    assert money_sum("x") == f"cast(sum(cast(x as {MONEY_DECIMAL})) as double)"
