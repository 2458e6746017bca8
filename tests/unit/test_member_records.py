"""Column-wise member records (activation/member_records.py) equal the per-member reference, value for value."""

from __future__ import annotations

import random

import duckdb
import pandas as pd
import pytest

from activation import identifiers as ids
from activation import member_records as mr
from activation.audiences import control_fraction, control_fractions, select_members, with_contacts
from activation.destinations.base import text_or_none
from activation.sync import consenting, planned_size
from tests.unit.test_sync_golden_requests import DESTINATIONS, build_golden_warehouse, golden_audience

# Characters where SQL and Python most easily disagree: every ASCII whitespace Python knows (\x1c-\x1f included),
# punctuation, '@', '+', '.', '-', digits with leading zeros, both cases.
ALPHABET = list("aZ0019+-.@_ '\"\\!$=|~`") + ["\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\x00", "\x7f"]
REFERENCE = {
    "n_email": lambda r: ids.normalize_email(r["email"]),
    "n_email_google": lambda r: ids.normalize_email_google(r["email"]),
    "n_country": lambda r: ids.normalize_country(r["country"]),
    "n_phone_e164": lambda r: ids.normalize_phone_e164(r["phone"], r["country"]),
    "n_phone_meta": lambda r: ids.normalize_phone_meta(r["phone"], r["country"]),
    "n_first": lambda r: ids.normalize_name(r["first_name"]),
    "n_last": lambda r: ids.normalize_name(r["last_name"]),
    "n_zip_meta": lambda r: ids.normalize_zip_meta(r["postal_code"], r["country"]),
    "n_postal": lambda r: ids.normalize_postal_code(r["postal_code"], r["country"]),
    "t_first": lambda r: text_or_none(r["first_name"]),
    "t_last": lambda r: text_or_none(r["last_name"]),
}


def _fuzz_text(rng: random.Random) -> str | None:
    if rng.random() < 0.1:
        return None
    templates = [
        lambda: "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12))),
        lambda: rng.choice(["", " ", "00", "+", "0", "\t"]) + str(rng.randint(0, 10**12)) + rng.choice(["", " ", "x"]),
        lambda: (
            f" {rng.choice(['Ab.c', 'a+b', '.', 'x'])}@{rng.choice(['gmail.com', 'GoogleMail.com', 'ex.org', ''])} "
        ),
        lambda: rng.choice(["us", " US", "uk", "Gb", "de", "XX", "u s", "1A", "ca"]),
        lambda: f"{rng.randint(0, 99999):05d}-{rng.randint(0, 9999):04d}" + rng.choice(["", " ", "\x1c"]),
    ]
    return rng.choice(templates)()


def test_ascii_fast_path_matches_the_reference_functions_on_fuzzed_text():
    rng = random.Random(18)
    rows = [{column: _fuzz_text(rng) for column in mr.SOURCE_COLUMNS} for _ in range(4000)]
    members = pd.DataFrame(rows, dtype=object)
    members.insert(0, "customer_id", [f"f{i}" for i in range(len(rows))])
    forms = mr.contact_forms(duckdb.connect(":memory:"), members)
    for column, reference in REFERENCE.items():
        expected = [reference(row) for row in rows]
        got = forms[column].tolist()
        mismatches = [(rows[i], got[i], expected[i]) for i in range(len(rows)) if got[i] != expected[i]]
        assert not mismatches, f"{column}: {mismatches[:3]}"
    assert forms["h_email"].tolist() == [ids.hashed_or_empty(e) for e in forms["n_email"]]
    assert forms["h_country_meta"].tolist() == [
        ids.hashed_or_empty((ids.normalize_country(r["country"]) or "").lower() or None) for r in rows
    ]


def test_contact_forms_are_computed_once_and_reused():
    conn = build_golden_warehouse(duckdb.connect(":memory:"))
    members = with_contacts(conn, select_members(conn, golden_audience()))
    forms = mr.contact_forms(conn, members)
    assert mr.contact_forms(conn, forms) is forms
    assert len(forms) == len(members) and forms["customer_id"].tolist() == members["customer_id"].tolist()


@pytest.mark.parametrize("name", sorted(DESTINATIONS))
def test_column_wise_records_equal_the_per_member_records(name, unstarted_server):
    make_server, make_destination, value_based = DESTINATIONS[name]
    conn = build_golden_warehouse(duckdb.connect(":memory:"))
    members = with_contacts(conn, select_members(conn, golden_audience("predicted_clv" if value_based else None)))
    destination = make_destination(unstarted_server)
    allowed = members[consenting(members, destination.kind)]
    assert planned_size(conn, destination, allowed.assign(is_control=False)) == len(
        [m for m in allowed.to_dict("records") if destination.build_record(m) is not None]
    )
    frame = mr.records_frame(conn, destination, members)
    reference = [r for r in (destination.build_record(m) for m in members.to_dict("records")) if r is not None]
    assert frame["member_key"].tolist() == [r.member_key for r in reference]
    assert frame["fingerprint"].tolist() == [r.fingerprint for r in reference]
    for got, want in zip(frame.itertuples(), reference, strict=True):
        assert (got.identifiers, got.value) == (dict(want.identifiers), want.value), want.member_key
        assert type(got.value) is type(want.value)


def test_control_group_in_duckdb_equals_the_per_customer_hash():
    ids_ = pd.Series([f"C{i:06d}" for i in range(20000)] + ["é1", "x|y", "", "12"])
    fractions = control_fractions(duckdb.connect(":memory:"), ids_, "champions")
    assert fractions.tolist() == [control_fraction(cid, "champions") for cid in ids_]


def test_an_empty_audience_and_unknown_contacts_give_empty_records():
    conn = duckdb.connect(":memory:")
    empty = pd.DataFrame({"customer_id": pd.Series([], dtype=object), "is_control": pd.Series([], dtype=bool)})
    unknown = pd.DataFrame({"customer_id": ["a", "b"], "email": [None, None], "phone": [None, None]}, dtype=object)
    for members in (empty, unknown):
        forms = mr.contact_forms(conn, members)
        assert len(forms) == len(members)
        assert all(value is None for value in forms["n_email"]) and all(value == "" for value in forms["h_email"])
    assert control_fractions(conn, empty["customer_id"], "x").tolist() == []
    webhook = DESTINATIONS["webhook"][1]
    assert (
        len(mr.records_frame(conn, webhook(type("S", (), {"url": "http://h", "path": "/p", "secret": "s"})), empty))
        == 0
    )


@pytest.mark.parametrize("value_column", [None, "predicted_clv"])
def test_forms_read_from_the_audience_table_equal_those_of_the_frame_path(value_column):
    # The assets read an audience table and its contact fields in one query (audience_forms); the frame path
    # (with_contacts + contact_forms) is the one the golden recordings pin: both must give the same frame.
    conn = build_golden_warehouse(duckdb.connect(":memory:"))
    stored = select_members(conn, golden_audience(value_column))[["customer_id", "is_control", "value", "country",
                                                                   "marketing_consent", "predicted_clv"]]  # fmt: skip
    conn.execute("create schema audiences")
    conn.register("_stored", stored)
    conn.execute("create table audiences.golden as select * from _stored")
    table_read = conn.execute("select * from audiences.golden order by customer_id").df()
    expected = mr.contact_forms(conn, with_contacts(conn, table_read))
    got = mr.audience_forms(conn, "audiences.golden", "edge.customer_contacts")
    assert sorted(got.columns) == sorted(expected.columns)
    assert len(got) == len(expected) > 100
    for column in expected.columns:
        assert got[column].tolist() == expected[column].tolist() or (
            got[column].isna().tolist() == expected[column].isna().tolist()
            and got[column].dropna().tolist() == expected[column].dropna().tolist()
        ), column
        assert got[column].dtype == expected[column].dtype, column
    assert any(not str(v).isascii() for v in got["first_name"].dropna())  # the reference-function rows are covered


def test_the_guard_counts_in_sql_what_the_records_would_number_for_every_destination(every_destination):
    # audience_record_counts counts with each destination's MATCHABLE_SQL (ASCII rows) and built records (the
    # others); it must agree with planned_size, which builds every record, including for a destination without
    # MATCHABLE_SQL (a third-party one) and with consent and control filters applied.
    conn = build_golden_warehouse(duckdb.connect(":memory:"))
    audience = golden_audience("predicted_clv")
    stored = select_members(conn, audience)[["customer_id", "is_control", "value", "country", "marketing_consent",
                                             "predicted_clv", "rfm_segment", "behavioral_segment"]]  # fmt: skip
    conn.execute("create schema audiences")
    conn.register("_stored", stored)
    conn.execute("create table audiences.golden as select * from _stored")
    forms = mr.audience_forms(conn, "audiences.golden", "edge.customer_contacts")

    destinations = every_destination  # conftest: every kind, plus Meta counted on built records
    counts = mr.audience_record_counts(conn, "audiences.golden", "edge.customer_contacts", destinations)
    expected = {d.name: planned_size(conn, d, forms) for d in destinations}
    assert counts == expected
    assert len(set(expected.values())) >= 3  # consent, e-mail and identifier rules give different sizes
