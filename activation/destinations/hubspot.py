"""HubSpot static (MANUAL) list memberships for contacts.

Followed (read 2026-11 on developers.hubspot.com/docs/api-reference): Lists API "Update list membership"
PUT /crm/lists/2026-03/{listId}/memberships/add-and-remove (date-versioned; the legacy path
/crm/v3/lists/{listId}/memberships/add-and-remove has the same body and response; pick with `api_version`),
body {"recordIdsToAdd": [...], "recordIdsToRemove": [...]}, response {"recordsIdsAdded" (sic),
"recordIdsRemoved", "recordIdsMissing"}; only lists with processingType MANUAL or SNAPSHOT; memberships GET
/.../{listId}/memberships (paged, `after`) for read-back. Contacts are upserted by email first with
POST /crm/v3/objects/contacts/batch/upsert (idProperty "email", at most 100 inputs) to obtain record ids.
Auth: private-app token as `Authorization: Bearer`. HubSpot is a CRM destination: it receives every member
(with or without marketing consent); its own subscription settings govern email sends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from activation import identifiers as ids
from activation import member_records as mr
from activation.destinations.base import BatchResult, chunked, text_or_none
from activation.destinations.registry import BuildRequest, register
from activation.http import HttpClient, RetryPolicy
from activation.ledger import SyncRecord

HUBSPOT_BASE_URL = "https://api.hubapi.com"
HUBSPOT_LISTS_API_VERSION = "2026-03"
HUBSPOT_UPSERT_MAX_INPUTS = 100
HUBSPOT_MEMBERSHIP_BATCH = 1_000
HUBSPOT_MEMBERSHIP_PAGE = 250


class HubSpotList:
    """Contacts in one HubSpot MANUAL list, kept in step with an audience."""

    kind = "crm"
    MATCHABLE_SQL = mr.EMAIL_MATCHABLE_SQL  # build_records gives a record (the size guard counts with it)
    FORMS_READ = mr.EMAIL_AND_NAMES_FORMS  # the contact forms build_records reads

    def __init__(
        self,
        access_token: str,
        list_id: str,
        *,
        base_url: str = HUBSPOT_BASE_URL,
        api_version: str = HUBSPOT_LISTS_API_VERSION,
        name: str = "hubspot",
        max_batch: int = HUBSPOT_MEMBERSHIP_BATCH,
        policy: RetryPolicy | None = None,
        dry_run_dir: str | Path | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self.name = name
        self.list_id = str(list_id)
        self.max_batch = max_batch
        self.lists_prefix = (
            f"/crm/v3/lists/{self.list_id}" if api_version == "v3" else f"/crm/lists/{api_version}/{self.list_id}"
        )
        extra = {"sleep": sleep} if sleep else {}
        self.http = HttpClient(
            name, base_url, {"Authorization": f"Bearer {access_token}"}, policy=policy, dry_run_dir=dry_run_dir, **extra
        )
        self.sent = {"add": 0, "remove": 0}
        self.missing: list[str] = []

    def build_record(self, member: Mapping[str, Any]) -> SyncRecord | None:
        """Email (the contact's identity in HubSpot) and names; None without a usable email."""
        email = ids.normalize_email(member.get("email"))
        if email is None:
            return None
        identifiers = {
            "email": email,
            "firstname": text_or_none(member.get("first_name")),
            "lastname": text_or_none(member.get("last_name")),
        }
        return SyncRecord(str(member["customer_id"]), identifiers)

    def build_records(self, forms: pd.DataFrame, fingerprints: bool = True) -> pd.DataFrame:
        """build_record for every member at once, from the audience's contact forms (member_records)."""
        identities = [
            None if email is None else {"email": email, "firstname": first, "lastname": last}
            for email, first, last in zip(forms["n_email"], forms["t_first"], forms["t_last"], strict=True)
        ]
        return mr.record_frame(mr.member_keys(forms), identities, fingerprints=fingerprints)

    def begin(self, planned_adds: int, planned_removes: int) -> None:
        """Nothing to open."""

    def _upsert_contacts(self, batch: Sequence[SyncRecord]) -> dict[str, str]:
        """Record id per member key, creating contacts that do not exist yet (upsert by email)."""
        ids_by_key: dict[str, str] = {}
        for chunk in chunked(batch, HUBSPOT_UPSERT_MAX_INPUTS):
            inputs = [
                {
                    "idProperty": "email",
                    "id": r.identifiers["email"],
                    "properties": {k: v for k, v in r.identifiers.items() if v is not None},
                }
                for r in chunk
            ]
            reply = self.http.request(
                "POST",
                "/crm/v3/objects/contacts/batch/upsert",
                json_body={"inputs": inputs},
                dry_run_reply={
                    "status": "COMPLETE",
                    "results": [
                        {"id": f"dry-run-{r.member_key}", "properties": {"email": r.identifiers["email"]}}
                        for r in chunk
                    ],
                },
            )
            key_by_email = {r.identifiers["email"]: r.member_key for r in chunk}
            for result in (reply.json or {}).get("results", []):
                email = str((result.get("properties") or {}).get("email", "")).lower()
                if email in key_by_email:
                    ids_by_key[key_by_email[email]] = str(result["id"])
        return ids_by_key

    def _change(self, to_add: list[str], to_remove: list[str]) -> dict[str, Any]:
        reply = self.http.request(
            "PUT",
            f"{self.lists_prefix}/memberships/add-and-remove",
            json_body={"recordIdsToAdd": to_add, "recordIdsToRemove": to_remove},
            dry_run_reply={"recordsIdsAdded": to_add, "recordIdsRemoved": to_remove, "recordIdsMissing": []},
        )
        body = reply.json or {}
        self.missing.extend(str(x) for x in body.get("recordIdsMissing", []))
        return body

    def send_adds(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """Upsert contacts by email, then add their record ids to the list; missing ids fail those members."""
        record_ids = self._upsert_contacts(batch)
        failed = {r.member_key: "contact upsert returned no record id" for r in batch if r.member_key not in record_ids}
        body = self._change([record_ids[r.member_key] for r in batch if r.member_key in record_ids], [])
        missing = {str(x) for x in body.get("recordIdsMissing", [])}
        for key, record_id in record_ids.items():
            if record_id in missing:
                failed[key] = f"HubSpot reports record {record_id} missing"
        self.sent["add"] += len(batch)
        confirmed = [r.member_key for r in batch if r.member_key not in failed]
        return BatchResult(
            confirmed=confirmed,
            failed=failed,
            external_ids={k: v for k, v in record_ids.items() if k not in failed},
            response=body,
        )

    def send_removes(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """Remove the stored record ids from the list (a missing record is no longer a member either)."""
        with_id = [r for r in batch if r.external_id]
        failed = {r.member_key: "no HubSpot record id in the ledger" for r in batch if not r.external_id}
        body = self._change([], [str(r.external_id) for r in with_id]) if with_id else {}
        self.sent["remove"] += len(batch)
        return BatchResult(confirmed=[r.member_key for r in with_id], failed=failed, response=body)

    def list_member_ids(self) -> list[str]:
        """Every record id HubSpot lists as a member (follows `paging.next.after`)."""
        record_ids: list[str] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": HUBSPOT_MEMBERSHIP_PAGE}
            if after:
                params["after"] = after
            reply = self.http.request(
                "GET", f"{self.lists_prefix}/memberships", params=params, dry_run_reply={"results": []}
            )
            body = reply.json or {}
            record_ids.extend(str(row["recordId"]) for row in body.get("results", []))
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return record_ids

    def readback(self) -> dict[str, Any]:
        """HubSpot's member count and the record ids it reported missing during this sync."""
        members = self.list_member_ids()
        return {
            "sent_adds": self.sent["add"],
            "sent_removes": self.sent["remove"],
            "list_size": len(members),
            "member_record_ids": members,
            "record_ids_missing": self.missing,
        }


@register("hubspot", env=("SEGMINT_HUBSPOT_ACCESS_TOKEN",), base_url_env="SEGMINT_HUBSPOT_BASE_URL")
def build(request: BuildRequest) -> HubSpotList:
    """settings: list_id; optional api_version."""
    return HubSpotList(
        request.secret("SEGMINT_HUBSPOT_ACCESS_TOKEN"),
        str(request.settings["list_id"]),
        **request.pick("api_version"),
        **request.common,
    )
