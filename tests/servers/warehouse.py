"""A small warehouse for activation tests: marts.customer_scores + edge.customer_contacts (+ raw.orders) in DuckDB."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

FORMULA_NAME = "=cmd|' /C calc'!A0"


def customers_frame(n: int = 60) -> pd.DataFrame:
    """n customers: every 4th without consent, every 7th with no email but a phone, every 11th with no contact.

    c0003 has a gmail address with dots and a plus tag; c0005 has a formula-injection first name.
    """
    rows = []
    for i in range(n):
        cid = f"c{i:04d}"
        email = f"Customer.{i}@Example.com"
        phone = f"+1 (415) 555-{i:04d}"
        if i % 7 == 6:
            email = None
        if i % 11 == 10:
            email, phone = None, None
        if i == 3:
            email = " Dana.M+shop@GMAIL.com "
        rows.append(
            {
                "customer_id": cid,
                "email": email,
                "phone": phone,
                "first_name": FORMULA_NAME if i == 5 else f"First{i}",
                "last_name": f"O'Last-{i}",
                "postal_code": f"9{i:04d}",
                "country": "us",
                "signed_up_at": pd.Timestamp("2025-01-01"),
                "acquisition_channel": "web",
                "marketing_consent": None if i == 8 else (i % 4 != 1),
                "source_file": "customers.csv",
                "source_row": i + 1,
            }
        )
    return pd.DataFrame(rows)


LONG_DRIVERS_CUSTOMER = 2  # c0002's drivers are longer than Salesforce's reason-code field takes


def top_drivers(i: int) -> str | None:
    """Customer i's explanation as ml/clv_predictions writes it (JSON list of drivers); every 9th has none."""
    if i % 9 == 8:
        return None
    count = 40 if i == LONG_DRIVERS_CUSTOMER else 1 + i % 3
    drivers = [{"feature": f"recency_days_{k}", "contribution": round(0.1 * (i % 7) - 0.25, 3)} for k in range(count)]
    return json.dumps(drivers)


def scores_frame(customers: pd.DataFrame) -> pd.DataFrame:
    """One score row per customer; every customer qualifies for a rule `predicted_clv >= 0`."""
    n = len(customers)
    return pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "predicted_clv": [round(10.0 + 7.5 * i, 2) for i in range(n)],
            "purchase_propensity": [round((i % 10) / 10, 2) for i in range(n)],
            "rfm_segment": ["champions" if i % 3 == 0 else "loyal" for i in range(n)],
            "behavioral_segment": ["researcher" if i % 2 else "bargain_hunter" for i in range(n)],
            "recency_score": [5 - i % 5 for i in range(n)],
            "frequency_score": [4] * n,
            "monetary_score": [4] * n,
            "recency_days": [i * 3 for i in range(n)],
            "order_count": [1 + i % 4 for i in range(n)],
            "total_revenue": [50.0 + i for i in range(n)],
            "top_drivers": [top_drivers(i) for i in range(n)],
            "marketing_consent": [True] * n,  # deliberately wrong: edge.customer_contacts must win
            "has_email": customers["email"].notna(),
        }
    )


def build_warehouse(conn: duckdb.DuckDBPyConnection, n: int = 60) -> duckdb.DuckDBPyConnection:
    """Fill `conn` with raw.customers, the sync-edge view edge.customer_contacts and marts.customer_scores.

    The view has the columns of the dbt view edge.customer_contacts (its SQL, with the dedup, is exercised by the
    whole-graph runs; the ids here are unique).
    """
    customers = customers_frame(n)
    scores = scores_frame(customers)
    for schema in ("raw", "edge", "marts"):
        conn.execute(f"create schema if not exists {schema}")
    conn.register("_customers", customers)
    conn.register("_scores", scores)
    conn.execute("create or replace table raw.customers as select * from _customers")
    conn.execute(
        "create or replace view edge.customer_contacts as select customer_id, email, phone, first_name, last_name, "
        "postal_code, upper(nullif(trim(country), '')) as country, marketing_consent from raw.customers"
    )
    conn.execute("create or replace table marts.customer_scores as select * from _scores")
    conn.unregister("_customers")
    conn.unregister("_scores")
    return conn


def set_scores(conn: duckdb.DuckDBPyConnection, sql_update: str) -> None:
    """Change the scores (e.g. to make members leave an audience) with one UPDATE statement body."""
    conn.execute(f"update marts.customer_scores set {sql_update}")
