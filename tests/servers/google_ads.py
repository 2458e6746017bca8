"""Fake Google Ads API OfflineUserDataJobService (create, addOperations, run) for Customer Match."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.servers.base import FakeApi, Reply, is_hex64, json_body, require, require_bearer


class FakeGoogleAds(FakeApi):
    """Members of one user list (canonical JSON of userIdentifiers); operations apply when a job runs."""

    def __init__(
        self,
        token: str = "ads-token",
        developer_token: str = "dev-token",
        customer_id: str = "1234567890",
        user_list_id: str = "999",
        version: str = "v26",
    ):
        super().__init__()
        self.token, self.developer_token, self.customer_id = token, developer_token, customer_id
        self.user_list = f"customers/{customer_id}/userLists/{user_list_id}"
        self.version = version
        self.jobs: dict[str, dict[str, Any]] = {}
        self.members: set[str] = set()

    def route(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> Reply:
        require_bearer(headers, self.token)
        require(headers.get("developer-token") == self.developer_token, "developer-token header is required")
        base = f"/{self.version}/customers/{self.customer_id}/offlineUserDataJobs"
        request = json_body(body)
        if path == f"{base}:create":
            job = request.get("job") or {}
            require(job.get("type") == "CUSTOMER_MATCH_USER_LIST", "job.type must be CUSTOMER_MATCH_USER_LIST")
            require(
                (job.get("customerMatchUserListMetadata") or {}).get("userList") == self.user_list,
                "customerMatchUserListMetadata.userList must be the list resource name",
            )
            job_id = str(len(self.jobs) + 1)
            self.jobs[job_id] = {"operations": [], "ran": False}
            return Reply(200, {"resourceName": f"customers/{self.customer_id}/offlineUserDataJobs/{job_id}"})
        match = re.fullmatch(rf"{re.escape(base)}/(\d+):(addOperations|run)", path)
        require(match is not None and match.group(1) in self.jobs, f"unknown endpoint {path}")
        job = self.jobs[match.group(1)]
        require(not job["ran"], "job already running")
        if match.group(2) == "addOperations":
            operations = request.get("operations")
            require(isinstance(operations, list) and operations, "operations required")
            for operation in operations:
                require(len(operation) == 1 and next(iter(operation)) in ("create", "remove"), "create or remove")
                identifiers = next(iter(operation.values())).get("userIdentifiers") or []
                for identifier in identifiers:
                    hashed = [v for k, v in identifier.items() if k.startswith("hashed")]
                    hashed += [v for k, v in (identifier.get("addressInfo") or {}).items() if k.startswith("hashed")]
                    require(hashed and all(is_hex64(v) for v in hashed), "identifiers must be hex SHA-256")
                job["operations"].append(operation)
            return Reply(200, {})
        job["ran"] = True
        for operation in job["operations"]:
            action, data = next(iter(operation.items()))
            key = json.dumps(data["userIdentifiers"], sort_keys=True)
            (self.members.add if action == "create" else self.members.discard)(key)
        return Reply(200, {"name": f"customers/{self.customer_id}/operations/{match.group(1)}"})
