"""tests/integration/lowered_thresholds.py, without Spark: the thresholds it lowers are below the Spark comparison
shop's size (so test_spark_engine's run takes the large-data branches) and reach the modules that read them."""

from __future__ import annotations

import pytest

from orchestration.defs import quality_checks
from orchestration.lib import spark_compute, spark_segments
from tests.integration import lowered_thresholds
from tests.integration.conftest import DEMO_CUSTOMERS


def test_every_lowered_threshold_is_below_the_comparison_shop():
    customers = int(DEMO_CUSTOMERS)
    assert lowered_thresholds.GX_SAMPLE_ROWS < customers < quality_checks.MAX_VALIDATION_ROWS
    assert lowered_thresholds.FIT_SAMPLE_ROWS < customers < spark_segments.FIT_SAMPLE_ROWS
    assert lowered_thresholds.CHUNK_ROWS * 2 < customers < spark_compute.DEFAULT_CHUNK_ROWS


def test_the_lowered_thresholds_reach_the_modules_that_read_them(monkeypatch):
    for module, name in (
        (quality_checks, "MAX_VALIDATION_ROWS"),
        (spark_segments, "FIT_SAMPLE_ROWS"),
        (spark_compute, "map_table"),
    ):
        monkeypatch.setattr(module, name, getattr(module, name))  # restored after the test
    lowered_thresholds.lower_thresholds()
    assert quality_checks.MAX_VALIDATION_ROWS == lowered_thresholds.GX_SAMPLE_ROWS
    assert spark_segments.FIT_SAMPLE_ROWS == lowered_thresholds.FIT_SAMPLE_ROWS
    assert spark_compute.map_table.keywords == {"chunk_rows": lowered_thresholds.CHUNK_ROWS}


def test_it_runs_only_a_module():
    with pytest.raises(SystemExit, match="usage"):
        lowered_thresholds.main(["orchestration/cli.py"])
