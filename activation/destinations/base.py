"""The small protocol every destination implements, and what a sent batch returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from activation.ledger import SyncRecord

# Ad platforms and email tools only receive members with marketing consent; CRM and webhook receive everyone.
DestinationKind = Literal["ad", "email", "crm", "webhook"]
CONSENT_REQUIRED_KINDS = frozenset({"ad", "email"})


@dataclass
class BatchResult:
    """Outcome of one batch: keys the API confirmed, keys it rejected (with reason), record ids it assigned."""

    confirmed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)
    response: Any = None


@runtime_checkable
class Destination(Protocol):
    """A place an audience is synced to.

    `build_record` turns one member row (scores + PII) into what this API needs (hashed where the platform
    requires it), or None when the member cannot be identified there (e.g. no email). `send_adds` /
    `send_removes` send one batch of at most `max_batch` records and return what the API confirmed.
    `begin` is called once per sync with the planned totals (e.g. Meta's session), `readback` after it.
    Optional, for speed: `build_records(forms, fingerprints=True)` builds the same records for all members at once
    from activation.member_records.contact_forms (every built-in destination has it; the sync falls back to
    `build_record` per member without it), and `MATCHABLE_SQL`, a SQL condition over the contact forms that holds
    exactly when a member gets a record, so the size guard counts in DuckDB (member_records.audience_record_counts),
    and `FORMS_READ`, the contact-form columns `build_records` reads (a sync step then reads only those; without it,
    all of member_records.FORM_COLUMNS). `SCORES_READ`: the marts.customer_scores columns its records carry; a sync
    step joins those the audience table does not hold (Salesforce's top_drivers). Without it a record sees only the
    audience table's columns, so it is needed to send any other score.
    """

    name: str
    kind: DestinationKind
    max_batch: int

    def build_record(self, member: Mapping[str, Any]) -> SyncRecord | None: ...

    def begin(self, planned_adds: int, planned_removes: int) -> None: ...

    def send_adds(self, batch: Sequence[SyncRecord]) -> BatchResult: ...

    def send_removes(self, batch: Sequence[SyncRecord]) -> BatchResult: ...

    def readback(self) -> dict[str, Any]: ...


def chunked(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """Consecutive slices of at most `size` items."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def member_value(member: Mapping[str, Any]) -> float | None:
    """The member's audience value (e.g. predicted CLV) or None."""
    value = member.get("value")
    if value is None or value != value:
        return None
    return float(value)


def text_or_none(value: Any) -> str | None:
    """A stripped string or None for missing/blank/NaN."""
    if value is None or value != value:
        return None
    text = str(value).strip()
    return text or None
