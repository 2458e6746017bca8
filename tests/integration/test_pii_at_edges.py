"""PII stays at the edges: the demo shop's e-mails, phones and names appear only in raw tables and the sync edge.

Reuses the shared whole-graph deployment (tests/integration/conftest.py `operated`): every non-raw, non-edge
table of the warehouse, the Dagster event log (metadata of every materialization and check, and log messages)
and every generated file except the landing files and the destination uploads/requests (tests/integration/pii_scan.py).
"""

from __future__ import annotations

import pytest

from tests.integration.pii_scan import ShopPii, scan_run


@pytest.mark.slow
def test_the_demo_shops_pii_is_found_nowhere_but_in_raw_tables_and_at_the_sync_edge(operated):
    customers = operated.data_dir / "demo" / "landing" / "customers.csv"
    pii = ShopPii.from_customers_csv(customers)
    assert (
        len(pii.emails) > 100 and len(pii.phones) > 100 and len(pii.full_names) > 100
    )  # the scan has something to find
    findings = scan_run(customers, operated.warehouse, operated.data_dir, operated.root / "dagster_home")
    assert not findings, "PII outside raw and the sync edge:\n" + "\n".join(findings[:40])


def test_the_scan_would_find_a_leak_in_a_table_a_file_and_a_sentence(tmp_path):
    # Regression guard for the scan itself: one planted leak of each kind.
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "customer_id,email,phone,first_name,last_name\nc1,Ada.L@Example.com,495-555-5396,Ada,Lovelace\n"
    )
    pii = ShopPii.from_customers_csv(customers)
    assert pii.in_text("sent to ada.l@example.com") == ["email ada.l@example.com"]
    assert pii.in_text("call +1 (495) 555-5396") == ["phone 14955555396"]
    assert pii.in_text("Dear Ada Lovelace,") == ["name ada lovelace"]
    assert pii.in_cells({"lovelace"}) == ["name lovelace"]
    assert pii.in_text("Ada wrote about the analytical engine") == []
