"""Audiences selected in Spark SQL (orchestration/lib/spark_audiences.py): one rule, two dialects, the same members.

The translation is checked without Spark; `test_the_same_members_on_both_engines` runs the rules on a real local
Spark Connect server (the run's own kind: `spark_connect.start_server`) over the same customer rows as DuckDB, for
the shapes rules take (config/audiences.yaml's, quantiles of both kinds, text, dates, NULLs, a real-time audience).
The whole graph on both engines (tests/integration/test_spark_engine.py) compares the shipped audiences too.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import duckdb
import pytest

from activation.audiences import AudienceRuleError, load_audiences, member_query, member_rule, select_members
from orchestration.lib import spark_audiences
from orchestration.lib.settings import CONFIG_DIR
from orchestration.lib.spark_tables import export_table
from tests.servers.harness import test_audience

SHIPPED = load_audiences(CONFIG_DIR / "audiences.yaml")


@pytest.mark.parametrize(
    ("duckdb_sql", "spark_sql"),
    [
        # Spark 4 rejects PERCENTILE_CONT(x, p) (sqlglot's output); percentile() is the exact, interpolated one.
        ("quantile_cont(x, 0.8)", "PERCENTILE(x, 0.8)"),
        ("quantile_cont(x, [0.1, 0.9])", "PERCENTILE(x, ARRAY(0.1, 0.9))"),
        # DuckDB's quantile and quantile_disc are discrete: not PERCENTILE (interpolated), which sqlglot writes.
        ("quantile_disc(x, 0.5)", "PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY x NULLS LAST)"),
        ("quantile(x, 0.5)", "PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY x NULLS LAST)"),
        # The ordered-set form stays exact (sqlglot writes PERCENTILE_APPROX).
        ("percentile_cont(0.8) within group (order by x)", "PERCENTILE_CONT(0.8) WITHIN GROUP (ORDER BY x NULLS LAST)"),
        ("median(x)", "MEDIAN(x)"),
        ("x::double", "CAST(x AS DOUBLE)"),
    ],
)
def test_duckdb_functions_become_the_spark_functions_of_the_same_meaning(duckdb_sql, spark_sql):
    assert spark_audiences.to_spark_sql(f"select {duckdb_sql} from t") == f"SELECT {spark_sql} FROM t"


def test_every_shipped_rule_translates_and_the_query_lists_its_columns():
    columns = ["customer_id", "predicted_clv", "recency_score", "email"]  # email: the contact field wins
    for audience in SHIPPED:
        spark_sql = spark_audiences.to_spark_sql(member_query(columns, member_rule(audience)))
        assert "scores.email" not in spark_sql and "contacts.email" in spark_sql
        assert "PERCENTILE_CONT" not in spark_sql and "EXCLUDE" not in spark_sql.upper()


def test_a_rule_sqlglot_cannot_read_is_a_one_line_error():
    class NoSession:
        class table:  # noqa: N801 - stands in for session.table(...).columns
            def __init__(self, name):
                self.columns = ["customer_id", "recency_score"]

    audience = test_audience(rule="recency_score >= (4")
    with duckdb.connect() as conn, pytest.raises(AudienceRuleError, match="^audience 'everyone': rule .* cannot be"):
        spark_audiences.select_members_on_spark(NoSession(), conn, audience)


RULES = {"shipped_" + audience.name: audience.rule for audience in SHIPPED if audience.realtime_segment is None} | {
    "discrete_quantile": "monetary_score >= (select quantile_disc(monetary_score, 0.7) from marts.customer_scores)",
    "median": "predicted_clv > (select median(predicted_clv) from marts.customer_scores)",
    "text_and_nulls": "email ilike '%@example.com' and coalesce(rfm_segment, 'none') <> 'Lost'",
    "dates": "last_order_at >= date '2025-03-01' - interval 30 day",
    "consent": "marketing_consent and country in ('DE', 'FR')",
}


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """The same customer_scores and customer_contacts rows in DuckDB and, as Parquet tables, in a local Spark."""
    pytest.importorskip("pyspark", reason="the Spark engine is the optional extra .[spark]")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java on PATH")
    from orchestration.lib import spark_compute, spark_connect

    conn = duckdb.connect()
    conn.execute("create schema marts; create schema edge")
    conn.execute(
        """create table marts.customer_scores as select
             'c' || lpad(i::varchar, 4, '0') as customer_id,
             if(i % 17 = 0, null, round((i * 37 % 101) * 1.25, 2))::double as predicted_clv,
             1 + i % 5 as recency_score, 1 + i // 5 % 5 as frequency_score, 1 + i // 25 % 5 as monetary_score,
             [null, 'Champions', 'Lost', 'Can''t Lose Them'][1 + i % 4] as rfm_segment,  -- a quote in a name
             timestamp '2025-01-01 10:00:00' + to_days(i % 90) as last_order_at,
             'ignored' as email
           from range(400) t(i)"""
    )
    conn.execute(
        """create table edge.customer_contacts as select
             'c' || lpad(i::varchar, 4, '0') as customer_id,
             if(i % 3 = 0, 'p' || i || '@example.com', 'p' || i || '@other.org') as email,
             null::varchar as phone, 'F' || i as first_name, 'L' || i as last_name, '1000' as postal_code,
             ['DE', 'FR', 'US'][1 + i % 3] as country, i % 4 <> 0 as marketing_consent
           from range(390) t(i)"""  # ten customers without a contact row: NULL contact fields
    )
    lake = tmp_path_factory.mktemp("lake")
    server = spark_connect.start_server(lake, "local[1]")
    session = spark_compute.spark_session(server.url)
    try:
        for table in ("marts.customer_scores", "edge.customer_contacts"):
            folder = export_table(conn, table, lake)
            session.sql(f"create database if not exists {table.split('.')[0]}")
            session.sql(f"create table {table} using parquet location '{folder}'")
        yield conn, session
    finally:
        session.stop()
        server.stop()
        conn.close()


@pytest.mark.slow
@pytest.mark.spark
def test_the_same_members_on_both_engines(engines):
    conn, session = engines
    columns = ["customer_id", "is_control", "value", "predicted_clv", "email", "marketing_consent", "country"]
    for name, rule in RULES.items():
        audience = test_audience(name=name, rule=rule, value_column="predicted_clv")
        on_duckdb = select_members(conn, audience)
        on_spark = spark_audiences.select_members_on_spark(session, conn, audience)
        assert 0 < len(on_duckdb) < 400, name  # a rule that selects some, not all
        assert list(on_spark.columns) == list(on_duckdb.columns), name
        assert on_spark[columns].equals(on_duckdb[columns]), name
    live = replace(test_audience(name="live", rule="recency_score >= 3"), realtime_segment="cart_abandoner")
    for ids in (["c0001", "c0002", "c0003", "c9999"], [], None):
        assert list(spark_audiences.select_members_on_spark(session, conn, live, ids)["customer_id"]) == list(
            select_members(conn, live, ids)["customer_id"]
        )


@pytest.mark.slow
@pytest.mark.spark
def test_a_rule_spark_refuses_is_a_one_line_error(engines):
    conn, session = engines
    with pytest.raises(AudienceRuleError, match=r"^audience 'everyone': rule `no_such_column > 1` failed in Spark: .+"):
        spark_audiences.select_members_on_spark(session, conn, test_audience(rule="no_such_column > 1"))
