"""The Parquet exchange between the Python steps' DuckDB side and the Spark warehouse (no JVM needed)."""

from datetime import date, datetime

import duckdb
import pytest

from orchestration.defs.dbt_models import step_relations
from orchestration.lib import keys
from orchestration.lib.spark_tables import attach_spark_table, export_tables, table_dir


@pytest.fixture
def conn():
    conn = duckdb.connect()
    conn.execute("create schema raw")
    conn.execute(
        "create table raw.orders as select * from (values ('o1', 'c1', timestamp '2025-03-01 23:30:00', 12.5, date '2025-03-01'),"
        " ('o2', null, timestamp '2025-03-02 00:15:00', -3.0, date '2025-03-02')) t(order_id, customer_id, ordered_at, order_total, day)"
    )
    yield conn
    conn.close()


def test_export_writes_spark_layout_and_reads_back_unchanged(conn, tmp_path):
    assert export_tables(conn, ["raw.orders", "raw.missing"], tmp_path) == ["raw.orders"]
    folder = table_dir(tmp_path, "raw.orders")
    assert folder == tmp_path / "raw.db" / "orders"
    assert [p.name for p in folder.iterdir()] == ["part-00000.parquet"]
    other = duckdb.connect()
    assert attach_spark_table(other, "raw.orders", tmp_path)
    rows = other.execute("select * from raw.orders order by order_id").fetchall()
    # Naive timestamps stay naive (no shift), NULLs and dates survive.
    assert rows == [
        ("o1", "c1", datetime(2025, 3, 1, 23, 30), 12.5, date(2025, 3, 1)),
        ("o2", None, datetime(2025, 3, 2, 0, 15), -3.0, date(2025, 3, 2)),
    ]
    kinds = other.execute(
        "select table_type from information_schema.tables where table_schema = 'raw' and table_name = 'orders'"
    ).fetchall()
    assert kinds == [("VIEW",)]  # read in place, nothing copied


def test_export_replaces_the_folder_and_leaves_no_staging_behind(conn, tmp_path):
    export_tables(conn, ["raw.orders"], tmp_path)
    conn.execute("delete from raw.orders where order_id = 'o2'")
    export_tables(conn, ["raw.orders"], tmp_path)
    other = duckdb.connect()
    attach_spark_table(other, "raw.orders", tmp_path)
    assert other.execute("select count(*) from raw.orders").fetchone()[0] == 1
    assert sorted(p.name for p in (tmp_path / "raw.db").iterdir()) == ["orders"]


def test_attach_replaces_a_duckdb_table_and_skips_what_spark_lacks(conn, tmp_path):
    export_tables(conn, ["raw.orders"], tmp_path)
    # The same DuckDB file ran on DuckDB before the switch: its table gives way to the view of Spark's.
    conn.execute("create schema marts")
    conn.execute("create table marts.customer_scores as select 1 as stale")
    (tmp_path / "marts.db" / "customer_scores").mkdir(parents=True)
    conn.execute(f"copy (select 'c1' as customer_id) to '{tmp_path}/marts.db/customer_scores/part-0.parquet'")
    assert attach_spark_table(conn, "marts.customer_scores", tmp_path)
    assert conn.execute("select * from marts.customer_scores").fetchall() == [("c1",)]
    assert not attach_spark_table(conn, "staging.stg_events", tmp_path)  # a Spark view: no files


def test_step_relations_names_the_sources_a_step_reads_and_the_models_it_builds(dbt_manifest):
    import json

    manifest = json.loads(dbt_manifest.read_text())
    sources, models = step_relations(manifest, {keys.CUSTOMER_SCORES})
    assert "marts.customer_scores" in models
    assert {"ml.rfm_segments", "ml.behavioral_segments", "ml.clv_predictions", "ml.btyd_predictions"} <= set(sources)
    assert not any(s.startswith("raw.") for s in sources)


def test_the_duckdb_path_never_loads_spark():
    """The Spark engine is an optional extra, and on Spark too no JVM runs in the Dagster process: loading the code
    location imports no Spark adapter and starts no JVM, and segmint's own code imports pyspark only in
    orchestration/lib/spark_compute.py, inside the functions a Spark step calls (a Spark Connect client: no JVM).

    (Great Expectations imports the pyspark *package* when it is installed, about 1-2 s, and starts nothing.)
    """
    import ast
    import sys

    import orchestration.definitions  # noqa: F401
    from orchestration.lib.settings import PROJECT_ROOT

    assert not [name for name in sys.modules if name.startswith("dbt.adapters.spark")]
    if "pyspark" in sys.modules:
        from pyspark import SparkContext

        assert SparkContext._active_spark_context is None
    ours = []
    for package in ("orchestration", "landing", "ml", "activation", "reporting", "privacy", "expectations", "realtime"):
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                ours += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("pyspark", "py4j")]
    assert ours and {entry.split(":")[0] for entry in ours} == {"spark_compute.py"}


def test_a_table_already_in_spark_is_not_exported_onto_itself(conn, tmp_path):
    # A step that wrote its table in Spark (CLV scoring) leaves a view over that folder: the dbt step after it must
    # read those files as they are, not a copy of the view written over them.
    export_tables(conn, ["raw.orders"], tmp_path)
    files_before = sorted(table_dir(tmp_path, "raw.orders").iterdir())
    reader = duckdb.connect()
    reader.execute("create schema raw")
    assert attach_spark_table(reader, "raw.orders", tmp_path)
    assert export_tables(reader, ["raw.orders"], tmp_path) == []
    assert sorted(table_dir(tmp_path, "raw.orders").iterdir()) == files_before
