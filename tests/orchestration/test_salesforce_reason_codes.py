"""Salesforce reason codes (Segmint_Reason_Codes__c) reach the requests the sync asset sends.

The audience tables carry no top_drivers (MEMBER_COLUMNS): the Salesforce sync joins them from
marts.customer_scores for its members (its SCORES_READ) and declares that read. Materialized against a small
warehouse file and the fake Bulk API 2.0 server, as a live sync.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import dagster as dg
import duckdb
import pytest

from activation.audiences import DestinationConfig
from activation.destinations.salesforce import REASON_CODES_MAX_CHARS
from orchestration.defs.audiences import (
    _audience_asset,
    _sync_asset,
    customer_match_forms,
    sync_ledger_tables,
)
from orchestration.defs.resources import ActivationCredentials, SegmintSettings, SparkEngine, Warehouse
from orchestration.lib import keys
from tests.servers.harness import test_audience
from tests.servers.salesforce import FakeSalesforce
from tests.servers.warehouse import LONG_DRIVERS_CUSTOMER, build_warehouse, top_drivers

N_CUSTOMERS = 30
AUDIENCE = replace(
    test_audience("reasons"),
    destinations=(DestinationConfig("salesforce", "salesforce"), DestinationConfig("webhook", "webhook")),
)
REASON_FIELD = "Segmint_Reason_Codes__c"


def _uploaded_rows(server: FakeSalesforce) -> list[dict[str, str]]:
    """Every Contact row of every CSV the server received (PUT .../batches/), in order."""
    rows = []
    for request in server.requests:
        if request["method"] == "PUT":
            rows += list(csv.DictReader(io.StringIO(request["body"].decode("utf-8"))))
    return rows


@pytest.fixture
def live_salesforce(tmp_path, monkeypatch, request):
    server = FakeSalesforce().start()
    request.addfinalizer(server.stop)
    data = tmp_path / "data"
    data.mkdir()
    warehouse = data / "warehouse.duckdb"
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(data))
    monkeypatch.setenv("SEGMINT_WAREHOUSE", str(warehouse))
    monkeypatch.delenv("SEGMINT_ENGINE", raising=False)
    monkeypatch.setenv("SEGMINT_SALESFORCE_ACCESS_TOKEN", server.token)
    monkeypatch.setenv("SEGMINT_SALESFORCE_INSTANCE_URL", server.url)
    with duckdb.connect(str(warehouse)) as conn:
        build_warehouse(conn, N_CUSTOMERS)
        conn.execute("create schema ml")
        conn.execute("create table ml.clv_predictions as select 'model-1' as model_version")
    return server, warehouse


def _materialize() -> None:
    assets = [customer_match_forms, sync_ledger_tables, _audience_asset(AUDIENCE), _sync_asset(AUDIENCE, "salesforce")]
    resources = {
        "warehouse": Warehouse(),
        "settings": SegmintSettings(),
        "spark": SparkEngine(),
        "credentials": ActivationCredentials(),
    }
    assert dg.materialize(assets, resources=resources).success


def test_only_a_sync_whose_destination_reads_reason_codes_declares_the_read_of_customer_scores():
    salesforce, webhook = _sync_asset(AUDIENCE, "salesforce"), _sync_asset(AUDIENCE, "webhook")
    assert keys.CUSTOMER_SCORES in salesforce.asset_deps[keys.sync(AUDIENCE.name, "salesforce")]
    assert keys.CUSTOMER_SCORES not in webhook.asset_deps[keys.sync(AUDIENCE.name, "webhook")]


def test_the_sync_asset_sends_each_members_reason_codes_and_resends_a_member_whose_reasons_changed(live_salesforce):
    server, warehouse = live_salesforce
    _materialize()
    assert server.violations == []
    with duckdb.connect(str(warehouse)) as conn:
        columns = [row[0] for row in conn.execute("describe audiences.reasons").fetchall()]
        treated = {
            key for (key,) in conn.execute("select customer_id from audiences.reasons where not is_control").fetchall()
        }
    assert "top_drivers" not in columns  # joined by the sync, not stored in every audience table
    sent = {row["Segmint_Customer_Id__c"]: row for row in _uploaded_rows(server)}
    assert set(sent) == treated and len(treated) > 20
    for key, row in sent.items():
        assert row[REASON_FIELD] == (top_drivers(int(key[1:])) or "")[:REASON_CODES_MAX_CHARS], key
    long_key = f"c{LONG_DRIVERS_CUSTOMER:04d}"
    assert long_key in sent and len(sent[long_key][REASON_FIELD]) == REASON_CODES_MAX_CHARS
    assert any(row[REASON_FIELD] == "" for row in sent.values())  # no drivers: the field is sent empty

    # A changed reason is a changed record (the ledger's fingerprint covers it): that member alone is sent again,
    # replaced as any changed record is (its old row with the membership unset, then its new row).
    changed = sorted(treated - {long_key})[0]
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute(
            'update marts.customer_scores set top_drivers = \'[{"feature": "order_count"}]\' where customer_id = ?',
            [changed],
        )
    before = len(server.requests)
    _materialize()
    server.requests = server.requests[before:]
    again = _uploaded_rows(server)
    assert [row["Segmint_Customer_Id__c"] for row in again] == [changed, changed]
    assert [row["Segmint_In_reasons__c"] for row in again] == ["false", "true"]
    assert again[-1][REASON_FIELD] == '[{"feature": "order_count"}]'
    assert server.contacts[changed][REASON_FIELD] == '[{"feature": "order_count"}]'
