"""The sync contract for the ad platforms: Meta custom audiences and Google Customer Match."""

import json
from urllib.parse import parse_qs

import pytest

from activation.destinations.google_ads_offline import GoogleAdsOfflineJobAudience, _ads_identifier
from activation.destinations.google_data_manager import GoogleDataManagerAudience
from activation.destinations.meta import MetaCustomAudience
from activation.http import DestinationError
from activation.sync import sync_audience
from tests.servers.clients import client_factory
from tests.servers.google_ads import FakeGoogleAds
from tests.servers.google_data_manager import FakeDataManager
from tests.servers.harness import FAST_POLICY, new_warehouse, test_audience
from tests.servers.meta import HASHED_KEYS, FakeMeta
from tests.servers.sync_contract import *  # noqa: F401,F403 (the contract tests run for every spec below)
from tests.servers.sync_contract import BATCH, Spec, present


def _meta_identity(row):
    keys = json.loads(row["identifiers_json"])
    return tuple(keys[k] for k in HASHED_KEYS)


SPECS = [
    Spec(
        "meta",
        "ad",
        FakeMeta,
        client_factory("meta", max_batch=BATCH),
        lambda s: set(s.members),
        _meta_identity,
        lambda c: present(c["email"]) or present(c["phone"]),
    ),
    Spec(
        "google_data_manager",
        "ad",
        FakeDataManager,
        client_factory("google_data_manager", max_batch=BATCH),
        lambda s: set(s.members),
        lambda row: json.dumps(json.loads(row["identifiers_json"])["userIdentifiers"], sort_keys=True),
        lambda c: True,
    ),
    Spec(
        "google_ads_offline",
        "ad",
        FakeGoogleAds,
        client_factory("google_ads_offline", max_batch=BATCH),
        lambda s: set(s.members),
        lambda row: json.dumps(
            [_ads_identifier(i) for i in json.loads(row["identifiers_json"])["userIdentifiers"]], sort_keys=True
        ),
        lambda c: True,
        mutations_per_batch=3,
    ),
]


@pytest.fixture(params=SPECS, ids=[s.name for s in SPECS])
def spec(request):
    return request.param


def _meta_requests(server, method="POST"):
    out = []
    for request in server.requests:
        if request["method"] == method and request["path"].endswith("/users"):
            form = {k: v[0] for k, v in parse_qs(request["body"].decode()).items()}
            out.append((json.loads(form["payload"]), json.loads(form["session"])))
    return out


@pytest.fixture
def meta_server():
    server = FakeMeta().start()
    yield server
    server.stop()


def test_meta_batches_share_one_session_with_increasing_seq_and_a_last_batch_flag(meta_server):
    conn, audience = new_warehouse(60), test_audience()
    destination = MetaCustomAudience(
        "meta-token", meta_server.audience_id, base_url=meta_server.url, max_batch=BATCH, policy=FAST_POLICY
    )
    report = sync_audience(conn, audience, destination, "run-1", "model-1")
    sessions = [session for _, session in _meta_requests(meta_server)]
    assert len({s["session_id"] for s in sessions}) == 1
    assert [s["batch_seq"] for s in sessions] == list(range(1, len(sessions) + 1))
    assert [s["last_batch_flag"] for s in sessions] == [False] * (len(sessions) - 1) + [True]
    assert {s["estimated_num_total"] for s in sessions} == {report.added}
    assert report.readback["num_received"] == report.readback["sent"] == report.added
    assert report.readback["sessions"][0]["stage"] == "processing"


def test_value_based_meta_seed_carries_predicted_clv_as_lookalike_value(meta_server):
    conn = new_warehouse(60)
    audience = test_audience(name="lookalike_seed", value_column="predicted_clv")
    destination = MetaCustomAudience(
        "meta-token",
        meta_server.audience_id,
        base_url=meta_server.url,
        value_based=True,
        max_batch=BATCH,
        policy=FAST_POLICY,
    )
    sync_audience(conn, audience, destination, "run-1", "model-1")
    payloads = [payload for payload, _ in _meta_requests(meta_server)]
    assert payloads[0]["schema"] == ["EMAIL", "PHONE", "FN", "LN", "ZIP", "COUNTRY", "LOOKALIKE_VALUE"]
    values = sorted(row[-1] for p in payloads for row in p["data"])
    clv = dict(conn.execute("select customer_id, predicted_clv from marts.customer_scores").fetchall())
    assert values == sorted(
        clv[k] for k in conn.execute("select member_key from sync.destination_members").df()["member_key"]
    )
    # a changed value is re-sent (an upsert of the value), nothing else is
    conn.execute("update marts.customer_scores set predicted_clv = predicted_clv + 100 where customer_id = 'c0000'")
    before = len(_meta_requests(meta_server))
    report = sync_audience(
        conn,
        audience,
        MetaCustomAudience(
            "meta-token", meta_server.audience_id, base_url=meta_server.url, value_based=True, policy=FAST_POLICY
        ),
        "run-2",
        "model-1",
    )
    assert (report.added, report.removed) == (1, 0)
    assert _meta_requests(meta_server)[before:][0][0]["data"][0][-1] == clv["c0000"] + 100
    assert meta_server.violations == []


def test_meta_never_sends_more_than_ten_thousand_users_per_request():
    destination = MetaCustomAudience("t", "1", max_batch=50_000)
    assert destination.max_batch == 10_000
    assert GoogleDataManagerAudience("t", "1", "2", max_batch=50_000).max_batch == 10_000


def test_data_manager_readback_reports_googles_record_counts(request):
    server = FakeDataManager().start()
    request.addfinalizer(server.stop)
    conn, audience = new_warehouse(60), test_audience()
    destination = GoogleDataManagerAudience(
        "google-token", server.account_id, server.audience_id, base_url=server.url, max_batch=BATCH, policy=FAST_POLICY
    )
    report = sync_audience(conn, audience, destination, "run-1", "model-1")
    assert report.readback["record_count"] == report.added
    assert report.readback["matches_sent"] is True
    assert {s["requestStatus"] for s in report.readback["statuses"]} == {"SUCCESS"}


def test_data_manager_sends_an_account_id_written_with_dashes_as_digits(request):
    server = FakeDataManager(account_id="1234567890").start()
    request.addfinalizer(server.stop)
    conn, audience = new_warehouse(20), test_audience()
    destination = GoogleDataManagerAudience(
        "google-token",
        "123-456-7890",
        server.audience_id,
        login_account_id="987-654-3210",
        base_url=server.url,
        policy=FAST_POLICY,
    )
    report = sync_audience(conn, audience, destination, "run-1", "model-1")
    assert server.violations == [] and report.added > 0
    sent = json.loads(server.requests[0]["body"])["destinations"][0]
    assert sent["operatingAccount"]["accountId"] == "1234567890" and sent["loginAccount"]["accountId"] == "9876543210"
    offline = GoogleAdsOfflineJobAudience("t", "d", "123-456-7890", "42", login_customer_id="987-654-3210")
    assert offline.user_list == "customers/1234567890/userLists/42"  # one rule, shared by both Google destinations
    assert offline.http.headers["login-customer-id"] == "9876543210"


def test_data_manager_live_sync_refuses_a_placeholder_account_id_in_one_line(request, tmp_path):
    server = FakeDataManager().start()
    request.addfinalizer(server.stop)
    conn, audience = new_warehouse(20), test_audience()
    live = GoogleDataManagerAudience(
        "google-token", "GOOGLE_ADS_CUSTOMER_ID", server.audience_id, base_url=server.url, policy=FAST_POLICY
    )
    with pytest.raises(DestinationError, match="operating_account_id must be a numeric Google account id"):
        sync_audience(conn, audience, live, "run-1", "model-1")
    assert server.requests == []
    dry = GoogleDataManagerAudience("google-token", "GOOGLE_ADS_CUSTOMER_ID", server.audience_id, dry_run_dir=tmp_path)
    assert sync_audience(conn, audience, dry, "run-2", "model-1", dry_run=True).added > 0
