"""The raw-table contract of the landing zone: file names, columns, types and validation constants.

Everything dbt reads from schema `raw` is spelled here once (see docs/ARCHITECTURE.md,
"Landing zone -> raw tables"); the ingest SQL is generated from these specs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

RAW_SCHEMA = "raw"
SUPPORTED_EXTENSIONS = ("csv", "parquet")

# A value of a kind is parsed from the raw text by the rule of that kind (see landing/rules.py).
ColumnKind = Literal["text", "id", "currency", "timestamp", "amount", "boolean"]

# Timestamps outside this window are placeholders or typos (1900-01-01 from spreadsheets, 9999-12-31,
# `infinity`), never real shop activity: they are quarantined as `implausible_timestamp`.
EARLIEST_PLAUSIBLE_DATE = date(1990, 1, 1)
LATEST_PLAUSIBLE_DATE = date(2100, 1, 1)
# An amount whose absolute value reaches this is an overflow or a typo in any currency (it stays
# above the largest real orders even in VND or IDR): quarantined as `absurd_amount`.
ABSURD_AMOUNT = 1_000_000_000.0
# Quarantine reasons quote the offending value; a longer value is cut so one reason stays one short line.
MAX_VALUE_CHARS_IN_REASON = 80
# Characters stripped around every text value (and nothing else: `"0042"` stays `"0042"`).
STRIPPED_WHITESPACE = " \t\r\n"
TRUE_WORDS = ("true", "yes", "1", "y")
FALSE_WORDS = ("false", "no", "0", "n")
# The reason code for rows after the as-of date; reported separately so counts reconcile.
AFTER_AS_OF = "after_as_of"
DUPLICATE_IDENTICAL = "duplicate_identical"
# A file whose unusable rows (every quarantined row except after_as_of and exact duplicates) exceed this share is
# read wrongly rather than dirty (a date format, a separator): the run stops and names the top reasons.
MOSTLY_QUARANTINED_SHARE = 0.5
# CSV delimiters segmint detects (see landing/sources.py:detect_delimiter), in tie-break order.
CSV_DELIMITERS = (",", ";", "\t", "|")
# Records after the header used to detect the delimiter (the header and these must agree on a field count).
DIALECT_SAMPLE_RECORDS = 100
# Epoch numbers are told apart by magnitude (see landing/rules.py): below 1e11 seconds, below 1e14 milliseconds,
# below 1e17 microseconds, below 1e20 nanoseconds. Inside the plausible window (1990-2100) they never overlap.
EPOCH_MILLISECONDS_FROM = 1e11
EPOCH_MICROSECONDS_FROM = 1e14
EPOCH_NANOSECONDS_FROM = 1e17
EPOCH_LIMIT = 1e20
# Date orders of `dd/mm/yyyy`-like values (separators `/` `.` `-`); SEGMINT_DATE_FORMAT may be a strptime pattern.
DAY_FIRST = "DMY"
MONTH_FIRST = "MDY"
DATE_ORDERS = (DAY_FIRST, MONTH_FIRST)


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a raw table: its contract name, SQL type and how its raw text is parsed."""

    name: str
    kind: ColumnKind
    sql_type: str
    # A row whose value is empty is quarantined as `missing_<name>` (only for required values).
    value_required: bool = False
    # Amounts that must be above zero (fx rates): zero or less is quarantined as `non_positive_number`.
    positive: bool = False


@dataclass(frozen=True)
class TableSpec:
    """One landing file and the raw table it becomes (one row per accepted record)."""

    name: str
    columns: tuple[ColumnSpec, ...]
    # Columns the header must contain, else the file cannot be read at all (LandingError).
    required_columns: tuple[str, ...]
    # At least one of these must be in the header (events: customer_id or anonymous_id).
    one_of_columns: tuple[str, ...]
    # Records sharing these key values are duplicates (identical: first kept; conflicting: all quarantined).
    key_columns: tuple[str, ...]
    # Rows whose date in this column is after as_of are quarantined as `after_as_of`.
    as_of_column: str
    file_required: bool
    # Without this column in the header, the key is generated (a surrogate id; see landing/rules.py).
    generated_key: str | None = None
    # Records sharing a key with the same contract values but different other fields are line items of one
    # record and are merged into it (orders exports with one row per line item).
    merges_line_items: bool = False
    # (line amount column, total column): with the line column and without the total column in the header, the
    # total of a record is the sum of its line items' amounts.
    line_amount: tuple[str, str] | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        """Contract column names in table order, without the lineage columns."""
        return tuple(column.name for column in self.columns)


def _text(name: str, value_required: bool = False) -> ColumnSpec:
    return ColumnSpec(name, "text", "VARCHAR", value_required)


def _id(name: str, value_required: bool = False) -> ColumnSpec:
    return ColumnSpec(name, "id", "VARCHAR", value_required)


def _timestamp(name: str, value_required: bool = False) -> ColumnSpec:
    return ColumnSpec(name, "timestamp", "TIMESTAMP", value_required)


def _amount(name: str, value_required: bool = False) -> ColumnSpec:
    return ColumnSpec(name, "amount", "DOUBLE", value_required)


# Lineage back to the shop's own export when a source-format translator wrote the row (landing/formats/):
# the source file and its record (line) number. NULL for segmint-format files. The row number is parsed by the
# amount rule (a non-number in a user's own file is quarantined as invalid_number, never a crash).
ORIGIN_COLUMNS = (_text("origin_file"), ColumnSpec("origin_row", "amount", "BIGINT"))
ORIGIN_COLUMN_NAMES = tuple(column.name for column in ORIGIN_COLUMNS)


ORDERS = TableSpec(
    name="orders",
    columns=(
        _id("order_id", value_required=True),
        _id("customer_id", value_required=True),
        _timestamp("ordered_at", value_required=True),
        _amount("order_total", value_required=True),
        ColumnSpec("currency", "currency", "VARCHAR"),
        _amount("discount_amount"),
        _text("discount_code"),
        _text("channel"),
        _text("status"),
        *ORIGIN_COLUMNS,
    ),
    required_columns=("order_id", "customer_id", "ordered_at", "order_total"),
    one_of_columns=(),
    key_columns=("order_id",),
    merges_line_items=True,
    line_amount=("line_total", "order_total"),
    as_of_column="ordered_at",
    file_required=True,
)

CUSTOMERS = TableSpec(
    name="customers",
    columns=(
        _id("customer_id", value_required=True),
        _text("email"),
        _text("phone"),
        _text("first_name"),
        _text("last_name"),
        _text("postal_code"),
        _text("country"),
        _timestamp("signed_up_at"),
        _text("acquisition_channel"),
        ColumnSpec("marketing_consent", "boolean", "BOOLEAN"),
        *ORIGIN_COLUMNS,
    ),
    required_columns=("customer_id",),
    one_of_columns=(),
    key_columns=("customer_id",),
    as_of_column="signed_up_at",
    file_required=False,
)

EVENTS = TableSpec(
    name="events",
    columns=(
        _id("event_id", value_required=True),
        _id("customer_id"),
        _id("anonymous_id"),
        _timestamp("occurred_at", value_required=True),
        _text("event_type", value_required=True),
        _text("page_type"),
        _text("product_id"),
        _text("device"),
        _text("utm_source"),
        _text("utm_campaign"),
        _text("page_url"),
        # Optional, written by the real-time service's log (realtime/) and by any shop that has them: the product
        # category, the campaign's medium and content (utm_medium=affiliate, utm_content=durability) and the
        # event's value (e.g. the cart value). Staging does not read them yet; raw.events keeps them.
        _text("category"),
        _text("utm_medium"),
        _text("utm_content"),
        _amount("value"),
        *ORIGIN_COLUMNS,
    ),
    required_columns=("occurred_at", "event_type"),
    one_of_columns=("customer_id", "anonymous_id"),
    key_columns=("event_id",),
    generated_key="event_id",
    as_of_column="occurred_at",
    file_required=False,
)

# The user's exchange rates: `rate` units of the reporting currency (SEGMINT_CURRENCY) per unit of `currency`,
# valid from `date` until the next date given for that currency.
FX_RATES = TableSpec(
    name="fx_rates",
    columns=(
        ColumnSpec("date", "timestamp", "DATE", value_required=True),
        ColumnSpec("currency", "currency", "VARCHAR", value_required=True),
        ColumnSpec("rate", "amount", "DOUBLE", value_required=True, positive=True),
    ),
    required_columns=("date", "currency", "rate"),
    one_of_columns=(),
    key_columns=("date", "currency"),
    as_of_column="date",
    file_required=False,
)

# Orders come first: the default as-of date is derived from them before the other files are judged.
LANDING_TABLES: tuple[TableSpec, ...] = (ORDERS, CUSTOMERS, EVENTS, FX_RATES)
# Derived columns of a raw table, after the contract columns: the rate that converts an order's amounts to the
# reporting currency (1 when it is already in it); order_total and currency stay as given.
DERIVED_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "orders": (("fx_rate", "DOUBLE", "1.0"),),
}

LINEAGE_COLUMNS_SQL = "source_file VARCHAR, source_row BIGINT"
QUARANTINE_COLUMNS_SQL = "source_file VARCHAR, source_row BIGINT, raw_record VARCHAR, reason VARCHAR"
# rows_accepted counts line-item rows merged into an order (rows_merged of them), so the raw table holds
# rows_accepted - rows_merged rows; ids_generated counts surrogate ids (events without event_id); rows_suppressed
# counts rows of erased persons dropped unread (rows_in = rows_accepted + rows_quarantined + rows_suppressed).
INGEST_LOG_COLUMNS_SQL = (
    "source_file VARCHAR, table_name VARCHAR, rows_in BIGINT, rows_accepted BIGINT, "
    "rows_quarantined BIGINT, rows_after_as_of BIGINT, rows_merged BIGINT, ids_generated BIGINT, rows_suppressed BIGINT"
)
# source_format: segmint | ga4 | segment | shopify (landing/formats/), so event-name presets can follow it.
RUN_CONTEXT_COLUMNS_SQL = (
    "as_of DATE, horizon_days INTEGER, landing_dir VARCHAR, is_demo BOOLEAN, reporting_currency VARCHAR, "
    "source_format VARCHAR"
)
# Temp table of the ingest: rows of erased persons dropped per (table, origin_file) of translated files.
SUPPRESSED_TABLE = "_landing_suppressed"
SUPPRESSED_TABLE_SQL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {SUPPRESSED_TABLE} (table_name VARCHAR, origin_file VARCHAR, n BIGINT)"
)
