"""Audience definitions (config/audiences.yaml), member selection in DuckDB and the deterministic control group.

(SEGMINT_ENGINE=spark runs the same member query and rule in Spark SQL: orchestration/lib/spark_audiences.py.)

An audience is a SQL boolean expression over one row per customer: every column of `marts.customer_scores`
plus the contact fields of the sync edge `edge.customer_contacts` (email, phone, first_name, last_name,
postal_code, country, marketing_consent; the contact fields win where both have a column). The edge view is the
only place audiences and syncs read contact data from: which customers.csv row counts for a customer is decided
once, in dbt (stg_customers), and PII stays out of `marts` (dbt_project/models/edge/).

An audience may also be defined on a **real-time segment** of the segment service (`realtime_segment:
cart_abandoner`, or a pattern such as `high_intent:*`): its members are the known customers the service's
transitions log shows in that segment now (their last change is `entered`), narrowed by `rule` (default:
everyone). The Dagster sensor `segmint_realtime_audience_sync` syncs such audiences when their segment changes
(event-triggered syncs); `make run` syncs them too. Their membership churns by design (cart abandoners come and
go), so their change guard is off unless `max_change_share` is set (any positive number for them).
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import yaml

from activation.destinations.registry import destination_types
from landing.special_categories import Denylist, find_special_category, load_denylist

DEFAULT_CONTROL_SHARE = 0.10
DEFAULT_MAX_CHANGE_SHARE = 0.5
PII_COLUMNS = ("email", "phone", "first_name", "last_name", "postal_code", "country", "marketing_consent")
# Contact fields a destination needs to match a person. They are read at the sync edge (with_contacts) and never
# stored in audiences.* tables, which carry pseudonymous keys only (README "Privacy").
CONTACT_COLUMNS = ("email", "phone", "first_name", "last_name", "postal_code")
# The sync edge (a dbt view): one row per customer, the contact fields of the customers.csv row stg_customers chose.
CONTACTS_RELATION = "edge.customer_contacts"
# What audiences select from: one row per customer with every score, segment and model output (a dbt mart).
SCORES_RELATION = "marts.customer_scores"
# Secrets belong in environment variables read by the orchestrator, never in this versioned file.
SECRET_KEY_PATTERN = re.compile(r"(token|secret|password|api_?key|credential)", re.IGNORECASE)
AUDIENCE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
CONTROL_HASH_BUCKETS = 2**64
# Columns of marts.customer_scores that a CLV model produces. An audience that sends one as its value, or selects
# members by one, is "value-based": its exports wait for the CLV activation gate (orchestration/defs/clv.py).
MODEL_OUTPUT_COLUMNS = (
    "predicted_clv", "purchase_propensity", "p_alive", "expected_orders", "expected_days_to_next_order",
    "expected_next_order_date", "predicted_avg_order_value", "total_clv", "clv_p10", "clv_p90", "max_cpa",
)  # fmt: skip
_MODEL_OUTPUT_PATTERN = re.compile(r"\b(" + "|".join(MODEL_OUTPUT_COLUMNS) + r")\b", re.IGNORECASE)
# Real-time segment names as the rules file spells them (`cart_abandoner`, `high_intent:shoes`, `device:mobile`);
# an audience may name one or a pattern with `*` (`high_intent:*`).
REALTIME_SEGMENT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(:[a-z0-9_*-]+)?$|^[a-z][a-z0-9_]*:\*$")
# No change guard: a real-time audience may grow or empty between two syncs.
GUARD_OFF = math.inf


class AudienceConfigError(ValueError):
    """The audiences file is malformed; the message names the file, the audience and the field."""


class AudienceRuleError(ValueError):
    """An audience rule failed to run in DuckDB; the message names the audience and quotes DuckDB's error."""


@dataclass(frozen=True)
class DestinationConfig:
    """One destination of an audience: its type (which API), a unique name, and non-secret settings."""

    name: str
    type: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Audience:
    """One audience: a rule over customer rows, where it goes, and its hold-out and change guard shares."""

    name: str
    description: str
    rule: str
    destinations: tuple[DestinationConfig, ...]
    value_column: str | None = None
    control_share: float = DEFAULT_CONTROL_SHARE
    max_change_share: float = DEFAULT_MAX_CHANGE_SHARE
    # A real-time segment (or `*` pattern) of the segment service: members must be in it now (see module doc).
    realtime_segment: str | None = None


def matches_realtime_segment(audience: Audience, segment: str) -> bool:
    """Whether a real-time segment name feeds this audience (its realtime_segment, `*` matching any text)."""
    return audience.realtime_segment is not None and fnmatch.fnmatchcase(segment, audience.realtime_segment)


def current_realtime_members(transitions: pd.DataFrame, audience: Audience) -> list[str]:
    """Known customers whose last change in a segment of the audience is `entered`, sorted.

    `transitions`: id, known_customer, segment, change, in log order (landing.realtime_log.read_transitions).
    Anonymous visitors cannot be synced (no contact): they are left out.
    """
    if audience.realtime_segment is None or not len(transitions):
        return []
    relevant = transitions[[matches_realtime_segment(audience, str(s)) for s in transitions["segment"]]]
    relevant = relevant[relevant["known_customer"].fillna(False).astype(bool)]
    last = relevant.groupby(["id", "segment"], sort=False)["change"].last()
    return sorted({str(customer) for (customer, _), change in last.items() if change == "entered"})


def is_value_based(audience: Audience) -> bool:
    """True when the audience carries a model value (value_column) or its rule reads a CLV model output."""
    value_from_model = audience.value_column is not None and audience.value_column.lower() in MODEL_OUTPUT_COLUMNS
    return value_from_model or bool(_MODEL_OUTPUT_PATTERN.search(audience.rule))


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise AudienceConfigError(f"{where}: {message}")


def _check_no_secrets(settings: dict[str, Any], where: str) -> None:
    for key in settings:
        _require(
            not SECRET_KEY_PATTERN.search(str(key)),
            where,
            f"setting '{key}' looks like a secret; pass tokens through environment variables, not this file",
        )


def _share(raw: Any, where: str, name: str, default: float, allow_zero: bool) -> float:
    value = default if raw is None else raw
    _require(isinstance(value, (int, float)) and not isinstance(value, bool), where, f"{name} must be a number")
    low_ok = value >= 0 if allow_zero else value > 0
    _require(low_ok and value < 1, where, f"{name} must be in {'[0' if allow_zero else '(0'}, 1), got {value}")
    return float(value)


def _check_no_special_category(text: str, where: str, field_name: str, denylist: Denylist) -> None:
    # GDPR art. 9: nobody is targeted on health, religion, ethnicity, ... (config/special_categories.yaml).
    found = find_special_category(text, denylist)
    if found is not None:
        identifier, category = found
        raise AudienceConfigError(
            f"{where}: '{field_name}' names '{identifier}', special-category data ({category}, GDPR art. 9) "
            "that segmint never targets on"
        )


def parse_audiences(document: Any, source: str = "audiences.yaml", denylist: Denylist | None = None) -> list[Audience]:
    """Validated audiences from a parsed YAML document; raises AudienceConfigError naming the bad field.

    `denylist`: the special-category denylist a rule or value column may not name (None: the shipped file).
    """
    denylist = denylist or load_denylist()
    _require(isinstance(document, dict), source, "top level must be a mapping with an 'audiences' list")
    defaults = document.get("defaults") or {}
    _require(isinstance(defaults, dict), source, "'defaults' must be a mapping")
    entries = document.get("audiences")
    _require(isinstance(entries, list) and len(entries) > 0, source, "'audiences' must be a non-empty list")
    audiences: list[Audience] = []
    seen: set[str] = set()
    known_types = destination_types()  # one module each in activation/destinations/ (registry.py)
    for index, entry in enumerate(entries):
        where = f"{source}: audiences[{index}]"
        _require(isinstance(entry, dict), where, "must be a mapping")
        name = entry.get("name")
        _require(
            isinstance(name, str) and AUDIENCE_NAME_PATTERN.match(name) is not None,
            where,
            "'name' must be snake_case (a-z, 0-9, _), 2-63 characters",
        )
        where = f"{source}: audience '{name}'"
        _require(name not in seen, where, "duplicate audience name")
        seen.add(name)
        unknown = set(entry) - {
            "name",
            "description",
            "rule",
            "destinations",
            "value_column",
            "control_share",
            "max_change_share",
            "realtime_segment",
        }
        _require(not unknown, where, f"unknown field(s) {sorted(unknown)}")
        realtime_segment = entry.get("realtime_segment")
        _require(
            realtime_segment is None
            or (isinstance(realtime_segment, str) and REALTIME_SEGMENT_PATTERN.match(realtime_segment) is not None),
            where,
            "'realtime_segment' must be a real-time segment name such as cart_abandoner or high_intent:*",
        )
        rule = entry.get("rule", "true" if realtime_segment else None)
        _require(isinstance(rule, str) and rule.strip() != "", where, "'rule' must be a non-empty SQL expression")
        _require(";" not in rule, where, "'rule' must be one expression (no ';')")
        _check_no_special_category(rule, where, "rule", denylist)
        value_column = entry.get("value_column")
        _require(
            value_column is None or (isinstance(value_column, str) and value_column.isidentifier()),
            where,
            "'value_column' must be a column name",
        )
        if value_column is not None:
            _check_no_special_category(value_column, where, "value_column", denylist)
        raw_destinations = entry.get("destinations") or []
        _require(isinstance(raw_destinations, list), where, "'destinations' must be a list")
        destinations: list[DestinationConfig] = []
        destination_names: set[str] = set()
        for position, raw in enumerate(raw_destinations):
            dwhere = f"{where}: destinations[{position}]"
            _require(isinstance(raw, dict), dwhere, "must be a mapping with 'type'")
            dtype = raw.get("type")
            _require(dtype in known_types, dwhere, f"'type' must be one of {sorted(known_types)}")
            dname = raw.get("name", dtype)
            _require(
                isinstance(dname, str) and dname not in destination_names,
                dwhere,
                f"destination name '{dname}' must be unique within the audience",
            )
            destination_names.add(dname)
            settings = raw.get("settings") or {}
            _require(isinstance(settings, dict), dwhere, "'settings' must be a mapping")
            _check_no_secrets(settings, dwhere)
            destinations.append(DestinationConfig(name=dname, type=dtype, settings=dict(settings)))
        audiences.append(
            Audience(
                name=name,
                description=str(entry.get("description") or ""),
                rule=rule.strip(),
                destinations=tuple(destinations),
                value_column=value_column,
                control_share=_share(
                    entry.get("control_share", defaults.get("control_share")),
                    where,
                    "control_share",
                    DEFAULT_CONTROL_SHARE,
                    allow_zero=True,
                ),
                max_change_share=_realtime_guard(entry.get("max_change_share"), where)
                if realtime_segment
                else _share(
                    entry.get("max_change_share", defaults.get("max_change_share")),
                    where,
                    "max_change_share",
                    DEFAULT_MAX_CHANGE_SHARE,
                    allow_zero=False,
                ),
                realtime_segment=realtime_segment,
            )
        )
    return audiences


def _realtime_guard(raw: Any, where: str) -> float:
    """A real-time audience's max_change_share: off (GUARD_OFF) unless set to a positive number (no upper bound)."""
    if raw is None:
        return GUARD_OFF
    _require(
        isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0,
        where,
        f"max_change_share must be a positive number, got {raw}",
    )
    return float(raw)


def load_audiences(path: str | Path) -> list[Audience]:
    """Validated audiences from a YAML file; raises AudienceConfigError with the file name on any problem."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise AudienceConfigError(f"{path}: not valid YAML: {error}") from error
    return parse_audiences(document, source=str(path))


def control_fraction(customer_id: str, audience_name: str) -> float:
    """A stable number in [0, 1) from sha256(customer_id|audience): same customer, same audience, same number."""
    digest = hashlib.sha256(f"{customer_id}|{audience_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / CONTROL_HASH_BUCKETS


def is_control(customer_id: str, audience_name: str, control_share: float) -> bool:
    """True when the customer is held out of this audience's syncs (deterministic, independent per audience)."""
    return control_fraction(customer_id, audience_name) < control_share


def control_fractions(conn: duckdb.DuckDBPyConnection, customer_ids: pd.Series, audience_name: str) -> np.ndarray:
    """control_fraction of every customer at once, in DuckDB (same SHA-256, same 64-bit prefix, same float)."""
    name = "_segmint_control_ids"
    conn.register(name, pd.DataFrame({"customer_id": customer_ids.astype(str).to_numpy(dtype=object)}))
    try:
        # The first 16 hex digits are the digest's first 8 bytes, big-endian; 2**64 buckets as in control_fraction.
        return (
            conn.execute(
                f"select cast(('0x' || left(sha256(customer_id::varchar || '|' || ?), 16)) as ubigint)::double "
                f"/ {float(CONTROL_HASH_BUCKETS)!r} as fraction from {name}",
                [audience_name],
            )
            .df()["fraction"]
            .to_numpy(dtype="float64")
        )
    finally:
        conn.unregister(name)


REALTIME_MEMBERS_RELATION = "_realtime_members"  # the live members of a real-time audience, registered per query


def member_rule(audience: Audience) -> str:
    """The audience's rule as the member query's filter; a real-time audience also keeps only the customers of
    REALTIME_MEMBERS_RELATION (registered by the caller)."""
    if audience.realtime_segment is None:
        return audience.rule
    return f"({audience.rule}) and customer_id in (select customer_id from {REALTIME_MEMBERS_RELATION})"


def member_query(score_columns: Collection[str], rule: str) -> str:
    """The member query in DuckDB SQL: every customer_scores column (the contact fields win where both have one)
    plus the sync edge's contact fields, filtered by `rule`. Columns are listed, not `* exclude`, so the same text
    translates to Spark SQL (orchestration/lib/spark_audiences.py): one query, one rule, two engines."""
    scores = ", ".join(f"scores.{column}" for column in score_columns if column not in PII_COLUMNS)
    pii = ", ".join(f"contacts.{column}" for column in PII_COLUMNS)
    return f"""
        with candidates as (
            select {scores}, {pii}
            from {SCORES_RELATION} as scores
            left join {CONTACTS_RELATION} as contacts using (customer_id)
        )
        select * from candidates where ({rule}) order by customer_id
    """


def realtime_member_ids(realtime_members: Collection[str] | None) -> pd.DataFrame:
    """REALTIME_MEMBERS_RELATION's rows: the live members (None: nobody yet)."""
    return pd.DataFrame({"customer_id": sorted(realtime_members or [])}, dtype="string")


def select_members(
    conn: duckdb.DuckDBPyConnection, audience: Audience, realtime_members: Collection[str] | None = None
) -> pd.DataFrame:
    """One row per customer matching the rule, with `is_control` (held out) and `value` (value_column or NULL).

    A real-time audience keeps only `realtime_members` (current_realtime_members; None: nobody).
    """
    if audience.realtime_segment is not None:
        conn.register(REALTIME_MEMBERS_RELATION, realtime_member_ids(realtime_members))
    try:
        score_columns = [row[0] for row in conn.execute(f"describe {SCORES_RELATION}").fetchall()]
        members = conn.execute(member_query(score_columns, member_rule(audience))).df()
    except duckdb.Error as error:
        raise AudienceRuleError(f"audience '{audience.name}': rule `{audience.rule}` failed: {error}") from error
    finally:
        if audience.realtime_segment is not None:
            conn.unregister(REALTIME_MEMBERS_RELATION)
    return finish_members(conn, audience, members)


def finish_members(conn: duckdb.DuckDBPyConnection, audience: Audience, members: pd.DataFrame) -> pd.DataFrame:
    """The selected rows (member_query's, from either engine) with `is_control` and `value`."""
    if audience.value_column is not None and audience.value_column not in members.columns:
        raise AudienceRuleError(f"audience '{audience.name}': value_column '{audience.value_column}' is not a column")
    members["customer_id"] = members["customer_id"].astype(str)
    members["is_control"] = control_fractions(conn, members["customer_id"], audience.name) < audience.control_share
    members["value"] = members[audience.value_column] if audience.value_column else None
    return members.reset_index(drop=True)


def with_contacts(conn: duckdb.DuckDBPyConnection, members: pd.DataFrame) -> pd.DataFrame:
    """`members` (pseudonymous, one row per customer_id) with the CONTACT_COLUMNS a destination matches on.

    Called only at the sync edge (exports, sync plans), so the contact fields live in raw.customers (read through
    the view edge.customer_contacts) and in the files and requests sent to a destination, never in a warehouse
    table of their own.
    """
    ids = pd.DataFrame({"customer_id": members["customer_id"].astype(str)})
    conn.register("_segmint_member_ids", ids)
    try:
        contacts = conn.execute(
            f"select ids.customer_id, {', '.join(f'c.{column}' for column in CONTACT_COLUMNS)} "
            f"from _segmint_member_ids as ids left join {CONTACTS_RELATION} as c using (customer_id)"
        ).df()
    finally:
        conn.unregister("_segmint_member_ids")
    kept = members.drop(columns=[column for column in CONTACT_COLUMNS if column in members.columns])
    kept = kept.assign(customer_id=kept["customer_id"].astype(str))
    return kept.merge(contacts, on="customer_id", how="left", validate="one_to_one")
