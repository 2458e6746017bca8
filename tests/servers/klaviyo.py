"""Fake Klaviyo: bulk profile import jobs (with list relationship), profile lookup, list relationship removal."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.servers.base import FakeApi, Reply, json_body, require

MAX_IMPORT = 10_000
MAX_RELATIONSHIP = 1_000
JSON_API = "application/vnd.api+json"
JSON_STRING = r'"(?:[^"\\]|\\.)*"'


class FakeKlaviyo(FakeApi):
    """Profiles (email -> id) and one list's profile ids; import jobs complete on their first poll."""

    read_only_paths = ()

    def __init__(self, api_key: str = "pk_test", list_id: str = "XyZ123"):
        super().__init__()
        self.api_key, self.list_id = api_key, list_id
        self.profiles: dict[str, str] = {}
        self.list_members: set[str] = set()
        self.jobs: dict[str, dict[str, Any]] = {}

    def error_body(self, status: int, message: str) -> Any:
        return {"errors": [{"status": status, "code": "invalid", "title": "Invalid input.", "detail": message}]}

    def route(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> Reply:
        require(
            headers.get("authorization") == f"Klaviyo-API-Key {self.api_key}",
            "Authorization must be 'Klaviyo-API-Key <private key>'",
        )
        require(
            re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.\w+)?", headers.get("revision", "")) is not None,
            "a revision header (YYYY-MM-DD) is required",
        )
        if method in ("POST", "DELETE"):
            require(headers.get("content-type", "").startswith(JSON_API), f"Content-Type must be {JSON_API}")
        if method == "POST" and path == "/api/profile-bulk-import-jobs/":
            data = json_body(body).get("data") or {}
            require(data.get("type") == "profile-bulk-import-job", "data.type must be profile-bulk-import-job")
            profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
            require(isinstance(profiles, list) and 0 < len(profiles) <= MAX_IMPORT, f"1..{MAX_IMPORT} profiles")
            lists = (((data.get("relationships") or {}).get("lists") or {}).get("data")) or []
            require(lists == [{"type": "list", "id": self.list_id}], "relationships.lists must name the list")
            for profile in profiles:
                require(profile.get("type") == "profile", "each profile has type 'profile'")
                email = str((profile.get("attributes") or {}).get("email", ""))
                require("@" in email and email == email.strip().lower(), "profiles need a normalized email")
                profile_id = self.profiles.setdefault(email, f"01P{len(self.profiles):07d}")
                self.list_members.add(profile_id)
            job_id = f"job{len(self.jobs) + 1}"
            self.jobs[job_id] = {"status": "processing", "total_count": len(profiles)}
            return Reply(
                202, {"data": {"type": "profile-bulk-import-job", "id": job_id, "attributes": {"status": "queued"}}}
            )
        match = re.fullmatch(r"/api/profile-bulk-import-jobs/(\w+)/", path)
        if method == "GET" and match:
            job = self.jobs[match.group(1)]
            job["status"] = "complete"
            return Reply(
                200,
                {
                    "data": {
                        "type": "profile-bulk-import-job",
                        "id": match.group(1),
                        "attributes": {
                            "status": "complete",
                            "total_count": job["total_count"],
                            "completed_count": job["total_count"],
                            "failed_count": 0,
                        },
                    }
                },
            )
        if method == "GET" and path == "/api/profiles/":
            size = int(query.get("page[size]", ["20"])[0])
            require(size <= 100, "page[size] is at most 100")
            # The documented filter syntax: no whitespace between tokens, double-quoted strings, comma-separated.
            found = re.fullmatch(rf"any\(email,(\[{JSON_STRING}(?:,{JSON_STRING})*\])\)", query.get("filter", [""])[0])
            require(found is not None, 'filter must be any(email,["...","..."]) without spaces')
            emails = json.loads(found.group(1))
            require(len(emails) <= size, "more emails than one page")
            return Reply(
                200,
                {
                    "data": [
                        {"type": "profile", "id": self.profiles[e], "attributes": {"email": e}}
                        for e in emails
                        if e in self.profiles
                    ]
                },
            )
        if path == f"/api/lists/{self.list_id}/relationships/profiles/" and method == "DELETE":
            data = json_body(body).get("data")
            require(isinstance(data, list) and 0 < len(data) <= MAX_RELATIONSHIP, f"1..{MAX_RELATIONSHIP} profiles")
            for item in data:
                require(item.get("type") == "profile" and bool(item.get("id")), "profile resource identifiers")
                self.list_members.discard(item["id"])
            return Reply(204, None)
        if method == "GET" and path == f"/api/lists/{self.list_id}/":
            return Reply(
                200,
                {"data": {"type": "list", "id": self.list_id, "attributes": {"profile_count": len(self.list_members)}}},
            )
        raise AssertionError(f"unexpected {method} {path}")
