"""GX suites: one owner per rule (dbt holds the marts' column invariants, GX the rest), names read from their owners
(a new RFM segment passes without touching expectations/suites.py), and every mart expectation fails on a planted
bad row with a one-line description that names the column and shows the offending value."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from expectations.suites import SUITES, customer_scores_suite
from expectations.validate import validate
from ml import rfm

ROOT = Path(__file__).resolve().parents[2]
MARTS = ROOT / "dbt_project" / "models" / "marts"
MART_SUITES = {name for name in SUITES if not name.startswith("raw_")}
# GX expectations that restate a dbt column test (the dbt tests that say the same thing).
DBT_EQUIVALENTS = {
    "ExpectColumnValuesToBeUnique": {"unique"},
    "ExpectColumnValuesToNotBeNull": {"not_null"},
    "ExpectColumnValuesToBeBetween": {"value_between", "non_negative"},
}


def _scores(segments: list[str]) -> pd.DataFrame:
    n = len(segments)
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "rfm_segment": segments})


def _features(tenure: list[int], recency: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": [f"c{i}" for i in range(len(tenure))], "tenure_days": tenure, "recency_days": recency}
    )


# Clean tables, and one defect planted per mart expectation: (suite, label, table, column named, text shown).
CLEAN = {
    "customer_features": _features([30, 400, 7], [0, 12, 7]),
    "customer_scores": _scores(["Champions", "Lost", "At Risk"]),
}
DEFECTS = [
    # A customer whose last order (10 days ago) is before their first (3 days ago): recency > tenure.
    (
        "customer_features",
        "last order before the first",
        _features([30, 3], [0, 10]),
        "tenure_days, recency_days",
        "(3, 10)",
    ),
    # No customer at all (every order after the as-of date, say): an empty feature table.
    ("customer_features", "no customers", _features([], []), None, "observed 0 (min_value=1)"),
    # A segment name the RFM rule table does not have (a typo, or a rule renamed in one place only).
    ("customer_scores", "unknown RFM segment", _scores(["Champions", "Champs"]), "rfm_segment", "'Champs'"),
]


def _dbt_tests(model: str) -> dict[str, set[str]]:
    """Column -> names of its dbt data tests, from the model's .yml (anywhere under models/marts)."""
    [path] = MARTS.rglob(f"{model}.yml")
    document = yaml.safe_load(path.read_text())
    [spec] = [m for m in document["models"] if m["name"] == model]
    tests = {
        column["name"]: {test if isinstance(test, str) else next(iter(test)) for test in column.get("data_tests", [])}
        for column in spec["columns"]
    }
    # A model-level columns_between test is value_between of each column it names (tests/generic/columns_between.sql).
    for test in spec.get("data_tests", []):
        if isinstance(test, dict) and "columns_between" in test:
            for name in test["columns_between"]["arguments"]["columns"]:
                tests.setdefault(name, set()).add("value_between")
    return tests


def test_the_scores_suite_accepts_exactly_the_segments_of_the_rfm_rule_table():
    [expectation] = [e for e in customer_scores_suite().expectations if getattr(e, "column", None) == "rfm_segment"]
    assert list(expectation.value_set) == list(rfm.SEGMENT_NAMES)
    assert validate(_scores(list(rfm.SEGMENT_NAMES)), customer_scores_suite()).passed


def test_a_segment_added_to_the_rule_table_passes_the_scores_suite(monkeypatch):
    big_spenders = rfm.SegmentRule("Big Spenders", (1, 5), (1, 5), (5, 5), "the top fifth by spend")
    rules = (big_spenders, *rfm.SEGMENT_RULES)
    monkeypatch.setattr(rfm, "SEGMENT_RULES", rules)
    monkeypatch.setattr(rfm, "SEGMENT_NAMES", tuple(dict.fromkeys(rule.segment for rule in rules)))
    features = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(20)],
            "recency_days": np.arange(20) * 10,
            "order_count": np.arange(20) % 4 + 1,
            "total_revenue": np.arange(20) * 7.0,
        }
    )
    segments = rfm.score_rfm(features)["rfm_segment"].tolist()
    assert "Big Spenders" in segments
    assert validate(_scores(segments), customer_scores_suite()).passed


@pytest.mark.parametrize("suite_name", sorted(MART_SUITES))
def test_no_mart_suite_restates_a_dbt_column_test(suite_name):
    # Regression: the mart suites repeated about 20 invariants the models' dbt tests already held.
    dbt_tests = _dbt_tests(suite_name)
    for expectation in SUITES[suite_name]().expectations:
        kind = type(expectation).__name__
        if kind in DBT_EQUIVALENTS and getattr(expectation, "mostly", None) in (None, 1.0):
            column = expectation.column
            assert not dbt_tests.get(column, set()) & DBT_EQUIVALENTS[kind], f"{kind} on {column} is a dbt test"
            pytest.fail(f"{suite_name}: {kind} on {column} is a column invariant: write it as a dbt test")


def test_every_mart_suite_has_a_clean_table_and_a_planted_defect_for_each_expectation():
    assert set(CLEAN) == MART_SUITES
    for suite_name in MART_SUITES:
        suite = SUITES[suite_name]()
        assert validate(CLEAN[suite_name], suite).passed, suite_name
        failing = {
            failure.expectation
            for name, _, table, _, _ in DEFECTS
            if name == suite_name
            for failure in validate(table, suite).errors
        }
        assert failing == {expectation.expectation_type for expectation in suite.expectations}, suite_name


@pytest.mark.parametrize(("suite_name", "label", "table", "column", "shown"), DEFECTS, ids=[d[1] for d in DEFECTS])
def test_a_planted_bad_row_fails_its_mart_suite_with_a_clear_one_line_reason(suite_name, label, table, column, shown):
    summary = validate(table, SUITES[suite_name]())
    [error] = summary.errors
    assert error.column == column
    assert shown in error.describe() and "\n" not in error.describe()


def test_offending_values_of_an_identifier_column_never_reach_the_description():
    # Dagster keeps check results for good: an e-mail or id quoted there would outlive the person's erasure.
    customers = pd.DataFrame({"customer_id": ["c1", "c1"], "email": ["jane.doe@example.com", "not-an-email"]})
    summary = validate(customers, SUITES["raw_customers"]())
    described = "; ".join(failure.describe() for failure in summary.failed)
    assert {failure.column for failure in summary.failed} == {"customer_id", "email"}
    assert "c1" not in described and "@" not in described and "not-an-email" not in described
