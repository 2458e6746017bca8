"""Source formats: a shop's GA4, Segment/RudderStack or Shopify exports translated into segmint's contract.

`translate_landing` detects the format (or takes SEGMINT_SOURCE_FORMAT), and for anything but segmint's own
contract writes contract Parquet files into a work folder that the normal ingest then reads, so every record
rule, the quarantine and the as-of logic stay in one place. `stage_translation` runs just before the raw tables
are swapped in: it points the quarantine rows of translated records back at their source file and line, adds
the records the translator itself rejected, and rewrites raw.ingest_log per source file, checking that every
source record was accepted or quarantined exactly once.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb

from landing.contract import SUPPRESSED_TABLE_SQL
from landing.formats import ga4, segment, shopify, shopify_api, shopify_tables
from landing.formats.common import (
    CONTRACT_REJECTS_TABLE,
    GENERATED_IDS_TABLE,
    ORIGIN_FILE,
    ORIGIN_ROW,
    REJECTS_TABLE,
    Translation,
    create_rejects_table,
    generated_ids_note,
    reconcile_sql,
)
from landing.formats.detect import (
    CONTRACT_ORDERS,
    GA4,
    SEGMINT,
    SHOPIFY,
    SHOPIFY_FILES,
    SOURCE_FORMATS,
    detect_format,
    ga4_files,
    has_shopify_tables,
    segment_files,
    segment_warehouse_tables,
    shopify_api_files,
    shopify_export_parts,
    shopify_table_files,
)
from landing.sources import LandingError, sql_string

__all__ = [
    "SOURCE_FORMATS",
    "Translation",
    "cleanup",
    "detect_format",
    "generated_ids_note",
    "source_format_of",
    "stage_translation",
    "translate_landing",
]
CONTRACT_CUSTOMERS = ("customers.csv", "customers.parquet")
# Exchange rates are the user's own file in every format: linked as they are (landing/README.md, currencies).
CONTRACT_FX_RATES = ("fx_rates.csv", "fx_rates.parquet")

WORK_FOLDER_PREFIX = "segmint-landing-"


def _passthrough(landing_dir: Path, contract_dir: Path, names: tuple[str, ...]) -> tuple[str, ...]:
    """Link segmint contract files found next to the export into the contract folder; their names."""
    linked = []
    for name in names:
        path = landing_dir / name
        if path.is_file():
            (contract_dir / name).symlink_to(path)
            linked.append(name)
    return tuple(linked)


def translate_landing(
    conn: duckdb.DuckDBPyConnection, landing_dir: Path, source_format: str | None, work_dir: Path | None
) -> Translation | None:
    """Translate the landing folder into contract files; None when it already is segmint's contract.

    `work_dir` receives `<format>/` (emptied first); None -> a temporary folder that `cleanup` removes.
    """
    fmt = detect_format(landing_dir, source_format)
    if fmt == SEGMINT:
        return None
    if work_dir is None:
        contract_dir = Path(tempfile.mkdtemp(prefix=WORK_FOLDER_PREFIX))
    else:
        contract_dir = Path(work_dir) / fmt
        shutil.rmtree(contract_dir, ignore_errors=True)
        contract_dir.mkdir(parents=True)
    create_rejects_table(conn)
    try:
        written, passthrough, notes = _translate(conn, fmt, landing_dir, contract_dir)
        passthrough += _passthrough(landing_dir, contract_dir, CONTRACT_FX_RATES)
    except BaseException:
        if work_dir is None:
            shutil.rmtree(contract_dir, ignore_errors=True)
        raise
    return Translation(fmt, contract_dir, written, passthrough, work_dir is None, notes)


def _translate(
    conn: duckdb.DuckDBPyConnection, fmt: str, landing_dir: Path, contract_dir: Path
) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Write the contract files of one format; (translated file names, contract files linked as they are, notes
    of the translated files)."""
    if fmt == SHOPIFY:
        written, notes = _translate_shopify(conn, landing_dir, contract_dir)
        return written, (), notes
    files = ga4_files(landing_dir) if fmt == GA4 else segment_files(landing_dir)
    tables = [] if fmt == GA4 else segment_warehouse_tables(landing_dir)
    if not files and not tables:
        raise LandingError(f"{landing_dir}: SEGMINT_SOURCE_FORMAT={fmt} but no {fmt} export files were found")
    # An orders file next to the events is the shop's own order book: it wins over orders derived from events.
    passthrough = _passthrough(landing_dir, contract_dir, CONTRACT_ORDERS)
    with_orders = not passthrough
    if fmt == GA4:
        # GA4 has no customer records: a segmint customers file next to it is used as it is.
        passthrough += _passthrough(landing_dir, contract_dir, CONTRACT_CUSTOMERS)
        written, notes = ga4.translate(conn, files, contract_dir, with_orders)
        return written, passthrough, notes
    written, notes = segment.translate(conn, files, contract_dir, with_orders, tables)
    return written, passthrough, notes


def _translate_shopify(
    conn: duckdb.DuckDBPyConnection, landing_dir: Path, contract_dir: Path
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The admin CSV export when there is one, else Fivetran's tables, else the Admin API pulls (shopify.py,
    shopify_tables.py, shopify_api.py; all SEGMINT_SOURCE_FORMAT=shopify). API files next to an export or tables
    stop the run: the same orders would count twice."""
    api_files = shopify_api_files(landing_dir)
    exported = bool(shopify_export_parts(landing_dir, SHOPIFY_FILES[0]))
    # a table needs Fivetran's `_fivetran_synced` to be detected, not to be read when the format is set
    as_tables = not exported and bool(shopify_table_files(landing_dir))
    if api_files and (exported or has_shopify_tables(landing_dir)):
        other = f"admin export ({SHOPIFY_FILES[0]})" if exported else "Fivetran tables export"
        raise LandingError(
            f"{landing_dir}: both a Shopify {other} and Admin API files "
            f"({', '.join(path.name for path in api_files[:3])}{', ...' if len(api_files) > 3 else ''}): "
            "they would count the same orders twice; keep one of them in the landing folder"
        )
    if api_files:
        return shopify_api.translate(conn, landing_dir, contract_dir, api_files)
    return (shopify_tables if as_tables else shopify).translate(conn, landing_dir, contract_dir)


def cleanup(translation: Translation | None) -> None:
    """Remove the temporary work folder of a translation (a work folder under the data dir is kept for inspection)."""
    if translation is not None and translation.temporary:
        shutil.rmtree(translation.contract_dir, ignore_errors=True)


def stage_translation(
    conn: duckdb.DuckDBPyConnection, translation: Translation, stage: Callable[[str], str]
) -> dict[str, int]:
    """Trace staged quarantine and ingest_log rows of translated files back to the source records (see module doc).

    Returns the accepted rows per contract table whose key the translator generated (common.order_id_sql)."""
    quarantine, ingest_log = stage("quarantine"), stage("ingest_log")
    work_files = ", ".join(sql_string(name) for name in translation.work_files)
    conn.execute(f"""
CREATE OR REPLACE TEMP TABLE {CONTRACT_REJECTS_TABLE} AS
SELECT split_part(source_file, '.', 1) AS table_name, json_extract_string(raw_record, '$.origin_file') AS origin_file,
       split_part(reason, ':', 1) AS code
FROM {quarantine} WHERE source_file IN ({work_files})""")
    for name in translation.work_files:
        # "first seen at row N" names a row of the work file, which the user never wrote: name its source line.
        conn.execute(f"""
UPDATE {quarantine} AS q
SET reason = regexp_replace(q.reason, 'first seen at row [0-9]+$', 'first seen at ' || w.origin_file || ' line ' || w.origin_row)
FROM (SELECT file_row_number + 1 AS work_row, {ORIGIN_FILE} AS origin_file, {ORIGIN_ROW} AS origin_row
      FROM read_parquet({sql_string(str(translation.contract_dir / name))}, file_row_number=true)) AS w
WHERE q.source_file = {sql_string(name)} AND q.reason LIKE 'duplicate_identical:%'
  AND w.work_row = try_cast(regexp_extract(q.reason, 'first seen at row ([0-9]+)$', 1) AS BIGINT)""")
    conn.execute(f"""
UPDATE {quarantine} SET source_file = json_extract_string(raw_record, '$.origin_file'),
       source_row = CAST(json_extract_string(raw_record, '$.origin_row') AS BIGINT)
WHERE source_file IN ({work_files})""")
    conn.execute(
        f"INSERT INTO {quarantine} SELECT origin_file, origin_row, raw_record, reason FROM {REJECTS_TABLE} "
        "ORDER BY origin_file, origin_row"
    )
    tables = {name.split(".")[0]: str(translation.contract_dir / name) for name in translation.work_files}
    conn.execute(SUPPRESSED_TABLE_SQL)  # rows of erased persons the ingest dropped (none without erasures)
    rows = conn.execute(reconcile_sql(tables, {table: stage(table) for table in tables})).fetchall()
    unexplained = [(row[0], row[1], row[6]) for row in rows if row[6]]
    if unexplained:
        # An internal invariant: every translated row is accepted or quarantined, exactly once.
        raise RuntimeError(f"translated rows neither accepted nor quarantined: {unexplained}")
    conn.execute(f"DELETE FROM {ingest_log} WHERE source_file IN ({work_files})")
    if rows:
        conn.executemany(
            f"INSERT INTO {ingest_log} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            # translators fold line items and write their own ids: nothing merged downstream; the ids they generated
            [[*row[:6], 0, row[8], row[7]] for row in rows],
        )
    for table in (CONTRACT_REJECTS_TABLE, REJECTS_TABLE, GENERATED_IDS_TABLE):
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
    generated: dict[str, int] = {}
    for row in rows:
        generated[row[1]] = generated.get(row[1], 0) + row[8]
    return generated


def source_format_of(translation: Translation | None) -> str:
    """The format recorded in raw.run_context.source_format."""
    return translation.source_format if translation is not None else SEGMINT
