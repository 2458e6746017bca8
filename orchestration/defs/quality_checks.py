"""Data-quality gates: GX suites on the raw and mart tables, and the ingest reconciliation.

All are blocking: an error-level failure stops every downstream asset in the run (models, audiences, syncs).
dbt's own tests arrive as separate checks on the dbt assets.
"""

import dagster as dg
import duckdb
import pandas as pd

from expectations.suites import SUITES
from expectations.validate import validate
from landing.special_categories import load_denylist, special_category_columns
from orchestration.defs.resources import DUCKDB_TAG, Warehouse
from orchestration.lib.keys import (
    CUSTOMER_FEATURES,
    CUSTOMER_SCORES,
    RAW_CUSTOMERS,
    RAW_EVENTS,
    RAW_ORDERS,
    RAW_QUARANTINE,
)
from orchestration.lib.metadata import markdown_table, validation_metadata
from orchestration.lib.settings import SPECIAL_CATEGORIES_FILE

# GX runs on pandas; above this many rows it validates a reproducible sample (dbt tests still cover every row).
MAX_VALIDATION_ROWS = 500_000

# table in the warehouse -> (asset key, suite name)
GX_CHECKED_TABLES = {
    "raw.orders": (RAW_ORDERS, "raw_orders"),
    "raw.customers": (RAW_CUSTOMERS, "raw_customers"),
    "raw.events": (RAW_EVENTS, "raw_events"),
    "marts.customer_features": (CUSTOMER_FEATURES, "customer_features"),
    "marts.customer_scores": (CUSTOMER_SCORES, "customer_scores"),
}


# Columns that locate a row in its landing file: read beside a suite's columns so a failure's sample rows say where
# the bad row came from (identifiers are masked in the samples anyway, expectations/validate.py).
ROW_LOCATOR_COLUMNS = ("source_file", "source_row", "origin_file", "origin_row")


def suite_columns(suite) -> list[str]:
    """The columns a GX suite's expectations read (column, column_A/column_B, column_list), in suite order."""
    columns: list[str] = []
    for expectation in suite.expectations:
        kwargs = expectation.configuration.kwargs
        names = [kwargs.get(name) for name in ("column", "column_A", "column_B")]
        names += list(kwargs.get("column_list") or [])
        columns += [name for name in names if name]
    return list(dict.fromkeys(columns))


def read_for_validation(
    conn: duckdb.DuckDBPyConnection, table: str, columns: list[str] | None = None
) -> tuple[pd.DataFrame, int]:
    """The table (or a seeded sample of MAX_VALIDATION_ROWS when larger) and its full row count.

    `columns`: read only these (those the table has) and the row locators, not the whole table: a suite judges
    only its own columns, and at 1 M customers / 36 M events reading and hashing (GX fingerprints every batch) the
    other columns was most of each check (issue 18). The sample is drawn over row ids, so it is the same rows in
    the same order whichever columns are read."""
    total = conn.execute(f"select count(*) from {table}").fetchone()[0]
    wanted: list[str] = []
    if columns is not None:
        schema, name = table.split(".")
        present = {
            row[0]
            for row in conn.execute(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
                [schema, name],
            ).fetchall()
        }
        wanted = [column for column in dict.fromkeys([*columns, *ROW_LOCATOR_COLUMNS]) if column in present]
        # A column the suite names but the table lacks stays out: GX then fails that expectation, as on the whole
        # table. Nothing left to read (a row-count-only suite on a table without locators): read everything.
    selected = ", ".join(f't."{column}"' for column in wanted) if wanted else "t.*"
    if total <= MAX_VALIDATION_ROWS:
        return conn.execute(f"select {selected} from {table} as t").df(), total
    # The reservoir is drawn over row ids alone, then those rows are fetched in the reservoir's order: the same
    # rows in the same order as sampling whole rows (the draw depends only on the row stream and the seed), but
    # the reservoir no longer copies every column of every row it passes (36 M events: 15 s -> 3 s of CPU).
    sample = (
        f"with drawn as (select rowid as drawn_rowid, row_number() over () as draw_order from "
        f"(select rowid from {table} using sample reservoir({MAX_VALIDATION_ROWS} rows) repeatable (42))) "
        f"select {selected} from {table} as t join drawn on t.rowid = drawn.drawn_rowid "
        "order by drawn.draw_order"
    )
    return conn.execute(sample).df(), total


def _gx_check(table: str, asset_key: dg.AssetKey, suite_name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key,
        name=f"gx_{suite_name}",
        description=f"Great Expectations suite `{suite_name}` on {table}; error-level failures block downstream.",
        blocking=True,
        op_tags=DUCKDB_TAG,
    )
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        suite = SUITES[suite_name]()
        with warehouse.connect() as conn:
            df, total = read_for_validation(conn, table, suite_columns(suite))
        summary = validate(df, suite)
        metadata = validation_metadata(summary) | {"table_rows": dg.MetadataValue.int(total)}
        # Only error-level failures block; warnings fail the check without stopping the line.
        severity = dg.AssetCheckSeverity.WARN if summary.passed else dg.AssetCheckSeverity.ERROR
        return dg.AssetCheckResult(
            passed=not summary.failed,
            severity=severity,
            description="; ".join(f.describe() for f in summary.failed) or "all expectations met",
            metadata=metadata,
        )

    return _check


gx_checks = [_gx_check(table, key, suite) for table, (key, suite) in GX_CHECKED_TABLES.items()]


def reconcile_ingest(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per landing file and table: rows in vs accepted + quarantined, and the counts vs the raw tables.

    A row translated from a GA4/Segment/Shopify export (landing/formats/) counts for its source file
    (`origin_file`); one export file may feed several tables, so quarantine rows are compared per file.
    """
    return conn.execute(
        """
        with quarantined as (
            select source_file, count(*) as in_quarantine from raw.quarantine group by source_file
        ),
        accepted as (
            select coalesce(origin_file, source_file) as source_file, 'orders' as table_name, count(*) as in_table
            from raw.orders group by all
            union all select coalesce(origin_file, source_file), 'customers', count(*) from raw.customers group by all
            union all select coalesce(origin_file, source_file), 'events', count(*) from raw.events group by all
            union all select source_file, 'fx_rates', count(*) from raw.fx_rates group by all
        ),
        by_file as (
            select source_file, sum(rows_quarantined) as file_quarantined from raw.ingest_log group by source_file
        )
        select
            log.source_file,
            log.table_name,
            log.rows_in,
            log.rows_accepted,
            log.rows_quarantined,
            log.rows_suppressed,
            coalesce(accepted.in_table, 0) as rows_in_table,
            coalesce(quarantined.in_quarantine, 0) as rows_in_quarantine,
            -- rows of erased persons are dropped unread (privacy.suppression) and counted apart
            log.rows_in = log.rows_accepted + log.rows_quarantined + log.rows_suppressed
                -- merged line items are accepted rows folded into their order's row
                and log.rows_accepted - log.rows_merged = coalesce(accepted.in_table, 0)
                and by_file.file_quarantined = coalesce(quarantined.in_quarantine, 0) as reconciles
        from raw.ingest_log as log
        left join accepted using (source_file, table_name)
        left join quarantined using (source_file)
        left join by_file using (source_file)
        order by log.source_file, log.table_name
        """
    ).df()


@dg.asset_check(
    asset=RAW_QUARANTINE,
    description="Rows in = rows accepted + rows quarantined (+ rows of erased persons suppressed), for every landing file of this run.",
    blocking=True,
    op_tags=DUCKDB_TAG,
)
def check_ingest_counts_reconcile(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as conn:
        table = reconcile_ingest(conn)
    broken = table[~table["reconciles"]]
    return dg.AssetCheckResult(
        passed=broken.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        description="counts reconcile" if broken.empty else f"{len(broken)} file(s) do not reconcile",
        metadata={
            "files": markdown_table(table),
            "rows_in": dg.MetadataValue.int(int(table["rows_in"].sum())),
            "rows_accepted": dg.MetadataValue.int(int(table["rows_accepted"].sum())),
            "rows_quarantined": dg.MetadataValue.int(int(table["rows_quarantined"].sum())),
        },
    )


# GDPR art. 9: tables whose columns are model features or audience inputs -> the yml that declares them.
FEATURE_TABLES = {
    "marts.customer_features": "dbt_project/models/marts/customer_features.yml",
    "marts.customer_scores": "dbt_project/models/marts/scores/customer_scores.yml",
}


def _special_category_check(table: str, declared_in: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(table.split(".")),
        name="check_no_special_category_features",
        description=f"No column of {table} (a model feature or audience input) names special-category data "
        "(GDPR art. 9, config/special_categories.yaml).",
        blocking=True,
        op_tags=DUCKDB_TAG,
    )
    def _check(warehouse: Warehouse) -> dg.AssetCheckResult:
        denylist = load_denylist(SPECIAL_CATEGORIES_FILE)
        with warehouse.connect() as conn:
            columns = [row[0] for row in conn.execute(f"describe {table}").fetchall()]
        found = special_category_columns(columns, denylist)
        return dg.AssetCheckResult(
            passed=not found,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(
                f"{declared_in}: column '{column}' is special-category data ({category}, GDPR art. 9)"
                for column, category in found
            )
            or f"none of {len(columns)} columns names special-category data",
            metadata={
                "columns_checked": dg.MetadataValue.int(len(columns)),
                "special_categories_version": dg.MetadataValue.text(denylist.version),
            },
        )

    return _check


special_category_checks = [_special_category_check(table, yml) for table, yml in FEATURE_TABLES.items()]
