"""Member records built column-wise, once per audience and destination, instead of one Python call per member.

`contact_forms` adds to an audience's members (with their sync-edge contact fields) every normal form the
destinations use (activation/identifiers.py documents each platform's rules) and its SHA-256, computed once per
audience in DuckDB: `n_*` columns hold normalized values (None when unusable), `h_*` their SHA-256 hex ('' when
unusable, as Meta's multi-key rows want). Each destination's `build_records` then assembles its records from these
columns; `records_frame` falls back to the per-member `build_record` for a destination without one.
`audience_forms` reads an audience table, its contact fields at the sync edge and their forms in one DuckDB query
(what the Dagster steps use); `audience_record_counts` counts each destination's records for the size guard in
that query too (each destination's `MATCHABLE_SQL`), without building any.

Exactness: the SQL reproduces the Python reference functions for ASCII text (Python's whitespace, among ASCII, is
\\t \\n \\v \\f \\r \\x1c-\\x1f and space: RE2's `\\s` is not used). A row with any non-ASCII contact field (unicode
case folding, NFC, unicode digits and whitespace) is normalized by the Python reference functions themselves, so
every record, fingerprint and request is byte-identical to the per-member implementation
(tests/unit/test_sync_golden_requests.py, tests/unit/test_member_records.py).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from activation import identifiers as ids
from activation.destinations.base import CONSENT_REQUIRED_KINDS, text_or_none
from activation.ledger import SyncRecord, fingerprint_of

SOURCE_COLUMNS = ("email", "phone", "first_name", "last_name", "postal_code", "country")
# Python's str.strip()/re `\s` whitespace among ASCII characters, as an RE2 character class body.
_WS = r"\t\n\x0b\x0c\r\x1c-\x1f "
# ASCII characters of Unicode categories P* and S* (what identifiers.normalize_name removes).
_PUNCT_SYMBOLS = r"!-/:-@\[-`{-~"
# True when every contact field is ASCII (or missing): only then do the SQL normal forms equal the reference ones.
_ASCII_ONLY = " and ".join(f"coalesce(strlen({c}) = length({c}), true)" for c in SOURCE_COLUMNS)
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
            select row_id, {_ASCII_ONLY} as ascii_only,
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
            select row_id, ascii_only, n_email, n_country, t_first, t_last,
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
        forms = conn.execute(f"{_forms_sql(name)} order by row_id").df()
    finally:
        conn.unregister(name)
    out = members.drop(columns=[c for c in FORM_COLUMNS if c in members.columns]).reset_index(drop=True)
    return _with_forms(out, forms, source)


class StaleMatchFormsError(RuntimeError):
    """The stored match forms were made by other rules than this code's (refresh them first)."""


def audience_forms(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    contacts: str,
    where: str | None = None,
    forms_table: str | None = None,
    contact_fields: bool = True,
    form_columns: tuple[str, ...] = FORM_COLUMNS,
    scores: str | None = None,
    score_columns: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The members of an audience table (ordered by customer_id) with their contact fields and contact forms.

    Same frame as contact_forms(with_contacts(members)) over the same table, in one DuckDB query: the contact
    fields are joined at the sync edge (`contacts`, one row per customer) and normalized and hashed where they
    are read, so no pandas frame of contact text is handed back to DuckDB. `where`: an optional filter over the
    members' and the forms' columns (e.g. `not ascii_only`).

    `forms_table` (the Dagster steps: MATCH_FORMS_TABLE, kept by refresh_match_forms): the forms are read from
    it, computed once per run for the customers whose contact row changed, instead of here; `contact_fields=False`
    then leaves the plain contact fields out (the built-in destinations and the exports build from the forms
    alone; only a destination without `build_records` needs them).

    `score_columns` (a destination's SCORES_READ): those of them the audience table does not carry are joined from
    the `scores` relation (marts.customer_scores) for these members only, e.g. Salesforce's top_drivers: a long
    text no other destination reads, not stored in every audience table.
    """
    joined_scores = (scores, score_columns)
    if forms_table is not None:
        return _stored_audience_forms(
            conn, table, contacts, forms_table, where, contact_fields, form_columns, joined_scores
        )
    joined = conn.execute(
        f"{_audience_forms_sql(conn, table, contacts, joined_scores)} {'where ' + where if where else ''} "
        "order by row_id"
    ).df()
    form_names = [c for c in joined.columns if c in _FORM_OUTPUT]
    forms = joined[form_names]
    members = joined.drop(columns=[*form_names, "row_id"])
    if "customer_id" in members.columns:
        members["customer_id"] = members["customer_id"].astype(str)
    return _with_forms(members, forms.reset_index(drop=True), members)


def _scores_sql(members_columns: list[str], joined_scores: tuple[str | None, tuple[str, ...]]) -> tuple[list[str], str]:
    """(select list, join clause) adding to `members` the score columns it lacks, from the scores relation
    (joined_scores: relation, columns wanted); nothing when it has them all."""
    scores, wanted = joined_scores
    missing = [c for c in wanted if c not in members_columns]
    if scores is None or not missing:
        return [], ""
    return [f"scores.{c}" for c in missing], f"left join {scores} as scores on scores.customer_id = members.customer_id"


def _audience_forms_sql(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    contacts: str,
    joined_scores: tuple[str | None, tuple[str, ...]] = (None, ()),
) -> str:
    """SELECT of an audience table's rows with their contact fields (from `contacts`), the score columns it lacks
    (_scores_sql), forms and row_id."""
    columns = [row[0] for row in conn.execute(f"describe {table}").fetchall()]
    score_select, score_join = _scores_sql(columns, joined_scores)
    kept = ", ".join([*(f"members.{c}" for c in columns if c not in _CONTACT_ONLY), *score_select])
    contact_columns = ", ".join(f"contacts.{c}" for c in _CONTACT_ONLY)
    return f"""
        with joined as materialized (
            select row_number() over (order by members.customer_id) - 1 as row_id, {kept}, {contact_columns}
            from {table} as members left join {contacts} as contacts using (customer_id) {score_join}
        ), forms as ({_forms_sql("joined")})
        select joined.*, forms.* exclude (row_id) from joined join forms using (row_id)
    """


def audience_record_counts(
    conn: duckdb.DuckDBPyConnection, table: str, contacts: str, destinations: list[Any], forms_table: str | None = None
) -> dict[str, int]:
    """How many records each destination would hold for an audience table: counted in DuckDB, nothing built.

    Counts the treated members the destination may receive (consent for ad and e-mail kinds) and can identify
    (its `MATCHABLE_SQL` over the contact forms, which equals "build_records gives a record"). Rows with non-ASCII
    contact text, whose forms the reference functions compute, and destinations without `MATCHABLE_SQL` are
    counted on built records (records_frame) instead. Returns destination name -> count.
    `forms_table`: read the forms from it (refresh_match_forms; every row's forms are exact there, so every row is
    counted in SQL) instead of computing them.
    """
    counted = [d for d in destinations if getattr(d, "MATCHABLE_SQL", None)]
    built = [d for d in destinations if not getattr(d, "MATCHABLE_SQL", None)]
    counts = {d.name: 0 for d in destinations}
    treated = "not coalesce(is_control, false)"
    consent = "coalesce(marketing_consent, false)"
    selects = [
        f"count(distinct customer_id) filter (where ascii_only and {treated}"
        f"{' and ' + consent if d.kind in CONSENT_REQUIRED_KINDS else ''} and ({d.MATCHABLE_SQL})) as _count_{i}"
        for i, d in enumerate(counted)
    ]
    if counted and forms_table is not None:
        result = conn.execute(
            f"select {', '.join(_on_members(s) for s in selects)} from {table} as members "
            f"left join {forms_table} as forms on forms.customer_id = members.customer_id"
        ).fetchone()
        counts.update({d.name: int(result[i]) for i, d in enumerate(counted)})
    elif counted:
        # One pass over the sync edge: the counts of the ASCII rows, and the few other rows themselves.
        columns = [row[0] for row in conn.execute(f"describe {table}").fetchall()]
        kept = ", ".join(f"members.{c}" for c in columns if c not in _CONTACT_ONLY)
        contact_columns = ", ".join(f"contacts.{c}" for c in _CONTACT_ONLY)
        result = conn.execute(
            f"""
            with joined as materialized (
                select row_number() over (order by members.customer_id) - 1 as row_id, {kept}, {contact_columns}
                from {table} as members left join {contacts} as contacts using (customer_id)
            ), counts as (
                select {", ".join(selects)}
                from ({_normalize_sql("joined")}) as forms join joined using (row_id)
            ), others as (
                select * from joined where not ({_ASCII_ONLY})
            )
            select counts.*, others.* from counts left join others on true order by others.row_id
            """
        ).df()
        counts.update({d.name: int(result[f"_count_{i}"].iloc[0]) for i, d in enumerate(counted)})
        others = result[result["row_id"].notna()].drop(
            columns=["row_id", *(f"_count_{i}" for i in range(len(counted)))]
        )
        _add_built_counts(conn, counts, counted, others)
    if built:
        _add_built_counts(conn, counts, built, audience_forms(conn, table, contacts, forms_table=forms_table))
    return counts


def _on_members(select: str) -> str:
    """A count of audience_record_counts over members joined to the stored forms (whose rows are all exact)."""
    return select.replace("ascii_only and ", "").replace("distinct customer_id", "distinct members.customer_id")


def _add_built_counts(
    conn: duckdb.DuckDBPyConnection, counts: dict[str, int], destinations: list[Any], members: pd.DataFrame
) -> None:
    """Add to `counts` the records each destination builds for these members (treated, consenting if it must)."""
    members = contact_forms(conn, members[~members["is_control"].astype(bool)].reset_index(drop=True))
    for destination in destinations:
        allowed = members
        if destination.kind in CONSENT_REQUIRED_KINDS:
            allowed = members[members["marketing_consent"].fillna(False).astype(bool)]
        records = records_frame(conn, destination, allowed, fingerprints=False)
        counts[destination.name] += int(records["member_key"].nunique())


def _stored_audience_forms(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    contacts: str,
    forms_table: str,
    where: str | None,
    contact_fields: bool,
    form_columns: tuple[str, ...] = FORM_COLUMNS,
    joined_scores: tuple[str | None, tuple[str, ...]] = (None, ()),
) -> pd.DataFrame:
    """audience_forms with the forms read from `forms_table` (one row per customer; see refresh_match_forms);
    `form_columns`: only these forms (a destination's FORMS_READ), in FORM_COLUMNS order; `joined_scores`: score
    columns joined for the members (_scores_sql).

    Raises StaleMatchFormsError when rows of it were made by other rules (code upgraded, forms not refreshed).
    """
    stale = conn.execute(f"select count(*) from {forms_table} where forms_version <> ?", [forms_version()]).fetchone()[
        0
    ]
    if stale:
        raise StaleMatchFormsError(
            f"{forms_table}: {stale} rows were made by other normalization rules than this code's; "
            "materialize edge_forms/customer_match_forms (it runs in every segmint_refresh) before syncing"
        )
    columns = [row[0] for row in conn.execute(f"describe {table}").fetchall()]
    score_select, score_join = _scores_sql(columns, joined_scores)
    kept = [*(f"members.{c}" for c in columns if c not in _CONTACT_ONLY), *score_select]
    plain = [f"contacts.{c}" for c in _CONTACT_ONLY] if contact_fields else []
    # A member without a contact row has no forms row: unusable hashes are '' as contact_forms gives them.
    forms = [f"forms.{c}" for c in NORMALIZED if c in form_columns]
    forms += [f"coalesce(forms.{c}, '') as {c}" for c in HASHED if c in form_columns]
    join_contacts = f"left join {contacts} as contacts on contacts.customer_id = members.customer_id"
    rows = conn.sql(
        f"select {', '.join([*kept, *plain, *forms])} from {table} as members "
        f"left join {forms_table} as forms on forms.customer_id = members.customer_id "
        f"{join_contacts if contact_fields else ''} {score_join} {'where ' + where if where else ''} "
        "order by members.customer_id"
    ).to_arrow_table()
    # The forms straight from Arrow to Python strings (None where missing): DuckDB's .df() made them Python strings,
    # pandas then inferred its Arrow string dtype and _objects made Python strings again, twice the work. The other
    # columns go through DuckDB's .df() as before (same dtypes).
    others = [name for name in rows.column_names if name not in FORM_COLUMNS]
    joined = conn.from_arrow(rows.select(others)).df()
    if "customer_id" in joined.columns:
        joined["customer_id"] = joined["customer_id"].astype(str)
    # object dtype: pandas would otherwise infer a string dtype and turn None into NaN (a truthy float)
    for column in (c for c in FORM_COLUMNS if c in form_columns):
        joined[column] = pd.Series(rows.column(column).to_numpy(zero_copy_only=False), index=joined.index, dtype=object)
    return joined


# The per-customer contact forms, kept between runs (an asset: orchestration/defs/audiences.py). Personal data like
# the contact fields it is made from (plain normalized e-mail and names for the CRMs, SHA-256 hashes for the ad
# platforms), so it is part of the sync edge: schema `edge_forms` (Python's, as `edge` is dbt's), which the PII
# rules treat like `edge`; erasure deletes a person's row from it like from every table with a customer_id.
MATCH_FORMS_TABLE = "edge_forms.customer_match_forms"
# What a customer's forms are computed from; a row whose hash differs from the contact row's is computed again.
# DuckDB's 64-bit hash (half the cost of an md5 of the fields as JSON at 1 M rows): a collision would only keep one
# changed row's old forms, with odds of 2^-64 per changed row; its values may change with DuckDB's version, which is
# therefore part of forms_version (an upgrade recomputes every row once).
_CONTACT_HASH = f"hash({', '.join(SOURCE_COLUMNS)})"


@functools.cache
def forms_version() -> str:
    """A fingerprint of the rules that make the forms (SQL, reference functions, calling codes): a stored row made
    by other rules (an upgrade of this module) is computed again."""
    rules = [
        _forms_sql("r"),
        _CONTACT_HASH,
        duckdb.__version__,
        inspect.getsource(ids),
        inspect.getsource(_python_forms),
        inspect.getsource(text_or_none),
    ]
    return ids.sha256_hex("\n".join(rules))[:16]


def refresh_match_forms(
    conn: duckdb.DuckDBPyConnection, contacts: str, table: str = MATCH_FORMS_TABLE
) -> dict[str, int]:
    """Bring `table` (one row per customer of `contacts`: customer_id, contact_hash (_CONTACT_HASH), forms_version and every
    FORM_COLUMNS form) in step with the contact rows, computing forms only for customers whose contact fields
    changed since the last refresh (or who are new, or whose row was made by other rules); rows of customers no
    longer in `contacts` are deleted.

    ASCII rows are computed in DuckDB, the others by the reference functions (contact_forms). Returns counts:
    customers (= kept + computed), kept, computed, deleted (stale or gone rows).
    """
    schema, name = table.split(".")
    conn.execute(f"create schema if not exists {schema}")
    layout = [("customer_id", "VARCHAR"), ("contact_hash", "UBIGINT"), ("forms_version", "VARCHAR")]
    layout += [(c, "VARCHAR") for c in FORM_COLUMNS]
    found = conn.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [schema, name],
    ).fetchall()
    if found and [tuple(row) for row in found] != layout:  # made by an older layout of this code: derived, rebuilt
        conn.execute(f"drop table {table}")
    columns = ", ".join(f"{c} {t}" + (" not null" if i < 3 else "") for i, (c, t) in enumerate(layout))
    conn.execute(f"create table if not exists {table} ({columns})")
    state, changed = "_segmint_contact_state", "_segmint_changed_contacts"
    typed = ", ".join(f"{c}::varchar as {c}" for c in SOURCE_COLUMNS)
    try:
        conn.execute(
            f"create or replace temp table {state} as select customer_id, {typed}, {_CONTACT_HASH} as contact_hash "
            f"from (select customer_id::varchar as customer_id, {typed} from {contacts})"
        )
        deleted = conn.execute(
            f"delete from {table} as stored where forms_version <> ? or not exists (select 1 from {state} as state "
            "where state.customer_id = stored.customer_id and state.contact_hash = stored.contact_hash)",
            [forms_version()],
        ).fetchone()[0]
        conn.execute(
            f"create or replace temp table {changed} as select row_number() over () - 1 as row_id, state.* "
            f"from {state} as state anti join {table} as stored on stored.customer_id = state.customer_id"
        )
        names = ", ".join(f"forms.{c}" for c in FORM_COLUMNS)
        conn.execute(
            f"insert into {table} select changed.customer_id, changed.contact_hash, ?, {names} "
            f"from {changed} as changed join ({_forms_sql(changed)}) as forms using (row_id) where forms.ascii_only",
            [forms_version()],
        )
        others = conn.execute(f"select * from {changed} where not ({_ASCII_ONLY}) order by row_id").df()
        if len(others):  # unicode case folding, NFC, unicode digits and spaces: the reference functions
            forms = contact_forms(conn, others)
            frame = forms[["customer_id", "contact_hash", *FORM_COLUMNS]].assign(forms_version=forms_version())
            conn.register("_segmint_other_forms", frame)
            try:
                conn.execute(
                    f"insert into {table} select customer_id, contact_hash, forms_version, "
                    f"{', '.join(FORM_COLUMNS)} from _segmint_other_forms"
                )
            finally:
                conn.unregister("_segmint_other_forms")
        customers, computed = conn.execute(
            f"select (select count(*) from {state}), (select count(*) from {changed})"
        ).fetchone()
    finally:
        conn.execute(f"drop table if exists {state}")
        conn.execute(f"drop table if exists {changed}")
    return {"customers": customers, "kept": customers - computed, "computed": computed, "deleted": int(deleted)}


# Contact fields that only the sync edge has (the audience table carries country and consent itself).
_CONTACT_ONLY = ("email", "phone", "first_name", "last_name", "postal_code")
_FORM_OUTPUT = frozenset({*FORM_COLUMNS, "n_country_lower", "ascii_only"})


def _forms_sql(relation: str) -> str:
    """Normal forms, their SHA-256 hex ('' when unusable) and the ascii_only flag of every row of `relation`."""
    hashes = ", ".join(f"coalesce(sha256(nullif({n}, '')), '') as {h}" for h, n in HASHED.items())
    return f"select *, {hashes} from (select *, lower(n_country) as n_country_lower from ({_normalize_sql(relation)}))"


def _with_forms(out: pd.DataFrame, forms: pd.DataFrame, source: pd.DataFrame) -> pd.DataFrame:
    """`out` plus the form columns of `forms` (row-aligned), rows with non-ASCII text redone by the reference
    functions (unicode case, NFC, digits, spaces); values as Python objects with None where missing."""
    objects = {c: _objects(forms[c]) for c in (*NORMALIZED, *HASHED)}
    others = np.flatnonzero(~forms["ascii_only"].to_numpy(dtype=bool))
    if len(others):
        rows = _with_none(source.iloc[others][list(c for c in SOURCE_COLUMNS if c in source.columns)])
        for position, row in zip(others, rows.to_dict("records"), strict=True):
            slow = _python_forms({c: row.get(c) for c in SOURCE_COLUMNS})
            slow["n_country_lower"] = slow["n_country"].lower() if slow["n_country"] else None
            for column in NORMALIZED:
                objects[column][position] = slow[column]
            for column, normalized in HASHED.items():
                objects[column][position] = ids.hashed_or_empty(slow[normalized])
    # object dtype: pandas would otherwise infer a string dtype and turn None into NaN (a truthy float)
    for column, values in objects.items():
        out[column] = pd.Series(values, index=out.index, dtype=object)
    return out


def _objects(values: pd.Series) -> np.ndarray:
    """A column's values as an object array of Python values, None (not NaN) where missing."""
    array = values.to_numpy(dtype=object, na_value=None)
    return array.copy() if not array.flags.writeable else array


def _with_none(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as Python objects with None (not NaN) for missing values, as the reference functions return."""
    return pd.DataFrame(
        {c: pd.Series([None if v is None or v != v else v for v in frame[c].tolist()], dtype=object) for c in frame}
    )


def member_values(values: pd.Series | None, size: int) -> list[float | None]:
    """base.member_value of each member: the value as a float, None when missing."""
    if values is None:
        return [None] * size
    return [None if v is None or v != v else float(v) for v in python_values(values)]


def python_values(values: pd.Series) -> list[Any]:
    """A column's values as the Python objects to_dict('records') gives (None for a nullable dtype's NA)."""
    if values.dtype == object and all(v is None or type(v) in (str, float, bool, int, dict, list) for v in values):
        return values.tolist()  # already plain Python objects (the contact forms): nothing to convert
    if isinstance(values.dtype, pd.StringDtype):  # text (customer ids): what to_dict gives, without a call per value
        missing = None if values.dtype.na_value is pd.NA else values.dtype.na_value
        return values.to_numpy(dtype=object, na_value=missing).tolist()
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
            # object, not pandas' Arrow-backed text: the sync reads every key back one by one
            "member_key": pd.Series([keys[i] for i in kept], dtype=object),
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
        read = getattr(destination, "FORMS_READ", FORM_COLUMNS)  # members read with only these forms have them
        forms = members if all(c in members.columns for c in read) else contact_forms(conn, members)
        frame = build(forms, fingerprints=fingerprints)
        if frame["member_key"].duplicated().any():
            frame = frame.drop_duplicates("member_key", keep="last").reset_index(drop=True)
        return frame
    records = [destination.build_record(member) for member in members.to_dict("records")]
    return record_frame(
        [r.member_key for r in records if r is not None],
        [dict(r.identifiers) for r in records if r is not None],
        [r.value for r in records if r is not None],
    )


# The contact forms each kind of builder reads (a destination's FORMS_READ): a sync step reads only these from the
# stored forms (each form column is 180 k Python strings per step at 1 M customers). A column left out of a
# declaration would read as missing: tests/unit/test_customer_match_forms.py builds every destination's records
# from its declared forms alone and from all of them.
META_FORMS = ("h_email", "h_phone_meta", "h_first", "h_last", "h_zip_meta", "h_country_meta")
GOOGLE_FORMS = ("h_email_google", "h_phone_e164", "n_first", "n_last", "h_first", "h_last", "n_country", "n_postal")
EMAIL_AND_NAMES_FORMS = ("n_email", "t_first", "t_last")
EMAIL_FORMS = ("n_email",)

# "meta_identities gives an identity", over the contact forms in SQL (the size guard counts with it).
META_MATCHABLE_SQL = "coalesce(n_email, '') <> '' or coalesce(n_phone_meta, '') <> ''"  # h_* <> '', unhashed


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


# "google_identities gives identifiers", over the contact forms in SQL (the size guard counts with it).
GOOGLE_MATCHABLE_SQL = (
    "coalesce(n_email_google, '') <> '' or coalesce(n_phone_e164, '') <> '' or (coalesce(n_first, '') <> '' "
    "and coalesce(n_last, '') <> '' "
    "and coalesce(n_country, '') <> '' and coalesce(n_postal, '') <> '')"
)
# A record for every member with a normalized e-mail (Klaviyo, HubSpot), or for every member (Salesforce, webhook).
EMAIL_MATCHABLE_SQL = "n_email is not null"
EVERYONE_MATCHABLE_SQL = "true"


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
