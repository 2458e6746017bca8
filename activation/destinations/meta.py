"""Meta custom audience (customer list) members through the Marketing API.

Followed: Marketing API reference "Custom Audience Users" (POST/DELETE /{custom_audience_id}/users, Graph API
v25.0, page updated 2025-10-08), "Custom Audiences" guide (session object, 10,000 users per request, hashing and
normalization), "Custom Audience Session" reference (num_received, num_invalid_entries, num_matched, stage) and
the value-based audience example with schema ["EMAIL", "LOOKALIKE_VALUE"]; read 2026-11 on developers.facebook.com.

Requests: `payload={"schema": [...], "data": [[...], ...]}` and `session={"session_id", "batch_seq",
"last_batch_flag", "estimated_num_total"}` as form fields; adds POST, removes DELETE, one session per direction
per sync. Multi-key schema EMAIL, PHONE, FN, LN, ZIP, COUNTRY, each SHA-256 hex of the documented normal form
("" for an unknown key); value-based audiences append LOOKALIKE_VALUE (unhashed, >= 0). The token goes in an
`Authorization: Bearer` header so it never appears in a URL, a log or a dry-run file.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from activation import identifiers as ids
from activation import member_records as mr
from activation.destinations.base import BatchResult, member_value
from activation.destinations.registry import BuildRequest, register
from activation.http import HttpClient, RetryPolicy
from activation.ledger import SyncRecord

META_BASE_URL = "https://graph.facebook.com"
META_API_VERSION = "v25.0"
META_MAX_USERS_PER_REQUEST = 10_000
META_SCHEMA = ("EMAIL", "PHONE", "FN", "LN", "ZIP", "COUNTRY")
META_VALUE_KEY = "LOOKALIKE_VALUE"


def meta_identifiers(member: Mapping[str, Any]) -> dict[str, str] | None:
    """Hashed multi-key identifiers of one member in Meta's normal forms; None without email and phone."""
    country = member.get("country")
    keys = {
        "EMAIL": ids.hashed_or_empty(ids.normalize_email(member.get("email"))),
        "PHONE": ids.hashed_or_empty(ids.normalize_phone_meta(member.get("phone"), country)),
        "FN": ids.hashed_or_empty(ids.normalize_name(member.get("first_name"))),
        "LN": ids.hashed_or_empty(ids.normalize_name(member.get("last_name"))),
        "ZIP": ids.hashed_or_empty(ids.normalize_zip_meta(member.get("postal_code"), country)),
        "COUNTRY": ids.hashed_or_empty((ids.normalize_country(country) or "").lower() or None),
    }
    if not keys["EMAIL"] and not keys["PHONE"]:
        return None
    return keys


class MetaCustomAudience:
    """Members of one Meta customer-list custom audience (value-based when `value_based`)."""

    kind = "ad"
    MATCHABLE_SQL = mr.META_MATCHABLE_SQL  # build_records gives a record (the size guard counts with it)
    FORMS_READ = mr.META_FORMS  # the contact forms build_records reads

    def __init__(
        self,
        access_token: str,
        audience_id: str,
        *,
        base_url: str = META_BASE_URL,
        api_version: str = META_API_VERSION,
        value_based: bool = False,
        name: str = "meta",
        max_batch: int = META_MAX_USERS_PER_REQUEST,
        policy: RetryPolicy | None = None,
        dry_run_dir: str | Path | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self.name = name
        self.audience_id = audience_id
        self.api_version = api_version
        self.value_based = value_based
        self.max_batch = min(max_batch, META_MAX_USERS_PER_REQUEST)
        extra = {"sleep": sleep} if sleep else {}
        self.http = HttpClient(
            name, base_url, {"Authorization": f"Bearer {access_token}"}, policy=policy, dry_run_dir=dry_run_dir, **extra
        )
        self._sessions: dict[str, dict[str, int]] = {}
        self._totals = {"sent": 0, "num_received": 0, "num_invalid_entries": 0}

    def build_record(self, member: Mapping[str, Any]) -> SyncRecord | None:
        """Hashed identifiers (and LOOKALIKE_VALUE for value-based audiences) or None when unmatchable."""
        keys = meta_identifiers(member)
        if keys is None:
            return None
        value = member_value(member) if self.value_based else None
        if self.value_based:
            value = max(0.0, value or 0.0)  # Meta documents LOOKALIKE_VALUE as a non-negative number
        return SyncRecord(str(member["customer_id"]), keys, value)

    def build_records(self, forms: pd.DataFrame, fingerprints: bool = True) -> pd.DataFrame:
        """build_record for every member at once, from the audience's contact forms (member_records)."""
        values = None
        if self.value_based:
            values = [max(0.0, v or 0.0) for v in mr.member_values(forms.get("value"), len(forms))]
        return mr.record_frame(mr.member_keys(forms), mr.meta_identities(forms), values, fingerprints=fingerprints)

    def begin(self, planned_adds: int, planned_removes: int) -> None:
        """Open one upload session for the adds and one for the removes of this sync."""
        for action, planned in (("add", planned_adds), ("remove", planned_removes)):
            self._sessions[action] = {
                "session_id": secrets.randbelow(2**53 - 1) + 1,
                "batch_seq": 0,
                "sent": 0,
                "planned": planned,
            }

    def _session(self, action: str, batch_size: int) -> dict[str, Any]:
        state = self._sessions.setdefault(
            action, {"session_id": secrets.randbelow(2**53 - 1) + 1, "batch_seq": 0, "sent": 0, "planned": batch_size}
        )
        state["batch_seq"] += 1
        state["sent"] += batch_size
        return {
            "session_id": state["session_id"],
            "batch_seq": state["batch_seq"],
            "last_batch_flag": state["sent"] >= state["planned"],
            "estimated_num_total": max(state["planned"], state["sent"]),
        }

    def _payload(self, batch: Sequence[SyncRecord], with_value: bool) -> dict[str, Any]:
        schema = list(META_SCHEMA) + ([META_VALUE_KEY] if with_value else [])
        data = []
        for record in batch:
            row: list[Any] = [record.identifiers.get(key, "") for key in META_SCHEMA]
            if with_value:
                row.append(record.value if record.value is not None else 0)
            data.append(row)
        return {"schema": schema, "data": data}

    def _send(self, method: str, action: str, batch: Sequence[SyncRecord]) -> BatchResult:
        payload = self._payload(batch, with_value=self.value_based and action == "add")
        session = self._session(action, len(batch))
        form = {
            "payload": json.dumps(payload, separators=(",", ":")),
            "session": json.dumps(session, separators=(",", ":")),
        }
        reply = self.http.request(
            method,
            f"/{self.api_version}/{self.audience_id}/users",
            form=form,
            dry_run_reply={
                "audience_id": self.audience_id,
                "session_id": session["session_id"],
                "num_received": len(batch),
                "num_invalid_entries": 0,
            },
        )
        body = reply.json or {}
        self._totals["sent"] += len(batch)
        self._totals["num_received"] += int(body.get("num_received", 0))
        self._totals["num_invalid_entries"] += int(body.get("num_invalid_entries", 0))
        # Meta accepts or rejects the request as a whole; invalid rows are only counted, never named.
        return BatchResult(confirmed=[r.member_key for r in batch], response=body)

    def send_adds(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """POST one batch of at most 10,000 users to the audience within this sync's add session."""
        return self._send("POST", "add", batch)

    def send_removes(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """DELETE one batch of users (the exact hashed keys that were added) within the remove session."""
        return self._send("DELETE", "remove", batch)

    def readback(self) -> dict[str, Any]:
        """What Meta reports for this sync's sessions next to what was sent (sent vs num_received)."""
        report: dict[str, Any] = dict(self._totals)
        sessions = []
        for action, state in self._sessions.items():
            if state["batch_seq"] == 0:
                continue
            reply = self.http.request(
                "GET",
                f"/{self.api_version}/{self.audience_id}/sessions",
                params={"session_id": state["session_id"]},
                dry_run_reply={"data": []},
            )
            for session in (reply.json or {}).get("data", []):
                sessions.append({"action": action, **session})
        report["sessions"] = sessions
        report["matches_sent"] = report["num_received"] == report["sent"]
        return report


@register("meta", env=("SEGMINT_META_ACCESS_TOKEN",), base_url_env="SEGMINT_META_BASE_URL")
def build(request: BuildRequest) -> MetaCustomAudience:
    """settings: audience_id; optional value_based (default: the audience has a value_column), api_version."""
    return MetaCustomAudience(
        request.secret("SEGMINT_META_ACCESS_TOKEN"),
        str(request.settings["audience_id"]),
        value_based=bool(request.settings.get("value_based", request.audience.value_column is not None)),
        **request.pick("api_version"),
        **request.common,
    )
