"""The stored contact forms (edge_forms.customer_match_forms, member_records.refresh_match_forms): computed once per
customer and kept until the contact row changes, read by every sync and export as if computed where read, and
erased with the person."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pandas as pd
import pytest

from activation import member_records as mr
from activation.audiences import select_members
from privacy.erasure import ErasureRequest, erase_subject
from privacy.receipts import HEAD_FILE
from tests.unit.test_sync_golden_requests import build_golden_warehouse, golden_audience

FORMS = mr.MATCH_FORMS_TABLE
CONTACTS = "edge.customer_contacts"
MEMBER_COLUMNS = ["customer_id", "is_control", "value", "country", "marketing_consent", "predicted_clv",
                  "rfm_segment", "behavioral_segment"]  # fmt: skip


def golden(value_column: str | None = "predicted_clv") -> duckdb.DuckDBPyConnection:
    """The golden shop (non-ASCII names, awkward phones and e-mails) with its audience stored as the asset does."""
    conn = build_golden_warehouse(duckdb.connect(":memory:"))
    stored = select_members(conn, golden_audience(value_column))[MEMBER_COLUMNS]
    conn.execute("create schema audiences")
    conn.register("_stored", stored)
    conn.execute("create table audiences.golden as select * from _stored")
    conn.unregister("_stored")
    return conn


def stored_forms(conn: duckdb.DuckDBPyConnection, customer_id: str) -> dict:
    return conn.execute(f"select * from {FORMS} where customer_id = ?", [customer_id]).df().iloc[0].to_dict()


@pytest.mark.parametrize("value_column", [None, "predicted_clv"])
def test_forms_read_from_the_stored_table_equal_the_forms_computed_where_they_are_read(value_column):
    conn = golden(value_column)
    counts = mr.refresh_match_forms(conn, CONTACTS)
    assert counts["computed"] == counts["customers"] == conn.execute(f"select count(*) from {CONTACTS}").fetchone()[0]
    expected = mr.audience_forms(conn, "audiences.golden", CONTACTS)
    got = mr.audience_forms(conn, "audiences.golden", CONTACTS, forms_table=FORMS)
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected) > 100
    for column in expected.columns:
        assert got[column].dtype == expected[column].dtype, column
        assert got[column].isna().tolist() == expected[column].isna().tolist(), column
        assert got[column].dropna().tolist() == expected[column].dropna().tolist(), column
    assert any(not str(v).isascii() for v in got["first_name"].dropna())  # reference-function rows are stored too
    # Without the plain contact fields: the same forms, no e-mail or phone as given.
    lean = mr.audience_forms(conn, "audiences.golden", CONTACTS, forms_table=FORMS, contact_fields=False)
    assert not {"email", "phone", "first_name", "last_name", "postal_code"} & set(lean.columns)
    for column in mr.FORM_COLUMNS:
        assert lean[column].tolist() == got[column].tolist(), column


def test_every_destination_builds_the_same_records_and_the_guard_counts_the_same_from_the_stored_forms(
    every_destination,
):
    conn = golden()
    mr.refresh_match_forms(conn, CONTACTS)

    destinations = every_destination  # conftest: every kind, plus Meta counted on built records
    computed = mr.audience_forms(conn, "audiences.golden", CONTACTS)
    stored = mr.audience_forms(conn, "audiences.golden", CONTACTS, forms_table=FORMS, contact_fields=False)
    for destination in destinations:
        want = mr.records_frame(conn, destination, computed)
        # What a sync step reads: only the forms its destination declares (FORMS_READ), none of the others.
        read = getattr(destination, "FORMS_READ", mr.FORM_COLUMNS)
        lean = mr.audience_forms(
            conn, "audiences.golden", CONTACTS, forms_table=FORMS, contact_fields=False, form_columns=read
        )
        assert not (set(mr.FORM_COLUMNS) - set(read)) & set(lean.columns)
        for got in (mr.records_frame(conn, destination, stored), mr.records_frame(conn, destination, lean)):
            assert got["member_key"].tolist() == want["member_key"].tolist(), destination.name
            assert got["identifiers"].tolist() == want["identifiers"].tolist(), destination.name
            assert got["fingerprint"].tolist() == want["fingerprint"].tolist(), destination.name
            assert got["value"].tolist() == want["value"].tolist(), destination.name
    assert mr.audience_record_counts(
        conn, "audiences.golden", CONTACTS, destinations, forms_table=FORMS
    ) == mr.audience_record_counts(conn, "audiences.golden", CONTACTS, destinations)


def test_an_unchanged_day_computes_no_forms_and_a_changed_contact_row_gets_new_forms():
    conn = golden()
    first = mr.refresh_match_forms(conn, CONTACTS)
    assert mr.refresh_match_forms(conn, CONTACTS) == first | {"kept": first["customers"], "computed": 0, "deleted": 0}
    changed, gone = conn.execute("select customer_id from raw.customers order by customer_id limit 2").fetchall()
    before = stored_forms(conn, changed[0])
    conn.execute("update raw.customers set email = 'New.Address+x@GMail.com ', phone = '+44 20 7946 0958' "
                 "where customer_id = ?", [changed[0]])  # fmt: skip
    conn.execute("delete from raw.customers where customer_id = ?", [gone[0]])

    counts = mr.refresh_match_forms(conn, CONTACTS)

    assert counts == {"customers": first["customers"] - 1, "kept": first["customers"] - 2, "computed": 1, "deleted": 2}
    after = stored_forms(conn, changed[0])
    assert after["n_email"] == "new.address+x@gmail.com" and after["n_email_google"] == "newaddress@gmail.com"
    assert after["h_phone_e164"] == mr.ids.sha256_hex("+442079460958") != before["h_phone_e164"]
    assert after["contact_hash"] != before["contact_hash"]
    assert conn.execute(f"select count(*) from {FORMS} where customer_id = ?", [gone[0]]).fetchone()[0] == 0
    # The stored row is exactly what the forms computed from the new contact row are.
    fresh = mr.contact_forms(conn, conn.execute(f"select * from {CONTACTS} where customer_id = ?", [changed[0]]).df())
    assert {c: after[c] for c in mr.FORM_COLUMNS} == {c: fresh[c].iloc[0] for c in mr.FORM_COLUMNS}


def test_forms_made_by_other_rules_are_computed_again():
    conn = golden()
    first = mr.refresh_match_forms(conn, CONTACTS)
    conn.execute(f"update {FORMS} set forms_version = 'older rules', h_email = 'stale' where customer_id in "
                 f"(select customer_id from {FORMS} limit 5)")  # fmt: skip
    assert mr.refresh_match_forms(conn, CONTACTS)["computed"] == 5
    assert conn.execute(f"select count(*) from {FORMS} where h_email = 'stale'").fetchone()[0] == 0
    assert conn.execute(f"select count(distinct forms_version) from {FORMS}").fetchone()[0] == 1
    assert conn.execute(f"select count(*) from {FORMS}").fetchone()[0] == first["customers"]


def test_a_table_of_an_older_layout_is_rebuilt():
    conn = golden()
    conn.execute("create schema edge_forms")
    conn.execute(f"create table {FORMS} (customer_id varchar, contact_hash varchar, forms_version varchar)")
    conn.execute(f"insert into {FORMS} values ('g0000', 'an md5', 'old')")
    counts = mr.refresh_match_forms(conn, CONTACTS)
    assert counts["computed"] == counts["customers"] == conn.execute(f"select count(*) from {FORMS}").fetchone()[0]


def test_a_sync_refuses_forms_made_by_other_rules_in_one_line():
    conn = golden()
    mr.refresh_match_forms(conn, CONTACTS)
    conn.execute(f"update {FORMS} set forms_version = 'older rules' where customer_id in "
                 f"(select customer_id from {FORMS} limit 3)")  # fmt: skip
    with pytest.raises(mr.StaleMatchFormsError, match="3 rows were made by other normalization rules"):
        mr.audience_forms(conn, "audiences.golden", CONTACTS, forms_table=FORMS)


def test_an_erased_customer_has_no_stored_forms_left(tmp_path):
    conn = golden()
    mr.refresh_match_forms(conn, CONTACTS)
    person = conn.execute(f"select customer_id from {FORMS} where n_email is not null limit 1").fetchone()[0]
    hashed = stored_forms(conn, person)["h_email"]
    # raw.customers as ingest writes it (the golden shop keeps the country as given in country_raw).
    conn.execute("alter table raw.customers add column country varchar")
    conn.execute("update raw.customers set country = country_raw")
    data = tmp_path / "data"
    data.mkdir()

    receipt = erase_subject(
        conn, ErasureRequest(person, datetime(2026, 11, 20), "cli"), "s" * 32, data, [], data / "privacy" / HEAD_FILE
    )

    assert json.loads(receipt["removed_json"])["warehouse_rows"]["edge_forms.customer_match_forms"] == 1
    assert (
        conn.execute(f"select count(*) from {FORMS} where customer_id = ? or h_email = ?", [person, hashed]).fetchone()[
            0
        ]
        == 0
    )
    # The next refresh does not bring the person back (their contact row is gone with them).
    mr.refresh_match_forms(conn, CONTACTS)
    assert conn.execute(f"select count(*) from {FORMS} where customer_id = ?", [person]).fetchone()[0] == 0


def test_a_shop_without_customers_gets_an_empty_forms_table():
    conn = duckdb.connect(":memory:")
    conn.execute("create schema edge")
    conn.register("_none", pd.DataFrame({c: pd.Series(dtype=object) for c in ["customer_id", *mr.SOURCE_COLUMNS]}))
    conn.execute("create view edge.customer_contacts as select * from _none")
    assert mr.refresh_match_forms(conn, CONTACTS) == {"customers": 0, "kept": 0, "computed": 0, "deleted": 0}
    assert conn.execute(f"select count(*) from {FORMS}").fetchone()[0] == 0


@pytest.mark.parametrize("forms_table", [None, FORMS])
def test_score_columns_a_destination_reads_beyond_the_audience_table_are_joined_for_its_members(
    every_destination, forms_table
):
    """Salesforce's reason codes (top_drivers) are not in the audience table: read with its SCORES_READ joined from
    marts.customer_scores, its records equal those built from the selected members, who carry every score column."""
    conn = golden()
    mr.refresh_match_forms(conn, CONTACTS)
    selected = select_members(conn, golden_audience())
    readers = [d for d in every_destination if getattr(d, "SCORES_READ", ())]
    assert [d.name for d in readers] == ["salesforce"]
    for destination in readers:
        members = mr.audience_forms(
            conn,
            "audiences.golden",
            CONTACTS,
            forms_table=forms_table,
            contact_fields=forms_table is None,
            form_columns=destination.FORMS_READ,
            scores="marts.customer_scores",
            score_columns=destination.SCORES_READ,
        )
        assert "top_drivers" in members.columns
        got, want = mr.records_frame(conn, destination, members), mr.records_frame(conn, destination, selected)
        assert got["member_key"].tolist() == want["member_key"].tolist()
        assert got["identifiers"].tolist() == want["identifiers"].tolist()
        assert got["fingerprint"].tolist() == want["fingerprint"].tolist()
        reasons = [identity["Segmint_Reason_Codes__c"] for identity in got["identifiers"]]
        assert all(reasons) and reasons == [text[:1_000] for text in selected["top_drivers"]]
