"""Google Customer Match through the Google Ads API offline user data job (legacy accounts only).

Google stopped accepting new Customer Match users through the Google Ads API in April 2026 and points to the
Data Manager API (see google_data_manager.py); this flow is kept only for accounts that still have it.
Followed (read 2026-11, Google Ads API v26 REST reference and the "Customer Match" guide):
  POST /v26/customers/{customerId}/offlineUserDataJobs:create  {"job": {"type": "CUSTOMER_MATCH_USER_LIST",
       "customerMatchUserListMetadata": {"userList": "customers/{cid}/userLists/{id}", "consent": {...}}}}
  POST /v26/{jobResourceName}:addOperations  {"operations": [{"create"|"remove": {"userIdentifiers": [...]}}],
       "enablePartialFailure": true}
  POST /v26/{jobResourceName}:run  -> long-running operation
Headers: Authorization: Bearer, developer-token, login-customer-id (manager account, optional).
UserIdentifier: hashedEmail, hashedPhoneNumber (SHA-256 hex of the same normal forms as Data Manager),
addressInfo {hashedFirstName, hashedLastName, countryCode, postalCode}. One job per batch so a batch is
confirmed only after its job was accepted for running.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from activation import member_records as mr
from activation.destinations.base import BatchResult
from activation.destinations.google_data_manager import google_account_id, google_user_identifiers
from activation.destinations.registry import BuildRequest, register
from activation.http import HttpClient, RetryPolicy
from activation.ledger import SyncRecord

GOOGLE_ADS_BASE_URL = "https://googleads.googleapis.com"
GOOGLE_ADS_API_VERSION = "v26"
GOOGLE_ADS_MAX_MEMBERS_PER_REQUEST = 10_000  # <= 100,000 identifiers per addOperations with 3 keys each


def _ads_identifier(identifier: Mapping[str, Any]) -> dict[str, Any]:
    if "emailAddress" in identifier:
        return {"hashedEmail": identifier["emailAddress"]}
    if "phoneNumber" in identifier:
        return {"hashedPhoneNumber": identifier["phoneNumber"]}
    address = identifier["address"]
    return {
        "addressInfo": {
            "hashedFirstName": address["givenName"],
            "hashedLastName": address["familyName"],
            "countryCode": address["regionCode"],
            "postalCode": address["postalCode"],
        }
    }


class GoogleAdsOfflineJobAudience:
    """Members of one Customer Match user list through OfflineUserDataJobService (legacy accounts)."""

    kind = "ad"
    MATCHABLE_SQL = mr.GOOGLE_MATCHABLE_SQL  # build_records gives a record (the size guard counts with it)
    FORMS_READ = mr.GOOGLE_FORMS  # the contact forms build_records reads

    def __init__(
        self,
        access_token: str,
        developer_token: str,
        customer_id: str,
        user_list_id: str,
        *,
        base_url: str = GOOGLE_ADS_BASE_URL,
        api_version: str = GOOGLE_ADS_API_VERSION,
        login_customer_id: str | None = None,
        name: str = "google_ads_offline",
        max_batch: int = GOOGLE_ADS_MAX_MEMBERS_PER_REQUEST,
        policy: RetryPolicy | None = None,
        dry_run_dir: str | Path | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self.name = name
        self.customer_id = google_account_id(customer_id)
        self.user_list = f"customers/{self.customer_id}/userLists/{user_list_id}"
        self.api_version = api_version
        self.max_batch = min(max_batch, GOOGLE_ADS_MAX_MEMBERS_PER_REQUEST)
        headers = {"Authorization": f"Bearer {access_token}", "developer-token": developer_token}
        if login_customer_id:
            headers["login-customer-id"] = google_account_id(login_customer_id)
        extra = {"sleep": sleep} if sleep else {}
        self.http = HttpClient(name, base_url, headers, policy=policy, dry_run_dir=dry_run_dir, **extra)
        self.jobs: list[dict[str, Any]] = []

    def build_record(self, member: Mapping[str, Any]) -> SyncRecord | None:
        """Same identifiers as the Data Manager destination (same documented normal forms)."""
        identifiers = google_user_identifiers(member)
        return None if identifiers is None else SyncRecord(str(member["customer_id"]), {"userIdentifiers": identifiers})

    def build_records(self, forms: pd.DataFrame, fingerprints: bool = True) -> pd.DataFrame:
        """build_record for every member at once, from the audience's contact forms (member_records)."""
        identities = [None if i is None else {"userIdentifiers": i} for i in mr.google_identities(forms)]
        return mr.record_frame(mr.member_keys(forms), identities, fingerprints=fingerprints)

    def begin(self, planned_adds: int, planned_removes: int) -> None:
        """Nothing to open: each batch runs in its own job."""

    def _run_job(self, operation: str, batch: Sequence[SyncRecord]) -> BatchResult:
        prefix = f"/{self.api_version}/customers/{self.customer_id}/offlineUserDataJobs"
        job = {
            "type": "CUSTOMER_MATCH_USER_LIST",
            "customerMatchUserListMetadata": {
                "userList": self.user_list,
                "consent": {"adUserData": "GRANTED", "adPersonalization": "GRANTED"},
            },
        }
        created = self.http.request(
            "POST",
            f"{prefix}:create",
            json_body={"job": job},
            dry_run_reply={
                "resourceName": f"customers/{self.customer_id}/offlineUserDataJobs/dry-run-{len(self.jobs)}"
            },
        )
        resource = (created.json or {})["resourceName"]
        operations = [
            {operation: {"userIdentifiers": [_ads_identifier(i) for i in r.identifiers["userIdentifiers"]]}}
            for r in batch
        ]
        added = self.http.request(
            "POST",
            f"/{self.api_version}/{resource}:addOperations",
            json_body={"operations": operations, "enablePartialFailure": True},
        )
        partial = (added.json or {}).get("partialFailureError")
        ran = self.http.request(
            "POST",
            f"/{self.api_version}/{resource}:run",
            json_body={},
            dry_run_reply={"name": f"{resource}/operations/dry-run"},
        )
        self.jobs.append(
            {"job": resource, "operation": (ran.json or {}).get("name"), "size": len(batch), "partial_failure": partial}
        )
        failed = {}
        if partial:
            # Partial failures carry operation indexes in their details; without them the whole batch is retried.
            indexes = (
                {
                    int(d.get("index"))
                    for e in partial.get("details", [])
                    for d in e.get("errors", [])
                    if str(d.get("index", "")).isdigit()
                }
                if isinstance(partial, dict)
                else set()
            )
            failed = {
                batch[i].member_key: str(partial.get("message", "partial failure"))
                for i in (indexes or range(len(batch)))
                if i < len(batch)
            }
        confirmed = [r.member_key for r in batch if r.member_key not in failed]
        return BatchResult(confirmed=confirmed, failed=failed, response={"job": resource})

    def send_adds(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """One job with `create` operations, run after upload."""
        return self._run_job("create", batch)

    def send_removes(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """One job with `remove` operations, run after upload."""
        return self._run_job("remove", batch)

    def readback(self) -> dict[str, Any]:
        """Jobs started in this sync (Google processes them asynchronously, for up to 24 h)."""
        return {"jobs": self.jobs, "sent": sum(j["size"] for j in self.jobs)}


@register(
    "google_ads_offline",
    env=("SEGMINT_GOOGLE_ACCESS_TOKEN", "SEGMINT_GOOGLE_ADS_DEVELOPER_TOKEN"),
    base_url_env="SEGMINT_GOOGLE_ADS_BASE_URL",
)
def build(request: BuildRequest) -> GoogleAdsOfflineJobAudience:
    """settings: customer_id, user_list_id; optional login_customer_id, api_version."""
    return GoogleAdsOfflineJobAudience(
        request.secret("SEGMINT_GOOGLE_ACCESS_TOKEN"),
        request.secret("SEGMINT_GOOGLE_ADS_DEVELOPER_TOKEN"),
        str(request.settings["customer_id"]),
        str(request.settings["user_list_id"]),
        **request.pick("login_customer_id", "api_version"),
        **request.common,
    )
