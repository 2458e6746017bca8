"""CSV upload files: each platform's headers, hashing, and spreadsheet formula-injection escaping."""

import csv

import pandas as pd

from activation.audiences import select_members
from activation.exports import GOOGLE_CSV_HEADER, META_CSV_HEADER, escape_cell, export_audience_csvs, write_csv
from activation.identifiers import is_sha256_hex
from tests.servers.harness import new_warehouse, test_audience
from tests.servers.warehouse import FORMULA_NAME

ATTACK = "=cmd|' /C calc'!A0"


def read_rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_cells_starting_with_a_formula_trigger_get_a_leading_quote():
    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", ATTACK):
        assert escape_cell(value) == "'" + value
    assert escape_cell("plain") == "plain"
    assert escape_cell(None) == ""
    assert escape_cell(float("nan")) == ""


def test_the_calc_payload_never_comes_out_unescaped(tmp_path):
    path = tmp_path / "out.csv"
    write_csv(path, ["name", ATTACK], [[ATTACK, "ok"], ["x", ATTACK]])
    for row in read_rows(path):
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert ATTACK not in [cell for row in read_rows(path) for cell in row]
    assert "'" + ATTACK in [cell for row in read_rows(path) for cell in row]


def test_meta_and_google_files_use_the_documented_headers_and_hash_identifiers(tmp_path):
    conn = new_warehouse(30)
    audience = test_audience(name="lookalike_seed", value_column="predicted_clv")
    members = select_members(conn, audience)
    paths = export_audience_csvs(members, audience.name, tmp_path, value_based=True)
    meta, google = read_rows(paths["meta"]), read_rows(paths["google"])
    assert meta[0] == META_CSV_HEADER + ["value"]
    assert google[0] == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"] == GOOGLE_CSV_HEADER
    eligible = members[~members["is_control"] & members["marketing_consent"].fillna(False).astype(bool)]
    assert len(google) - 1 == len(eligible)
    for row in meta[1:]:
        assert all(cell == "" or is_sha256_hex(cell) for cell in row[:6])
        assert float(row[6]) >= 0
    for row in google[1:]:
        assert all(cell == "" or is_sha256_hex(cell) for cell in row[:4])
        assert row[4] == "US" and row[5].startswith("9")  # country and zip stay readable, as Google documents
    text = paths["meta"].read_text() + paths["google"].read_text()
    assert "example.com" not in text.lower() and FORMULA_NAME not in text


def test_export_skips_members_without_consent_and_the_control_group(tmp_path):
    members = pd.DataFrame(
        [
            {"customer_id": "a", "email": "a@x.com", "marketing_consent": True, "is_control": False},
            {"customer_id": "b", "email": "b@x.com", "marketing_consent": False, "is_control": False},
            {"customer_id": "c", "email": "c@x.com", "marketing_consent": None, "is_control": False},
            {"customer_id": "d", "email": "d@x.com", "marketing_consent": True, "is_control": True},
        ]
    )
    paths = export_audience_csvs(members, "t", tmp_path)
    assert len(read_rows(paths["meta"])) == 2 and len(read_rows(paths["google"])) == 2


def test_write_csv_writes_what_csv_writer_writes_for_every_kind_of_cell(tmp_path):
    # Rows csv.writer would not quote are joined directly; the others still go through csv.writer.
    cells = ["plain", "", "a,b", 'say "hi"', "two\nlines", "cr\rhere", " padded ", "=SUM(A1)", "é", None, 2.5, 0]
    rows = [[cells[(i * 7 + j * 3) % len(cells)] for j in range(i % 4 + 1)] for i in range(200)] + [[""], []]
    count = write_csv(tmp_path / "fast.csv", ["h1", "h,2"], rows)
    with (tmp_path / "reference.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(["h1", "h,2"])
        writer.writerows([[escape_cell(cell) for cell in row] for row in rows])
    assert count == len(rows)
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "reference.csv").read_bytes()
