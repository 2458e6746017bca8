"""Member records built column-wise, once per audience and destination, instead of one Python call per member.

`contact_forms` adds to an audience's members (with their sync-edge contact fields) every normal form the
destinations use (activation/identifiers.py documents each platform's rules) and its SHA-256, computed once per
audience in DuckDB: `n_*` columns hold normalized values (None when unusable), `h_*` their SHA-256 hex ('' when
unusable, as Meta's multi-key rows want). Each destination's `build_records` then assembles its records from these
columns; `records_frame` falls back to the per-member `build_record` for a destination without one.

Exactness: the SQL reproduces the Python reference functions for ASCII text (Python's whitespace, among ASCII, is
\\t \\n \\v \\f \\r \\x1c-\\x1f and space: RE2's `\\s` is not used). A row with any non-ASCII contact field (unicode
case folding, NFC, unicode digits and whitespace) is normalized by the Python reference functions themselves, so
every record, fingerprint and request is byte-identical to the per-member implementation
(tests/unit/test_sync_golden_requests.py, tests/unit/test_member_records.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import pandas as pd

from activation import identifiers as ids
from activation.destinations.base import text_or_none
from activation.ledger import SyncRecord, fingerprint_of

SOURCE_COLUMNS = ("email", "phone", "first_name", "last_name", "postal_code", "country")
# Python's str.strip()/re `\s` whitespace among ASCII characters, as an RE2 character class body.
_WS = r"\t\n\x0b\x0c\r\x1c-\x1f "
# ASCII characters of Unicode categories P* and S* (what identifiers.normalize_name removes).
_PUNCT_SYMBOLS = r"!-/:-@\[-`{-~"
NORMALIZED = (
    "n_email", "n_email_google", "n_country", "n_phone_e164", "n_phone_meta", "n_first", "n_last", "n_zip_meta",
    "n_postal", "t_first", "t_last",
)  # fmt: skip
HASHED = {  # hashed column -> normalized column it hashes
    "h_email": "n_email",
    "h_email_google": "n_email_google",
    "h_phone_e164": "n_phone_e164",
    "h_phone_meta": "n_phone_meta",
    "h_first": "n_first",
    "h_last": "n_last",
    "h_zip_meta": "n_zip_meta",
    "h_country_meta": "n_country_lower",
}
FORM_COLUMNS = (*NORMALIZED, *HASHED)
RECORD_COLUMNS = ["member_key", "identifiers", "value", "fingerprint"]


def _clean(column: str) -> str:
    return f"nullif(regexp_replace({column}, '^[{_WS}]+|[{_WS}]+$', '', 'g'), '')"


def _normalize_sql(relation: str) -> str:
    """SELECT of the normal forms over `relation` (columns row_id + SOURCE_COLUMNS, ASCII rows only)."""
    codes = ", ".join(f"('{country}', '{code}')" for country, code in ids.COUNTRY_CALLING_CODES.items())
    google = ", ".join(f"'{domain}'" for domain in sorted(ids.GOOGLE_MAIL_DOMAINS))
    return f"""
        with typed as (  -- a column that is all None (no contact known) reaches DuckDB untyped
            select row_id, {", ".join(f"{c}::varchar as {c}" for c in SOURCE_COLUMNS)} from {relation}
        ), cleaned as (
            select row_id,
                lower(regexp_replace({_clean("email")}, '[{_WS}]', '', 'g')) as e,
                {_clean("phone")} as p,
                lower({_clean("first_name")}) as f,
                lower({_clean("last_name")}) as l,
                {_clean("postal_code")} as z,
                {_clean("first_name")} as t_first,
                {_clean("last_name")} as t_last,
                case when upper({_clean("country")}) = 'UK' then 'GB' else upper({_clean("country")}) end as c
            from typed
        ), emails as (
            select *,
                case when e <> '' and length(e) - length(replace(e, '@', '')) = 1
                          and not starts_with(e, '@') and not ends_with(e, '@') then e end as n_email,
                case when regexp_full_match(c, '[A-Z]{{2}}') then c end as n_country
            from cleaned
        ), phones as (
            select emails.*, codes.code,
                regexp_replace(p, '[^0-9]', '', 'g') as d,
                starts_with(p, '+') or starts_with(p, '00') as international
            from emails left join (values {codes}) as codes(country, code) on codes.country = emails.n_country
        ), digits as (
            select *,
                case
                    when international then case when starts_with(p, '00') then substr(d, 3) else d end
                    when code is null then null
                    when code = '1' and length(ltrim(d, '0')) = 11 and starts_with(ltrim(d, '0'), '1')
                        then code || substr(ltrim(d, '0'), 2)
                    else code || ltrim(d, '0')
                end as digits,
                split_part(n_email, '@', 1) as local_part,
                split_part(n_email, '@', 2) as domain
            from phones
        ), forms as (
            select row_id, n_email, n_country, t_first, t_last,
                case when domain not in ({google}) then n_email
                     when replace(split_part(local_part, '+', 1), '.', '') = '' then null
                     else replace(split_part(local_part, '+', 1), '.', '') || '@' || domain end as n_email_google,
                case when digits <> '' and not starts_with(digits, '0') and length(digits) between 8 and 15
                     then '+' || digits end as n_phone_e164,
                nullif(trim(regexp_replace(regexp_replace(f, '[{_PUNCT_SYMBOLS}]', '', 'g'), '[{_WS}]+', ' ', 'g')), '')
                    as n_first,
                nullif(trim(regexp_replace(regexp_replace(l, '[{_PUNCT_SYMBOLS}]', '', 'g'), '[{_WS}]+', ' ', 'g')), '')
                    as n_last,
                nullif(case when n_country = 'US' then left(lower(regexp_replace(z, '[{_WS}-]', '', 'g')), 5)
                            else lower(regexp_replace(z, '[{_WS}-]', '', 'g')) end, '') as n_zip_meta,
                upper(regexp_replace(z, '[{_WS}]+', ' ', 'g')) as n_postal
            from digits
        )
        select *, substr(n_phone_e164, 2) as n_phone_meta from forms
    """


def _python_forms(row: dict[str, Any]) -> dict[str, Any]:
    """The normal forms of one row by the reference functions (rows with non-ASCII text)."""
    country = ids.normalize_country(row["country"])
    return {
        "n_email": ids.normalize_email(row["email"]),
        "n_email_google": ids.normalize_email_google(row["email"]),
        "n_country": country,
        "n_phone_e164": ids.normalize_phone_e164(row["phone"], row["country"]),
        "n_phone_meta": ids.normalize_phone_meta(row["phone"], row["country"]),
        "n_first": ids.normalize_name(row["first_name"]),
        "n_last": ids.normalize_name(row["last_name"]),
        "n_zip_meta": ids.normalize_zip_meta(row["postal_code"], row["country"]),
        "n_postal": ids.normalize_postal_code(row["postal_code"], row["country"]),
        "t_first": text_or_none(row["first_name"]),
        "t_last": text_or_none(row["last_name"]),
    }


def _as_text(values: pd.Series) -> pd.Series | list[str | None]:
    """Column values as the reference functions see them (str(value)), None where missing."""
    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        return values.reset_index(drop=True)  # already text; DuckDB reads its missing values as NULL
    return [None if v is None or v != v else (v if isinstance(v, str) else str(v)) for v in python_values(values)]


def contact_forms(conn: duckdb.DuckDBPyConnection | None, members: pd.DataFrame) -> pd.DataFrame:
    """`members` (with their contact fields) plus the normalized (`n_*`, `t_*`) and hashed (`h_*`) columns.

    Idempotent: a frame that already has them is returned unchanged, so one audience's forms serve all its
    destinations. Missing contact columns count as empty. `conn`: any DuckDB connection (only frames are read;
    None: an in-memory one).
    """
    if all(column in members.columns for column in FORM_COLUMNS):
        return members
    if conn is None:
        with duckdb.connect(":memory:") as memory:
            return contact_forms(memory, members)
    source = pd.DataFrame({"row_id": pd.Series(range(len(members)), dtype="int64")})
    for column in SOURCE_COLUMNS:
        values = _as_text(members[column]) if column in members.columns else [None] * len(members)
        source[column] = values if not isinstance(values, list) else pd.Series(values, dtype=object)
    name = "_segmint_contact_sources"
    conn.register(name, source)
    try:
        forms = conn.execute(_normalize_sql(name) + " order by row_id").df()
        ascii_only = " and ".join(
            f"coalesce(strlen({c}::varchar) = length({c}::varchar), true)" for c in SOURCE_COLUMNS
        )
        others = conn.execute(f"select * from {name} where not ({ascii_only}) order by row_id").df()
    finally:
        conn.unregister(name)
    forms = _with_none(forms)
    if len(others):  # non-ASCII text: the reference functions themselves (unicode case, NFC, digits, spaces)
        others = _with_none(others)
        slow = pd.DataFrame([_python_forms(row) for row in others.to_dict("records")], dtype=object)
        positions = others["row_id"].astype("int64").to_numpy()
        for column in NORMALIZED:
            forms.loc[positions, column] = slow[column].to_numpy()
    forms["n_country_lower"] = [c.lower() if c else None for c in forms["n_country"]]
    hashed = _sha256_columns(conn, forms[list(dict.fromkeys(HASHED.values()))])
    out = members.drop(columns=[c for c in FORM_COLUMNS if c in members.columns]).reset_index(drop=True)
    # object dtype: pandas would otherwise infer a string dtype and turn None into NaN (a truthy float)
    for column in NORMALIZED:
        out[column] = pd.Series(forms[column].to_numpy(), index=out.index, dtype=object)
    for column, normalized in HASHED.items():
        out[column] = pd.Series(hashed[normalized].to_numpy(), index=out.index, dtype=object)
    return out


def _with_none(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as Python objects with None (not NaN) for missing values, as the reference functions return."""
    return pd.DataFrame(
        {c: pd.Series([None if v is None or v != v else v for v in frame[c].tolist()], dtype=object) for c in frame}
    )


def _sha256_columns(conn: duckdb.DuckDBPyConnection, normalized: pd.DataFrame) -> pd.DataFrame:
    """SHA-256 hex of each non-empty value (UTF-8 bytes, as identifiers.sha256_hex), '' otherwise, in DuckDB."""
    name = "_segmint_normalized"
    conn.register(name, normalized)
    try:
        # ::varchar: a column that is all None (an empty audience) reaches DuckDB untyped
        select = ", ".join(f"coalesce(sha256(nullif({c}::varchar, '')), '') as {c}" for c in normalized.columns)
        return conn.execute(f"select {select} from {name}").df()
    finally:
        conn.unregister(name)


def member_values(values: pd.Series | None, size: int) -> list[float | None]:
    """base.member_value of each member: the value as a float, None when missing."""
    if values is None:
        return [None] * size
    return [None if v is None or v != v else float(v) for v in python_values(values)]


def python_values(values: pd.Series) -> list[Any]:
    """A column's values as the Python objects to_dict('records') gives (None for a nullable dtype's NA)."""
    if values.dtype == object and all(v is None or type(v) in (str, float, bool, int, dict, list) for v in values):
        return values.tolist()  # already plain Python objects (the contact forms): nothing to convert
    return values.to_frame(name="v").to_dict("list")["v"]


def column(frame: pd.DataFrame, name: str) -> list[Any]:
    """A column's values as Python objects (what to_dict('records') gives), or None for every row when absent."""
    return python_values(frame[name]) if name in frame.columns else [None] * len(frame)


def record_frame(
    keys: list[str],
    identifiers: list[dict[str, Any] | None],
    values: list[float | None] | None = None,
    fingerprints: bool = True,
) -> pd.DataFrame:
    """The records of the members with identifiers (None: unmatchable, left out), with their fingerprints.

    `fingerprints=False` leaves them empty: enough to count the records (the size guard).
    """
    values = values if values is not None else [None] * len(keys)
    kept = [i for i, identity in enumerate(identifiers) if identity is not None]
    kept_identifiers = [identifiers[i] for i in kept]
    return pd.DataFrame(
        {
            "member_key": [keys[i] for i in kept],
            "identifiers": pd.Series(kept_identifiers, dtype=object),
            "value": pd.Series([values[i] for i in kept], dtype=object),
            "fingerprint": [fingerprint_of(identity) for identity in kept_identifiers] if fingerprints else None,
        },
        columns=RECORD_COLUMNS,
    )


def records_frame(
    conn: duckdb.DuckDBPyConnection, destination: Any, members: pd.DataFrame, fingerprints: bool = True
) -> pd.DataFrame:
    """One row per member the destination can identify: member_key, identifiers, value, fingerprint.

    Uses the destination's column-wise `build_records(forms)` when it has one, else its per-member `build_record`.
    A member key given twice keeps its last record (as a dict keyed by member would).
    """
    build: Callable[..., pd.DataFrame] | None = getattr(destination, "build_records", None)
    if build is not None:
        frame = build(contact_forms(conn, members), fingerprints=fingerprints)
        if frame["member_key"].duplicated().any():
            frame = frame.drop_duplicates("member_key", keep="last").reset_index(drop=True)
        return frame
    records = [destination.build_record(member) for member in members.to_dict("records")]
    return record_frame(
        [r.member_key for r in records if r is not None],
        [dict(r.identifiers) for r in records if r is not None],
        [r.value for r in records if r is not None],
    )


def meta_identities(forms: pd.DataFrame) -> list[dict[str, str] | None]:
    """meta.meta_identifiers of every member, from the hashed columns (None without email and phone)."""
    return [
        {"EMAIL": email, "PHONE": phone, "FN": first, "LN": last, "ZIP": zip_code, "COUNTRY": country}
        if email or phone
        else None
        for email, phone, first, last, zip_code, country in zip(
            *(
                column(forms, c)
                for c in ("h_email", "h_phone_meta", "h_first", "h_last", "h_zip_meta", "h_country_meta")
            ),
            strict=True,
        )
    ]


def google_identities(forms: pd.DataFrame) -> list[list[dict[str, Any]] | None]:
    """google_data_manager.google_user_identifiers of every member, from the normalized and hashed columns."""
    out: list[list[dict[str, Any]] | None] = []
    columns = ("h_email_google", "h_phone_e164", "n_first", "n_last", "h_first", "h_last", "n_country", "n_postal")
    for email, phone, given, family, h_given, h_family, country, postal in zip(
        *(column(forms, c) for c in columns), strict=True
    ):
        identifiers: list[dict[str, Any]] = []
        if email:
            identifiers.append({"emailAddress": email})
        if phone:
            identifiers.append({"phoneNumber": phone})
        if given and family and country and postal:  # AddressInfo requires all four fields
            identifiers.append(
                {"address": {"givenName": h_given, "familyName": h_family, "regionCode": country, "postalCode": postal}}
            )
        out.append(identifiers or None)
    return out


def member_keys(forms: pd.DataFrame) -> list[str]:
    """Every member's key (str of customer_id)."""
    return [str(key) for key in python_values(forms["customer_id"])]


def to_record(row: Any) -> SyncRecord:
    """A SyncRecord from one row of a records frame (itertuples), its fingerprint the one already computed."""
    record = SyncRecord(row.member_key, row.identifiers, row.value)
    if isinstance(row.fingerprint, str):
        record.__dict__["fingerprint"] = row.fingerprint  # functools.cached_property's slot: no second hash
    return record
