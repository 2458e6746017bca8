"""What every source-format translator shares: reading JSON lines, writing contract files, the record ledger.

A translator turns a shop's export into segmint's contract files (`orders.parquet`, `customers.parquet`,
`events.parquet`, all text columns plus `origin_file`/`origin_row`) in a work folder; the normal contract
ingest then reads that folder and applies every record rule. The translator also fills the record ledger
`_fmt_records`: one row per source record and contract table it feeds, with the contract row it became
(`target_file`/`target_row` = that row's `origin_file`/`origin_row`) or the reason it could not be translated. `reconcile_sql` uses it
to write `raw.ingest_log` per *source* file and to check that every source record ended up exactly once
in a raw table or in `raw.quarantine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from landing.sources import LandingError, sql_string

LINES_TABLE = "_fmt_lines"
RECORDS_TABLE = "_fmt_records"
CONTRACT_REJECTS_TABLE = "_fmt_contract_rejects"
# Columns a translator adds to every contract file so that every raw row can be traced to its source record.
ORIGIN_FILE, ORIGIN_ROW = "origin_file", "origin_row"
WORK_EXTENSION = "parquet"
# Longest source record kept in a quarantine row's raw_record (a GA4 event is a few kB; a broken line can be MBs).
MAX_RAW_RECORD_CHARS = 20_000


@dataclass(frozen=True)
class Translation:
    """A landing folder in a source format, translated into contract files under `contract_dir`."""

    source_format: str
    contract_dir: Path
    # Contract files written by the translator (their quarantine rows are re-pointed to the source record).
    work_files: tuple[str, ...]
    # Contract files taken as they are from the landing folder (e.g. a segmint orders.csv next to GA4 events).
    passthrough_files: tuple[str, ...] = ()
    # True when contract_dir is a temporary folder to remove after the ingest.
    temporary: bool = False


def create_records_table(conn: duckdb.DuckDBPyConnection) -> None:
    """The empty record ledger (see the module docstring)."""
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {RECORDS_TABLE} (origin_file VARCHAR, origin_row BIGINT, table_name VARCHAR, "
        "target_file VARCHAR, target_row BIGINT, reason VARCHAR, raw_record VARCHAR)"
    )


def load_json_lines(conn: duckdb.DuckDBPyConnection, paths: list[Path]) -> int:
    """Every non-blank line of the files into temp `_fmt_lines(origin_file, origin_row, line)`; returns the count.

    `.json`, `.jsonl`, `.ndjson` (optionally `.gz`) are newline-delimited JSON, one record per line, as BigQuery,
    Segment and RudderStack write them; `origin_row` is the physical line number (1-based). A `.parquet` file's
    rows become their JSON text (`to_json`), so one code path translates both; `origin_row` is then the row number.
    Blank lines carry no record and are not counted.
    """
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {LINES_TABLE} (origin_file VARCHAR, origin_row BIGINT, line VARCHAR)")
    for path in paths:
        name = sql_string(path.name)
        if path.suffix == ".parquet":
            select = (
                f"SELECT {name}, file_row_number + 1, to_json(t) "
                f"FROM read_parquet({sql_string(str(path))}, file_row_number=true) AS t"
            )
        else:
            # One VARCHAR column per physical line: NUL never occurs in JSON text, so no line is ever split;
            # quoting is off so a line is taken byte for byte. rowid = line number - 1 (blank lines are NULL rows).
            conn.execute(
                f"CREATE OR REPLACE TEMP TABLE _fmt_file AS SELECT * FROM read_csv({sql_string(str(path))}, "
                "columns={'line': 'VARCHAR'}, header=false, auto_detect=false, delim=chr(0), quote='', escape='', "
                "new_line='\\n')"
            )
            select = f"SELECT {name}, rowid + 1, line FROM _fmt_file WHERE trim(coalesce(line, '')) <> ''"
        try:
            conn.execute(f"INSERT INTO {LINES_TABLE} {select}")
        except duckdb.Error as error:
            first_line = str(error).splitlines()[0]
            raise LandingError(f"{path.name}: cannot be read ({first_line})") from None
    conn.execute("DROP TABLE IF EXISTS temp._fmt_file")
    return conn.execute(f"SELECT count(*) FROM {LINES_TABLE}").fetchall()[0][0]


def json_reason_sql(line: str) -> str:
    """The reason a JSON line cannot be a record (NULL when it is a JSON object)."""
    return (
        f"CASE WHEN NOT json_valid({line}) THEN 'malformed_json: not valid JSON' "
        f"WHEN json_type({line}) <> 'OBJECT' THEN 'not_a_json_object: a ' || lower(json_type({line})) END"
    )


def raw_record_sql(line: str) -> str:
    """A source line as quarantine raw_record text (cut when huge)."""
    return f"left({line}, {MAX_RAW_RECORD_CHARS})"


def write_contract_file(conn: duckdb.DuckDBPyConnection, select_sql: str, path: Path) -> None:
    """Write one contract table (text columns + origin) as Parquet, in origin order."""
    conn.execute(f"COPY ({select_sql}) TO {sql_string(str(path))} (FORMAT parquet)")


def reconcile_sql(work_tables: dict[str, str], stage_tables: dict[str, str]) -> str:
    """SELECT of one raw.ingest_log row per (source file, contract table) from the ledger and the staged tables.

    A source record is accepted when the contract row it became is in the staged raw table; otherwise it was
    rejected by the translator (its own reason) or the contract row it became is in quarantine
    (CONTRACT_REJECTS_TABLE). `lost` counts records in neither: the caller treats any as an internal error.
    """
    accepted_checks = " ".join(
        f"WHEN r.table_name = {sql_string(table)} THEN EXISTS (SELECT 1 FROM {stage} AS s WHERE "
        f"s.{ORIGIN_FILE} = r.target_file AND s.{ORIGIN_ROW} = r.target_row)"
        for table, stage in stage_tables.items()
        if table in work_tables
    )
    return f"""
WITH judged AS (
  SELECT r.origin_file, r.table_name, r.reason IS NOT NULL AS rejected,
         CASE {accepted_checks} ELSE false END AS accepted,
         (SELECT min(c.code) FROM {CONTRACT_REJECTS_TABLE} AS c WHERE c.table_name = r.table_name
            AND c.origin_file = r.target_file AND c.origin_row = r.target_row) AS contract_code
  FROM {RECORDS_TABLE} AS r
)
SELECT origin_file AS source_file, table_name, count(*) AS rows_in,
       count(*) FILTER (WHERE NOT rejected AND accepted) AS rows_accepted,
       count(*) FILTER (WHERE rejected OR (NOT accepted AND contract_code IS NOT NULL)) AS rows_quarantined,
       count(*) FILTER (WHERE NOT rejected AND NOT accepted AND contract_code = 'after_as_of') AS rows_after_as_of,
       count(*) FILTER (WHERE NOT rejected AND NOT accepted AND contract_code IS NULL) AS lost
FROM judged
GROUP BY ALL
ORDER BY source_file, table_name"""
