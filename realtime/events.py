"""Incoming events: validation of one JSON object into an `Event`, with errors that name the field.

The fields are those of the landing events contract (landing/README.md) plus the optional `category`,
`utm_medium`, `utm_content` and `value`. Unknown keys are ignored (clients such as tag managers add their own);
they are not written to the log. Strings are stripped; empty strings count as absent.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_BATCH_EVENTS = 1000
MAX_BODY_BYTES = 1024 * 1024
MAX_FIELD_CHARS = 512  # longer ids or UTM values are a client bug, not data
OPTIONAL_TEXT_FIELDS = (
    "page_type",
    "product_id",
    "category",
    "device",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
)
LOG_FIELDS = (
    "event_id",
    "customer_id",
    "anonymous_id",
    "event_type",
    "occurred_at",
    "received_at",
    *OPTIONAL_TEXT_FIELDS,
    "value",
)
MINTED_PREFIX = "rt_"


class EventError(ValueError):
    """One bad event: `field` is the offending key, `message` says what is wrong with it."""

    def __init__(self, field: str, message: str, index: int | None = None):
        self.field, self.message, self.index = field, message, index
        where = f"events[{index}].{field}" if index is not None else field
        super().__init__(f"{where}: {message}")


@dataclass(slots=True)
class Event:
    """A validated event. `occurred_at` keeps the client's UTC offset (late_night reads the local hour)."""

    event_id: str
    minted_id: bool
    customer_id: str | None
    anonymous_id: str | None
    event_type: str
    occurred_at: datetime
    received_at: datetime
    page_type: str | None = None
    product_id: str | None = None
    category: str | None = None
    device: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_content: str | None = None
    value: float | None = None

    @property
    def visitor_id(self) -> str:
        """The id state is kept under: the customer_id when given, else the anonymous_id."""
        return self.customer_id or self.anonymous_id  # type: ignore[return-value]

    def log_record(self) -> dict[str, Any]:
        """The `events-*.jsonl` line (shared contract): every field, absent ones as null, times ISO 8601 with offset."""
        return {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "anonymous_id": self.anonymous_id,
            "event_type": self.event_type,
            "occurred_at": self.occurred_at.isoformat(),
            "received_at": self.received_at.isoformat(),
            "page_type": self.page_type,
            "product_id": self.product_id,
            "category": self.category,
            "device": self.device,
            "utm_source": self.utm_source,
            "utm_medium": self.utm_medium,
            "utm_campaign": self.utm_campaign,
            "utm_content": self.utm_content,
            "value": self.value,
        }


def parse_event(raw: Any, received_at: datetime, index: int | None = None) -> Event:
    """Validate one event object; raises EventError naming the field (and the batch index when given)."""
    if not isinstance(raw, dict):
        raise EventError("event", "must be a JSON object", index)
    try:
        customer_id = _text(raw, "customer_id", allow_number=True)
        anonymous_id = _text(raw, "anonymous_id", allow_number=True)
        if customer_id is None and anonymous_id is None:
            raise EventError("customer_id", "customer_id or anonymous_id is required")
        event_type = _text(raw, "event_type")
        if event_type is None:
            raise EventError("event_type", "is required")
        event_id = _text(raw, "event_id", allow_number=True)
        occurred_at = _time(raw, "occurred_at", received_at)
        value = raw.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value)):
            raise EventError("value", "must be a finite number or null")
        optional = {name: _text(raw, name) for name in OPTIONAL_TEXT_FIELDS}
    except EventError as error:
        raise EventError(error.field, error.message, index) from None
    return Event(
        event_id=event_id or MINTED_PREFIX + uuid.uuid4().hex,
        minted_id=event_id is None,
        customer_id=customer_id,
        anonymous_id=anonymous_id,
        event_type=event_type.lower(),
        occurred_at=occurred_at,
        received_at=received_at,
        value=float(value) if value is not None else None,
        **optional,
    )


def parse_body(doc: Any, received_at: datetime) -> tuple[list[Event], bool]:
    """A request body: one event object, or {"events": [...]} (1 to MAX_BATCH_EVENTS). Returns (events, is_batch)."""
    if isinstance(doc, dict) and "events" in doc:
        batch = doc["events"]
        if not isinstance(batch, list):
            raise EventError("events", "must be a list of event objects")
        if not batch:
            raise EventError("events", "is empty")
        if len(batch) > MAX_BATCH_EVENTS:
            raise EventError("events", f"has {len(batch)} events; at most {MAX_BATCH_EVENTS} per request")
        return [parse_event(item, received_at, index) for index, item in enumerate(batch)], True
    return [parse_event(doc, received_at)], False


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _text(raw: dict, name: str, allow_number: bool = False) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if allow_number and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise EventError(name, "must be a string")
    value = value.strip()
    if len(value) > MAX_FIELD_CHARS:
        raise EventError(name, f"is longer than {MAX_FIELD_CHARS} characters")
    return value or None


def _time(raw: dict, name: str, default: datetime) -> datetime:
    value = raw.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    return parse_time(value, name)


def parse_time(value: Any, name: str) -> datetime:
    """An ISO 8601 time with a UTC offset; EventError naming `name` otherwise."""
    if not isinstance(value, str):
        raise EventError(name, "must be an ISO 8601 string with a UTC offset, e.g. 2026-11-26T21:14:03+01:00")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise EventError(name, f"{value[:40]!r} is not an ISO 8601 time (e.g. 2026-11-26T21:14:03+01:00)") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise EventError(name, f"{value[:40]!r} has no UTC offset (add Z or +01:00)")
    return parsed


def utc_now() -> datetime:
    return datetime.now(UTC)
