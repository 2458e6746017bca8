"""Erasure, the ingest suppression list, the receipt chain and the consent check (issue 17, items 1 and 2)."""

from __future__ import annotations

import json
import os
import stat
from datetime import date, datetime
from functools import partial
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from activation import ledger
from activation.audiences import Audience, DestinationConfig
from activation.destinations.base import BatchResult
from activation.destinations.factory import build_destination
from activation.http import ERASED_MARKER
from activation.ledger import SyncRecord
from activation.sync import OWED_REMOVALS_FILE_PREFIX, send_owed_removals, sync_audience
from landing import ingest_landing
from landing.ingest import Suppression
from privacy.consent import members_without_consent
from privacy.erasure import (
    ErasureRequest,
    compact_warehouse,
    erase_subject,
    read_deletion_requests,
    suppressed_hashes,
)
from privacy.receipts import HEAD_FILE, RECEIPTS, append_receipt, verify_chain
from privacy.subjects import PrivacyError, load_salt, subject_hash

SALT = "s" * 64
PERSON, OTHER = "0000042", "0000043"
EMAIL, PHONE = "Ada.Lovelace@Example.com", "495-555-0142"


@pytest.fixture
def conn():
    connection = duckdb.connect()
    yield connection
    connection.close()


# --- salt and hashes -------------------------------------------------------------------------------------------


def test_the_salt_is_created_once_owner_only_and_reused(tmp_path):
    first = load_salt(tmp_path, env={})
    path = tmp_path / "privacy" / "salt"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_salt(tmp_path, env={}) == first and len(first) == 64


def test_the_salt_setting_wins_and_a_short_one_is_refused_in_one_line(tmp_path):
    assert load_salt(tmp_path, env={"SEGMINT_PRIVACY_SALT": "x" * 20}) == "x" * 20
    assert not (tmp_path / "privacy" / "salt").exists()
    with pytest.raises(PrivacyError, match="SEGMINT_PRIVACY_SALT must be at least 16 characters"):
        load_salt(tmp_path, env={"SEGMINT_PRIVACY_SALT": "short"})


def test_a_subject_hash_depends_on_the_salt_and_ignores_surrounding_spaces():
    assert subject_hash(SALT, PERSON) == subject_hash(SALT, f" {PERSON} ")
    assert subject_hash(SALT, PERSON) != subject_hash("t" * 64, PERSON)
    assert PERSON not in subject_hash(SALT, PERSON)


# --- receipt chain -------------------------------------------------------------------------------------------


def _three_receipts(conn, head: Path) -> None:
    for n in range(3):
        append_receipt(conn, f"hash{n}", None, datetime(2026, 11, 26, 3, n, 1, 987), "cli", {"n": n}, head)


def test_a_chain_of_receipts_verifies(conn, tmp_path):
    head = tmp_path / HEAD_FILE
    _three_receipts(conn, head)
    assert verify_chain(conn, head).ok
    assert verify_chain(conn, head).receipts == 3


@pytest.mark.parametrize(
    "tamper, problem",
    [
        (f"update {RECEIPTS} set removed_json = '{{\"n\": 9}}' where seq = 2", "receipt 2 was altered"),
        (f"delete from {RECEIPTS} where seq = 2", "receipt 2 is missing"),
        (f"delete from {RECEIPTS} where seq = 3", "head file says 3"),
        (f"update {RECEIPTS} set previous_hash = row_hash where seq = 3", "receipt 3 does not link to receipt 2"),
    ],
)
def test_editing_or_removing_a_receipt_breaks_the_chain(conn, tmp_path, tamper, problem):
    head = tmp_path / HEAD_FILE
    _three_receipts(conn, head)
    conn.execute(tamper)
    result = verify_chain(conn, head)
    assert not result.ok and problem in result.problem


def test_a_chain_without_its_head_file_does_not_verify(conn, tmp_path):
    head = tmp_path / HEAD_FILE
    _three_receipts(conn, head)
    head.unlink()
    assert "head file" in verify_chain(conn, head).problem


# --- deletion_requests.csv -------------------------------------------------------------------------------------


def test_deletion_requests_are_read_with_their_dates(tmp_path):
    path = tmp_path / "deletion_requests.csv"
    path.write_text("customer_id,requested_at\n0000042,2026-11-20T10:00:00Z\n 0000043 ,\n")
    requests = read_deletion_requests(path)
    assert [(r.customer_id, r.requested_at) for r in requests] == [
        ("0000042", datetime(2026, 11, 20, 10)),
        ("0000043", None),
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ("id,requested_at\n1,2026-01-01\n", "required column 'customer_id' is missing"),
        ("customer_id,requested_at\n,2026-01-01\n", "line 2: customer_id is empty"),
        ("customer_id,requested_at\n1,yesterday\n", "line 2: requested_at 'yesterday' is not a date"),
    ],
)
def test_a_malformed_deletion_requests_file_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "deletion_requests.csv"
    path.write_text(content)
    with pytest.raises(PrivacyError, match=message):
        read_deletion_requests(path)


# --- erasure --------------------------------------------------------------------------------------------------


def _small_warehouse(conn) -> None:
    conn.execute("create schema raw; create schema marts; create schema sync; create schema audiences")
    conn.execute("create table raw.customers (customer_id varchar, email varchar, phone varchar, country varchar)")
    conn.execute(
        f"insert into raw.customers values ('{PERSON}', '{EMAIL}', '{PHONE}', 'US'), "
        f"('{OTHER}', 'other@example.com', null, 'US')"
    )
    conn.execute("create table raw.events (customer_id varchar, anonymous_id varchar)")
    conn.execute(f"insert into raw.events values ('{PERSON}', 'anon-42'), (null, 'anon-42'), ('{OTHER}', 'anon-43')")
    conn.execute("create table raw.quarantine (source_file varchar, raw_record varchar)")
    conn.execute(
        "insert into raw.quarantine values "
        f"('orders.csv', '{json.dumps({'customer_id': PERSON, 'order_total': 'x'})}'), "
        f"('orders.csv', '{json.dumps({'customer_id': PERSON + '1', 'order_total': PERSON})}')"
    )
    conn.execute("create table marts.prospect_features (prospect_id varchar, n integer)")
    conn.execute("insert into marts.prospect_features values ('anon-42', 1), ('anon-43', 2)")
    conn.execute(f"create table audiences.champions as select '{PERSON}' as customer_id, '{EMAIL}' as email")
    ledger.ensure_schema(conn)
    conn.execute(
        f"insert into sync.destination_members values ('meta', 'champions', '{PERSON}', '{{}}', 'f', null, "
        "null, 'confirmed', 'run', null, null, now())"
    )


def test_erasure_removes_the_person_everywhere_but_the_ledger_and_writes_a_hashed_receipt(conn, tmp_path):
    _small_warehouse(conn)
    data, landing = tmp_path / "data", tmp_path / "data" / "demo" / "landing"
    (data / "exports").mkdir(parents=True)
    landing.mkdir(parents=True)
    (data / "exports" / "champions.csv").write_text(f"customer_id\n{PERSON}\n")
    (data / "exports" / "others.csv").write_text(f"customer_id\n{OTHER}\n{PERSON}1\n")  # a longer id is not theirs
    (data / "realtime").mkdir()
    (data / "realtime" / "events.jsonl").write_text(f'{{"id": "{PERSON}"}}\n{{"id": "{OTHER}"}}\n')
    (landing / "customers.csv").write_text(f"customer_id\n{PERSON}\n")

    receipt = erase_subject(
        conn, ErasureRequest(PERSON, datetime(2026, 11, 20), "cli"), SALT, data, [landing], data / "privacy" / HEAD_FILE
    )

    removed = json.loads(receipt["removed_json"])
    assert removed["warehouse_rows"] == {
        "raw.customers": 1,
        "raw.events": 2,
        "raw.quarantine": 1,
        "marts.prospect_features": 1,
        "audiences.champions": 1,
    }
    assert removed["files_deleted"] == ["exports/champions.csv"]
    assert removed["log_lines_removed_from"] == ["realtime/events.jsonl"]
    assert (data / "realtime" / "events.jsonl").read_text() == f'{{"id": "{OTHER}"}}\n'
    assert (data / "exports" / "others.csv").exists() and (landing / "customers.csv").exists()
    # The ledger keeps its row: the next sync needs it to remove the person at the destination.
    assert conn.execute("select count(*) from sync.destination_members").fetchone()[0] == 1
    assert conn.execute("select count(*) from raw.quarantine").fetchone()[0] == 1
    assert receipt["subject_hash"] == subject_hash(SALT, PERSON)
    stored = " ".join(str(v) for v in conn.execute(f"select * from {RECEIPTS}").fetchone())
    assert PERSON not in stored and EMAIL not in stored
    assert suppressed_hashes(conn) == {subject_hash(SALT, PERSON), subject_hash(SALT, "anon-42")}
    assert verify_chain(conn, data / "privacy" / HEAD_FILE).ok


def test_compaction_leaves_no_bytes_of_deleted_rows_in_the_warehouse_file(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    secret = "erase-me-" + "q" * 40
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "create table t as select i, case when i = 7 then ? else 'x' || i end as v from range(2000) r(i)", [secret]
        )
        conn.execute("checkpoint")
        conn.execute("delete from t where i = 7")
        conn.execute("checkpoint")
    compact_warehouse(path)
    assert secret.encode() not in path.read_bytes()
    with duckdb.connect(str(path)) as conn:
        assert conn.execute("select count(*) from t").fetchone()[0] == 1999


# --- suppression at ingest ---------------------------------------------------------------------------------------


def test_suppressed_people_reach_no_raw_table_nor_the_quarantine_and_counts_reconcile(conn, tmp_path):
    (tmp_path / "orders.csv").write_text(
        "order_id,customer_id,ordered_at,order_total\n"
        f"o1,{PERSON},2026-01-02,10\n"
        f"o2,{OTHER},2026-01-03,12\n"
        f"o3, {PERSON} ,not a date,5\n"  # would be quarantined: it must not be stored there either
        "o4,0000044,not a date,5\n"
    )
    (tmp_path / "customers.csv").write_text(f"customer_id,email\n{PERSON},{EMAIL}\n{OTHER},o@example.com\n")
    (tmp_path / "events.csv").write_text(
        "event_id,customer_id,anonymous_id,occurred_at,event_type\n"
        f"e1,{PERSON},anon-42,2026-01-01,page_view\ne2,,anon-42,2026-01-01,page_view\ne3,,anon-43,2026-01-01,page_view\n"
    )
    suppression = Suppression(
        frozenset({subject_hash(SALT, PERSON), subject_hash(SALT, "anon-42")}), partial(subject_hash, SALT)
    )
    report = ingest_landing(conn, tmp_path, date(2026, 1, 31), 90, False, suppression=suppression)

    by_table = {f.table_name: f for f in report.files}
    assert (
        by_table["orders"].rows_in,
        by_table["orders"].rows_accepted,
        by_table["orders"].rows_quarantined,
        by_table["orders"].rows_suppressed,
    ) == (4, 1, 1, 2)
    assert by_table["customers"].rows_suppressed == 1 and by_table["events"].rows_suppressed == 2
    for table in ("orders", "customers", "events", "quarantine"):
        text = conn.execute(f"select * from raw.{table}").df().to_csv()
        assert PERSON not in text.replace(PERSON + "1", "") and "anon-42" not in text and EMAIL not in text
    assert conn.execute("select source_row from raw.quarantine").fetchall() == [(4,)]  # original line numbers
    log = conn.execute(
        "select rows_in, rows_accepted + rows_quarantined + rows_suppressed from raw.ingest_log"
    ).fetchall()
    assert all(rows_in == total for rows_in, total in log)


def test_an_empty_suppression_list_changes_nothing(conn, tmp_path):
    (tmp_path / "orders.csv").write_text(f"order_id,customer_id,ordered_at,order_total\no1,{PERSON},2026-01-02,10\n")
    report = ingest_landing(
        conn, tmp_path, None, 90, False, suppression=Suppression(frozenset(), partial(subject_hash, SALT))
    )
    assert report.files[0].rows_suppressed == 0 and report.files[0].rows_accepted == 1


# --- consent and the sync edge ------------------------------------------------------------------------------------


class FakeAdPlatform:
    """An ad destination that records what it was sent (keys only)."""

    name, kind, max_batch = "fake_ads", "ad", 100

    def __init__(self):
        self.added, self.removed = [], []

    def build_record(self, member):
        return SyncRecord(str(member["customer_id"]), {"EMAIL": f"h-{member['customer_id']}"})

    def begin(self, planned_adds, planned_removes):
        pass

    def send_adds(self, batch):
        self.added += [r.member_key for r in batch]
        return BatchResult(confirmed=[r.member_key for r in batch])

    def send_removes(self, batch):
        self.removed += [r.member_key for r in batch]
        return BatchResult(confirmed=[r.member_key for r in batch])

    def readback(self):
        return {}


AUDIENCE = Audience("vip", "test", "true", (DestinationConfig("fake_ads", "meta"),), control_share=0.0)


def _members(consents: dict[str, bool]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": list(consents),
            "marketing_consent": list(consents.values()),
            "is_control": False,
            "value": None,
        }
    )


def _customers(conn, consents: dict[str, bool]) -> None:
    conn.execute("create schema if not exists raw")
    conn.execute("create or replace table raw.customers (customer_id varchar, marketing_consent boolean)")
    conn.executemany("insert into raw.customers values (?, ?)", list(consents.items()))


def test_a_withdrawn_consent_removes_the_person_from_an_ad_destination_at_the_next_sync(conn):
    platform = FakeAdPlatform()
    _customers(conn, {PERSON: True, OTHER: True})
    sync_audience(
        conn, AUDIENCE, platform, "run-1", None, members=_members({PERSON: True, OTHER: True}), enforce_guard=False
    )
    assert sorted(platform.added) == [PERSON, OTHER] and members_without_consent(conn, "fake_ads", "vip") == 0

    _customers(conn, {PERSON: False, OTHER: True})  # withdrawn in the shop; the destination still holds them
    assert members_without_consent(conn, "fake_ads", "vip") == 1  # the blocking check's failing path
    sync_audience(
        conn, AUDIENCE, platform, "run-2", None, members=_members({PERSON: False, OTHER: True}), enforce_guard=False
    )
    assert platform.removed == [PERSON]
    assert members_without_consent(conn, "fake_ads", "vip") == 0


def test_a_member_without_any_customer_row_counts_as_lacking_consent(conn):
    _customers(conn, {OTHER: True})
    ledger.ensure_schema(conn)
    ledger.mark_pending_add(conn, "fake_ads", "vip", [SyncRecord(PERSON, {"EMAIL": "h"})], "run", None, None)
    assert members_without_consent(conn, "fake_ads", "vip") == 1


def test_a_dry_run_sync_writes_the_removal_owed_to_an_erased_person_without_their_plain_identifiers(conn, tmp_path):
    audience = Audience("vip", "test", "true", (DestinationConfig("webhook", "webhook"),), control_share=0.0)
    destination, dry_run = build_destination(audience.destinations[0], audience, {}, tmp_path)
    assert dry_run
    member = {"customer_id": PERSON, "email": EMAIL, "marketing_consent": True}
    ledger.ensure_schema(conn)
    ledger.add_erasure_removals(conn, "webhook", "vip", [destination.build_record(member)])

    sync_audience(
        conn, audience, destination, "run-2", None, dry_run=True, members=_members({OTHER: True}), enforce_guard=False
    )

    files = {p.name: p.read_text() for p in (tmp_path / "vip" / "webhook").iterdir()}
    removal = [text for text in files.values() if '"remove"' in text]
    assert removal and ERASED_MARKER in removal[0]
    assert not any(PERSON in text or EMAIL.lower() in text.lower() for text in files.values())
    assert OTHER in "".join(files.values())  # the other member's add is written as it is
    assert ledger.erasure_removals(conn, "webhook", "vip") == []  # settled once written


# --- no identifiers in Dagster metadata ---------------------------------------------------------------------------


def test_gx_sample_rows_mask_identifiers_and_keep_the_row_locator():
    from expectations.suites import raw_orders_suite
    from expectations.validate import MASKED, validate

    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2"],
            "customer_id": [PERSON, OTHER],
            "ordered_at": pd.Timestamp("2026-01-01"),
            "order_total": [1e9, 5.0],
            "fx_rate": 1.0,
            "discount_amount": 0.0,
            "source_file": "orders.csv",
            "source_row": [1, 2],
        }
    )
    summary = validate(orders, raw_orders_suite())
    (sample,) = [row for failed in summary.failed for row in failed.sample_rows]
    assert sample["customer_id"] == MASKED and sample["source_row"] == "1" and sample["order_total"] == "1000000000.0"


def test_suppression_on_a_translated_export_is_counted_against_its_source_file(conn, tmp_path):
    import shutil

    landing = tmp_path / "shopify"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "formats" / "shopify", landing)
    suppression = Suppression(frozenset({subject_hash(SALT, "7002")}), partial(subject_hash, SALT))
    ingest_landing(conn, landing, None, 365, False, suppression=suppression)
    assert conn.execute("select customer_id from raw.customers").fetchall() == [("7001",)]
    assert conn.execute(
        "select rows_in, rows_accepted, rows_quarantined, rows_suppressed from raw.ingest_log "
        "where source_file = 'customers_export.csv'"
    ).fetchall() == [(2, 1, 0, 1)]


def test_a_changed_salt_stops_with_one_line_instead_of_letting_erased_people_back(conn):
    from privacy.erasure import verify_salt

    verify_salt(conn, SALT)
    verify_salt(conn, SALT)  # the same salt: fine, every time
    with pytest.raises(PrivacyError, match="the privacy salt changed since the suppression list was written"):
        verify_salt(conn, "t" * 64)


# --- removals owed without waiting for the CLV gate (privacy/owed_removals) -------------------------------------

THIRD = "0000044"


def test_owed_removals_take_out_erased_and_non_consenting_members_only_and_the_next_sync_sends_nothing_twice(conn):
    platform = FakeAdPlatform()
    everyone = _members({PERSON: True, OTHER: True, THIRD: True})
    sync_audience(conn, AUDIENCE, platform, "run-1", None, members=everyone, enforce_guard=False)

    report = send_owed_removals(conn, AUDIENCE, platform, "run-2", erased={PERSON}, without_consent={THIRD})

    assert report is not None and report.removed == 2 and sorted(platform.removed) == [PERSON, THIRD]
    assert list(ledger.load_ledger(conn, "fake_ads", "vip")["member_key"]) == [OTHER]  # the ledger stays true
    status, planned = conn.execute("select status, planned_size from sync.runs where run_id = 'run-2'").fetchone()
    assert status == "succeeded" and planned == 1  # the next size guard compares with what is left
    # The gate opens: the normal sync (PERSON gone from the audience, THIRD without consent) removes nobody again.
    again = sync_audience(
        conn, AUDIENCE, platform, "run-3", None, members=_members({OTHER: True, THIRD: False}), enforce_guard=False
    )
    assert again.removed == 0 and again.added == 0 and sorted(platform.removed) == [PERSON, THIRD]


def test_nothing_owed_sends_nothing_and_records_no_run(conn):
    platform = FakeAdPlatform()
    sync_audience(conn, AUDIENCE, platform, "run-1", None, members=_members({OTHER: True}), enforce_guard=False)
    assert send_owed_removals(conn, AUDIENCE, platform, "run-2", erased={PERSON}, without_consent=set()) is None
    assert platform.removed == []
    assert conn.execute("select count(*) from sync.runs where run_id = 'run-2'").fetchone()[0] == 0


def test_a_dry_run_destination_gets_the_owed_erasure_removal_in_its_own_masked_request_file(conn, tmp_path):
    audience = Audience("vip", "test", "true", (DestinationConfig("webhook", "webhook"),), control_share=0.0)
    destination, dry_run = build_destination(audience.destinations[0], audience, {}, tmp_path)
    member = {"customer_id": PERSON, "email": EMAIL, "marketing_consent": True}
    ledger.ensure_schema(conn)
    ledger.add_erasure_removals(conn, "webhook", "vip", [destination.build_record(member)])

    report = send_owed_removals(conn, audience, destination, "run-2", {PERSON}, set(), dry_run=dry_run)

    files = {p.name: p.read_text() for p in (tmp_path / "vip" / "webhook").iterdir()}
    assert report is not None and report.removed == 1
    assert files and all(name.startswith(OWED_REMOVALS_FILE_PREFIX) for name in files)  # never overwritten by the sync
    assert any('"remove"' in text and ERASED_MARKER in text for text in files.values())
    assert not any(PERSON in text or EMAIL.lower() in text.lower() for text in files.values())
    assert ledger.erasure_removals(conn, "webhook", "vip") == []  # settled once written
    assert send_owed_removals(conn, audience, destination, "run-3", {PERSON}, set(), dry_run=True) is None
