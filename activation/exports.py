"""CSV files in each ad platform's documented customer-list upload format, safe to open in a spreadsheet.

Meta customer list (Meta Business Help "How to format a customer list when creating a custom audience",
read 2026-11): lowercase column headers email, phone, fn, ln, zip, country (+ `value` for a customer list with
customer value); we write SHA-256 hex of the documented normal forms (Meta accepts pre-hashed files) and the
value unhashed.
Google Customer Match (Google Ads Help "Format your customer data file" 7659867 and the hashed-data
guidelines, read 2026-11): headers exactly Email, Phone, First Name, Last Name, Country, Zip; Email, Phone
(E.164), First Name, Last Name hashed SHA-256; Country (2-letter) and Zip unhashed.
Spreadsheet safety (OWASP "CSV Injection"): a cell starting with = + - @ tab or carriage return is prefixed
with a single quote so it is shown as text and never evaluated as a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from activation import identifiers as ids
from activation import member_records as mr
from activation.destinations.meta import meta_identifiers

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
META_CSV_HEADER = ["email", "phone", "fn", "ln", "zip", "country"]
META_VALUE_HEADER = "value"
GOOGLE_CSV_HEADER = ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]


def escape_cell(value: Any) -> str:
    """Cell text that a spreadsheet shows literally: formula-trigger first characters get a leading quote."""
    if value is None or value != value:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def write_csv(path: str | Path, header: list[str], rows: Iterable[Iterable[Any]]) -> int:
    """Write a UTF-8 CSV (every cell escaped) and return the number of data rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow([escape_cell(h) for h in header])
        plain: list[str] = []  # rows csv.writer would not quote, written in one piece
        for row in rows:
            # A plain string that starts with no formula trigger (hashes, codes, most text) is its own cell.
            cells = [c if type(c) is str and not c.startswith(FORMULA_TRIGGERS) else escape_cell(c) for c in row]
            line = ",".join(cells)
            # Exactly what csv.writer writes for a row it quotes nothing in (no delimiter, quote or line break in a
            # cell, not one empty cell), joined in C instead of copied character by character; the rest it writes.
            if line and line.count(",") == len(cells) - 1 and '"' not in line and "\n" not in line and "\r" not in line:
                plain.append(line)
            else:
                _write_lines(handle, plain)
                plain = []
                writer.writerow(cells)
            count += 1
        _write_lines(handle, plain)
    return count


def _write_lines(handle: Any, lines: list[str]) -> None:
    if lines:
        handle.write("\n".join(lines) + "\n")


def meta_rows(members: Iterable[Mapping[str, Any]], with_value: bool) -> list[list[Any]]:
    """Meta customer-list rows: hashed keys in META_CSV_HEADER order (+ value); unmatchable members skipped."""
    rows = []
    for member in members:
        keys = meta_identifiers(member)
        if keys is None:
            continue
        row: list[Any] = [keys["EMAIL"], keys["PHONE"], keys["FN"], keys["LN"], keys["ZIP"], keys["COUNTRY"]]
        if with_value:
            value = member.get("value")
            row.append("" if value is None or value != value else round(max(0.0, float(value)), 2))
        rows.append(row)
    return rows


def google_rows(members: Iterable[Mapping[str, Any]]) -> list[list[Any]]:
    """Customer Match rows in GOOGLE_CSV_HEADER order; members with neither email nor phone nor address skipped."""
    rows = []
    for member in members:
        country = ids.normalize_country(member.get("country"))
        email = ids.normalize_email_google(member.get("email"))
        phone = ids.normalize_phone_e164(member.get("phone"), country)
        first, last = ids.normalize_name(member.get("first_name")), ids.normalize_name(member.get("last_name"))
        postal = ids.normalize_postal_code(member.get("postal_code"), country)
        has_address = bool(first and last and country and postal)
        if not (email or phone or has_address):
            continue
        rows.append(
            [
                ids.hashed_or_empty(email),
                ids.hashed_or_empty(phone),
                ids.hashed_or_empty(first) if has_address else "",
                ids.hashed_or_empty(last) if has_address else "",
                country or "",
                postal or "",
            ]
        )
    return rows


def meta_rows_from_forms(forms: pd.DataFrame, with_value: bool) -> list[list[Any]]:
    """`meta_rows` of every member at once, from the audience's contact forms (member_records.contact_forms)."""
    values = mr.column(forms, "value")
    columns = ("h_email", "h_phone_meta", "h_first", "h_last", "h_zip_meta", "h_country_meta")  # META_CSV_HEADER
    rows = []
    for *keys, value in zip(*(mr.column(forms, c) for c in columns), values, strict=True):
        if not (keys[0] or keys[1]):  # meta_identities: no e-mail and no phone, nothing to match on
            continue
        row: list[Any] = keys
        if with_value:
            row.append("" if value is None or value != value else round(max(0.0, float(value)), 2))
        rows.append(row)
    return rows


def google_rows_from_forms(forms: pd.DataFrame) -> list[list[Any]]:
    """`google_rows` of every member at once, from the audience's contact forms (member_records.contact_forms)."""
    rows = []
    columns = ("h_email_google", "h_phone_e164", "n_first", "n_last", "h_first", "h_last", "n_country", "n_postal")
    for email, phone, first, last, h_first, h_last, country, postal in zip(
        *(mr.column(forms, c) for c in columns), strict=True
    ):
        has_address = bool(first and last and country and postal)
        if not (email or phone or has_address):
            continue
        rows.append(
            [email, phone, h_first if has_address else "", h_last if has_address else "", country or "", postal or ""]
        )
    return rows


def export_audience_csvs(
    members: pd.DataFrame,
    audience_name: str,
    out_dir: str | Path,
    value_based: bool = False,
    conn: duckdb.DuckDBPyConnection | None = None,
) -> dict[str, Path]:
    """Meta and Google upload files for the treated, consenting members of one audience; returns their paths.

    Rows are built column-wise from the members' contact forms (member_records), computed on `conn` (None: an
    in-memory DuckDB); same bytes as meta_rows/google_rows over the same members.
    """
    treated = members[~members["is_control"].astype(bool)]
    allowed = mr.contact_forms(conn, treated[treated["marketing_consent"].fillna(False).astype(bool)])
    out_dir = Path(out_dir)
    meta_header = META_CSV_HEADER + ([META_VALUE_HEADER] if value_based else [])
    paths = {
        "meta": out_dir / f"{audience_name}_meta_customer_list.csv",
        "google": out_dir / f"{audience_name}_google_customer_match.csv",
    }
    write_csv(paths["meta"], meta_header, meta_rows_from_forms(allowed, value_based))
    write_csv(paths["google"], GOOGLE_CSV_HEADER, google_rows_from_forms(allowed))
    return paths
