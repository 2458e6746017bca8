"""Generic signed webhook: audience changes POSTed as JSON to a URL the user controls.

Signature (the scheme Stripe documents for its webhooks, applied to our payload): header
`X-Segmint-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. Receivers recompute
the HMAC over the raw body with their copy of the secret, compare in constant time and reject timestamps
older than a tolerance (default 300 s) to stop replays; `verify_signature` does exactly that.
Every member carries an `event_id` = sha256(audience|member_key|action|fingerprint|origin run), stable across
retries and resumed runs (the origin is the run that first sent the change), so a receiver that keeps seen ids
applies each change exactly once, while a later re-add of the same person is a new event. The `Idempotency-Key`
header is the sha256 of the batch's event ids. The webhook is a CRM-like destination: it receives every member
with its `marketing_consent` flag, and the receiver decides what consent it needs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from activation import identifiers as ids
from activation import member_records as mr
from activation.destinations.base import BatchResult, member_value, text_or_none
from activation.destinations.registry import BuildRequest, register
from activation.http import HttpClient, RetryPolicy
from activation.ledger import SyncRecord

SIGNATURE_HEADER = "X-Segmint-Signature"
SIGNATURE_TOLERANCE_S = 300
WEBHOOK_MAX_BATCH = 500
WEBHOOK_FIELDS = ("rfm_segment", "behavioral_segment", "predicted_clv", "purchase_propensity")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Header value `t=<timestamp>,v1=<hex hmac-sha256 of "<timestamp>.<body>">`."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: str, header: str | None, body: bytes, now: float | None = None, tolerance_s: int = SIGNATURE_TOLERANCE_S
) -> bool:
    """True when the header signs this exact body with this secret and its timestamp is within tolerance."""
    if not header:
        return False
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def event_id(audience: str, member_key: str, action: str, fingerprint: str, origin_run_id: str | None) -> str:
    """Stable id of one membership change (same change, same id, however often it is re-sent)."""
    text = f"{audience}|{member_key}|{action}|{fingerprint}|{origin_run_id or ''}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SignedWebhook:
    """Audience changes POSTed as signed JSON batches to one URL."""

    kind = "webhook"
    MATCHABLE_SQL = mr.EVERYONE_MATCHABLE_SQL  # build_records gives a record (the size guard counts with it)
    FORMS_READ = mr.EMAIL_FORMS  # the contact forms build_records reads

    def __init__(
        self,
        url: str,
        secret: str,
        audience: str,
        *,
        name: str = "webhook",
        max_batch: int = WEBHOOK_MAX_BATCH,
        policy: RetryPolicy | None = None,
        dry_run_dir: str | Path | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.name = name
        self.url = url
        self.audience = audience
        self.max_batch = max_batch
        self._secret = secret
        self._clock = clock
        extra = {"sleep": sleep} if sleep else {}
        self.http = HttpClient(name, url, {}, policy=policy, dry_run_dir=dry_run_dir, **extra)
        self.sent = {"add": 0, "remove": 0}

    def build_record(self, member: Mapping[str, Any]) -> SyncRecord | None:
        """Customer id, normalized email, consent flag and a few scores (every member is usable)."""
        consent = member.get("marketing_consent")
        identifiers = {
            "customer_id": str(member["customer_id"]),
            "email": ids.normalize_email(member.get("email")),
            "marketing_consent": None if consent is None or consent != consent else bool(consent),
            **{
                field: (text_or_none(member.get(field)) if "segment" in field else _number(member.get(field)))
                for field in WEBHOOK_FIELDS
            },
        }
        return SyncRecord(str(member["customer_id"]), identifiers, member_value(member))

    def build_records(self, forms: pd.DataFrame, fingerprints: bool = True) -> pd.DataFrame:
        """build_record for every member at once, from the audience's contact forms (member_records)."""
        keys = mr.member_keys(forms)
        fields = {
            field: [text_or_none(v) if "segment" in field else _number(v) for v in mr.column(forms, field)]
            for field in WEBHOOK_FIELDS
        }
        consents = [None if c is None or c != c else bool(c) for c in mr.column(forms, "marketing_consent")]
        identities = [
            {
                "customer_id": key,
                "email": email,
                "marketing_consent": consents[position],
                **{field: values[position] for field, values in fields.items()},
            }
            for position, (key, email) in enumerate(zip(keys, forms["n_email"], strict=True))
        ]
        return mr.record_frame(
            keys, identities, mr.member_values(forms.get("value"), len(forms)), fingerprints=fingerprints
        )

    def begin(self, planned_adds: int, planned_removes: int) -> None:
        """Nothing to open."""

    def _post(self, action: str, batch: Sequence[SyncRecord]) -> BatchResult:
        members = [
            {
                "event_id": event_id(self.audience, r.member_key, action, r.fingerprint, r.origin_run_id),
                "member_key": r.member_key,
                **dict(r.identifiers),
                "value": r.value,
            }
            for r in batch
        ]
        payload = {"audience": self.audience, "action": action, "members": members}
        # Sign the exact bytes that are sent; the HttpClient sends json_body with the same compact separators.
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        idempotency_key = hashlib.sha256("".join(m["event_id"] for m in members).encode()).hexdigest()
        headers = {SIGNATURE_HEADER: sign(self._secret, int(self._clock()), body), "Idempotency-Key": idempotency_key}
        reply = self.http.request("POST", self.url, json_body=payload, headers=headers)
        self.sent[action] += len(batch)
        return BatchResult(confirmed=[r.member_key for r in batch], response=reply.json)

    def send_adds(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """POST an `add` batch."""
        return self._post("add", batch)

    def send_removes(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """POST a `remove` batch."""
        return self._post("remove", batch)

    def readback(self) -> dict[str, Any]:
        """A webhook has nothing to read back: what was sent and acknowledged."""
        return {"sent_adds": self.sent["add"], "sent_removes": self.sent["remove"]}


def _number(value: Any) -> float | None:
    if value is None or value != value:
        return None
    try:
        return round(float(value), 4)
    except (TypeError, ValueError):
        return None


@register("webhook", env=("SEGMINT_WEBHOOK_URL", "SEGMINT_WEBHOOK_SECRET"))
def build(request: BuildRequest) -> SignedWebhook:
    """No settings: the URL and the signing secret are credentials."""
    url = request.env.get("SEGMINT_WEBHOOK_URL") or "https://example.invalid/segmint-webhook"
    return SignedWebhook(url, request.secret("SEGMINT_WEBHOOK_SECRET"), request.audience.name, **request.common)
