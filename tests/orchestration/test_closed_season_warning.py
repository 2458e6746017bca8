"""A closed season (ml.champion.closed_season) zeroes the whole CLV forecast: ml/clv_predictions says so in one
warning line (the run's log, `make run`'s summary), its metadata and a WARN check (the failed-check alert), with the
windows, the days sold before and what to do when it was a data gap. A shop whose forecast is not zeroed says
nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
from datetime import date

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ml import btyd
from orchestration.cli import concise_console_logger
from orchestration.defs.btyd import BTYD_FITS_TABLE
from orchestration.defs.clv import (
    CLOSED_SEASON_CHECK,
    FEATURES,
    MODEL_TABLE,
    closed_season_warning,
    clv_predictions,
    export_coverage,
)
from orchestration.defs.resources import SparkEngine, Warehouse
from orchestration.lib.keys import CLV_PREDICTIONS
from orchestration.lib.warehouse_io import write_table
from tests.unit import shop_shapes
from tests.unit.test_clv import SHOP_START

# The Christmas shop (shop_shapes.seasonal) is scored on 2022-12-31 for the next 90 days.
CHRISTMAS_AS_OF = date(2022, 12, 31)


@pytest.fixture(scope="module")
def christmas() -> shop_shapes.StepResult:
    return shop_shapes.production_step(shop_shapes.seasonal())


def test_the_closed_season_shop_warns_with_both_windows_the_days_sold_and_the_fix(christmas):
    line = closed_season_warning(christmas.model, coverage=None)
    assert line is not None and "\n" not in line
    assert "the CLV forecast is 0 for every customer" in line
    assert "no revenue in 2022-01-01 to 2022-03-31" in line  # the year-earlier window with no orders
    assert "a year before 2023-01-01 to 2023-03-31" in line  # the window forecast
    assert "61 selling days in the 90 days before them" in line
    assert "SEGMINT_LANDING_DIR" in line and "SEGMINT_FORCE_REFIT=1" in line


@pytest.mark.parametrize(
    "make", [shop_shapes.strong_season, shop_shapes.one_whale], ids=["strong season, open all year", "one whale"]
)
def test_a_shop_whose_forecast_is_not_zeroed_gets_no_warning(make):
    step = shop_shapes.production_step(make())
    assert step.model.seasonal_factor != 0
    assert closed_season_warning(step.model, coverage=None) is None


SPANS = pd.DataFrame(
    {
        "source_file": ["orders_2021.csv", "orders_2022.csv"],
        "first_day": [date(2021, 11, 1), date(2022, 4, 2)],
        "last_day": [date(2021, 12, 24), date(2022, 12, 30)],
    }
)


def test_a_window_between_two_export_files_points_at_a_missing_file():
    found = export_coverage(SPANS, "2021-12-31", "2022-03-31")
    assert found == (
        "no landing file holds orders on both sides of it (orders_2021.csv ends 2021-12-24; orders_2022.csv starts "
        "2022-04-02): a missing file is likely"
    )


def test_a_window_inside_one_export_file_names_that_file():
    one_file = pd.DataFrame(
        {"source_file": ["orders.csv"], "first_day": [date(2021, 11, 1)], "last_day": [date(2022, 12, 30)]}
    )
    assert export_coverage(one_file, "2021-12-31", "2022-03-31") == (
        "orders.csv holds orders before and after it: the empty stretch is inside that export"
    )


def _warehouse(path, step: shop_shapes.StepResult, model, orders: pd.DataFrame) -> Warehouse:
    """What ml/clv_predictions reads: the pinned model row, the scoring features, the scoring BTYD fits, raw.orders."""
    blob = pickle.dumps(model)
    version = hashlib.sha256(blob).hexdigest()[:12]
    fits = btyd.fit_btyd_models(step.scoring_rows)
    features = step.scoring_rows.assign(customer_id=step.scoring_rows["customer_id"].astype(str))
    with duckdb.connect(str(path)) as conn:
        write_table(conn, FEATURES, features)
        write_table(
            conn,
            MODEL_TABLE,
            pd.DataFrame(
                [
                    {
                        "model_version": version,
                        "model_blob": blob,
                        "fit_key": "k",
                        "fitted_as_of": CHRISTMAS_AS_OF,
                        "refit_reason": "test",
                    }
                ]
            ),
        )
        write_table(
            conn,
            BTYD_FITS_TABLE,
            pd.DataFrame(
                [
                    {
                        "cutoff": "scoring",
                        "model": name,
                        "fitted_blob": None if isinstance(fit, str) else pickle.dumps(fit),
                        "error": fit if isinstance(fit, str) else None,
                    }
                    for name, fit in fits.items()
                ]
            ),
        )
        raw = pd.DataFrame(
            {
                "ordered_at": SHOP_START + pd.to_timedelta(orders["day"], unit="D"),
                "origin_file": "orders_export.csv",
                "source_file": "orders_export.csv",
            }
        )
        write_table(conn, "raw.orders", raw)
    return Warehouse(path=str(path), engine="duckdb")


def _materialize(warehouse: Warehouse):
    """Run ml/clv_predictions with `make run`'s console logger: the warnings it collects are the run's summary."""
    warnings: list[str] = []
    defs = dg.Definitions(
        assets=[clv_predictions],
        resources={"warehouse": warehouse, "spark": SparkEngine()},
        jobs=[dg.define_asset_job("predict", selection=[CLV_PREDICTIONS])],
    )
    job = defs.resolve_job_def("predict").with_logger_defs({"concise": concise_console_logger(warnings)})
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), run_config={"loggers": {"concise": {}}})
    (check,) = result.get_asset_check_evaluations()
    (materialization,) = result.asset_materializations_for_node("ml__clv_predictions")
    return check, materialization.metadata, warnings


def test_clv_predictions_logs_the_closed_season_and_flags_it_with_a_warn_check(christmas, tmp_path):
    orders = shop_shapes.seasonal().shop["orders"]
    warehouse = _warehouse(tmp_path / "warehouse.duckdb", christmas, christmas.model, orders)
    check, metadata, warnings = _materialize(warehouse)
    assert check.asset_check_key == dg.AssetCheckKey(CLV_PREDICTIONS, CLOSED_SEASON_CHECK)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    (summary,) = warnings  # `make run` prints it as "segmint: WARNING <step>: <line>"
    line = summary.removeprefix("ml__clv_predictions: ")
    assert line.startswith("the CLV forecast is 0 for every customer")
    # The shop's one file holds Nov-Dec 2021 and Nov-Dec 2022: it spans the empty window, so no file is missing.
    assert (
        "landing: orders_export.csv holds orders before and after it: the empty stretch is inside that export" in line
    )
    assert check.description == line and metadata["closed_season"].value == line
    assert metadata["total_predicted_clv"].value == 0


def test_clv_predictions_of_an_open_shop_passes_the_check_and_logs_nothing(christmas, tmp_path):
    # The same scores with the season's step taken away: nothing is zeroed, nothing to say.
    model = dataclasses.replace(christmas.model, seasonal_factor=1.0, seasonality="not applied: test")
    orders = shop_shapes.seasonal().shop["orders"]
    check, metadata, warnings = _materialize(_warehouse(tmp_path / "warehouse.duckdb", christmas, model, orders))
    assert check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert warnings == []
    assert metadata["closed_season"].value == "no"
    assert metadata["total_predicted_clv"].value > 0
