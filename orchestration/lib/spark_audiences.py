"""SEGMINT_ENGINE=spark: audience members selected in Spark SQL over the Spark marts (issue 19).

One rule, two dialects: an audience's rule is written once, in DuckDB SQL (config/audiences.yaml), and so is the
member query around it (activation.audiences.member_query). On Spark that query is translated by sqlglot
(`to_spark_sql`) and run by the run's Spark over `marts.customer_scores` and the sync edge `edge.customer_contacts`;
only the selected members (an audience, not the customer table) come back to the Dagster process as Arrow, where
the same code as on DuckDB adds the control group and the value (`finish_members`) and the syncs take over.

Where sqlglot's Spark output is not Spark's meaning (sqlglot 30.30 against Spark 4.1, checked on this machine):
- `quantile_cont(x, p)` becomes `PERCENTILE_CONT(x, p)`, which Spark 4 rejects (it takes `percentile_cont(p)
  WITHIN GROUP (ORDER BY x)` only): written as `percentile(x, p)`, Spark's exact, interpolated percentile, which
  is DuckDB's quantile_cont.
- `quantile(x, p)` and `quantile_disc(x, p)` (DuckDB: a discrete quantile) become `PERCENTILE(x, p)`, an
  interpolated one: written as `percentile_disc(p) WITHIN GROUP (ORDER BY x)`.
- `percentile_cont(p) WITHIN GROUP (ORDER BY x)` (the ordered-set form, which DuckDB accepts too) becomes
  `PERCENTILE_APPROX(x, p)`, an approximation: kept as written, which Spark runs exactly.
A rule sqlglot cannot translate, or that Spark refuses, fails with a one-line AudienceRuleError naming the audience,
as a rule DuckDB refuses does.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from activation.audiences import (
    REALTIME_MEMBERS_RELATION,
    Audience,
    AudienceRuleError,
    finish_members,
    member_query,
    member_rule,
    realtime_member_ids,
)
from orchestration.lib import spark_compute

if TYPE_CHECKING:
    from orchestration.lib.spark_compute import SparkSession  # pyspark is imported in spark_compute only

SCORES = "marts.customer_scores"
_ORDERED_SET = {exp.PercentileCont: "percentile_cont", exp.PercentileDisc: "percentile_disc"}


def _within_group(function: str, fraction: exp.Expression, column: exp.Expression) -> exp.WithinGroup:
    ordered = exp.Order(expressions=[exp.Ordered(this=column, nulls_first=False)])
    return exp.WithinGroup(this=exp.Anonymous(this=function, expressions=[fraction]), expression=ordered)


def _spark_quantiles(node: exp.Expression) -> exp.Expression:
    """DuckDB's quantile functions as the Spark functions of the same meaning (see the module docstring)."""
    if isinstance(node, exp.WithinGroup) and type(node.this) in _ORDERED_SET and node.this.expression is None:
        return exp.WithinGroup(
            this=exp.Anonymous(this=_ORDERED_SET[type(node.this)], expressions=[node.this.this]),
            expression=node.expression,
        )
    if isinstance(node, exp.PercentileCont) and node.expression is not None:
        return exp.Anonymous(this="percentile", expressions=[node.this, node.expression])
    if isinstance(node, exp.PercentileDisc) and node.expression is not None:
        return _within_group("percentile_disc", node.expression, node.this)
    if isinstance(node, exp.Quantile):
        return _within_group("percentile_disc", node.args["quantile"], node.this)
    return node


def to_spark_sql(sql: str) -> str:
    """DuckDB `sql` (one statement) as Spark SQL; raises sqlglot's error when it cannot be expressed."""
    tree = sqlglot.parse_one(sql, read="duckdb").transform(_spark_quantiles)
    return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)


def select_members_on_spark(
    session: SparkSession,
    conn: duckdb.DuckDBPyConnection,
    audience: Audience,
    realtime_members: Collection[str] | None = None,
) -> pd.DataFrame:
    """activation.audiences.select_members, with the selection run in Spark SQL: the same rows and columns.

    `conn`: any DuckDB connection (the control group's hash and the Arrow-to-pandas conversion, as on DuckDB)."""
    try:
        query = to_spark_sql(member_query(session.table(SCORES).columns, member_rule(audience)))
    except SqlglotError as error:
        raise AudienceRuleError(
            f"audience '{audience.name}': rule `{audience.rule}` cannot be written in Spark SQL: "
            f"{str(error).splitlines()[0]}"
        ) from error
    live = audience.realtime_segment is not None
    try:
        if live:
            ids = realtime_member_ids(realtime_members).astype(object)
            session.createDataFrame(ids, schema="customer_id string").createOrReplaceTempView(REALTIME_MEMBERS_RELATION)
        arrow = session.sql(query).toArrow()
    except spark_compute.spark_error() as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AudienceRuleError(
            f"audience '{audience.name}': rule `{audience.rule}` failed in Spark: {first_line}"
        ) from error
    finally:
        if live:
            session.catalog.dropTempView(REALTIME_MEMBERS_RELATION)
    # Through DuckDB's Arrow-to-pandas conversion, the one the DuckDB path's `.df()` uses: the same dtypes.
    members = conn.from_arrow(arrow).df()
    return finish_members(conn, audience, members)
