"""Data-quality gates: GX suites on the raw and mart tables, and the ingest reconciliation.

All are blocking: an error-level failure stops every downstream asset in the run (models, audiences, syncs).
dbt's own tests arrive as separate checks on the dbt assets. One warning never blocks: orders kept under ids
segmint generated (a purchase event without the source's order id, landing/formats/common.py).

The raw checks validate a batch, as GX's own model has it: on a day the append ingest brought raw.* forward
(landing/append.py), the rows it added, all of them (a seeded sample only above MAX_VALIDATION_ROWS), when this
check's previous evaluation judged the table as it was before the append without an error-level failure
(`raw_validation_scope` lists every condition); otherwise the whole table as before. No guarantee is dropped:
- a row-wise expectation (not null, between, regex, in set, column pairs) judges each row alone, so the earlier
  rows keep the verdict they had; `mostly` is then judged on the day's rows (a bad day fails even when the whole
  table would still be within the tolerance: stricter, and it is what the tolerance is for);
- row counts are judged by GX on the whole table's count (a day without new orders still passes `at least one
  row`);
- uniqueness (a column or a compound key) is judged on the appended rows together with the earlier rows sharing
  a key with one of them (one semi-join in SQL): a key repeated across old and new rows fails as on the whole
  table (earlier rows were validated unique among themselves);
- a suite with any other table-wide expectation (a mean, distinct values) validates the whole table.
The marts are rebuilt whole each run and validated whole.

On a re-run over the same inputs (a retry, a second run the same day) the ingest keeps the raw tables
(`kept: inputs unchanged`, orchestration/defs/landing.py); a raw check then shows its last evaluation again, with
the reason in `validated_because`, when that evaluation judged the same ingest with the same suites and code
(`kept_raw_evaluation` lists every condition): the rows are the ones it validated, so validating them again
could only repeat its verdict (issue 18: ~8 CPU s of a 100 k re-run, the whole tables or their 500 k-row samples
read and validated again).
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache, partial
from importlib.metadata import version
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

import expectations
from expectations.validate import batch_scope, key_columns, validate
from landing import append
from landing.special_categories import load_denylist, special_category_columns
from orchestration.defs.landing import INGEST_FINGERPRINT, INGESTED, KEPT, KEPT_UNCHANGED
from orchestration.defs.resources import DUCKDB_TAG, Warehouse
from orchestration.lib.keys import (
    CUSTOMER_FEATURES,
    CUSTOMER_SCORES,
    RAW_CUSTOMERS,
    RAW_EVENTS,
    RAW_INGEST_STATE,
    RAW_ORDERS,
    RAW_QUARANTINE,
)
from orchestration.lib.metadata import markdown_table, validation_metadata
from orchestration.lib.settings import SPECIAL_CATEGORIES_FILE
from orchestration.lib.warehouse_io import is_base_table, table_exists

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


def _reservoir_sql(table: str, selected: str, where: str | None, by_rowid: bool) -> str:
    condition = "" if where is None else f" where {where}"
    if not by_rowid:
        # A view has no row ids (on SEGMINT_ENGINE=spark the marts are DuckDB views over Spark's Parquet files): the
        # reservoir then passes only the selected columns, still seeded, so a re-run draws the same rows.
        return f"select * from (select {selected} from {table} as t{condition}) using sample reservoir({MAX_VALIDATION_ROWS} rows) repeatable (42)"
    # The reservoir is drawn over row ids alone, then those rows are fetched in the reservoir's order: the same
    # rows in the same order as sampling whole rows (the draw depends only on the row stream and the seed), but
    # the reservoir no longer copies every column of every row it passes (36 M events: 15 s -> 3 s of CPU).
    rows = f"select r from (select rowid as r from {table} as t{condition})"
    return (
        f"with drawn as (select r as drawn_rowid, row_number() over () as draw_order from "
        f"({rows} using sample reservoir({MAX_VALIDATION_ROWS} rows) repeatable (42))) "
        f"select {selected} from {table} as t join drawn on t.rowid = drawn.drawn_rowid "
        "order by drawn.draw_order"
    )


def _selected_columns(conn: duckdb.DuckDBPyConnection, table: str, columns: list[str] | None) -> str:
    if columns is None:
        return "t.*"
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
    return ", ".join(f't."{column}"' for column in wanted) if wanted else "t.*"


def read_for_validation(
    conn: duckdb.DuckDBPyConnection, table: str, columns: list[str] | None = None, where: str | None = None
) -> tuple[pd.DataFrame, int]:
    """The table's rows (only those matching `where` when given), or a seeded sample of MAX_VALIDATION_ROWS of
    them when more; and the whole table's row count.

    `columns`: read only these (those the table has) and the row locators, not the whole table: a suite judges
    only its own columns, and at 1 M customers / 36 M events reading and hashing (GX fingerprints every batch) the
    other columns was most of each check (issue 18). From a table the sample is drawn over row ids, so it is the
    same rows in the same order whichever columns are read; a view (no row ids) samples its selected columns."""
    total = conn.execute(f"select count(*) from {table}").fetchone()[0]
    selected = _selected_columns(conn, table, columns)
    rows = total if where is None else conn.execute(f"select count(*) from {table} as t where {where}").fetchone()[0]
    if rows <= MAX_VALIDATION_ROWS:
        condition = "" if where is None else f" where {where}"
        return conn.execute(f"select {selected} from {table} as t{condition}").df(), total
    return conn.execute(_reservoir_sql(table, selected, where, by_rowid=is_base_table(conn, table))).df(), total


def read_rows_sharing_a_key(
    conn: duckdb.DuckDBPyConnection, table: str, columns: list[str], after: date, keys: list[tuple[str, ...]]
) -> pd.DataFrame:
    """The earlier rows (not appended after the ingest at `after`) that share a key (of `keys`) with an appended
    row: validated beside the appended rows, uniqueness is judged against the whole table (the earlier rows were
    validated unique among themselves)."""
    name = table.split(".", 1)[1]
    shares = " or ".join(
        f"exists (select 1 from {table} as d where {append.appended_rows_sql(name, after, 'd')} and "
        + " and ".join(f'd."{column}" = t."{column}"' for column in key)
        + ")"
        for key in keys
    )
    return conn.execute(
        f"select {_selected_columns(conn, table, columns)} from {table} as t "
        f"where not coalesce({append.appended_rows_sql(name, after, 't')}, false) and ({shares})"
    ).df()


@dataclass(frozen=True)
class ValidationScope:
    """Which rows a raw check validates: those this run's append ingest added (dated after `appended_after`), or
    the whole table (`appended_after` None); and why."""

    reason: str
    appended_after: date | None = None
    rows_appended: int | None = None
    earlier_digest: dict | None = None  # ROWS_DIGEST of the table before the append (the last evaluation's)

    def where(self, table: str) -> str | None:
        """The predicate on `table as t` selecting the validated rows (None: every row)."""
        if self.appended_after is None:
            return None
        return append.appended_rows_sql(table.split(".", 1)[1], self.appended_after, "t")


def _latest_completed_evaluation(context: dg.AssetCheckExecutionContext, check_key: dg.AssetCheckKey):
    """This check's last evaluation in an earlier run (None: never evaluated)."""
    found = _latest_completed_evaluation_record(context, check_key)
    return None if found is None else found[1]


def _latest_completed_evaluation_record(context: dg.AssetCheckExecutionContext, check_key: dg.AssetCheckKey):
    """(run id, evaluation) of this check's last evaluation in an earlier run (None: never evaluated)."""
    finished = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    for record in context.instance.event_log_storage.get_asset_check_execution_history(
        check_key, limit=5, status=finished
    ):
        if record.run_id != context.run.run_id and record.event is not None and record.event.dagster_event:
            return record.run_id, record.event.dagster_event.asset_check_evaluation_data
    return None


def raw_validation_scope(
    context: dg.AssetCheckExecutionContext,
    conn: duckdb.DuckDBPyConnection,
    suite,
    table: str,
    check_key: dg.AssetCheckKey,
) -> ValidationScope:
    """The appended rows when every condition for judging only them holds, else the whole table, and why.

    The rows this run's append ingest added are exactly those dated after the as-of date it continued from
    (landing/append.py, appended_rows_sql); the rest of the table is unchanged since the previous materialization.
    So they alone are validated when: the ingest state (raw.ingest_state, written in the same transaction as the
    rows) says the last ingest was an append and how many rows it added; this run materialized the table by that
    ingest; the previous materialization is the one at the date the append continued from; this check's last
    evaluation judged that previous materialization without an error-level failure (warnings were reported on
    the rows they came with); the count of rows dated after that date equals the ingest's count; and every
    expectation of the suite can be judged on a batch (expectations/validate.py, batch_scope)."""
    whole = ValidationScope
    unbatched = [e.configuration.type for e in suite.expectations if batch_scope(e) is None]
    if unbatched:
        return whole(f"the suite has expectations only the whole table answers ({', '.join(unbatched)})")
    state = conn.execute(f"select report from raw.{append.STATE}").fetchall() if _has_state(conn) else []
    if len(state) != 1:
        return whole("no ingest state in the warehouse")
    report = json.loads(state[0][0])["report"]
    if report.get("ingest_mode") != append.APPEND or not report.get("appended_after"):
        return whole(f"the last ingest read every file ({report.get('ingest_mode_reason') or 'full ingest'})")
    name = table.split(".", 1)[1]
    after, as_of, appended = report["appended_after"], report["as_of"], report["rows_appended"].get(name)
    records = context.instance.fetch_materializations(check_key.asset_key, limit=2).records
    current = records[0] if records else None
    if current is None or current.run_id != context.run.run_id:
        return whole("the table was not materialized by this run")
    metadata = current.asset_materialization.metadata
    if _text(metadata, KEPT) != INGESTED:
        return whole(f"the raw tables were {_text(metadata, KEPT)}")
    if _text(metadata, "ingest_mode") != append.APPEND or _text(metadata, "as_of") != as_of:
        return whole(f"this run's materialization is not the append ingest to {as_of} ({_text(metadata, 'kept')})")
    if len(records) < 2 or _text(records[1].asset_materialization.metadata, "as_of") != after:
        return whole(f"the previous materialization is not the ingest at {after} that the append continued from")
    last = _latest_completed_evaluation(context, check_key)
    if last is None or last.target_materialization_data is None:
        return whole("this check has not validated the table before")
    if last.target_materialization_data.storage_id != records[1].storage_id:
        return whole(f"this check did not validate the table as of {after} (the ingest the append continued from)")
    if not last.passed and last.severity != dg.AssetCheckSeverity.WARN:
        return whole(f"this check's last validation (as of {after}) failed at error level")
    scope = ValidationScope(
        f"appended by this run's ingest ({after} -> {as_of})",
        date.fromisoformat(after),
        appended,
        _json(last.metadata, ROWS_DIGEST),
    )
    dated_after = conn.execute(f"select count(*) from {table} as t where {scope.where(table)}").fetchone()[0]
    if appended is None or dated_after != appended:
        return whole(f"{dated_after} rows are dated after {after} but the ingest appended {appended}")
    return scope


# What a raw check's verdict depends on besides the rows: the suites, how they are run, how the rows are chosen.
SUITE_CODE = [*sorted(Path(expectations.__file__).parent.glob("*.py")), Path(__file__)]
SUITE_CODE_DIGEST = "suite_code_digest"
ROWS_DIGEST = "rows_digest"
KEPT_FROM_RUN = "kept_from_run"  # the run whose validation a kept evaluation shows (the first, when kept again)


def rows_digest(conn: duckdb.DuckDBPyConnection, table: str, selected: str, where: str | None = None) -> dict:
    """The row count and the sum of the rows' hashes over `selected` (a select list of `table as t`): equal for
    the same rows in any order, and additive, so the digest after an append is the one before plus the appended
    rows' (no whole-table pass on an append day)."""
    arguments = "*columns(*)" if selected == "t.*" else selected
    condition = "" if where is None else f" where {where}"
    rows, hash_sum = conn.execute(
        f"select count(*), coalesce(sum(hash({arguments})::hugeint), 0) from {table} as t{condition}"
    ).fetchone()
    return {"columns": selected, "rows": int(rows), "hash_sum": str(hash_sum)}


def digest_after_validation(
    conn: duckdb.DuckDBPyConnection, table: str, columns: list[str] | None, scope: ValidationScope
) -> dict:
    """ROWS_DIGEST of the table as this evaluation judged it: the earlier digest plus the appended rows' when it
    judged an append over the same columns, else a pass over the whole table."""
    selected = _selected_columns(conn, table, columns)
    earlier = scope.earlier_digest
    if scope.appended_after is None or earlier is None or earlier.get("columns") != selected:
        return rows_digest(conn, table, selected)
    appended = rows_digest(conn, table, selected, scope.where(table))
    return {
        "columns": selected,
        "rows": earlier["rows"] + appended["rows"],
        "hash_sum": str(int(earlier["hash_sum"]) + int(appended["hash_sum"])),
    }


@cache
def suite_code_digest() -> str:
    """A digest of SUITE_CODE's bytes and GX's version: a raw check's verdict is kept only under the same one."""
    digest = hashlib.sha256(version("great_expectations").encode())
    for path in SUITE_CODE:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def kept_raw_evaluation(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, table: str, check_key: dg.AssetCheckKey
) -> dg.AssetCheckResult | None:
    """This check's last evaluation again, when it judged exactly the rows the table holds now; None: validate.

    It holds when: this run kept the raw tables (`kept: inputs unchanged`: the same ingest fingerprint as the
    previous materialization and the row counts it recorded); the last evaluation, in an earlier run, targeted
    that previous materialization with the same fingerprint; it passed or failed at warning level only (an
    error-level failure is validated again, so it fails with GX's own words); it was made with the same suite
    code and GX version (SUITE_CODE_DIGEST in its metadata); and the table's rows are still the ones it judged
    (ROWS_DIGEST over the columns it read: a row changed in place, which keeps the ingest's row counts, is
    validated again). The result repeats its verdict, description and metadata; `validated`,
    `validated_because` and KEPT_FROM_RUN say it was kept and from which run."""
    records = context.instance.fetch_materializations(check_key.asset_key, limit=2).records
    if len(records) < 2 or records[0].run_id != context.run.run_id:
        return None
    current, previous = (record.asset_materialization.metadata for record in records)
    if _text(current, KEPT) != KEPT_UNCHANGED or _text(current, INGEST_FINGERPRINT) is None:
        return None
    if _text(previous, INGEST_FINGERPRINT) != _text(current, INGEST_FINGERPRINT):
        return None
    found = _latest_completed_evaluation_record(context, check_key)
    if found is None:
        return None
    run_id, last = found
    if last.target_materialization_data is None or last.target_materialization_data.storage_id != records[1].storage_id:
        return None
    if not last.passed and last.severity != dg.AssetCheckSeverity.WARN:
        return None
    if _text(last.metadata, SUITE_CODE_DIGEST) != suite_code_digest():
        return None
    judged = _json(last.metadata, ROWS_DIGEST)
    if judged is None:
        return None
    with warehouse.connect() as conn:
        if rows_digest(conn, table, judged["columns"]) != judged:
            return None
    validated_in = _text(last.metadata, KEPT_FROM_RUN) or run_id  # kept again: still the run that validated
    reason = (
        f"kept: the table is the one run {validated_in} validated (same ingest fingerprint "
        f"{_text(current, INGEST_FINGERPRINT)}, same suite code); its result is shown again"
    )
    validated = _text(last.metadata, "validated")
    metadata = dict(last.metadata) | {
        "validated": dg.MetadataValue.text(
            validated if KEPT_FROM_RUN in last.metadata else f"none again (run {run_id} validated: {validated})"
        ),
        "validated_because": dg.MetadataValue.text(reason),
        KEPT_FROM_RUN: dg.MetadataValue.text(validated_in),
    }
    return dg.AssetCheckResult(
        passed=last.passed, severity=last.severity, description=last.description, metadata=metadata
    )


def _has_state(conn: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = ?",
            [append.STATE],
        ).fetchone()[0]
    )


def _text(metadata: dict, key: str) -> str | None:
    value = metadata.get(key)
    return None if value is None else str(value.value)


def _json(metadata: dict, key: str) -> dict | None:
    value = metadata.get(key)
    return None if value is None else dict(value.value)


def why_no_customer_features(conn: duckdb.DuckDBPyConnection) -> str | None:
    """Why marts.customer_features has no row, in one line a shop owner understands, or None when the staged orders
    do not explain it.

    Counted on staging.stg_orders' own is_refund / is_cancelled flags (stg_orders owns what a refund or a
    cancellation is) up to the scoring cut-off of intermediate.int_cutoffs: a customer needs a completed order,
    one that is neither."""
    if not (table_exists(conn, "staging.stg_orders") and table_exists(conn, "intermediate.int_cutoffs")):
        return None  # a mart copied without its inputs: GX's own line is all there is to say
    as_of, orders, refunds, cancellations = conn.execute(
        """
        select
            any_value(cutoffs.scoring_cutoff),
            count(orders.order_id),
            count(orders.order_id) filter (where orders.is_refund and not orders.is_cancelled),
            count(orders.order_id) filter (where orders.is_cancelled)
        from intermediate.int_cutoffs as cutoffs
        left join staging.stg_orders as orders on orders.ordered_on <= cutoffs.scoring_cutoff
        """
    ).fetchone()
    if orders == 0:
        return f"no order up to {as_of}: there is no customer to score yet"
    if refunds + cancellations == orders:
        return (
            f"no completed order up to {as_of}: all {orders} orders are refunds or cancellations "
            f"(refunds: {refunds}, cancellations: {cancellations})"
        )
    return None


# A mart whose emptiness has a reason in the owner's words: it replaces GX's "observed 0" in the check's line.
EMPTY_TABLE_REASONS: dict[str, Callable[[duckdb.DuckDBPyConnection], str | None]] = {
    "marts.customer_features": why_no_customer_features,
}


def run_gx_check(
    warehouse: Warehouse, table: str, suite_name: str, choose_scope: Callable | None = None
) -> dg.AssetCheckResult:
    """A GX suite on `table` (the rows `choose_scope(conn, suite)` picks, else every row or a sample) as a result.
    With `choose_scope` (the raw checks) its metadata also has what a later run needs to keep the verdict:
    ROWS_DIGEST and SUITE_CODE_DIGEST (kept_raw_evaluation)."""
    from expectations.suites import SUITES  # imports GX (~3 CPU s): when a check runs, not with the definitions

    suite = SUITES[suite_name]()
    columns = suite_columns(suite)
    earlier = pd.DataFrame()
    with warehouse.connect() as conn:
        scope = choose_scope(conn, suite) if choose_scope else ValidationScope("a mart is rebuilt whole")
        df, total = read_for_validation(conn, table, columns, scope.where(table))
        if scope.appended_after is not None and (keys := key_columns(suite)):
            earlier = read_rows_sharing_a_key(conn, table, columns, scope.appended_after, keys)
        why_empty = EMPTY_TABLE_REASONS[table](conn) if total == 0 and table in EMPTY_TABLE_REASONS else None
        digest = digest_after_validation(conn, table, columns, scope) if choose_scope else None
    if scope.appended_after is None:
        summary = validate(df, suite)
        sampled = len(df) < total
        validated = (
            f"a seeded sample of {len(df)} rows (of {total} in the table)" if sampled else f"every row ({total})"
        )
    else:
        summary = validate(pd.concat([df, earlier], ignore_index=True) if len(earlier) else df, suite, total)
        validated = f"rows appended by this run: {scope.rows_appended} (of {total} in the table)"
        if len(df) < scope.rows_appended:
            validated += f", a seeded sample of {len(df)} of them"
    metadata = validation_metadata(summary) | {
        "table_rows": dg.MetadataValue.int(total),
        "validated": dg.MetadataValue.text(validated),
        "validated_because": dg.MetadataValue.text(scope.reason),
    }
    if digest is not None:
        metadata[ROWS_DIGEST] = dg.MetadataValue.json(digest)
        metadata[SUITE_CODE_DIGEST] = dg.MetadataValue.text(suite_code_digest())
    if scope.appended_after is not None and key_columns(suite):
        # Earlier rows sharing a key with an appended row: validated with them, so uniqueness spans the table.
        metadata["earlier_rows_sharing_a_key"] = dg.MetadataValue.int(len(earlier))
    # Only error-level failures block; warnings fail the check without stopping the line.
    severity = dg.AssetCheckSeverity.WARN if summary.passed else dg.AssetCheckSeverity.ERROR
    description = "; ".join(f.describe() for f in summary.failed) or "all expectations met"
    if why_empty is not None and not summary.passed:
        # The owner's reason is the check's line; GX's own words stay in the metadata for the engineer.
        metadata["expectations_failed"] = dg.MetadataValue.text(description)
        description = why_empty
    return dg.AssetCheckResult(passed=not summary.failed, severity=severity, description=description, metadata=metadata)


def _gx_check(table: str, asset_key: dg.AssetKey, suite_name: str) -> dg.AssetChecksDefinition:
    name = f"gx_{suite_name}"
    description = f"Great Expectations suite `{suite_name}` on {table}; error-level failures block downstream."
    if not table.startswith("raw."):

        @dg.asset_check(asset=asset_key, name=name, description=description, blocking=True, op_tags=DUCKDB_TAG)
        def _mart_check(warehouse: Warehouse) -> dg.AssetCheckResult:
            return run_gx_check(warehouse, table, suite_name)

        return _mart_check

    @dg.asset_check(
        asset=asset_key,
        name=name,
        description=description,
        blocking=True,
        op_tags=DUCKDB_TAG,
        # Which rows the append ingest added: the ingest's state, written in the same transaction as the rows.
        additional_deps=[RAW_INGEST_STATE],
    )
    def _raw_check(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
        check_key = dg.AssetCheckKey(asset_key, name)
        kept = kept_raw_evaluation(context, warehouse, table, check_key)
        if kept is not None:
            context.log.info(f"{name}: {kept.metadata['validated_because'].value}")
            return kept
        return run_gx_check(
            warehouse, table, suite_name, partial(raw_validation_scope, context, table=table, check_key=check_key)
        )

    return _raw_check


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


def orders_under_generated_ids(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per source file: accepted orders whose order id segmint generated (raw.ingest_log.ids_generated)."""
    return conn.execute(
        "select source_file, ids_generated as orders from raw.ingest_log "
        "where table_name = 'orders' and ids_generated > 0 order by source_file"
    ).df()


@dg.asset_check(
    asset=RAW_ORDERS,
    description=(
        "Warns (never blocks) when purchase events without the source's order id (GA4 transaction_id, Segment "
        "order_id) were kept as orders under surrogate ids: a purchase the source re-sent (a page reload) cannot "
        "be de-duplicated without that id, so revenue may count it twice (landing/README.md, Source formats)."
    ),
    blocking=False,
    op_tags=DUCKDB_TAG,
)
def check_orders_carry_source_ids(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as conn:
        table = orders_under_generated_ids(conn)
        orders = conn.execute("select count(*) from raw.orders").fetchone()[0]
    generated = int(table["orders"].sum())
    share = f" ({generated / orders:.1%} of {orders})" if orders else ""
    return dg.AssetCheckResult(
        passed=generated == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{generated} orders{share} have no order id in the source and were kept under surrogate ids; "
            "re-sent purchases among them cannot be de-duplicated"
            if generated
            else "every order carries the source's own order id"
        ),
        metadata={
            "orders_under_generated_ids": dg.MetadataValue.int(generated),
            "orders": dg.MetadataValue.int(orders),
            "files": markdown_table(table),
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
