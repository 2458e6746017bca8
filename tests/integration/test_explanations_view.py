"""marts.customer_explanations on the shared demo deployment (no new whole-graph run): a view with three rows per
customer of customer_features, every sentence and JSON evidence present, and only small tables of texts stored."""

from __future__ import annotations

import json

import duckdb
import pytest

pytestmark = pytest.mark.slow


def test_the_view_explains_every_customer_from_small_tables(operated):
    with duckdb.connect(str(operated.warehouse), read_only=True) as conn:
        kind = conn.execute(
            "select table_type from information_schema.tables"
            " where table_schema = 'marts' and table_name = 'customer_explanations'"
        ).fetchone()
        customers = conn.execute("select count(*) from marts.customer_features").fetchone()[0]
        counts = dict(conn.execute(
            "select segment_kind, count(*) from marts.customer_explanations"
            " where explanation is not null and evidence is not null and segment is not null group by all"
        ).fetchall())  # fmt: skip
        stored = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'ml' and table_name like '%explanation%'"
        ).fetchone()[0]
        small = [conn.execute(f"select count(*) from ml.{t}").fetchone()[0]
                 for t in ("explanation_rfm_rules", "explanation_clusters", "explanation_models")]  # fmt: skip
        one = conn.execute(
            "select segment_kind, evidence from marts.customer_explanations"
            " where customer_id = (select min(customer_id) from marts.customer_features)"
        ).fetchall()
    assert kind == ("VIEW",)
    assert counts == {"rfm": customers, "behavioral": customers, "predicted_value": customers}
    assert stored == 3 and small[0] == 125 and max(small) < 200  # O(rules + clusters + models), not per customer
    assert {k for k, _ in one} == {"rfm", "behavioral", "predicted_value"}
    assert all(isinstance(json.loads(evidence), dict) for _, evidence in one)
