"""One helper that validates a DataFrame against a suite and summarises the result for a Dagster check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import great_expectations as gx

SAMPLE_ROWS = 5
# Never copied into sample rows: Dagster keeps check metadata for good, and an erased person must not stay in it.
# Raw rows keep source_file/source_row, which locate the row in the warehouse instead (issue 17).
IDENTIFIER_COLUMNS = frozenset(
    {
        "customer_id",
        "anonymous_id",
        "prospect_id",
        "member_key",
        "email",
        "phone",
        "first_name",
        "last_name",
        "postal_code",
    }
)
MASKED = "<masked>"
EXAMPLE_VALUES = 3  # offending values quoted in the one-line description (never of an IDENTIFIER_COLUMNS column)
BOUND_KWARGS = ("min_value", "max_value")


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation that did not hold, with how often and on which rows (or, for a table, what was observed)."""

    expectation: str
    column: str | None
    severity: str
    unexpected_count: int
    unexpected_percent: float
    sample_rows: list[dict] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # offending values (pairs for column-pair expectations)
    observed: str | None = None  # a table-level expectation's observed value and bounds, e.g. "0 (min_value=1)"

    def describe(self) -> str:
        """One line: the expectation, where, how often, and example values (or the observed value of a table)."""
        where = f" on {self.column}" if self.column else ""
        if self.observed is not None and not self.unexpected_count:
            return f"{self.expectation}{where}: observed {self.observed}"
        text = f"{self.expectation}{where}: {self.unexpected_count} rows ({self.unexpected_percent:.2f} %)"
        return text + (f", e.g. {', '.join(self.examples)}" if self.examples else "")


def _example(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_example(item) for item in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class ValidationSummary:
    """Outcome of one suite on one table: error-level failures block, warnings only inform."""

    suite: str
    row_count: int
    evaluated: int
    failed: list[FailedExpectation]

    @property
    def errors(self) -> list[FailedExpectation]:
        return [f for f in self.failed if f.severity == "error"]

    @property
    def warnings(self) -> list[FailedExpectation]:
        return [f for f in self.failed if f.severity != "error"]

    @property
    def passed(self) -> bool:
        return not self.errors


def _context() -> gx.data_context.AbstractDataContext:
    from expectations.gx import gx  # on first use: expectations/gx.py

    context = gx.get_context(mode="ephemeral")
    # Progress bars would flood the run logs with carriage-return lines.
    context.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    return context


# How far an expectation's verdict reaches, for validating only the rows an append added (a batch):
# ROW: each row on its own (a row's verdict does not depend on the others; `mostly` is then judged on the batch);
# KEY: a key's rows together (uniqueness): the batch plus the earlier rows sharing a key with it;
# TABLE_ROWS: the table's row count, judged on the whole table's count.
# Any other expectation (a column's mean, its distinct values...) needs the whole table: batch_scope() is None.
ROW, KEY, TABLE_ROWS = "row", "key", "table_rows"
_KEY_TYPES = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})
_TABLE_ROWS_TYPES = frozenset({"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"})
_ROW_TYPES = frozenset({"expect_multicolumn_sum_to_equal", "expect_select_column_values_to_be_unique_within_record"})
_ROW_PREFIXES = ("expect_column_values_to_", "expect_column_pair_values_")


def batch_scope(expectation) -> str | None:
    """ROW, KEY or TABLE_ROWS (see above), or None for an expectation that only the whole table can answer."""
    kind = expectation.configuration.type
    if kind in _KEY_TYPES:
        return KEY
    if kind in _TABLE_ROWS_TYPES:
        return TABLE_ROWS
    if kind in _ROW_TYPES or kind.startswith(_ROW_PREFIXES):
        return ROW
    return None


def key_columns(suite: gx.ExpectationSuite) -> list[tuple[str, ...]]:
    """The keys the suite's KEY expectations judge (one column, or a compound key's columns)."""
    keys = []
    for expectation in suite.expectations:
        if batch_scope(expectation) == KEY:
            kwargs = expectation.configuration.kwargs
            keys.append(tuple(kwargs.get("column_list") or [kwargs["column"]]))
    return list(dict.fromkeys(keys))


def _results(df: pd.DataFrame, suite: gx.ExpectationSuite) -> list:
    context = _context()
    suite = context.suites.add(suite)
    batch_definition = (
        context.data_sources.add_pandas("segmint")
        .add_dataframe_asset(name=suite.name)
        .add_batch_definition_whole_dataframe("whole_table")
    )
    result = batch_definition.get_batch(batch_parameters={"dataframe": df}).validate(
        suite, result_format={"result_format": "COMPLETE"}
    )
    return list(result.results)


def validate(df: pd.DataFrame, suite: gx.ExpectationSuite, table_rows: int | None = None) -> ValidationSummary:
    """Validate `df` with `suite` in an ephemeral context (nothing is written to disk).

    `table_rows`: `df` holds only some of the table's rows (those an append added, orchestration/defs/
    quality_checks.py), and the table has this many: the row-count expectations are judged by GX on that count
    (a frame of `table_rows` rows and no columns), every other one on `df`."""
    from expectations.gx import gx  # on first use: expectations/gx.py

    df = df.reset_index(drop=True)
    if table_rows is None:
        results = _results(df, suite)
    else:
        counted = [e for e in suite.expectations if batch_scope(e) == TABLE_ROWS]
        rest = [e for e in suite.expectations if batch_scope(e) != TABLE_ROWS]
        by_part = [
            iter(_results(frame, gx.ExpectationSuite(name=suite.name, expectations=part)) if part else [])
            for frame, part in ((pd.DataFrame(index=pd.RangeIndex(table_rows)), counted), (df, rest))
        ]
        # Back in the suite's order, so the description reads as when the whole table is validated.
        results = [next(by_part[batch_scope(e) != TABLE_ROWS]) for e in suite.expectations]
    failed = []
    for item in results:
        if item.success:
            continue
        config = item.expectation_config
        details = item.result or {}
        indexes = list(details.get("unexpected_index_list") or [])[:SAMPLE_ROWS]
        rows = df.iloc[[i for i in indexes if isinstance(i, int)]].to_dict("records")
        sample = [
            {k: (None if pd.isna(v) else MASKED if k in IDENTIFIER_COLUMNS else str(v)) for k, v in row.items()}
            for row in rows
        ]
        kwargs = config.kwargs
        pair = [kwargs[name] for name in ("column_A", "column_B") if kwargs.get(name)]
        shown = not IDENTIFIER_COLUMNS & {kwargs.get("column"), *pair}
        unexpected = (details.get("partial_unexpected_list") or []) if shown else []
        observed = None
        if "observed_value" in details and "unexpected_count" not in details:
            bounds = ", ".join(f"{name}={kwargs[name]}" for name in BOUND_KWARGS if kwargs.get(name) is not None)
            observed = f"{details['observed_value']}" + (f" ({bounds})" if bounds else "")
        failed.append(
            FailedExpectation(
                expectation=config.type,
                column=kwargs.get("column") or (", ".join(pair) if pair else None),
                severity=(config.meta or {}).get("severity", "error"),
                unexpected_count=int(details.get("unexpected_count") or 0),
                unexpected_percent=float(details.get("unexpected_percent") or 0.0),
                sample_rows=sample,
                examples=[_example(value) for value in unexpected[:EXAMPLE_VALUES]],
                observed=observed,
            )
        )
    return ValidationSummary(suite=suite.name, row_count=len(df), evaluated=len(results), failed=failed)
