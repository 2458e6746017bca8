"""Fake Data Manager API: POST /v1/audienceMembers:ingest|remove and GET /v1/requestStatus:retrieve."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.servers.base import FakeApi, Reply, is_hex64, json_body, require, require_bearer

MAX_MEMBERS = 10_000


class FakeDataManager(FakeApi):
    """Holds members as canonical JSON of their userIdentifiers; checks destinations, encoding, consent, hashing."""

    read_only_paths = ("/v1/requestStatus",)

    def __init__(self, token: str = "google-token", account_id: str = "1234567890", audience_id: str = "555"):
        super().__init__()
        self.token, self.account_id, self.audience_id = token, account_id, audience_id
        self.members: set[str] = set()
        self.request_counts: dict[str, int] = {}

    def error_body(self, status: int, message: str) -> Any:
        return {
            "error": {
                "code": status,
                "message": message,
                "status": "INVALID_ARGUMENT" if status == 400 else "UNAVAILABLE",
            }
        }

    def _check_member(self, member: dict) -> str:
        identifiers = (member.get("userData") or {}).get("userIdentifiers")
        require(isinstance(identifiers, list) and 0 < len(identifiers) <= 10, "userData.userIdentifiers: 1-10 items")
        for identifier in identifiers:
            require(len(identifier) == 1, "each UserIdentifier has exactly one field")
            if "emailAddress" in identifier:
                require(is_hex64(identifier["emailAddress"]), "emailAddress must be hex SHA-256")
            elif "phoneNumber" in identifier:
                require(is_hex64(identifier["phoneNumber"]), "phoneNumber must be hex SHA-256")
            else:
                address = identifier.get("address") or {}
                require(
                    is_hex64(address.get("givenName")) and is_hex64(address.get("familyName")),
                    "address names must be hex SHA-256",
                )
                require(
                    re.fullmatch(r"[A-Z]{2}", str(address.get("regionCode", ""))) is not None,
                    "regionCode must be ISO-3166-1 alpha-2",
                )
                require(bool(address.get("postalCode")), "postalCode is required")
        return json.dumps(identifiers, sort_keys=True)

    def route(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> Reply:
        require_bearer(headers, self.token)
        if method == "GET" and path == "/v1/requestStatus:retrieve":
            request_id = query.get("requestId", [""])[0]
            require(request_id in self.request_counts, f"unknown requestId {request_id}")
            count = self.request_counts[request_id]
            return Reply(
                200,
                {
                    "requestStatusPerDestination": [
                        {
                            "requestStatus": "SUCCESS",
                            "audienceMembersIngestionStatus": {"userDataIngestionStatus": {"recordCount": str(count)}},
                        }
                    ]
                },
            )
        require(
            method == "POST" and path in ("/v1/audienceMembers:ingest", "/v1/audienceMembers:remove"),
            f"unknown endpoint {method} {path}",
        )
        request = json_body(body)
        destinations = request.get("destinations")
        require(isinstance(destinations, list) and len(destinations) == 1, "one destination expected")
        destination = destinations[0]
        # ProductAccount.accountId is "the ID of the account, for example your Google Ads account ID"; Google Ads
        # customer ids are 10 digits without hyphens (the UI's 123-456-7890 form is display only).
        for role in ("operatingAccount", "loginAccount"):
            account_id = str((destination.get(role) or {}).get("accountId", "0"))
            require(
                re.fullmatch(r"[0-9]+", account_id) is not None,
                f"{role}.accountId must be the numeric account id without dashes, got {account_id}",
            )
        require(
            destination.get("operatingAccount") == {"accountType": "GOOGLE_ADS", "accountId": self.account_id},
            "operatingAccount must be {accountType: GOOGLE_ADS, accountId}",
        )
        require(destination.get("productDestinationId") == self.audience_id, "unknown productDestinationId")
        require(request.get("encoding") == "HEX", "encoding must be HEX for hex-encoded hashes")
        members = request.get("audienceMembers")
        require(
            isinstance(members, list) and 0 < len(members) <= MAX_MEMBERS, f"audienceMembers: 1..{MAX_MEMBERS} items"
        )
        keys = [self._check_member(m) for m in members]
        if path.endswith(":ingest"):
            require(
                request.get("consent") == {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"},
                "consent must be granted for Customer Match ingestion",
            )
            require(
                (request.get("termsOfService") or {}).get("customerMatchTermsOfServiceStatus") == "ACCEPTED",
                "Customer Match terms of service must be ACCEPTED",
            )
            self.members.update(keys)
        else:
            self.members.difference_update(keys)
        request_id = f"req-{len(self.request_counts) + 1}"
        self.request_counts[request_id] = len(members)
        return Reply(200, {"requestId": request_id})
