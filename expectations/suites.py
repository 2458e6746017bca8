"""Great Expectations 1.x suites as code, one builder per table.

Each expectation carries `meta={"severity": ...}`: "error" stops the line (the Dagster check is blocking),
"warn" is reported but lets the run go on. Builders are plain functions so tests can inspect them.
Names the suites check come from their owners, read when a suite is built: the RFM segment names from the rule
table in ml/rfm.py, the behaviour ratio columns from ml/feature_columns.py. A new RFM segment or behaviour ratio
is checked without touching this file.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from ml import feature_columns, rfm

ERROR = {"severity": "error"}
WARN = {"severity": "warn"}

ORDER_RATIO_COLUMNS = ("discounted_order_share",)  # from orders, in [0, 1] like the behaviour ratios


def share_columns() -> list[str]:
    """Feature columns that are shares or rates, so must lie in [0, 1]."""
    return [*feature_columns.BEHAVIOUR_RATIOS, *ORDER_RATIO_COLUMNS]


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
            gxe.ExpectColumnValuesToMatchRegex(column="email", regex=r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$", mostly=0.95, meta=WARN),
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
    """The feature table the models train and score on: one row per customer, nothing after the cut-off."""
    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=ERROR),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id", meta=ERROR),
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id", meta=ERROR),
        gxe.ExpectColumnValuesToBeBetween(column="order_count", min_value=1, meta=ERROR),
        gxe.ExpectColumnValuesToBeBetween(column="recency_days", min_value=0, meta=ERROR),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="tenure_days", column_B="recency_days", or_equal=True, meta=ERROR
        ),
        gxe.ExpectColumnValuesToBeBetween(column="gross_revenue", min_value=0, meta=ERROR),
    ]
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=1, meta=ERROR)
        for column in share_columns()
    ]
    return gx.ExpectationSuite(name="customer_features", expectations=expectations)


def customer_scores_suite() -> gx.ExpectationSuite:
    """The output contract: every customer scored and segmented, values in range."""
    return gx.ExpectationSuite(
        name="customer_scores",
        expectations=[
            gxe.ExpectColumnValuesToBeUnique(column="customer_id", meta=ERROR),
            gxe.ExpectColumnValuesToNotBeNull(column="predicted_clv", meta=ERROR),
            gxe.ExpectColumnValuesToBeBetween(column="predicted_clv", min_value=0, meta=ERROR),
            gxe.ExpectColumnValuesToNotBeNull(column="purchase_propensity", meta=ERROR),
            gxe.ExpectColumnValuesToBeBetween(column="purchase_propensity", min_value=0, max_value=1, meta=ERROR),
            gxe.ExpectColumnValuesToBeInSet(column="rfm_segment", value_set=list(rfm.SEGMENT_NAMES), meta=ERROR),
            gxe.ExpectColumnValuesToNotBeNull(column="behavioral_segment", meta=ERROR),
        ],
    )


SUITES = {
    "raw_orders": raw_orders_suite,
    "raw_customers": raw_customers_suite,
    "raw_events": raw_events_suite,
    "customer_features": customer_features_suite,
    "customer_scores": customer_scores_suite,
}
