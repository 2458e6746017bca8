"""Landing zone -> typed raw tables in DuckDB, with quarantine; demo shop generated when no folder is given."""

import json
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import dagster as dg

from demo_shop import generate_shop
from landing import LandingError, LandingOptions, ingest_landing
from landing.formats.detect import landing_data_files
from landing.ingest import Suppression, currency_label
from landing.special_categories import SpecialCategoryError, load_denylist
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, Warehouse
from orchestration.lib import groups, keys
from orchestration.lib.ingest_fingerprint import append_inputs, file_digest, ingest_inputs, inputs_fingerprint
from orchestration.lib.metadata import markdown_table
from orchestration.lib.settings import SPECIAL_CATEGORIES_FILE
from privacy.erasure import suppressed_hashes
from privacy.subjects import load_salt, subject_hash

RAW_TABLES = {
    "orders": "One row per accepted order row at or before the as-of date (negative totals are refunds).",
    "customers": "One row per accepted customer row (empty when customers.csv is absent).",
    "events": "One row per accepted web event at or before the as-of date (empty when events.csv is absent).",
    "fx_rates": "One row per accepted exchange rate of fx_rates.csv (empty without it); orders are converted with it.",
    "quarantine": "One row per rejected input row: source file, row number, raw values and the reason.",
    "ingest_log": "One row per landing file per run: rows in, accepted, quarantined (they reconcile).",
    "run_context": "One row: the run's as-of date, CLV horizon, reporting currency and source format, read by every model.",
    "ingest_held": "Records set aside only as after the as-of date, parsed and judged: the next day's append ingest.",
    "ingest_state": "One row: what the last ingest read (input digests), its as-of date and report (append ingest).",
}
DEMO_MARKER = "demo_params.json"
INGEST_FINGERPRINT = "ingest_fingerprint"
KEPT = "kept"
INGESTED = "no: ingested"
KEPT_UNCHANGED = "kept: inputs unchanged (same landing and log files, settings, suppression list and code)"


@dg.asset(group_name=groups.LANDING, kinds={"python", "csv"})
def landing_files(context: dg.AssetExecutionContext, settings: SegmintSettings) -> dg.MaterializeResult:
    """The landing zone: SEGMINT_LANDING_DIR, or the seeded demo shop generated into data/demo/landing."""
    s = settings.load()
    if s.is_demo:
        params = {"customers": s.demo_customers, "seed": s.demo_seed}
        marker = s.demo_landing_dir / DEMO_MARKER
        # The demo is deterministic: regenerate only when its parameters change.
        if not marker.exists() or json.loads(marker.read_text()) != params:
            summary = generate_shop(
                s.demo_landing_dir, s.demo_truth_dir, n_customers=s.demo_customers, seed=s.demo_seed
            )
            marker.write_text(json.dumps(params))
            context.log.info(f"Generated the demo shop: {summary}")
    landing_dir = s.landing_dir or s.demo_landing_dir
    files = landing_data_files(landing_dir)
    return dg.MaterializeResult(
        metadata={
            "landing_dir": dg.MetadataValue.path(str(landing_dir)),
            "is_demo": dg.MetadataValue.bool(s.is_demo),
            "files": dg.MetadataValue.json({p.relative_to(landing_dir).as_posix(): p.stat().st_size for p in files}),
        }
    )


@dg.multi_asset(
    specs=[
        # Erasure requests are applied before ingest, which reads the suppression list they update.
        dg.AssetSpec(
            keys.raw(table),
            description=description,
            group_name=groups.LANDING,
            kinds={"duckdb"},
            deps=[landing_files, keys.ERASURE_RECEIPTS, keys.ERASURE_SUPPRESSION],
        )
        for table, description in RAW_TABLES.items()
    ],
    op_tags=DUCKDB_TAG,
)
def raw_tables(context: dg.AssetExecutionContext, settings: SegmintSettings, warehouse: Warehouse):
    """Reads every landing file into raw.*; rejected rows go to raw.quarantine with their reason.

    Kept instead when nothing it reads changed since the run that wrote the warehouse's raw tables (the landing
    and real-time log files' bytes, settings, suppression list, code: orchestration/lib/ingest_fingerprint.py):
    the same metadata again, marked "kept: inputs unchanged". When only the as-of date moved forward, the records
    now due are appended instead of every file re-read (landing/append.py; `ingest_mode` in the metadata says
    which ran and why). SEGMINT_FORCE_INGEST=1 always re-reads every file."""
    s = settings.load()
    landing_dir = s.landing_dir or s.demo_landing_dir
    try:
        with warehouse.connect() as conn:
            denylist = load_denylist(SPECIAL_CATEGORIES_FILE)
            options = LandingOptions(
                reporting_currency=s.currency,
                date_format=s.date_format,
                csv_delimiter=s.csv_delimiter,
                special_categories=denylist,
            )
            salt = load_salt(s.data_dir)
            hashes = suppressed_hashes(conn)
            inputs = raw_inputs(s, landing_dir, options, hashes, salt)
            fingerprint = inputs_fingerprint(inputs)
            kept = None if s.force_ingest else kept_raw_metadata(context.instance, conn, fingerprint)
            if kept is None:
                report, counts, ingest_log, quarantine_by_reason = _ingest(
                    s, landing_dir, options, hashes, salt, conn, append_inputs(inputs)
                )
    except (LandingError, SpecialCategoryError) as error:
        # A user's file that cannot be read at all: one clear line, no traceback to dig through.
        raise dg.Failure(description=str(error), allow_retries=False) from None
    if kept is not None:
        context.log.info(f"raw tables kept: inputs unchanged (ingest fingerprint {fingerprint})")
        # The kept tables still carry what their ingest noted: said again in this run's log.
        for line in landing_warnings(kept_notes(kept)):
            context.log.warning(f"{line} (kept ingest)")
        for table, metadata in kept.items():
            yield dg.MaterializeResult(
                asset_key=keys.raw(table), metadata=metadata, data_version=dg.DataVersion(fingerprint)
            )
        return
    context.log.info(f"raw tables: {report.ingest_mode} ingest ({report.ingest_mode_reason})")
    for line in landing_warnings((file.source_file, file.notes) for file in report.files):
        context.log.warning(line)
    yield from _materializations(report, counts, ingest_log, quarantine_by_reason, denylist, fingerprint)


def landing_warnings(notes_by_file: Iterable[tuple[str, Iterable[str]]]) -> list[str]:
    """One line per note of a landing file ("<file>: <note>", each once): what the ingest chose or could not do
    (the reporting currency and the rates, generated ids, a mostly-quarantined optional file, a dialect guess).
    They are in the raw tables' metadata too; as warnings they reach the run's log and `make run`'s summary."""
    lines = (
        f"{file}: {note.removeprefix('warning: ')}" for file, notes in notes_by_file for note in notes if note.strip()
    )
    return list(dict.fromkeys(lines))


def kept_notes(kept: dict[str, dict]) -> list[tuple[str, list[str]]]:
    """(source file, notes) of each table in kept_raw_metadata's metadata that came from a landing file."""
    return [
        (str(metadata["source_file"].value), list(metadata["notes"].value or []))
        for metadata in kept.values()
        if "source_file" in metadata and "notes" in metadata
    ]


def _ingest(s, landing_dir: Path, options: LandingOptions, hashes, salt: str, conn, digests: dict):
    """Ingest the landing files into raw.* (appending when only the as-of date moved forward); the report and
    what the metadata shows of the new tables."""
    suppression = Suppression(hashes, partial(subject_hash, salt))
    report = ingest_landing(
        conn,
        landing_dir,
        s.as_of,
        s.horizon_days,
        s.is_demo,
        options,
        s.source_format,
        s.landing_work_dir,
        s.realtime_log_dir,
        suppression,
        append_inputs=digests,
        allow_append=not s.force_ingest,
    )
    counts = {t: conn.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in RAW_TABLES}
    ingest_log = conn.execute("select * from raw.ingest_log order by source_file").df()
    quarantine_by_reason = conn.execute(
        "select source_file, split_part(reason, ':', 1) as reason, count(*) as rows "
        "from raw.quarantine group by all order by rows desc"
    ).df()
    return report, counts, ingest_log, quarantine_by_reason


def _materializations(report, counts, ingest_log, quarantine_by_reason, denylist, fingerprint: str):
    """One materialization per raw table with what the ingest did to it."""
    by_table = {f.table_name: f for f in report.files}
    for table in RAW_TABLES:
        metadata: dict[str, dg.MetadataValue] = {
            "dagster/row_count": dg.MetadataValue.int(counts[table]),
            "as_of": dg.MetadataValue.text(report.as_of.isoformat()),
            "reporting_currency": dg.MetadataValue.text(currency_label(report.reporting_currency)),
            "source_format": dg.MetadataValue.text(report.source_format),
            INGEST_FINGERPRINT: dg.MetadataValue.text(fingerprint),
            KEPT: dg.MetadataValue.text(INGESTED),
            # append: the held records now due moved in; full: every file read (landing/append.py), and why.
            "ingest_mode": dg.MetadataValue.text(report.ingest_mode),
            "ingest_mode_reason": dg.MetadataValue.text(report.ingest_mode_reason),
        }
        if report.ingest_mode == "append" and table in report.rows_appended:
            # The rows this append added (the raw GX checks validate exactly these), after the ingest at this date.
            metadata["rows_appended"] = dg.MetadataValue.int(report.rows_appended[table])
            metadata["appended_after"] = dg.MetadataValue.text(report.appended_after.isoformat())
        file_report = by_table.get(table)
        if file_report is not None:
            metadata |= {
                "source_file": dg.MetadataValue.text(file_report.source_file),
                "rows_in": dg.MetadataValue.int(file_report.rows_in),
                "rows_accepted": dg.MetadataValue.int(file_report.rows_accepted),
                "rows_quarantined": dg.MetadataValue.int(file_report.rows_quarantined),
                "rows_after_as_of": dg.MetadataValue.int(file_report.rows_after_as_of),
                "missing_optional_columns": dg.MetadataValue.json(list(file_report.missing_columns)),
                # Line items merged into their order, surrogate ids, exact duplicates kept once, detected dialect.
                "rows_merged_line_items": dg.MetadataValue.int(file_report.rows_merged),
                "ids_generated": dg.MetadataValue.int(file_report.ids_generated),
                "rows_suppressed": dg.MetadataValue.int(file_report.rows_suppressed),
                "exact_duplicates_dropped": dg.MetadataValue.int(file_report.reasons.get("duplicate_identical", 0)),
                "notes": dg.MetadataValue.json(list(file_report.notes)),
                # GDPR art. 9: columns removed before any row was written (config/special_categories.yaml).
                "special_category_columns_dropped": dg.MetadataValue.json(
                    [
                        {"column": d.column, "category": d.category, "matched_by": d.matched_by}
                        for d in file_report.dropped_columns
                    ]
                ),
                "special_categories_version": dg.MetadataValue.text(denylist.version),
            }
            if file_report.currencies:
                metadata["order_rows_by_currency"] = dg.MetadataValue.json(file_report.currencies)
        elif table in {"customers", "events", "fx_rates"}:
            metadata["note"] = dg.MetadataValue.text(
                f"No {table} file in the landing zone: the table is empty and features that need it are 0."
            )
        if table == "events" and report.realtime_log is not None:
            # The real-time service's log, a second source of events (landing/realtime_log.py).
            log = report.realtime_log
            metadata |= {
                "realtime_log_rows_in": dg.MetadataValue.int(log.rows_in),
                "realtime_log_rows_accepted": dg.MetadataValue.int(log.rows_accepted),
                "realtime_log_rows_quarantined": dg.MetadataValue.int(log.rows_quarantined),
                "realtime_log_rows_after_as_of": dg.MetadataValue.int(log.rows_after_as_of),
                "realtime_log_reasons": dg.MetadataValue.json(log.reasons),
            }
        if report.source_format != "segmint" and table in {"orders", "customers", "events"}:
            # A translated export: the counts per source file (export file -> contract rows), not per work file.
            by_source = ingest_log[ingest_log["table_name"] == table].drop(columns="table_name")
            metadata["source_files"] = markdown_table(by_source)
        if table == "quarantine":
            metadata["by_file_and_reason"] = markdown_table(quarantine_by_reason)
            # Source records a format translator rejected, stored without their special-category fields.
            metadata["special_category_records_scrubbed"] = dg.MetadataValue.int(
                report.special_category_records_scrubbed
            )
        yield dg.MaterializeResult(
            asset_key=keys.raw(table), metadata=metadata, data_version=dg.DataVersion(fingerprint)
        )


def raw_inputs(s, landing_dir: Path, options: LandingOptions, hashes, salt: str) -> dict:
    """This run's ingest inputs, files as digests (orchestration/lib/ingest_fingerprint.py)."""
    landing = [p for p in landing_dir.rglob("*") if p.is_file()] if landing_dir.is_dir() else []
    log_dir = s.realtime_log_dir
    realtime = [p for p in log_dir.rglob("*") if p.is_file()] if log_dir.is_dir() else []
    inputs = {
        "landing_dir": str(landing_dir.resolve()),
        "warehouse": str(s.warehouse),
        "as_of": s.as_of,
        "horizon_days": s.horizon_days,
        "is_demo": s.is_demo,
        "source_format": s.source_format,
        "reporting_currency": options.reporting_currency,
        "date_format": options.date_format,
        "csv_delimiter": options.csv_delimiter,
        "special_categories": options.special_categories.version,
        "special_categories_file": file_digest(SPECIAL_CATEGORIES_FILE) if SPECIAL_CATEGORIES_FILE.is_file() else None,
    }
    return ingest_inputs(landing, realtime, inputs, hashes, salt)


def kept_raw_metadata(instance: dg.DagsterInstance, conn, fingerprint: str) -> dict[str, dict] | None:
    """The last materialization's metadata of every raw table, marked kept, when that run had the same
    fingerprint and the warehouse still holds the row counts it recorded; None: ingest again."""
    kept = {}
    for table in RAW_TABLES:
        event = instance.get_latest_materialization_event(keys.raw(table))
        materialization = event.asset_materialization if event is not None else None
        if materialization is None:
            return None
        metadata = dict(materialization.metadata)
        recorded = metadata.get(INGEST_FINGERPRINT)
        rows = metadata.get("dagster/row_count")
        if recorded is None or recorded.value != fingerprint or rows is None:
            return None
        exists = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = ?", [table]
        ).fetchone()[0]
        if not exists or conn.execute(f"select count(*) from raw.{table}").fetchone()[0] != rows.value:
            return None
        kept[table] = metadata | {KEPT: dg.MetadataValue.text(KEPT_UNCHANGED)}
    return kept
