"""The raw GX checks after an append ingest validate the rows it added (orchestration/defs/quality_checks.py).

Each case runs the real ingest asset and its checks twice on one Dagster instance and warehouse: a full ingest at
day A, then the next day at B (inputs unchanged: the held records now due are appended). A bad row "arriving" on
day B is planted in the held records before the append moves it in (the ingest itself quarantines such rows; the
checks are the second line), or in the raw table, where the whole-table validation must find it. A re-run over
the same inputs keeps the last verdict when the rows, the suites and the code are the ones it judged.
"""

from __future__ import annotations

import re

import dagster as dg
import duckdb
import pytest

from orchestration.defs import quality_checks
from orchestration.defs.landing import landing_files, raw_tables
from orchestration.defs.quality_checks import KEPT_FROM_RUN, ROWS_DIGEST, gx_checks, rows_digest
from orchestration.defs.resources import SegmintSettings, Warehouse

DAY_A, DAY_B = "2024-03-03", "2024-03-06"
ORDERS = """order_id,customer_id,ordered_at,order_total,currency
o1,c1,2024-03-01,10,EUR
o2,c1,2024-03-02,20,EUR
o3,c2,2024-03-02,15,EUR
o4,c2,2024-03-05,15,EUR
o5,c3,2024-03-05,30,EUR
o6,c4,2024-03-05,12,EUR
o7,c4,2024-03-09,7,EUR
"""
CUSTOMERS = """customer_id,email,signed_up_at
c1,a@example.com,2024-01-01
c2,b@example.com,2024-03-01
c3,c@example.com,2024-03-04
c4,d@example.com,2024-03-05
"""
EVENTS = """event_id,occurred_at,event_type,customer_id
e1,2024-03-01T10:00:00,page_view,c1
e2,2024-03-04T10:00:00,page_view,c2
"""


@pytest.fixture
def shop(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    landing.mkdir()
    for name, text in {"orders.csv": ORDERS, "customers.csv": CUSTOMERS, "events.csv": EVENTS}.items():
        (landing / name).write_text(text)
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(tmp_path / "data"))
    return landing, tmp_path / "warehouse.duckdb", dg.DagsterInstance.ephemeral()


def run(shop, as_of: str) -> dict[str, dg.AssetCheckEvaluation]:
    landing, warehouse, instance = shop
    result = dg.materialize(
        [landing_files, raw_tables, *gx_checks[:3]],
        resources={
            "warehouse": Warehouse(path=str(warehouse)),
            "settings": SegmintSettings(landing_dir=str(landing), as_of=as_of),
        },
        instance=instance,
        raise_on_error=False,
    )
    return {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}


def sql(shop, statement: str) -> None:
    with duckdb.connect(str(shop[1])) as conn:
        conn.execute(statement)


def validated(evaluation: dg.AssetCheckEvaluation) -> str:
    return evaluation.metadata["validated"].value


def test_a_clean_append_validates_exactly_the_rows_it_added_and_passes(shop):
    first = run(shop, DAY_A)
    assert validated(first["gx_raw_orders"]) == "every row (3)"
    checks = run(shop, DAY_B)
    assert all(evaluation.passed for evaluation in checks.values())
    # o4, o5, o6 arrive (o7 is after B); c3, c4 sign up; e2 happens.
    assert validated(checks["gx_raw_orders"]) == "rows appended by this run: 3 (of 6 in the table)"
    assert checks["gx_raw_orders"].metadata["rows_validated"].value == 3
    assert validated(checks["gx_raw_customers"]) == "rows appended by this run: 2 (of 4 in the table)"
    assert validated(checks["gx_raw_events"]) == "rows appended by this run: 1 (of 2 in the table)"
    assert checks["gx_raw_events"].metadata["earlier_rows_sharing_a_key"].value == 0


def test_a_bad_row_arriving_on_an_append_day_fails_the_check_as_on_a_full_ingest(shop, tmp_path, monkeypatch):
    run(shop, DAY_A)
    # Planted: the held order o5 lost its total before the append moves it in.
    sql(shop, "update raw.ingest_held set orders__order_total = null where orders__order_id = 'o5'")
    appended = run(shop, DAY_B)["gx_raw_orders"]
    assert validated(appended).startswith("rows appended by this run: 3 ")
    # The same row in a table a full ingest wrote (found by the whole-table validation of the next, kept, run).
    landing = shop[0]
    full_shop = (landing, tmp_path / "full.duckdb", dg.DagsterInstance.ephemeral())
    assert run(full_shop, DAY_B)["gx_raw_orders"].passed
    sql(full_shop, "update raw.orders set order_total = null where order_id = 'o5'")
    full = run(full_shop, DAY_B)["gx_raw_orders"]
    assert validated(full) == "every row (6)"
    for evaluation in (appended, full):
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR

    # The same expectation, column, count and offending row; the share is of the rows validated (1 of 3 vs 1 of 6).
    def without_share(evaluation):
        return re.sub(r"\(\d+\.\d+ %\)", "(share)", evaluation.description)

    assert (
        without_share(appended)
        == without_share(full)
        == ("expect_column_values_to_not_be_null on order_total: 1 rows (share), e.g. nan")
    )
    assert appended.description == "expect_column_values_to_not_be_null on order_total: 1 rows (33.33 %), e.g. nan"
    samples = [e.metadata["sample_offending_rows"].value for e in (appended, full)]
    assert samples[0] == samples[1] and samples[0]["expect_column_values_to_not_be_null on order_total"]


def test_a_key_appended_twice_across_old_and_new_rows_is_still_caught(shop):
    run(shop, DAY_A)
    # Planted: the customer signing up on day B carries the id of a customer already in the table.
    sql(shop, "update raw.ingest_held set customers__customer_id = 'c1' where customers__customer_id = 'c4'")
    checks = run(shop, DAY_B)
    customers = checks["gx_raw_customers"]
    assert validated(customers) == "rows appended by this run: 2 (of 4 in the table)"
    assert customers.metadata["earlier_rows_sharing_a_key"].value == 1
    assert not customers.passed and customers.severity == dg.AssetCheckSeverity.WARN  # the suite says warn
    assert customers.description == "expect_column_values_to_be_unique on customer_id: 2 rows (66.67 %)"


def test_an_append_after_a_failed_validation_validates_the_whole_table_again(shop):
    run(shop, DAY_A)
    # Planted: a bad row in the table as of day A; the next run (inputs unchanged: kept) fails on it.
    sql(shop, "update raw.orders set fx_rate = 0 where order_id = 'o2'")
    assert not run(shop, DAY_A)["gx_raw_orders"].passed
    # The append must not judge only its own rows: the bad row from day A would pass unseen.
    appended = run(shop, DAY_B)["gx_raw_orders"]
    assert validated(appended) == "every row (6)"
    assert appended.metadata["validated_because"].value == (
        f"this check's last validation (as of {DAY_A}) failed at error level"
    )
    assert not appended.passed
    assert appended.description.startswith("expect_column_values_to_be_between on fx_rate: 1 rows")


def test_the_row_count_is_judged_on_the_whole_table_when_no_order_was_appended(shop):
    run(shop, DAY_A)
    checks = run(shop, "2024-03-04")  # no order on 2024-03-04 (a customer signs up, an event happens)
    assert validated(checks["gx_raw_orders"]) == "rows appended by this run: 0 (of 3 in the table)"
    assert checks["gx_raw_orders"].passed  # at least one row: 3 in the table, though none appended
    assert validated(checks["gx_raw_customers"]) == "rows appended by this run: 1 (of 3 in the table)"


# A re-run over the same inputs (the ingest keeps the raw tables): the last verdict is shown again, with why.


def test_a_rerun_over_the_same_inputs_keeps_the_last_verdict_without_validating_and_says_why(shop, monkeypatch):
    first = run(shop, DAY_A)
    monkeypatch.setattr(quality_checks, "validate", _no_validation)
    again = run(shop, DAY_A)
    for name, evaluation in again.items():
        assert evaluation.metadata["validated_because"].value.startswith("kept: the table is the one run ")
        assert evaluation.metadata[KEPT_FROM_RUN].value in evaluation.metadata["validated_because"].value
        assert (evaluation.passed, evaluation.severity, evaluation.description) == (
            first[name].passed,
            first[name].severity,
            first[name].description,
        )
        run_id = evaluation.metadata[KEPT_FROM_RUN].value
        assert validated(evaluation) == f"none again (run {run_id} validated: {validated(first[name])})"
    # Kept again from the kept evaluation (its metadata carries the digests forward), still naming the first run.
    for name, evaluation in run(shop, DAY_A).items():
        assert evaluation.metadata[KEPT_FROM_RUN].value == again[name].metadata[KEPT_FROM_RUN].value
        assert validated(evaluation) == validated(again[name])
        assert evaluation.metadata["validated_because"].value == again[name].metadata["validated_because"].value


def test_a_rerun_after_an_append_keeps_the_verdict_and_the_appended_digest_is_the_whole_tables(shop, monkeypatch):
    run(shop, DAY_A)
    appended = run(shop, DAY_B)
    with duckdb.connect(str(shop[1])) as conn:
        for table, name in (("raw.orders", "gx_raw_orders"), ("raw.events", "gx_raw_events")):
            digest = appended[name].metadata[ROWS_DIGEST].value
            assert validated(appended[name]).startswith("rows appended by this run")
            assert digest == rows_digest(conn, table, digest["columns"])  # earlier + appended == a whole pass
    monkeypatch.setattr(quality_checks, "validate", _no_validation)
    assert all(e.metadata["validated_because"].value.startswith("kept: ") for e in run(shop, DAY_B).values())


def test_a_rerun_validates_again_when_the_suites_changed_or_a_row_changed_in_place(shop, monkeypatch):
    run(shop, DAY_A)
    monkeypatch.setattr(quality_checks, "suite_code_digest", lambda: "another suite")
    changed_suites = run(shop, DAY_A)
    assert all(validated(e).startswith("every row") for e in changed_suites.values())
    # Same row count, one value changed: the ingest keeps the tables, the check does not keep its verdict.
    sql(shop, "update raw.customers set email = 'not an email' where customer_id = 'c1'")
    changed_row = run(shop, DAY_A)
    assert validated(changed_row["gx_raw_customers"]) == "every row (2)"
    assert changed_row["gx_raw_orders"].metadata["validated_because"].value.startswith("kept: ")


def test_a_verdict_that_failed_at_error_level_is_not_kept(shop):
    run(shop, DAY_A)
    sql(shop, "update raw.orders set fx_rate = 0 where order_id = 'o2'")
    assert not run(shop, DAY_A)["gx_raw_orders"].passed
    again = run(shop, DAY_A)["gx_raw_orders"]
    assert not again.passed and validated(again) == "every row (3)"  # validated again, GX's own words
    assert KEPT_FROM_RUN not in again.metadata


def _no_validation(*args, **kwargs):
    raise AssertionError("validated although the verdict should have been kept")
