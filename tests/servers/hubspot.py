"""Fake HubSpot: contacts batch upsert by email and list memberships add-and-remove / list (v3 or dated path)."""

from __future__ import annotations

import re
from typing import Any

from tests.servers.base import FakeApi, Reply, json_body, require, require_bearer

MAX_UPSERT = 100


class FakeHubSpot(FakeApi):
    """Contacts (email -> record id) and one MANUAL list's member record ids."""

    def __init__(self, token: str = "hubspot-token", list_id: str = "77"):
        super().__init__()
        self.token, self.list_id = token, list_id
        self.contacts: dict[str, str] = {}
        self.list_members: set[str] = set()
        self.deleted_record_ids: set[str] = set()  # simulate contacts deleted in HubSpot -> recordIdsMissing

    def error_body(self, status: int, message: str) -> Any:
        return {"status": "error", "message": message, "category": "VALIDATION_ERROR" if status == 400 else "ERROR"}

    def route(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> Reply:
        require_bearer(headers, self.token)
        if path == "/crm/v3/objects/contacts/batch/upsert":
            require(method == "POST", "upsert is POST")
            inputs = json_body(body).get("inputs")
            require(isinstance(inputs, list) and 0 < len(inputs) <= MAX_UPSERT, f"inputs: 1..{MAX_UPSERT}")
            results = []
            for item in inputs:
                require(
                    item.get("idProperty") == "email" and "@" in str(item.get("id", "")),
                    "idProperty email with an email id",
                )
                email = str(item["id"]).lower()
                record_id = self.contacts.setdefault(email, str(1000 + len(self.contacts)))
                results.append({"id": record_id, "properties": {"email": email}})
            return Reply(200, {"status": "COMPLETE", "results": results})
        match = re.fullmatch(r"/crm/(?:v3/lists|lists/\d{4}-\d{2})/(\w+)/memberships(/add-and-remove)?", path)
        require(match is not None, f"unknown endpoint {method} {path}")
        require(match.group(1) == self.list_id, f"unknown list {match.group(1)}")
        if match.group(2) is None:
            require(method == "GET", "memberships listing is GET")
            ordered = sorted(self.list_members, key=int)
            start = int(query.get("after", ["0"])[0])
            limit = int(query.get("limit", ["100"])[0])
            page = ordered[start : start + limit]
            paging = {"next": {"after": str(start + limit)}} if start + limit < len(ordered) else None
            return Reply(200, {"results": [{"recordId": r} for r in page], **({"paging": paging} if paging else {})})
        require(method == "PUT", "add-and-remove is PUT")
        request = json_body(body)
        require(
            isinstance(request.get("recordIdsToAdd"), list) and isinstance(request.get("recordIdsToRemove"), list),
            "recordIdsToAdd and recordIdsToRemove are required lists",
        )
        known = set(self.contacts.values()) - self.deleted_record_ids
        added, removed, missing = [], [], []
        for record_id in map(str, request["recordIdsToAdd"]):
            if record_id not in known:
                missing.append(record_id)
            elif record_id not in self.list_members:
                self.list_members.add(record_id)
                added.append(record_id)
        for record_id in map(str, request["recordIdsToRemove"]):
            if record_id in self.list_members:
                self.list_members.discard(record_id)
                removed.append(record_id)
        return Reply(200, {"recordsIdsAdded": added, "recordIdsRemoved": removed, "recordIdsMissing": missing})

    def member_emails(self) -> set[str]:
        by_id = {v: k for k, v in self.contacts.items()}
        return {by_id[r] for r in self.list_members}
