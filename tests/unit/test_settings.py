"""SEGMINT_ENGINE and the Spark settings (orchestration/lib/settings.py)."""

import pytest

from orchestration.lib.settings import SettingsError, load_settings


def test_engine_defaults_to_duckdb_and_spark_paths_follow_the_data_folder(tmp_path):
    s = load_settings({"SEGMINT_DATA_DIR": str(tmp_path)})
    assert (s.engine, s.spark_master) == ("duckdb", "local[2]")
    assert s.spark_warehouse_dir == tmp_path / "spark-warehouse"


def test_spark_engine_settings(tmp_path):
    env = {
        "SEGMINT_DATA_DIR": str(tmp_path),
        "SEGMINT_ENGINE": " Spark ",
        "SEGMINT_SPARK_MASTER": "spark://head:7077",
        "SEGMINT_SPARK_WAREHOUSE": str(tmp_path / "lake"),
    }
    s = load_settings(env)
    assert (s.engine, s.spark_master, s.spark_warehouse_dir) == ("spark", "spark://head:7077", tmp_path / "lake")


def test_unknown_engine_is_a_one_line_settings_error():
    with pytest.raises(SettingsError, match="SEGMINT_ENGINE='snowflake' is not one of duckdb, spark"):
        load_settings({"SEGMINT_ENGINE": "snowflake"})
