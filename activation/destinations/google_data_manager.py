"""Google Customer Match through the Data Manager API (datamanager.googleapis.com v1).

Followed (read 2026-11 on developers.google.com/data-manager): REST reference audienceMembers.ingest and
audienceMembers.remove (POST /v1/audienceMembers:ingest|remove; at most 10,000 AudienceMember per request;
`destinations`, `audienceMembers`, request-level `consent`, `encoding`, `termsOfService`), requestStatus.retrieve
(GET /v1/requestStatus:retrieve?requestId=...), "Send audience members" guide (Destination = operatingAccount
{accountType, accountId}, optional loginAccount, productDestinationId = the user list id), "Format user data"
(see activation.identifiers), google.ads.datamanager.v1 AddressInfo. Auth: OAuth bearer token with scope
https://www.googleapis.com/auth/datamanager. Account ids (operatingAccount/loginAccount accountId) are sent as
digits: the Google Ads UI shows a customer id as 123-456-7890, the APIs take 1234567890 (`google_account_id`,
shared with google_ads_offline). Google stopped accepting new Customer Match users through the
Google Ads API in April 2026; `google_ads_offline` keeps the old job flow for accounts that still have it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from activation import identifiers as ids
from activation import member_records as mr
from activation.destinations.base import BatchResult
from activation.destinations.registry import BuildRequest, register
from activation.http import DestinationError, HttpClient, RetryPolicy
from activation.ledger import SyncRecord

DATA_MANAGER_BASE_URL = "https://datamanager.googleapis.com"
DATA_MANAGER_MAX_MEMBERS_PER_REQUEST = 10_000
GOOGLE_ADS_ACCOUNT_TYPE = "GOOGLE_ADS"
ACCOUNT_ID_WITH_DASHES = re.compile(r"[0-9]+(?:-[0-9]+)*")


def google_account_id(value: object) -> str:
    """A Google account id as the APIs take it: the UI's 123-456-7890 becomes 1234567890 (other text is kept)."""
    text = str(value).strip()
    return text.replace("-", "") if ACCOUNT_ID_WITH_DASHES.fullmatch(text) else text


def account_id_problem(setting: str, account_id: str) -> str | None:
    """Why an account id cannot be sent to Google (not all digits), or None."""
    if re.fullmatch(r"[0-9]+", account_id):
        return None
    return f"{setting} must be a numeric Google account id such as 123-456-7890, got '{account_id}'"


def google_user_identifiers(member: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Data Manager userIdentifiers (hex SHA-256 email, phone, names; plain region and postal code) or None."""
    country = ids.normalize_country(member.get("country"))
    identifiers: list[dict[str, Any]] = []
    email = ids.normalize_email_google(member.get("email"))
    if email:
        identifiers.append({"emailAddress": ids.sha256_hex(email)})
    phone = ids.normalize_phone_e164(member.get("phone"), country)
    if phone:
        identifiers.append({"phoneNumber": ids.sha256_hex(phone)})
    given, family = ids.normalize_name(member.get("first_name")), ids.normalize_name(member.get("last_name"))
    postal = ids.normalize_postal_code(member.get("postal_code"), country)
    if given and family and country and postal:  # AddressInfo requires all four fields
        identifiers.append(
            {
                "address": {
                    "givenName": ids.sha256_hex(given),
                    "familyName": ids.sha256_hex(family),
                    "regionCode": country,
                    "postalCode": postal,
                }
            }
        )
    return identifiers or None


class GoogleDataManagerAudience:
    """Members of one Customer Match user list, sent through the Data Manager API."""

    kind = "ad"
    MATCHABLE_SQL = mr.GOOGLE_MATCHABLE_SQL  # build_records gives a record (the size guard counts with it)
    FORMS_READ = mr.GOOGLE_FORMS  # the contact forms build_records reads

    def __init__(
        self,
        access_token: str,
        operating_account_id: str,
        audience_id: str,
        *,
        base_url: str = DATA_MANAGER_BASE_URL,
        login_account_id: str | None = None,
        account_type: str = GOOGLE_ADS_ACCOUNT_TYPE,
        name: str = "google_data_manager",
        max_batch: int = DATA_MANAGER_MAX_MEMBERS_PER_REQUEST,
        policy: RetryPolicy | None = None,
        dry_run_dir: str | Path | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self.name = name
        self.max_batch = min(max_batch, DATA_MANAGER_MAX_MEMBERS_PER_REQUEST)
        accounts = {"operating_account_id": google_account_id(operating_account_id)}
        self.destination: dict[str, Any] = {
            "operatingAccount": {"accountType": account_type, "accountId": accounts["operating_account_id"]},
            "productDestinationId": str(audience_id),
        }
        if login_account_id:
            accounts["login_account_id"] = google_account_id(login_account_id)
            self.destination["loginAccount"] = {"accountType": account_type, "accountId": accounts["login_account_id"]}
        extra = {"sleep": sleep} if sleep else {}
        self.http = HttpClient(
            name, base_url, {"Authorization": f"Bearer {access_token}"}, policy=policy, dry_run_dir=dry_run_dir, **extra
        )
        self.request_ids: list[str] = []
        self.sent = 0
        # A placeholder id is fine for a dry run (the request files show it); a live sync refuses it in begin().
        problems = (account_id_problem(setting, value) for setting, value in accounts.items())
        self.setting_problems = [p for p in problems if p] if dry_run_dir is None else []

    def build_record(self, member: Mapping[str, Any]) -> SyncRecord | None:
        """The member's userIdentifiers, or None when there is nothing Google can match on."""
        identifiers = google_user_identifiers(member)
        if identifiers is None:
            return None
        return SyncRecord(str(member["customer_id"]), {"userIdentifiers": identifiers})

    def build_records(self, forms: pd.DataFrame, fingerprints: bool = True) -> pd.DataFrame:
        """build_record for every member at once, from the audience's contact forms (member_records)."""
        identities = [None if i is None else {"userIdentifiers": i} for i in mr.google_identities(forms)]
        return mr.record_frame(mr.member_keys(forms), identities, fingerprints=fingerprints)

    def begin(self, planned_adds: int, planned_removes: int) -> None:
        """Nothing to open (every request stands alone); a live sync refuses account ids that are not numeric."""
        if self.setting_problems:
            raise DestinationError(self.name, "; ".join(self.setting_problems))

    def _members(self, batch: Sequence[SyncRecord]) -> list[dict[str, Any]]:
        return [{"userData": {"userIdentifiers": list(r.identifiers["userIdentifiers"])}} for r in batch]

    def _send(self, method_path: str, body: dict[str, Any], batch: Sequence[SyncRecord]) -> BatchResult:
        reply = self.http.request(
            "POST", method_path, json_body=body, dry_run_reply={"requestId": f"dry-run-{len(self.request_ids) + 1}"}
        )
        request_id = (reply.json or {}).get("requestId")
        if request_id:
            self.request_ids.append(str(request_id))
        self.sent += len(batch)
        return BatchResult(confirmed=[r.member_key for r in batch], response=reply.json)

    def send_adds(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """audienceMembers:ingest with consent granted (only consenting members reach ad destinations)."""
        body = {
            "destinations": [self.destination],
            "audienceMembers": self._members(batch),
            "consent": {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"},
            "encoding": "HEX",
            "termsOfService": {"customerMatchTermsOfServiceStatus": "ACCEPTED"},
        }
        return self._send("/v1/audienceMembers:ingest", body, batch)

    def send_removes(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """audienceMembers:remove with the exact identifiers that were ingested."""
        body = {"destinations": [self.destination], "audienceMembers": self._members(batch), "encoding": "HEX"}
        return self._send("/v1/audienceMembers:remove", body, batch)

    def readback(self) -> dict[str, Any]:
        """Per request, Google's status and record counts (requestStatus:retrieve) next to what was sent."""
        statuses = []
        record_count = 0
        for request_id in self.request_ids:
            reply = self.http.request(
                "GET",
                "/v1/requestStatus:retrieve",
                params={"requestId": request_id},
                dry_run_reply={"requestStatusPerDestination": []},
            )
            for status in (reply.json or {}).get("requestStatusPerDestination", []):
                ingestion = (
                    status.get("audienceMembersIngestionStatus") or status.get("audienceMembersRemovalStatus") or {}
                )
                user_data = ingestion.get("userDataIngestionStatus") or ingestion.get("userDataRemovalStatus") or {}
                record_count += int(user_data.get("recordCount", 0))
                statuses.append(
                    {
                        "requestId": request_id,
                        "requestStatus": status.get("requestStatus"),
                        "recordCount": int(user_data.get("recordCount", 0)),
                    }
                )
        return {
            "sent": self.sent,
            "requests": len(self.request_ids),
            "record_count": record_count,
            "statuses": statuses,
            "matches_sent": record_count == self.sent,
        }


@register(
    "google_data_manager", env=("SEGMINT_GOOGLE_ACCESS_TOKEN",), base_url_env="SEGMINT_GOOGLE_DATA_MANAGER_BASE_URL"
)
def build(request: BuildRequest) -> GoogleDataManagerAudience:
    """settings: operating_account_id, audience_id; optional login_account_id."""
    return GoogleDataManagerAudience(
        request.secret("SEGMINT_GOOGLE_ACCESS_TOKEN"),
        str(request.settings["operating_account_id"]),
        str(request.settings["audience_id"]),
        **request.pick("login_account_id"),
        **request.common,
    )
