"""SQL that parses raw values into typed columns and names the first rule a record breaks.

Every function returns SQL text for DuckDB; nothing here touches a connection. The rules, in the order
a reason is chosen (the first broken rule wins):
  1. `missing_<column>`: a required value is empty (events: `missing_customer_and_anonymous_id`).
  2. `invalid_timestamp`, `implausible_timestamp`, `invalid_number`, `non_finite_number`, `absurd_amount`.
  3. `duplicate_conflicting` (same key, different values: every copy) / `duplicate_identical` (later copies).
  4. `after_as_of`: the row's date is after the as-of date.
Timestamps: ISO 8601 dates or date-times; an offset or zone name is converted to UTC, a naive value is
taken as UTC (the session time zone is set to UTC while ingesting), a plain date is midnight.
Amounts: plain decimal numbers with a dot; negative totals are refunds and are accepted.
A typed Parquet value is judged as its text (its VARCHAR cast) would be: a plausible timestamp or a finite
amount below the absurd limit is taken as it is, since casting it to text and parsing it back gives the same
value; anything else goes through the text rules, so reasons quote the same text as before.
"""

from __future__ import annotations

from datetime import date

from landing.contract import (
    ABSURD_AMOUNT,
    AFTER_AS_OF,
    EARLIEST_PLAUSIBLE_DATE,
    FALSE_WORDS,
    LATEST_PLAUSIBLE_DATE,
    MAX_VALUE_CHARS_IN_REASON,
    STRIPPED_WHITESPACE,
    TRUE_WORDS,
    ColumnSpec,
    TableSpec,
)
from landing.sources import RECORD_INDEX, TEXT_TYPE, source_column, sql_string

ROW_REASON = "row_reason"
REASON = "reason"


# Parquet column types (as DuckDB reads them) whose value equals parsing its VARCHAR cast back, inside the
# plausible window (timestamps) or below the absurd limit (amounts). Not TIMESTAMP_NS (finer than the
# microseconds its text parses to), not FLOAT (its shortest text parses to another double).
NAIVE_TIMESTAMP_TYPES = ("TIMESTAMP", "DATE")
ZONED_TIMESTAMP_TYPE = "TIMESTAMP WITH TIME ZONE"
EXACT_NUMBER_TYPES = (
    "DOUBLE", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"
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


def parsed_value_sql(column: ColumnSpec, raw: str) -> str:
    """The typed value of `column` from its cleaned raw text `raw` (NULL when it does not parse)."""
    if column.kind == "timestamp":
        # TIMESTAMPTZ applies an offset or zone name; a naive value takes the session zone (UTC here).
        return f"timezone('UTC', try_cast({raw} AS TIMESTAMPTZ))"
    if column.kind == "amount":
        return f"try_cast({raw} AS DOUBLE)"
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


def typed_value_sql(column: ColumnSpec, value: str, source_type: str) -> str:
    """The typed value of `column` from a typed source `value` (a type with has_typed_fast_path).

    The value is taken as it is where that equals parsing its text; anything else (implausible, non-finite,
    absurd) is parsed from its text, so it gets exactly the text path's value and reason.
    """
    by_text = parsed_value_sql(column, raw_text_sql(value, source_type))
    if column.kind == "timestamp":
        in_utc = f"timezone('UTC', {value})" if source_type == ZONED_TIMESTAMP_TYPE else f"CAST({value} AS TIMESTAMP)"
        return f"CASE WHEN {_plausible_timestamp_sql(in_utc)} THEN {in_utc} ELSE {by_text} END"
    if column.kind == "amount":
        # Comparisons, not abs(): abs() of the smallest BIGINT overflows. NaN compares above every number.
        below_absurd = f"{value} > -{ABSURD_AMOUNT!r} AND {value} < {ABSURD_AMOUNT!r}"
        return f"CASE WHEN {below_absurd} THEN CAST({value} AS DOUBLE) ELSE {by_text} END"
    return value


def _quoted_value(raw: str) -> str:
    return f"'''' || left({raw}, {MAX_VALUE_CHARS_IN_REASON}) || ''''"


def _reason(code: str, column: ColumnSpec, raw_text: str) -> str:
    """SQL for `<code>: <column>='<raw value>'`."""
    return f"'{code}: {column.name}=' || {_quoted_value(raw_text)}"


def row_reason_branches(spec: TableSpec, raw_texts: dict[str, str]) -> list[str]:
    """`WHEN <broken> THEN <reason>` branches of the record-level rules, in precedence order.

    `raw__<column>` is the raw value (NULL when empty); `raw_texts` gives its cleaned text per column.
    """
    branches = [
        f"WHEN {_raw_alias(column)} IS NULL THEN 'missing_{column.name}'"
        for column in spec.columns
        if column.value_required
    ]
    if spec.one_of_columns:
        all_missing = " AND ".join(f"raw__{name} IS NULL" for name in spec.one_of_columns)
        branches.append(f"WHEN {all_missing} THEN 'missing_{'_and_'.join(spec.one_of_columns)}'")
    for column in spec.columns:
        raw, value, text = _raw_alias(column), column.name, raw_texts[column.name]
        if column.kind == "timestamp":
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
            branches.append(
                f"WHEN abs({value}) >= {ABSURD_AMOUNT!r} THEN {_reason('absurd_amount', column, text)}"
            )
    return branches


def parse_records_sql(spec: TableSpec, relation: str, positions: dict[str, int], types: tuple[str, ...]) -> str:
    """SELECT of one row per source record, in record order: source_row, typed contract columns, row_reason.

    A column with a typed fast path keeps its typed value as `raw__<column>` (a non-NULL value's VARCHAR cast is
    never empty); its text is computed only where a reason quotes it or the fast path does not apply.
    """
    raw_values, typed, raw_texts = [], [], {}
    for column in spec.columns:
        raw, position = _raw_alias(column), positions.get(column.name)
        if position is None:
            raw_values.append(f"CAST(NULL AS {TEXT_TYPE}) AS {raw}")
            typed.append(f"{parsed_value_sql(column, raw)} AS {column.name}")
            raw_texts[column.name] = raw
        elif has_typed_fast_path(column, types[position]):
            raw_values.append(f"{source_column(position)} AS {raw}")
            typed.append(f"{typed_value_sql(column, raw, types[position])} AS {column.name}")
            raw_texts[column.name] = raw_text_sql(raw, types[position])
        else:
            raw_values.append(f"{raw_text_sql(source_column(position), types[position])} AS {raw}")
            typed.append(f"{parsed_value_sql(column, raw)} AS {column.name}")
            raw_texts[column.name] = raw
    branches = "\n    ".join(row_reason_branches(spec, raw_texts))
    return f"""
SELECT source_row, {", ".join(spec.column_names)},
  CASE
    {branches}
  END AS {ROW_REASON}
FROM (
  SELECT *, {", ".join(typed)}
  FROM (SELECT {RECORD_INDEX} + 1 AS source_row, {", ".join(raw_values)} FROM {relation})
)"""


def duplicate_keys_sql(spec: TableSpec, parsed_table: str) -> str:
    """SELECT of keys that occur more than once among valid records: first row, copies, conflicting?"""
    key, row_hash = spec.key_column, f"hash({', '.join(spec.column_names)})"
    return f"""
SELECT {key} AS dup_key, min(source_row) AS first_row, count(*) AS copies,
       min({row_hash}) <> max({row_hash}) AS conflicting
FROM {parsed_table}
WHERE {ROW_REASON} IS NULL
GROUP BY {key}
HAVING count(*) > 1"""


def mark_duplicates_sql(spec: TableSpec, parsed_table: str, duplicates_table: str) -> str:
    """UPDATE giving the duplicate copies that are not kept their reason (every conflicting copy, later identical ones).

    Duplicates are few, so marking them in place is cheaper than joining every record to the duplicate keys.
    """
    key = spec.key_column
    conflicting = (
        f"'duplicate_conflicting: {key}=' || {_quoted_value('p.' + key)} || ' has ' || d.copies "
        "|| ' copies with different values'"
    )
    identical = f"'duplicate_identical: {key}=' || {_quoted_value('p.' + key)} || ' first seen at row ' || d.first_row"
    return f"""
UPDATE {parsed_table} AS p
SET {ROW_REASON} = CASE WHEN d.conflicting THEN {conflicting} ELSE {identical} END
FROM {duplicates_table} AS d
WHERE p.{ROW_REASON} IS NULL AND p.{key} = d.dup_key AND (d.conflicting OR p.source_row <> d.first_row)"""


def _after_as_of_sql(spec: TableSpec, as_of: date) -> str:
    return f"CAST({spec.as_of_column} AS DATE) > DATE {sql_string(as_of.isoformat())}"


def judged_records_sql(spec: TableSpec, parsed_table: str, as_of: date) -> str:
    """SELECT of source_row and final `reason` (NULL = accepted) of every record of a table with duplicates marked."""
    when = spec.as_of_column
    after = f"'{AFTER_AS_OF}: {when}=' || CAST({when} AS VARCHAR) || ' is after {as_of.isoformat()}'"
    return f"""
SELECT source_row, coalesce({ROW_REASON}, CASE WHEN {_after_as_of_sql(spec, as_of)} THEN {after} END) AS {REASON}
FROM {parsed_table}"""


def delete_rejected_sql(spec: TableSpec, parsed_table: str, as_of: date) -> str:
    """DELETE of exactly the records judged_records_sql gives a reason, leaving the accepted ones in record order."""
    return f"DELETE FROM {parsed_table} WHERE {ROW_REASON} IS NOT NULL OR {_after_as_of_sql(spec, as_of)}"


def last_valid_date_sql(spec: TableSpec, parsed_table: str) -> str:
    """SELECT of the last date among records (duplicates marked) that pass every rule except as-of (NULL when none)."""
    return f"SELECT CAST(max({spec.as_of_column}) AS DATE) FROM {parsed_table} WHERE {ROW_REASON} IS NULL"


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
