"""Great Expectations 1.x suites as code, one builder per table.

Each expectation carries `meta={"severity": ...}`: "error" stops the line (the Dagster check is blocking),
"warn" is reported but lets the run go on. Builders are plain functions so tests can inspect them.

Who owns which rule (one owner per rule):
- dbt owns every single-column invariant of a table dbt builds: keys (`unique`, `not_null`), ranges and signs
  (`value_between`, `non_negative` in dbt_project/tests/generic/), in the model's .yml next to the column's
  description. They run inside the same `dbt build` as the model and fail it, which stops every asset after it.
- GX owns the raw landing tables (Python writes them before dbt runs; nothing else guards them), and on the
  marts only what those column tests cannot say: whole-table expectations (at least one row), relations
  between columns (tenure_days >= recency_days), tolerances (`mostly`), and value sets whose owner is Python
  code, read from it when the suite is built (the RFM segment names of ml/rfm.py), so a new segment is accepted
  without touching this file.
tests/unit/test_expectation_suites.py fails when a mart suite restates a dbt test, and plants a bad row for every
mart expectation.
"""

from __future__ import annotations

from expectations.gx import gx, gxe
from ml import rfm

ERROR = {"severity": "error"}
WARN = {"severity": "warn"}


def raw_orders_suite() -> gx.ExpectationSuite:
    """Accepted orders: keys and dates present; a positive fx_rate on every order (the ingest converts or quarantines
    orders outside the reporting currency, so amounts are never summed across currencies)."""
    return gx.ExpectationSuite(
        name="raw_orders",
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=ERROR),
            gxe.ExpectColumnValuesToNotBeNull(column="order_id", meta=ERROR),
            gxe.ExpectColumnValuesToNotBeNull(column="customer_id", meta=ERROR),
            gxe.ExpectColumnValuesToNotBeNull(column="ordered_at", meta=ERROR),
            gxe.ExpectColumnValuesToNotBeNull(column="order_total", meta=ERROR),
            gxe.ExpectColumnValuesToBeBetween(column="order_total", min_value=-1e7, max_value=1e7, meta=ERROR),
            gxe.ExpectColumnValuesToNotBeNull(column="fx_rate", meta=ERROR),
            gxe.ExpectColumnValuesToBeBetween(column="fx_rate", min_value=0, strict_min=True, meta=ERROR),
            gxe.ExpectColumnValuesToBeBetween(column="discount_amount", min_value=0, meta=WARN),
        ],
    )


def raw_customers_suite() -> gx.ExpectationSuite:
    """Accepted customer rows: an id on every row; ids and emails mostly well-formed."""
    return gx.ExpectationSuite(
        name="raw_customers",
        expectations=[
            gxe.ExpectColumnValuesToNotBeNull(column="customer_id", meta=ERROR),
            gxe.ExpectColumnValuesToBeUnique(column="customer_id", meta=WARN),
            gxe.ExpectColumnValuesToMatchRegex(
                column="email", regex=r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$", mostly=0.95, meta=WARN
            ),
        ],
    )


def raw_events_suite() -> gx.ExpectationSuite:
    """Accepted web events: a timestamp, a type and a visitor on every row."""
    return gx.ExpectationSuite(
        name="raw_events",
        expectations=[
            gxe.ExpectColumnValuesToNotBeNull(column="occurred_at", meta=ERROR),
            gxe.ExpectColumnValuesToNotBeNull(column="event_type", meta=ERROR),
            gxe.ExpectColumnValuesToBeUnique(column="event_id", meta=WARN),
        ],
    )


def customer_features_suite() -> gx.ExpectationSuite:
    """The feature table the models train and score on: not empty, and no customer's last order before the first.

    Keys, ranges and shares are dbt tests in customer_features.yml (see the module docstring)."""
    return gx.ExpectationSuite(
        name="customer_features",
        expectations=[
            gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=ERROR),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="tenure_days", column_B="recency_days", or_equal=True, meta=ERROR
            ),
        ],
    )


def customer_scores_suite() -> gx.ExpectationSuite:
    """The output contract: every RFM segment is one of the rule table's names (ml/rfm.py).

    Keys, non-null scores and their ranges are dbt tests in customer_scores.yml (see the module docstring)."""
    return gx.ExpectationSuite(
        name="customer_scores",
        expectations=[
            gxe.ExpectColumnValuesToBeInSet(column="rfm_segment", value_set=list(rfm.SEGMENT_NAMES), meta=ERROR),
        ],
    )


SUITES = {
    "raw_orders": raw_orders_suite,
    "raw_customers": raw_customers_suite,
    "raw_events": raw_events_suite,
    "customer_features": customer_features_suite,
    "customer_scores": customer_scores_suite,
}
