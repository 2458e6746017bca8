"""SQL that parses raw values into typed columns and names the first rule a record breaks.

Every function returns SQL text for DuckDB; nothing here touches a connection. The rules, in the order
a reason is chosen (the first broken rule wins):
  1. `missing_<column>`: a required value is empty (events: `missing_customer_and_anonymous_id`).
  2. `ambiguous_date`, `invalid_timestamp`, `implausible_timestamp`, `invalid_number`, `non_finite_number`,
     `absurd_amount`, `non_positive_number` (fx rates).
  3. (orders, landing/ingest.py) `incomplete_order`, `ambiguous_currency`, `mixed_currency`, `missing_fx_rate`.
  4. `duplicate_conflicting` (same key, different values: every copy) / `duplicate_identical` (later copies).
  5. `after_as_of`: the row's date is after the as-of date.
Timestamps: ISO 8601 dates or date-times; an offset or zone name is converted to UTC, a naive value is
taken as UTC (the session time zone is set to UTC while ingesting), a plain date is midnight. A number is an
epoch time told by its magnitude (EPOCH_* in landing/contract.py: seconds, milliseconds, microseconds,
nanoseconds; fractions allowed), except 8 digits, which are `YYYYMMDD` (BigQuery's event_date). `dd/mm/yyyy`
-like values (separators `/` `.` `-`, optional `HH:MM[:SS[.ffffff]]`) follow the file's detected date order
(ValueDialect); an order the file cannot tell is `ambiguous_date`.
Amounts: decimal numbers with the file's decimal mark (ValueDialect.decimal_comma) and optional thousands
groups of three (`1,234.50`, or `1.234,50` with a decimal comma); negative totals are refunds and are accepted.
A typed Parquet value is judged as its text (its VARCHAR cast) would be: a plausible timestamp or a finite
amount below the absurd limit is taken as it is, since casting it to text and parsing it back gives the same
value; anything else goes through the text rules, so reasons quote the same text as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from landing.contract import (
    ABSURD_AMOUNT,
    AFTER_AS_OF,
    DAY_FIRST,
    DUPLICATE_IDENTICAL,
    EARLIEST_PLAUSIBLE_DATE,
    EPOCH_LIMIT,
    EPOCH_MICROSECONDS_FROM,
    EPOCH_MILLISECONDS_FROM,
    EPOCH_NANOSECONDS_FROM,
    FALSE_WORDS,
    LATEST_PLAUSIBLE_DATE,
    MAX_VALUE_CHARS_IN_REASON,
    MONTH_FIRST,
    STRIPPED_WHITESPACE,
    TRUE_WORDS,
    ColumnSpec,
    TableSpec,
)
from landing.sources import RECORD_INDEX, TEXT_TYPE, source_column, sql_string

ROW_REASON = "row_reason"
REASON = "reason"
# Stage-only column: a hash of the record's fields outside the contract (line-item merging, exact duplicates).
EXTRA_HASH = "extra_hash"
# The row_reason of a line-item row merged into the first row of its order: accepted, not in the raw table.
MERGED_LINE = "merged_line_item"
# Prefix and hex length of a generated id (96 bits of an md5: no collision in any real file).
GENERATED_ID_PREFIX = "sg_"
GENERATED_ID_HEX_CHARS = 24
AMBIGUOUS = "ambiguous"
INCONSISTENT = "inconsistent"
# `dd/mm/yyyy`, `mm.dd.yyyy`, `dd-mm-yyyy`, optionally followed by a time.
NUMERIC_DATE_PATTERN = "^([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})"
EPOCH_PATTERN = "[0-9]+([.][0-9]+)?"
# Evidence of the decimal mark in an amount: a separator followed by other than exactly three digits, or both
# marks with the decimal one last (`1.234,50`). Three digits after one mark alone (`1,234`) prove nothing.
COMMA_DECIMAL_EVIDENCE = "[+-]?[0-9.]*,([0-9]{1,2}|[0-9]{4,})|[+-]?[0-9]{1,3}([.][0-9]{3})+,[0-9]+"
POINT_DECIMAL_EVIDENCE = "[+-]?[0-9,]*[.]([0-9]{1,2}|[0-9]{4,})|[+-]?[0-9]{1,3}(,[0-9]{3})+[.][0-9]+"
POINT_THOUSANDS = "[+-]?[0-9]{1,3}(,[0-9]{3})+([.][0-9]+)?"
COMMA_THOUSANDS = "[+-]?[0-9]{1,3}([.][0-9]{3})+(,[0-9]+)?"


@dataclass(frozen=True)
class ValueDialect:
    """How one file writes numbers and dates (detected per file by landing/ingest.py, or set by the user).

    `date_orders` maps a timestamp column to DMY, MDY, a strptime pattern (containing `%`), `ambiguous` (every
    numeric date fits both orders) or `inconsistent` (the file has dates of both orders); absent: no such dates.
    """

    decimal_comma: bool = False
    date_orders: dict[str, str] = field(default_factory=dict)


# Parquet column types (as DuckDB reads them) whose value equals parsing its VARCHAR cast back, inside the
# plausible window (timestamps) or below the absurd limit (amounts). Not TIMESTAMP_NS (finer than the
# microseconds its text parses to), not FLOAT (its shortest text parses to another double).
NAIVE_TIMESTAMP_TYPES = ("TIMESTAMP", "DATE")
ZONED_TIMESTAMP_TYPE = "TIMESTAMP WITH TIME ZONE"
EXACT_NUMBER_TYPES = (
    "DOUBLE",
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)
BOOLEAN_TYPE = "BOOLEAN"
# A DECIMAL below the absurd limit with at most 6 decimals has an unscaled integer below 2**53, exact as a
# double, so converting it divides once and rounds once, as parsing its text does.
MAX_EXACT_DECIMAL_SCALE = 6


def _raw_alias(column: ColumnSpec) -> str:
    return f"raw__{column.name}"


def _exact_amount_type(source_type: str) -> bool:
    if source_type.startswith("DECIMAL("):
        return int(source_type.rstrip(")").split(",")[1]) <= MAX_EXACT_DECIMAL_SCALE
    return source_type in EXACT_NUMBER_TYPES


def has_typed_fast_path(column: ColumnSpec, source_type: str) -> bool:
    """Whether a source column of `source_type` can be judged without casting every value to text."""
    if column.kind == "timestamp":
        return source_type in NAIVE_TIMESTAMP_TYPES or source_type == ZONED_TIMESTAMP_TYPE
    if column.kind == "amount":
        return _exact_amount_type(source_type)
    if column.kind == "boolean":
        return source_type == BOOLEAN_TYPE
    return False


def _words(words: tuple[str, ...]) -> str:
    return ", ".join(sql_string(word) for word in words)


def cleaned_text_sql(value: str) -> str:
    """The text `value` with surrounding whitespace stripped; NULL when empty."""
    # trim() with a character set is the costliest step of the whole parse, and almost no value needs it.
    # The guard is a cheap superset of "starts or ends with one of those characters": a string below
    # `above` starts with a character no greater than the largest of them (or is empty), and so for the
    # last character. It is ~1.6x cheaper than the LIKE pair per character it replaced (3.6 M events).
    above = sql_string(chr(ord(max(STRIPPED_WHITESPACE)) + 1))
    needs_trim = f"{value} < {above} OR {value}[-1] < {above}"
    trimmed = f"trim({value}, {sql_string(STRIPPED_WHITESPACE)})"
    return f"nullif(CASE WHEN {needs_trim} THEN {trimmed} ELSE {value} END, '')"


def _as_text(value: str, source_type: str) -> str:
    return value if source_type == TEXT_TYPE else f"CAST({value} AS {TEXT_TYPE})"


def raw_text_sql(value: str, source_type: str) -> str:
    """The cleaned raw text of a source value of `source_type` (its VARCHAR cast unless it is text)."""
    return cleaned_text_sql(_as_text(value, source_type))


def _epoch_sql(raw: str) -> str:
    number = f"try_cast({raw} AS DOUBLE)"
    return (
        f"CASE WHEN length({raw}) = 8 THEN try_strptime({raw}, '%Y%m%d') "
        f"WHEN {number} < {EPOCH_MILLISECONDS_FROM!r} THEN timezone('UTC', to_timestamp({number})) "
        f"WHEN {number} < {EPOCH_MICROSECONDS_FROM!r} THEN make_timestamp(CAST({number} * 1000 AS BIGINT)) "
        f"WHEN {number} < {EPOCH_NANOSECONDS_FROM!r} THEN make_timestamp(CAST({number} AS BIGINT)) "
        # Nanoseconds exceed a double's 53 exact bits: integer division where the value is an integer.
        f"WHEN {number} < {EPOCH_LIMIT!r} "
        f"THEN make_timestamp(coalesce(try_cast({raw} AS BIGINT) // 1000, CAST({number} / 1000 AS BIGINT))) END"
    )


def _numeric_date_sql(raw: str, order: str) -> str:
    # `31/12/2025 10:00` -> `2025-12-31 10:00`, then the ISO cast (which takes 1-digit days and months and any time
    # part); a value that does not start like a numeric date is left as it is, so ISO values still parse.
    groups = "\\3-\\2-\\1" if order == DAY_FIRST else "\\3-\\1-\\2"
    iso = f"regexp_replace({raw}, '{NUMERIC_DATE_PATTERN}', '{groups}')"
    return f"timezone('UTC', try_cast({iso} AS TIMESTAMPTZ))"


def _iso_timestamptz_sql(raw: str) -> str:
    # `2025-06-01 10:00:00 +0100` (Ruby's and Shopify's format: a space before the offset) fails DuckDB's cast;
    # only a value whose cast failed is retried without that space (coalesce evaluates it for those rows only).
    spaced = f"regexp_replace({raw}, ' ([+-][0-9]{{2}}(:?[0-9]{{2}})?)$', '\\1')"
    return f"coalesce(try_cast({raw} AS TIMESTAMPTZ), try_cast({spaced} AS TIMESTAMPTZ))"


def parsed_timestamp_sql(raw: str, order: str | None = None) -> str:
    """The UTC timestamp of cleaned text `raw`: a strptime pattern `order` first, ISO 8601, epoch, numeric dates."""
    # TIMESTAMPTZ applies an offset or zone name; a naive value takes the session zone (UTC here). A failing cast
    # is costly (~1 us a value), so a value that looks like ISO (`YYYY-` first) is cast at once, and any other
    # tries the epoch and numeric-date readings before the ISO cast.
    iso = f"timezone('UTC', {_iso_timestamptz_sql(raw)})"
    epoch = f"CASE WHEN regexp_full_match({raw}, '{EPOCH_PATTERN}') THEN {_epoch_sql(raw)} END"
    other = _numeric_date_sql(raw, order) if order in (DAY_FIRST, MONTH_FIRST) else iso
    value = f"CASE WHEN substr({raw}, 5, 1) = '-' THEN {iso} ELSE coalesce({epoch}, {other}) END"
    if order is not None and "%" in order:
        return f"coalesce(timezone('UTC', CAST(try_strptime({raw}, {sql_string(order)}) AS TIMESTAMPTZ)), {value})"
    return value


def parsed_amount_sql(raw: str, decimal_comma: bool = False) -> str:
    """The number of cleaned text `raw` with the file's decimal mark; thousands groups of three allowed."""
    if decimal_comma:
        return (
            f"CASE WHEN NOT contains({raw}, '.') THEN try_cast(replace({raw}, ',', '.') AS DOUBLE) "
            f"WHEN regexp_full_match({raw}, '{COMMA_THOUSANDS}') "
            f"THEN try_cast(replace(replace({raw}, '.', ''), ',', '.') AS DOUBLE) END"
        )
    return (
        f"coalesce(try_cast({raw} AS DOUBLE), CASE WHEN regexp_full_match({raw}, '{POINT_THOUSANDS}') "
        f"THEN try_cast(replace({raw}, ',', '') AS DOUBLE) END)"
    )


def parsed_value_sql(column: ColumnSpec, raw: str, dialect: ValueDialect | None = None) -> str:
    """The typed value of `column` from its cleaned raw text `raw` (NULL when it does not parse)."""
    dialect = dialect or ValueDialect()
    if column.kind == "timestamp":
        return parsed_timestamp_sql(raw, dialect.date_orders.get(column.name))
    if column.kind == "amount":
        return parsed_amount_sql(raw, dialect.decimal_comma)
    if column.kind == "boolean":
        return (
            f"CASE WHEN lower({raw}) IN ({_words(TRUE_WORDS)}) THEN true "
            f"WHEN lower({raw}) IN ({_words(FALSE_WORDS)}) THEN false END"
        )
    if column.kind == "currency":
        # ISO 4217 codes are upper case; 'eur' and 'EUR' must count as one currency.
        return f"upper({raw})"
    return raw


def _plausible_timestamp_sql(value: str) -> str:
    earliest, latest = (sql_string(day.isoformat()) for day in (EARLIEST_PLAUSIBLE_DATE, LATEST_PLAUSIBLE_DATE))
    return f"{value} >= TIMESTAMP {earliest} AND {value} < TIMESTAMP {latest}"


def typed_value_sql(column: ColumnSpec, value: str, source_type: str, dialect: ValueDialect | None = None) -> str:
    """The typed value of `column` from a typed source `value` (a type with has_typed_fast_path).

    The value is taken as it is where that equals parsing its text; anything else (implausible, non-finite,
    absurd) is parsed from its text, so it gets exactly the text path's value and reason.
    """
    by_text = parsed_value_sql(column, raw_text_sql(value, source_type), dialect)
    if column.kind == "timestamp":
        in_utc = f"timezone('UTC', {value})" if source_type == ZONED_TIMESTAMP_TYPE else f"CAST({value} AS TIMESTAMP)"
        return f"CASE WHEN {_plausible_timestamp_sql(in_utc)} THEN {in_utc} ELSE {by_text} END"
    if column.kind == "amount":
        # Comparisons, not abs(): abs() of the smallest BIGINT overflows. NaN compares above every number.
        below_absurd = f"{value} > -{ABSURD_AMOUNT!r} AND {value} < {ABSURD_AMOUNT!r}"
        return f"CASE WHEN {below_absurd} THEN CAST({value} AS DOUBLE) ELSE {by_text} END"
    return value


def quoted_value_sql(raw: str) -> str:
    return f"'''' || left({raw}, {MAX_VALUE_CHARS_IN_REASON}) || ''''"


def _reason(code: str, column: ColumnSpec, raw_text: str) -> str:
    """SQL for `<code>: <column>='<raw value>'`."""
    return f"'{code}: {column.name}=' || {quoted_value_sql(raw_text)}"


def _ambiguous_date_branch(column: ColumnSpec, raw: str, value: str, text: str, order: str | None) -> list[str]:
    if order not in (AMBIGUOUS, INCONSISTENT):
        return []
    why = (
        "no day above 12 tells day-first from month-first"
        if order == AMBIGUOUS
        else "the file has both day-first and month-first dates"
    )
    detail = f"{why}; set SEGMINT_DATE_FORMAT=DMY or MDY"
    return [
        f"WHEN {raw} IS NOT NULL AND {value} IS NULL AND regexp_matches({raw}, '{NUMERIC_DATE_PATTERN}') "
        f"THEN {_reason('ambiguous_date', column, text)} || ' ({detail})'"
    ]


def row_reason_branches(
    spec: TableSpec, raw_texts: dict[str, str], dialect: ValueDialect | None = None, generated: tuple[str, ...] = ()
) -> list[str]:
    """`WHEN <broken> THEN <reason>` branches of the record-level rules, in precedence order.

    `raw__<column>` is the raw value (NULL when empty); `raw_texts` gives its cleaned text per column; the
    `generated` columns are never missing.
    """
    dialect = dialect or ValueDialect()
    branches = [
        f"WHEN {_raw_alias(column)} IS NULL THEN 'missing_{column.name}'"
        for column in spec.columns
        if column.value_required and column.name not in generated
    ]
    if spec.one_of_columns:
        all_missing = " AND ".join(f"raw__{name} IS NULL" for name in spec.one_of_columns)
        branches.append(f"WHEN {all_missing} THEN 'missing_{'_and_'.join(spec.one_of_columns)}'")
    for column in spec.columns:
        raw, value, text = _raw_alias(column), column.name, raw_texts[column.name]
        if column.kind == "timestamp":
            branches += _ambiguous_date_branch(column, raw, value, text, dialect.date_orders.get(column.name))
            branches.append(
                f"WHEN {raw} IS NOT NULL AND {value} IS NULL THEN {_reason('invalid_timestamp', column, text)}"
            )
            branches.append(
                f"WHEN NOT ({_plausible_timestamp_sql(value)}) THEN {_reason('implausible_timestamp', column, text)}"
            )
        elif column.kind == "amount":
            branches.append(
                f"WHEN {raw} IS NOT NULL AND {value} IS NULL THEN {_reason('invalid_number', column, text)}"
            )
            branches.append(f"WHEN NOT isfinite({value}) THEN {_reason('non_finite_number', column, text)}")
            branches.append(f"WHEN abs({value}) >= {ABSURD_AMOUNT!r} THEN {_reason('absurd_amount', column, text)}")
            if column.positive:
                branches.append(f"WHEN {value} <= 0 THEN {_reason('non_positive_number', column, text)}")
    return branches


def generated_id_sql(spec: TableSpec, key: str) -> str:
    """A surrogate id: md5 of the record's parsed contract values and its occurrence number among identical ones.

    The values are the typed ones (timestamps in UTC), so the id survives re-exports that change formatting or
    add columns; the occurrence number (1-based, in record order) tells apart records with equal values.
    """
    values = [name for name in spec.column_names if name != key]
    as_json = f"CAST(to_json(list_value({', '.join(f'CAST({name} AS VARCHAR)' for name in values)})) AS VARCHAR)"
    occurrence = f"row_number() OVER (PARTITION BY {', '.join(values)} ORDER BY source_row)"
    return f"'{GENERATED_ID_PREFIX}' || left(md5({as_json} || '#' || {occurrence}), {GENERATED_ID_HEX_CHARS})"


def parse_records_sql(
    spec: TableSpec,
    relation: str,
    positions: dict[str, int],
    types: tuple[str, ...],
    dialect: ValueDialect | None = None,
    extra_positions: tuple[int, ...] | None = None,
) -> str:
    """SELECT of one row per source record, in record order: source_row, typed contract columns, row_reason.

    A column with a typed fast path keeps its typed value as `raw__<column>` (a non-NULL value's VARCHAR cast is
    never empty); its text is computed only where a reason quotes it or the fast path does not apply. The spec's
    generated key, when absent from `positions`, is a surrogate id (generated_id_sql). With `extra_positions`,
    `extra_hash` hashes those source fields (the fields outside the contract).
    """
    dialect = dialect or ValueDialect()
    generated = (spec.generated_key,) if spec.generated_key and spec.generated_key not in positions else ()
    raw_values, typed, raw_texts = [], [], {}
    for column in spec.columns:
        raw, position = _raw_alias(column), positions.get(column.name)
        if position is None:
            raw_values.append(f"CAST(NULL AS {TEXT_TYPE}) AS {raw}")
            typed.append(f"{parsed_value_sql(column, raw, dialect)} AS {column.name}")
            raw_texts[column.name] = raw
        elif has_typed_fast_path(column, types[position]):
            raw_values.append(f"{source_column(position)} AS {raw}")
            typed.append(f"{typed_value_sql(column, raw, types[position], dialect)} AS {column.name}")
            raw_texts[column.name] = raw_text_sql(raw, types[position])
        else:
            raw_values.append(f"{raw_text_sql(source_column(position), types[position])} AS {raw}")
            typed.append(f"{parsed_value_sql(column, raw, dialect)} AS {column.name}")
            raw_texts[column.name] = raw
    if extra_positions is not None:
        hashed = ", ".join(source_column(position) for position in extra_positions)
        raw_values.append(f"{f'hash({hashed})' if hashed else 'CAST(0 AS UBIGINT)'} AS {EXTRA_HASH}")
    branches = "\n    ".join(row_reason_branches(spec, raw_texts, dialect, generated))
    outputs = [f"{generated_id_sql(spec, name)} AS {name}" if name in generated else name for name in spec.column_names]
    extra = f", {EXTRA_HASH}" if extra_positions is not None else ""
    return f"""
SELECT source_row, {", ".join(outputs)}{extra},
  CASE
    {branches}
  END AS {ROW_REASON}
FROM (
  SELECT *, {", ".join(typed)}
  FROM (SELECT {RECORD_INDEX} + 1 AS source_row, {", ".join(raw_values)} FROM {relation})
)"""


def dialect_probe_sql(
    spec: TableSpec, relation: str, positions: dict[str, int], types: tuple[str, ...]
) -> tuple[str, list[str], list[str]]:
    """One SELECT scanning a file's text timestamp and amount columns for their date order and decimal mark.

    Returns the SQL and the timestamp and amount column names it covers. Per timestamp column: the largest first
    field of numeric dates whose second field can be a month, and the largest second field of those whose first
    can be (`31/12/2025` -> 31, none); per file: how many amounts prove a decimal comma and how many a decimal
    point (COMMA_/POINT_DECIMAL_EVIDENCE).
    """
    texts = {
        column.name: cleaned_text_sql(source_column(positions[column.name]))
        for column in spec.columns
        if column.name in positions and types[positions[column.name]] == TEXT_TYPE
    }
    timestamps = [c.name for c in spec.columns if c.kind == "timestamp" and c.name in texts]
    amounts = [c.name for c in spec.columns if c.kind == "amount" and c.name in texts]
    selects = []
    for name in timestamps:
        first, second = (
            f"try_cast(nullif(regexp_extract({texts[name]}, '{NUMERIC_DATE_PATTERN}', {group}), '') AS INTEGER)"
            for group in (1, 2)
        )
        # A value that is no date either way (`31/31/2024`) says nothing about the order: it is invalid_timestamp.
        selects.append(f"max({first}) FILTER (WHERE {second} <= 12)")
        selects.append(f"max({second}) FILTER (WHERE {first} <= 12)")
    for pattern in (COMMA_DECIMAL_EVIDENCE, POINT_DECIMAL_EVIDENCE):
        matches = " OR ".join(f"regexp_full_match({texts[name]}, '{pattern}')" for name in amounts) or "false"
        selects.append(f"count(*) FILTER (WHERE {matches})")
    return f"SELECT {', '.join(selects)} FROM {relation}", timestamps, amounts


def _key_select(spec: TableSpec, alias: str = "") -> list[str]:
    return [f"{alias}{name}" for name in spec.key_columns]


def _key_join(spec: TableSpec) -> str:
    return " AND ".join(f"p.{name} IS NOT DISTINCT FROM d.k{i}" for i, name in enumerate(spec.key_columns))


def _key_text(spec: TableSpec, alias: str) -> str:
    values = " || ', ' || ".join(quoted_value_sql(f"CAST({alias}{name} AS VARCHAR)") for name in spec.key_columns)
    return f"'{', '.join(spec.key_columns)}=' || {values}"


def duplicate_keys_sql(spec: TableSpec, parsed_table: str, compared: tuple[str, ...] | None = None) -> str:
    """SELECT of keys that occur more than once among valid records: first row, copies, conflicting?

    Copies conflict when their `compared` columns (default: every contract column) differ.
    Grouping every record by its key text is the costly part (36 M distinct event ids at 1 M customers), so the
    records are first grouped by a 64-bit hash of their key, and only keys whose hash occurs more than once (the
    duplicates, plus the rare hash collision, which the exact grouping then drops) are grouped by their values:
    the same rows as grouping every key, for about half the CPU.
    """
    keys = _key_select(spec)
    key_hash = f"hash({', '.join(keys)})"
    row_hash = f"hash({', '.join(compared or spec.column_names)})"
    return f"""
SELECT {", ".join(f"{key} AS k{i}" for i, key in enumerate(keys))}, min(source_row) AS first_row,
       count(*) AS copies, min({row_hash}) <> max({row_hash}) AS conflicting
FROM {parsed_table}
WHERE {ROW_REASON} IS NULL AND {key_hash} IN (
  SELECT {key_hash} AS key_hash FROM {parsed_table} WHERE {ROW_REASON} IS NULL GROUP BY key_hash HAVING count(*) > 1
)
GROUP BY ALL
HAVING count(*) > 1"""


def mark_duplicates_sql(
    spec: TableSpec, parsed_table: str, duplicates_table: str, with_extras: bool = False, key_generated: bool = False
) -> str:
    """UPDATE giving the duplicate copies that are not kept their reason.

    Every conflicting copy is `duplicate_conflicting`. Of identical copies, with `with_extras` a copy whose fields
    outside the contract (extra_hash) equal an earlier copy's is `duplicate_identical` (an exact duplicate), and a
    copy with other extra fields is a line item merged into the first copy (orders, `merged_line_item`) or, with a
    generated key, a distinct record (kept). Without extras every later identical copy is `duplicate_identical`.
    Duplicates are few, so marking them in place is cheaper than joining every record to the duplicate keys.
    """
    key_text = _key_text(spec, "p.") if not key_generated else "'same values'"
    conflicting = f"'duplicate_conflicting: ' || {key_text} || ' has ' || m.copies || ' copies with different values'"
    identical = f"'{DUPLICATE_IDENTICAL}: ' || {key_text} || ' first seen at row ' || m.first_same"
    partition = ", ".join(_key_select(spec, "p.") + ([f"p.{EXTRA_HASH}"] if with_extras else []))
    merged = f"'{MERGED_LINE}'" if spec.merges_line_items and not key_generated else "NULL"
    keep_distinct = "p.source_row <> m.first_row" if merged != "NULL" else "false"
    return f"""
UPDATE {parsed_table} AS p
SET {ROW_REASON} = CASE WHEN m.conflicting THEN {conflicting}
                        WHEN p.source_row <> m.first_same THEN {identical}
                        ELSE {merged} END
FROM (
  SELECT p.source_row, d.copies, d.conflicting, d.first_row,
         min(p.source_row) OVER (PARTITION BY {partition}) AS first_same
  FROM {parsed_table} AS p JOIN {duplicates_table} AS d ON {_key_join(spec)}
  WHERE p.{ROW_REASON} IS NULL
) AS m
WHERE p.source_row = m.source_row AND (m.conflicting OR p.source_row <> m.first_same OR {keep_distinct})"""


def sum_line_totals_sql(spec: TableSpec, parsed_table: str, total: str) -> str:
    """UPDATE setting the kept row of each merged record's `total` to the sum over its kept and merged lines."""
    keys = _key_select(spec)
    return f"""
UPDATE {parsed_table} AS p
SET {total} = d.line_sum
FROM (
  SELECT {", ".join(f"{key} AS k{i}" for i, key in enumerate(keys))}, min(source_row) AS first_row,
         sum({total}) AS line_sum
  FROM {parsed_table}
  WHERE {ROW_REASON} IS NULL OR {ROW_REASON} = '{MERGED_LINE}'
  GROUP BY ALL
  HAVING count(*) > 1
) AS d
WHERE {_key_join(spec)} AND p.source_row = d.first_row"""


def incomplete_records_sql(spec: TableSpec, parsed_table: str) -> str:
    """UPDATE quarantining valid rows whose key has a rejected row (a summed total would miss that line)."""
    keys = _key_select(spec)
    return f"""
UPDATE {parsed_table} AS p
SET {ROW_REASON} = 'incomplete_order: ' || {_key_text(spec, "p.")} || ' has a quarantined line at row ' || d.bad_row
FROM (
  SELECT {", ".join(f"{key} AS k{i}" for i, key in enumerate(keys))}, min(source_row) AS bad_row
  FROM {parsed_table}
  WHERE {ROW_REASON} IS NOT NULL AND {" AND ".join(f"{key} IS NOT NULL" for key in keys)}
  GROUP BY ALL
) AS d
WHERE p.{ROW_REASON} IS NULL AND {_key_join(spec)}"""


def after_as_of_sql(spec: TableSpec, as_of: date) -> str:
    """SQL true for a record whose date is after the as-of date (NULL dates never are)."""
    return f"CAST({spec.as_of_column} AS DATE) > DATE {sql_string(as_of.isoformat())}"


def judged_records_sql(spec: TableSpec, parsed_table: str, as_of: date) -> str:
    """SELECT of source_row and final `reason` of every record of a table with duplicates marked.

    NULL = accepted, `merged_line_item` = accepted as a line of an earlier row (a merged line of an order after
    the as-of date is `after_as_of` like its order).
    """
    when = spec.as_of_column
    after = f"'{AFTER_AS_OF}: {when}=' || CAST({when} AS VARCHAR) || ' is after {as_of.isoformat()}'"
    return f"""
SELECT source_row,
  CASE WHEN {ROW_REASON} IS NOT NULL AND {ROW_REASON} <> '{MERGED_LINE}' THEN {ROW_REASON}
       WHEN {after_as_of_sql(spec, as_of)} THEN {after}
       ELSE {ROW_REASON} END AS {REASON}
FROM {parsed_table}"""


def delete_rejected_sql(spec: TableSpec, parsed_table: str, as_of: date) -> str:
    """DELETE of every record not kept in the raw table (quarantined or merged), leaving the rest in record order."""
    return f"DELETE FROM {parsed_table} WHERE {ROW_REASON} IS NOT NULL OR {after_as_of_sql(spec, as_of)}"


def last_valid_date_sql(spec: TableSpec, parsed_table: str) -> str:
    """SELECT of the last date among records (duplicates marked) that pass every rule except as-of (NULL when none)."""
    return f"SELECT CAST(max({spec.as_of_column}) AS DATE) FROM {parsed_table} WHERE {ROW_REASON} IS NULL"


def valid_date_range_sql(spec: TableSpec, parsed_table: str) -> str:
    """SELECT of the last and the first date among records passing every rule except as-of (NULLs when none)."""
    column = spec.as_of_column
    return f"SELECT CAST(max({column}) AS DATE), CAST(min({column}) AS DATE) FROM {parsed_table} WHERE {ROW_REASON} IS NULL"


def raw_record_json_sql(header: tuple[str, ...], types: tuple[str, ...], alias: str) -> str:
    """SQL for the JSON object of a source record's raw text values, keyed by the header names as given.

    A typed (Parquet) value appears as its VARCHAR cast, a JSON string like every CSV value.
    """
    if not header:
        return "'{}'"
    pairs = ", ".join(
        f"{sql_string(key)}, {_as_text(f'{alias}.{source_column(i)}', source_type)}"
        for i, (key, source_type) in enumerate(zip(_unique_keys(header), types, strict=True))
    )
    return f"CAST(json_object({pairs}) AS VARCHAR)"


def _unique_keys(header: tuple[str, ...]) -> list[str]:
    # A JSON object with a repeated key loses values in most readers; later copies get a `#n` suffix.
    seen: dict[str, int] = {}
    keys = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys
