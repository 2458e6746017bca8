"""Klaviyo list membership: profiles upserted and added to a list by bulk import, removed by relationship.

Followed (read 2026-11 on developers.klaviyo.com, API revision 2026-04-15): "Bulk Import Profiles" guide and
reference (POST /api/profile-bulk-import-jobs/ with a `profile-bulk-import-job` whose `profiles.data` holds up
to 10,000 profiles (5 MB) and whose `relationships.lists` names the list; it upserts profiles and adds them to
the list; poll GET /api/profile-bulk-import-jobs/{id}/ until `status` is `complete`; per-profile failures at
/api/profile-bulk-import-jobs/{id}/import-errors/), "Remove Profiles from List" (DELETE
/api/lists/{id}/relationships/profiles/ with up to 1,000 `profile` resource identifiers), "Get Profiles"
(GET /api/profiles/?filter=any(email,["a@x.com","b@y.com"]) with page[size] <= 100; the "Filtering" guide's
syntax: operator(field,value) with no spaces, strings in double quotes, lists in brackets) and "Get List"
(profile_count via additional-fields[list]). Every request: `Authorization: Klaviyo-API-Key <private key>`, a `revision` header,
JSON:API bodies (`application/vnd.api+json`). Klaviyo is an email destination: only members with marketing
consent are sent, and adding to a list does not subscribe anyone (consent stays Klaviyo's to manage).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from activation import identifiers as ids
from activation import member_records as mr
from activation.destinations.base import BatchResult, chunked, text_or_none
from activation.destinations.registry import BuildRequest, register
from activation.http import DestinationError, HttpClient, RetryPolicy
from activation.ledger import SyncRecord

KLAVIYO_BASE_URL = "https://a.klaviyo.com"
KLAVIYO_REVISION = "2026-04-15"
KLAVIYO_IMPORT_MAX_PROFILES = 10_000
KLAVIYO_RELATIONSHIP_MAX = 1_000
KLAVIYO_PAGE_SIZE = 100
JSON_API = "application/vnd.api+json"


def any_filter(field: str, values: Sequence[str]) -> str:
    """Klaviyo's `any` filter in its documented form: any(email,["a@x.com","b@y.com"]) (no spaces).

    The official Python SDK (klaviyo-api 25.0.0, FilterBuilder.any) also removes every whitespace character; it
    quotes list items the Python way ('a@x.com'), we keep the guide's double quotes.
    """
    return f"any({field},{json.dumps(list(values), separators=(',', ':'))})"


class KlaviyoList:
    """Profiles in one Klaviyo list, kept in step with an audience."""

    kind = "email"
    MATCHABLE_SQL = mr.EMAIL_MATCHABLE_SQL  # build_records gives a record (the size guard counts with it)
    FORMS_READ = mr.EMAIL_AND_NAMES_FORMS  # the contact forms build_records reads

    def __init__(
        self,
        api_key: str,
        list_id: str,
        *,
        base_url: str = KLAVIYO_BASE_URL,
        revision: str = KLAVIYO_REVISION,
        name: str = "klaviyo",
        max_batch: int = KLAVIYO_IMPORT_MAX_PROFILES,
        poll_interval_s: float = 2.0,
        max_polls: int = 300,
        policy: RetryPolicy | None = None,
        dry_run_dir: str | Path | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self.name = name
        self.list_id = str(list_id)
        self.max_batch = min(max_batch, KLAVIYO_IMPORT_MAX_PROFILES)
        self.poll_interval_s, self.max_polls = poll_interval_s, max_polls
        self._sleep = sleep or time.sleep
        headers = {
            "Authorization": f"Klaviyo-API-Key {api_key}",
            "revision": revision,
            "accept": JSON_API,
            "Content-Type": JSON_API,
        }
        extra = {"sleep": sleep} if sleep else {}
        self.http = HttpClient(name, base_url, headers, policy=policy, dry_run_dir=dry_run_dir, **extra)
        self.sent = {"add": 0, "remove": 0}
        self.jobs: list[dict[str, Any]] = []

    def build_record(self, member: Mapping[str, Any]) -> SyncRecord | None:
        """Email (Klaviyo's identity), external_id = customer_id and names; None without a usable email."""
        email = ids.normalize_email(member.get("email"))
        if email is None:
            return None
        return SyncRecord(
            str(member["customer_id"]),
            {
                "email": email,
                "external_id": str(member["customer_id"]),
                "first_name": text_or_none(member.get("first_name")),
                "last_name": text_or_none(member.get("last_name")),
            },
        )

    def build_records(self, forms: pd.DataFrame, fingerprints: bool = True) -> pd.DataFrame:
        """build_record for every member at once, from the audience's contact forms (member_records)."""
        keys = mr.member_keys(forms)
        identities = [
            None if email is None else {"email": email, "external_id": key, "first_name": first, "last_name": last}
            for key, email, first, last in zip(keys, forms["n_email"], forms["t_first"], forms["t_last"], strict=True)
        ]
        return mr.record_frame(keys, identities, fingerprints=fingerprints)

    def begin(self, planned_adds: int, planned_removes: int) -> None:
        """Nothing to open."""

    def _wait_for_job(self, job_id: str) -> dict[str, Any]:
        for _ in range(self.max_polls):
            reply = self.http.request(
                "GET",
                f"/api/profile-bulk-import-jobs/{job_id}/",
                dry_run_reply={"data": {"id": job_id, "attributes": {"status": "complete"}}},
            )
            attributes = ((reply.json or {}).get("data") or {}).get("attributes") or {}
            if attributes.get("status") == "complete":
                return attributes
            if attributes.get("status") == "cancelled":
                raise DestinationError(self.name, f"bulk import job {job_id} was cancelled", retryable=True)
            self._sleep(self.poll_interval_s)
        raise DestinationError(self.name, f"bulk import job {job_id} did not complete in time", retryable=True)

    def send_adds(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """One bulk import job that upserts the profiles and adds them to the list; confirmed once complete."""
        profiles = [
            {"type": "profile", "attributes": {k: v for k, v in r.identifiers.items() if v is not None}} for r in batch
        ]
        body = {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {"profiles": {"data": profiles}},
                "relationships": {"lists": {"data": [{"type": "list", "id": self.list_id}]}},
            }
        }
        created = self.http.request(
            "POST",
            "/api/profile-bulk-import-jobs/",
            json_body=body,
            dry_run_reply={"data": {"id": f"dry-run-{len(self.jobs)}"}},
        )
        job_id = str(((created.json or {}).get("data") or {}).get("id"))
        attributes = self._wait_for_job(job_id)
        failed: dict[str, str] = {}
        if int(attributes.get("failed_count") or 0) > 0:
            reply = self.http.request(
                "GET", f"/api/profile-bulk-import-jobs/{job_id}/import-errors/", dry_run_reply={"data": []}
            )
            key_by_email = {r.identifiers["email"]: r.member_key for r in batch}
            for error in (reply.json or {}).get("data", []):
                error_attributes = error.get("attributes") or {}
                email = str((error_attributes.get("original_payload") or {}).get("email", "")).lower()
                if email in key_by_email:
                    failed[key_by_email[email]] = str(error_attributes.get("detail") or "import error")
        self.jobs.append({"job": job_id, "size": len(batch), "failed": len(failed)})
        self.sent["add"] += len(batch)
        return BatchResult(
            confirmed=[r.member_key for r in batch if r.member_key not in failed],
            failed=failed,
            response={"job": job_id, **attributes},
        )

    def _profile_ids(self, emails: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in chunked(list(emails), KLAVIYO_PAGE_SIZE):
            reply = self.http.request(
                "GET",
                "/api/profiles/",
                params={"filter": any_filter("email", chunk), "page[size]": KLAVIYO_PAGE_SIZE},
                dry_run_reply={"data": []},
            )
            for profile in (reply.json or {}).get("data", []):
                email = str((profile.get("attributes") or {}).get("email", "")).lower()
                found[email] = str(profile["id"])
        return found

    def send_removes(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """Look up profile ids by email, then remove them from the list (no profile means not a member)."""
        profile_ids = self._profile_ids([r.identifiers["email"] for r in batch])
        to_remove = [
            {"type": "profile", "id": profile_ids[r.identifiers["email"]]}
            for r in batch
            if r.identifiers["email"] in profile_ids
        ]
        for chunk in chunked(to_remove, KLAVIYO_RELATIONSHIP_MAX):
            self.http.request(
                "DELETE", f"/api/lists/{self.list_id}/relationships/profiles/", json_body={"data": list(chunk)}
            )
        self.sent["remove"] += len(batch)
        return BatchResult(confirmed=[r.member_key for r in batch], response={"removed": len(to_remove)})

    def readback(self) -> dict[str, Any]:
        """Klaviyo's profile count for the list and the import jobs of this sync."""
        reply = self.http.request(
            "GET",
            f"/api/lists/{self.list_id}/",
            params={"additional-fields[list]": "profile_count"},
            dry_run_reply={"data": {"attributes": {"profile_count": 0}}},
        )
        count = (((reply.json or {}).get("data") or {}).get("attributes") or {}).get("profile_count")
        return {
            "sent_adds": self.sent["add"],
            "sent_removes": self.sent["remove"],
            "jobs": self.jobs,
            "list_size": int(count or 0),
        }


@register("klaviyo", env=("SEGMINT_KLAVIYO_API_KEY",), base_url_env="SEGMINT_KLAVIYO_BASE_URL")
def build(request: BuildRequest) -> KlaviyoList:
    """settings: list_id; optional revision."""
    return KlaviyoList(
        request.secret("SEGMINT_KLAVIYO_API_KEY"),
        str(request.settings["list_id"]),
        **request.pick("revision"),
        **request.common,
    )
