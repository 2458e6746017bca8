"""A messy landing zone through the real ingest asset and its checks: quarantined with reasons, reconciled, or a
one-line error; never a traceback for the user's mistake and never a silent drop."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from orchestration import cli
from orchestration.defs.landing import landing_files, raw_tables
from orchestration.defs.quality_checks import check_ingest_counts_reconcile, gx_checks
from orchestration.defs.reporting import report_currency
from orchestration.defs.resources import SegmintSettings, Warehouse

ORDERS_HEADER = "order_id,customer_id,ordered_at,order_total,currency\n"


def _materialize(tmp_path, monkeypatch, files: dict[str, str], as_of: str | None = None):
    landing = tmp_path / "landing"
    landing.mkdir()
    for name, text in files.items():
        (landing / name).write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(tmp_path / "data"))
    warehouse = tmp_path / "warehouse.duckdb"
    result = dg.materialize(
        [landing_files, raw_tables, check_ingest_counts_reconcile, *gx_checks[:3]],
        resources={
            "warehouse": Warehouse(path=str(warehouse)),
            "settings": SegmintSettings(landing_dir=str(landing), as_of=as_of),
        },
        raise_on_error=False,
    )
    return result, warehouse


def _check_results(result) -> dict[str, bool]:
    return {
        e.asset_check_evaluation_data.asset_check_key.name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_a_messy_orders_file_is_quarantined_with_reasons_and_counts_reconcile(tmp_path, monkeypatch):
    orders = (
        ORDERS_HEADER
        + "\n".join(
            [
                "1,0042,2025-01-05,10.50,USD",  # clean
                "2,0042,2025-02-30,12.00,USD",  # planted: impossible date
                "3,,2025-01-06,5.00,USD",  # planted: missing customer id
                "4,7,2025-01-07,abc,USD",  # planted: wrong type
                "5,7,2025-01-08,-3.00,USD",  # refund: accepted
                "6,8,2025-01-09,20.00,USD",  # identical duplicate below
                "6,8,2025-01-09,20.00,USD",  # planted: identical duplicate
                "9,9,2025-06-01,20.00,USD",  # planted: after the as-of date
                "10,10,2025-01-10,\"=cmd|' /C calc'!A0\",USD",  # planted: formula injection in a number column
            ]
        )
        + "\n"
    )
    result, warehouse = _materialize(tmp_path, monkeypatch, {"orders.csv": orders}, as_of="2025-03-01")
    assert result.success
    assert _check_results(result)["check_ingest_counts_reconcile"] is True
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        accepted = [r[0] for r in conn.execute("select customer_id from raw.orders order by source_row").fetchall()]
        reasons = dict(conn.execute("select source_row, split_part(reason, ':', 1) from raw.quarantine").fetchall())
        log = conn.execute("select rows_in, rows_accepted, rows_quarantined from raw.ingest_log").fetchone()
    assert accepted == ["0042", "7", "8"]
    assert reasons == {
        2: "invalid_timestamp",
        3: "missing_customer_id",
        4: "invalid_number",
        7: "duplicate_identical",
        8: "after_as_of",
        9: "invalid_number",
    }
    assert log == (9, 3, 6)


def test_a_file_that_cannot_be_read_fails_the_run_with_one_line_naming_file_and_column(tmp_path, monkeypatch):
    result, _ = _materialize(
        tmp_path, monkeypatch, {"orders.csv": "order_id,customer_id,date,total\n1,a,2025-01-01,3\n"}
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure.description == (
        "orders.csv: required column 'ordered_at' is missing (found: order_id, customer_id, date, total)"
    )
    assert "\n" not in failure.description


@pytest.mark.parametrize("content", ["", ORDERS_HEADER])
def test_an_empty_or_header_only_orders_file_is_a_clear_error(tmp_path, monkeypatch, content):
    result, _ = _materialize(tmp_path, monkeypatch, {"orders.csv": content})
    assert not result.success
    description = result.get_step_failure_events()[0].step_failure_data.user_failure_data.description
    assert description.startswith("orders.csv:")


def test_mixed_currencies_without_rates_are_never_summed_the_other_currency_is_quarantined(tmp_path, monkeypatch):
    # Without SEGMINT_CURRENCY or fx_rates.csv the currency of most orders is kept (ties: alphabetical, EUR).
    orders = ORDERS_HEADER + "1,a,2025-01-01,10,USD\n2,b,2025-01-02,10,EUR\n"
    result, warehouse = _materialize(tmp_path, monkeypatch, {"orders.csv": orders})
    assert result.success
    evaluations = [
        e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    orders_check = next(e for e in evaluations if e.asset_check_key.name == "gx_raw_orders")
    assert orders_check.passed is True
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("select currency from raw.orders").fetchall() == [("EUR",)]
        assert conn.execute("select split_part(reason, ':', 1) from raw.quarantine").fetchall() == [("mixed_currency",)]


def test_a_shop_whose_orders_name_no_currency_says_so_in_metadata_and_report_instead_of_none(tmp_path, monkeypatch):
    orders = "order_id,customer_id,ordered_at,order_total\n1,a,2025-01-01,10\n2,b,2025-01-02,10\n"
    result, warehouse = _materialize(tmp_path, monkeypatch, {"orders.csv": orders})
    assert result.success
    metadata = next(
        m.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.materialization.asset_key.path[-1] == "orders"
    )
    assert metadata["reporting_currency"].value == "not given (set SEGMINT_CURRENCY)"
    assert any("SEGMINT_CURRENCY is not set" in note for note in metadata["notes"].value)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("select reporting_currency from raw.run_context").fetchall() == [(None,)]
        assert report_currency(conn) == "not given (set SEGMINT_CURRENCY)"  # the report's "Currency" fact


def test_a_shopify_export_goes_through_the_asset_with_its_format_and_source_files(tmp_path, monkeypatch):
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "formats" / "shopify"
    files = {path.name: path.read_bytes() for path in fixture.iterdir()}
    result, warehouse = _materialize(tmp_path, monkeypatch, files)
    assert result.success
    assert _check_results(result)["check_ingest_counts_reconcile"] is True
    orders = next(
        m.materialization
        for m in result.get_asset_materialization_events()
        if m.materialization.asset_key.path[-1] == "orders"
    )
    assert orders.metadata["source_format"].value == "shopify"
    assert "orders_export.csv" in orders.metadata["source_files"].value
    # The translated contract files are kept under the data dir for inspection.
    assert (tmp_path / "data" / "landing_work" / "shopify" / "orders.parquet").is_file()


def test_the_real_time_log_is_ingested_by_the_raw_tables_asset_and_its_counts_reconcile(tmp_path, monkeypatch):
    # The segment service's durable log in the data folder (shared contract format); its last line torn by a crash.
    log_dir = tmp_path / "data" / "realtime" / "log"
    log_dir.mkdir(parents=True)
    line = (
        '{{"event_id": "rt_{i}", "customer_id": null, "anonymous_id": "v{i}", "event_type": "page_view", '
        '"occurred_at": "{day}T10:00:00+01:00", "received_at": "2025-03-01T09:00:00Z", "page_type": null, '
        '"product_id": null, "category": "shoes", "device": "mobile", "utm_source": null, '
        '"utm_medium": "affiliate", "utm_campaign": null, "utm_content": null, "value": 12.5}}'
    )
    lines = [line.format(i=i, day="2025-02-01") for i in range(5)] + [line.format(i=9, day="2025-04-01")]
    (log_dir / "events-20250301T090000-77.jsonl").write_text("\n".join(lines) + '\n{"event_id": "rt_torn", "cu')
    orders = ORDERS_HEADER + "1,0042,2025-01-05,10.50,USD\n"
    result, warehouse = _materialize(tmp_path, monkeypatch, {"orders.csv": orders}, as_of="2025-03-01")
    assert result.success
    assert _check_results(result)["check_ingest_counts_reconcile"] is True
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        ids = [r[0] for r in conn.execute("select event_id from raw.events order by event_id").fetchall()]
        log = conn.execute(
            "select rows_in, rows_accepted, rows_quarantined, rows_after_as_of from raw.ingest_log "
            "where source_file = 'realtime/log/events-20250301T090000-77.jsonl'"
        ).fetchone()
    assert ids == [f"rt_{i}" for i in range(5)]
    assert log == (7, 5, 2, 1)  # the event after the as-of date and the torn line are quarantined and counted
    metadata = next(
        m for m in result.asset_materializations_for_node("raw_tables") if m.asset_key == dg.AssetKey(["raw", "events"])
    ).metadata
    assert metadata["realtime_log_rows_in"].value == 7


def test_a_customers_file_with_religion_and_health_columns_runs_and_the_metadata_says_they_were_dropped(
    tmp_path, monkeypatch
):
    orders = ORDERS_HEADER + "o1,c1,2025-01-01,10,EUR\no2,c2,2025-01-02,20,EUR\n"
    # Planted: two special-category columns (GDPR art. 9) in an otherwise ordinary customers file.
    customers = "customer_id,email,religion,health_condition\nc1,a@example.com,Catholic,asthma\nc2,,Muslim,\n"
    result, warehouse = _materialize(tmp_path, monkeypatch, {"orders.csv": orders, "customers.csv": customers})
    assert result.success
    assert all(_check_results(result).values())
    metadata = result.asset_materializations_for_node("raw_tables")
    customers_metadata = next(m.metadata for m in metadata if m.asset_key == dg.AssetKey(["raw", "customers"]))
    assert customers_metadata["special_category_columns_dropped"].value == [
        {"column": "religion", "category": "religion_or_beliefs", "matched_by": "column name"},
        {"column": "health_condition", "category": "health", "matched_by": "column name"},
    ]
    assert customers_metadata["special_categories_version"].value == "1"
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        columns = {row[0] for row in conn.execute("select column_name from information_schema.columns").fetchall()}
        text = str(conn.execute("select * from raw.customers").fetchall()) + str(
            conn.execute("select * from raw.quarantine").fetchall()
        )
    assert not {"religion", "health_condition"} & columns
    assert "Catholic" not in text and "Muslim" not in text and "asthma" not in text


def test_the_landings_notes_are_run_log_warnings_and_the_cli_summary_prints_each_once(tmp_path, monkeypatch, capsys):
    # No USD order, rates for CHF only: the rates look quoted against EUR. Said in the metadata, the run's log
    # (a warning of the raw tables' step, which `make run`'s console logger keeps) and `make run`'s closing lines,
    # also when the next run keeps the tables.
    orders = ORDERS_HEADER + "1,a,2025-01-05,10,EUR\n2,a,2025-01-06,10,CHF\n3,b,2025-01-07,10,CHF\n"
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "orders.csv").write_text(orders)
    (landing / "fx_rates.csv").write_text("date,currency,rate\n2025-01-01,CHF,1.05\n")
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SEGMINT_CURRENCY", "USD")
    resources = {
        "warehouse": Warehouse(path=str(tmp_path / "warehouse.duckdb")),
        "settings": SegmintSettings(landing_dir=str(landing), as_of="2025-03-01"),
    }
    defs = dg.Definitions(assets=[landing_files, raw_tables], resources=resources)
    job = dg.define_asset_job("ingest", executor_def=dg.in_process_executor).resolve(
        asset_graph=defs.resolve_asset_graph()
    )
    expected = (
        "raw_tables: orders.csv: SEGMINT_CURRENCY=USD, but fx_rates.csv looks quoted against EUR (the one order "
        "currency it gives no rate for, and no order is in USD): its 1 order rows are quarantined as missing_fx_rate"
    )
    with dg.DagsterInstance.ephemeral() as instance:
        for kept in (False, True):
            warnings: list[str] = []
            logged = job.with_logger_defs({"concise": cli.concise_console_logger(warnings)})
            result = logged.execute_in_process(
                instance=instance, resources=resources, run_config={"loggers": {"concise": {}}}
            )
            metadata = result.asset_materializations_for_node("raw_tables")[0].metadata
            assert any("looks quoted against EUR" in note for note in metadata["notes"].value)
            assert len(warnings) == 1 and warnings[0].startswith(expected)
            assert warnings[0].endswith(" (kept ingest)") is kept
    capsys.readouterr()
    cli.report_outcome("segmint_refresh", True, cli.RunOutcome([], []), 0.1, "r", warnings + warnings)
    printed = capsys.readouterr().err.splitlines()
    assert printed == [f"segmint: WARNING {warnings[0]}"]
