"""Audience definitions (config/audiences.yaml), member selection in DuckDB and the deterministic control group.

An audience is a SQL boolean expression over one row per customer: every column of `marts.customer_scores`
plus the PII of `raw.customers` (email, phone, first_name, last_name, postal_code, country, marketing_consent;
raw.customers wins where both have a column, first row per customer_id as in stg_customers).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import yaml

from activation.destinations.registry import destination_types

DEFAULT_CONTROL_SHARE = 0.10
DEFAULT_MAX_CHANGE_SHARE = 0.5
PII_COLUMNS = ("email", "phone", "first_name", "last_name", "postal_code", "country", "marketing_consent")
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


def parse_audiences(document: Any, source: str = "audiences.yaml") -> list[Audience]:
    """Validated audiences from a parsed YAML document; raises AudienceConfigError naming the bad field."""
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
        _require(isinstance(name, str) and AUDIENCE_NAME_PATTERN.match(name) is not None, where,
                 "'name' must be snake_case (a-z, 0-9, _), 2-63 characters")
        where = f"{source}: audience '{name}'"
        _require(name not in seen, where, "duplicate audience name")
        seen.add(name)
        unknown = set(entry) - {"name", "description", "rule", "destinations", "value_column", "control_share",
                                "max_change_share"}
        _require(not unknown, where, f"unknown field(s) {sorted(unknown)}")
        rule = entry.get("rule")
        _require(isinstance(rule, str) and rule.strip() != "", where, "'rule' must be a non-empty SQL expression")
        _require(";" not in rule, where, "'rule' must be one expression (no ';')")
        value_column = entry.get("value_column")
        _require(value_column is None or (isinstance(value_column, str) and value_column.isidentifier()), where,
                 "'value_column' must be a column name")
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
            _require(isinstance(dname, str) and dname not in destination_names, dwhere,
                     f"destination name '{dname}' must be unique within the audience")
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
                control_share=_share(entry.get("control_share", defaults.get("control_share")), where,
                                     "control_share", DEFAULT_CONTROL_SHARE, allow_zero=True),
                max_change_share=_share(entry.get("max_change_share", defaults.get("max_change_share")), where,
                                        "max_change_share", DEFAULT_MAX_CHANGE_SHARE, allow_zero=False),
            )
        )
    return audiences


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
    digest = hashlib.sha256(f"{customer_id}|{audience_name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / CONTROL_HASH_BUCKETS


def is_control(customer_id: str, audience_name: str, control_share: float) -> bool:
    """True when the customer is held out of this audience's syncs (deterministic, independent per audience)."""
    return control_fraction(customer_id, audience_name) < control_share


def _member_query(conn: duckdb.DuckDBPyConnection, rule: str) -> str:
    score_columns = [row[0] for row in conn.execute("describe marts.customer_scores").fetchall()]
    overlapping = [column for column in score_columns if column in PII_COLUMNS]
    exclude = f" exclude ({', '.join(overlapping)})" if overlapping else ""
    pii = ", ".join(f"customers.{column}" for column in PII_COLUMNS)
    return f"""
        with customers as (
            select * from raw.customers
            qualify row_number() over (partition by customer_id order by source_row) = 1
        ),
        candidates as (
            select scores.*{exclude}, {pii}
            from marts.customer_scores as scores
            left join customers using (customer_id)
        )
        select * from candidates where ({rule}) order by customer_id
    """


def select_members(conn: duckdb.DuckDBPyConnection, audience: Audience) -> pd.DataFrame:
    """One row per customer matching the rule, with `is_control` (held out) and `value` (value_column or NULL)."""
    try:
        members = conn.execute(_member_query(conn, audience.rule)).df()
    except duckdb.Error as error:
        raise AudienceRuleError(f"audience '{audience.name}': rule `{audience.rule}` failed: {error}") from error
    if audience.value_column is not None and audience.value_column not in members.columns:
        raise AudienceRuleError(f"audience '{audience.name}': value_column '{audience.value_column}' is not a column")
    members["customer_id"] = members["customer_id"].astype(str)
    members["is_control"] = [is_control(cid, audience.name, audience.control_share) for cid in members["customer_id"]]
    members["value"] = members[audience.value_column] if audience.value_column else None
    return members.reset_index(drop=True)
