"""The sync contract for CRM, email and webhook destinations: HubSpot, Klaviyo, Salesforce, signed webhook."""

import json

import pytest

from activation.destinations.hubspot import HubSpotList
from activation.destinations.klaviyo import KlaviyoList, any_filter
from activation.destinations.salesforce import REASON_CODES_MAX_CHARS, SalesforceContacts, membership_field_name
from activation.http import DestinationError
from activation.sync import sync_audience
from tests.servers.clients import client_factory
from tests.servers.harness import FAST_POLICY, ledger_keys, new_warehouse, test_audience
from tests.servers.hubspot import FakeHubSpot
from tests.servers.klaviyo import FakeKlaviyo
from tests.servers.salesforce import FakeSalesforce
from tests.servers.sync_contract import *  # noqa: F401,F403 (the contract tests run for every spec below)
from tests.servers.sync_contract import BATCH, Spec, present
from tests.servers.warehouse import top_drivers
from tests.servers.webhook import FakeWebhook

SPECS = [
    Spec(
        "hubspot",
        "crm",
        FakeHubSpot,
        client_factory("hubspot", max_batch=BATCH),
        lambda s: set(s.list_members),
        lambda row: row["external_id"],
        lambda c: present(c["email"]),
        mutations_per_batch=2,
    ),
    Spec(
        "webhook",
        "webhook",
        FakeWebhook,
        client_factory("webhook", max_batch=BATCH),
        lambda s: set(s.members),
        lambda row: row["member_key"],
        lambda c: True,
    ),
    Spec(
        "klaviyo",
        "email",
        FakeKlaviyo,
        client_factory("klaviyo", max_batch=BATCH),
        lambda s: {email for email, pid in s.profiles.items() if pid in s.list_members},
        lambda row: json.loads(row["identifiers_json"])["email"],
        lambda c: present(c["email"]),
    ),
    Spec(
        "salesforce",
        "crm",
        FakeSalesforce,
        client_factory("salesforce", max_batch=BATCH),
        lambda s: s.members("Segmint_In_everyone__c"),
        lambda row: row["member_key"],
        lambda c: True,
        mutations_per_batch=3,
    ),
]


@pytest.fixture(params=SPECS, ids=[s.name for s in SPECS])
def spec(request):
    return request.param


def test_salesforce_rows_it_rejects_stay_pending_and_are_reported_with_its_error(request):
    server = FakeSalesforce().start()
    request.addfinalizer(server.stop)
    server.reject_emails = {"customer.0@example.com"}
    conn, audience = new_warehouse(20), test_audience()
    destination = SalesforceContacts(server.token, server.url, audience.name, policy=FAST_POLICY)
    report = sync_audience(conn, audience, destination, "run-1", "model-1")
    assert report.failed == 1 and "INVALID_EMAIL_ADDRESS" in report.failures["c0000"]
    assert "c0000" in ledger_keys(conn, "salesforce", audience.name, "pending_add")
    row = server.contacts["c0002"]
    assert row["Segmint_In_everyone__c"] == "true" and row["Segmint_RFM_Segment__c"] == "loyal"
    assert float(row["Segmint_Predicted_CLV__c"]) == 25.0
    # c0002's drivers are longer than the field: cut to REASON_CODES_MAX_CHARS.
    assert row["Segmint_Reason_Codes__c"] == top_drivers(2)[:REASON_CODES_MAX_CHARS] and len(top_drivers(2)) > 1_000
    status = conn.execute("select status, failed from sync.runs").fetchone()
    assert status == ("partial", 1)
    server.reject_emails = set()
    again = sync_audience(
        conn,
        audience,
        SalesforceContacts(server.token, server.url, audience.name, policy=FAST_POLICY),
        "run-2",
        "model-1",
    )
    assert (again.added, again.failed) == (1, 0)


def test_hubspot_reports_deleted_contacts_as_failures_and_reads_back_the_list(request):
    server = FakeHubSpot().start()
    request.addfinalizer(server.stop)
    conn, audience = new_warehouse(20), test_audience()
    server.contacts["customer.2@example.com"] = "5000"
    server.deleted_record_ids = {"5000"}  # the contact exists by email but HubSpot reports it missing
    report = sync_audience(
        conn,
        audience,
        HubSpotList(server.token, server.list_id, base_url=server.url, policy=FAST_POLICY),
        "run-1",
        "model-1",
    )
    assert report.failures == {"c0002": "HubSpot reports record 5000 missing"}
    assert "c0002" not in ledger_keys(conn, "hubspot", audience.name)
    assert report.readback["agrees_with_ledger"] is True
    assert report.readback["list_size"] == report.added


def test_klaviyo_list_count_read_back_matches_the_ledger(request):
    server = FakeKlaviyo().start()
    request.addfinalizer(server.stop)
    conn, audience = new_warehouse(30), test_audience()
    report = sync_audience(
        conn,
        audience,
        KlaviyoList(server.api_key, server.list_id, base_url=server.url, policy=FAST_POLICY),
        "run-1",
        "model-1",
    )
    assert report.readback["list_size"] == report.readback["ledger_size"] == report.added
    assert report.readback["agrees_with_ledger"] is True


LONG_AUDIENCE = "lapsed_high_value_customers_in_spring"  # 37 characters: Segmint_In_<name> would be 48


@pytest.mark.parametrize("audience", [LONG_AUDIENCE, "high__value", "churn_risk_"])
def test_salesforce_membership_field_is_a_valid_custom_field_for_any_audience_name(request, audience):
    server = FakeSalesforce().start()
    request.addfinalizer(server.stop)
    conn = new_warehouse(20)
    destination = SalesforceContacts(server.token, server.url, audience, policy=FAST_POLICY)
    report = sync_audience(conn, test_audience(audience), destination, "run-1", "model-1")
    assert server.violations == [] and report.failed == 0
    assert server.members(destination.membership_field) == set(server.contacts)
    assert destination.membership_field == membership_field_name(audience)


def test_salesforce_membership_field_names_are_stable_distinct_and_unchanged_when_already_valid():
    assert membership_field_name("everyone") == "Segmint_In_everyone__c"
    assert membership_field_name("a" * 29) == f"Segmint_In_{'a' * 29}__c"  # 40 characters before __c
    long_name = membership_field_name(LONG_AUDIENCE)
    assert long_name == membership_field_name(LONG_AUDIENCE) and len(long_name) == 43
    assert long_name.startswith("Segmint_In_lapsed_high_value_cu_")
    assert (
        len(
            {
                membership_field_name(LONG_AUDIENCE),
                membership_field_name(LONG_AUDIENCE + "s"),
                membership_field_name("a__b"),
                membership_field_name("a_b"),
            }
        )
        == 4
    )


def test_salesforce_refuses_a_configured_field_name_salesforce_would_refuse_before_sending(request):
    server = FakeSalesforce().start()
    request.addfinalizer(server.stop)
    destination = SalesforceContacts(
        server.token, server.url, "everyone", membership_field="Segmint__In__c", policy=FAST_POLICY
    )
    with pytest.raises(DestinationError, match="membership_field 'Segmint__In__c' is not a valid custom field"):
        sync_audience(new_warehouse(20), test_audience(), destination, "run-1", "model-1")
    assert server.requests == []


def test_klaviyo_profile_lookup_filter_has_the_documented_form_without_spaces(request):
    assert any_filter("email", ["a@x.com", "b@y.com"]) == 'any(email,["a@x.com","b@y.com"])'
    server = FakeKlaviyo().start()
    request.addfinalizer(server.stop)
    conn = new_warehouse(20)
    audience = test_audience()
    make = lambda: KlaviyoList(server.api_key, server.list_id, base_url=server.url, policy=FAST_POLICY)  # noqa: E731
    sync_audience(conn, audience, make(), "run-1", "model-1")
    shrunk = test_audience(rule="predicted_clv >= 0 and customer_id <= 'c0009'")
    report = sync_audience(conn, shrunk, make(), "run-2", "model-1")
    lookups = [r["query"]["filter"][0] for r in server.requests if r["path"] == "/api/profiles/"]
    assert report.removed > 0 and lookups and server.violations == []
    assert all(" " not in f and f.startswith('any(email,["') for f in lookups)
