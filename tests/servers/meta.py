"""Fake Meta Marketing API: /{version}/{audience_id}/users (POST add, DELETE remove) and .../sessions."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

from tests.servers.base import FakeApi, Reply, Violation, is_hex64, require, require_bearer

HASHED_KEYS = ("EMAIL", "PHONE", "FN", "LN", "ZIP", "COUNTRY")
MAX_USERS = 10_000


class FakeMeta(FakeApi):
    """Holds members per audience as a dict: tuple of hashed keys -> LOOKALIKE_VALUE (or None)."""

    def __init__(self, token: str = "meta-token", audience_id: str = "23850000000001", version: str = "v25.0"):
        super().__init__()
        self.token, self.audience_id, self.version = token, audience_id, version
        self.members: dict[tuple[str, ...], Any] = {}
        self.sessions: dict[int, dict[str, Any]] = {}
        self.read_only_paths = (f"/{version}/{audience_id}/sessions",)

    def error_body(self, status: int, message: str) -> Any:
        return {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": 100 if status == 400 else status,
                "error_user_msg": message,
            }
        }

    def route(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> Reply:
        require_bearer(headers, self.token)
        if method == "GET" and path == f"/{self.version}/{self.audience_id}/sessions":
            wanted = {int(s) for s in query.get("session_id", [])}
            data = [
                {
                    "session_id": str(sid),
                    **{k: str(v) for k, v in s.items() if k.startswith("num_")},
                    "stage": s["stage"],
                }
                for sid, s in self.sessions.items()
                if not wanted or sid in wanted
            ]
            return Reply(200, {"data": data})
        match = re.fullmatch(rf"/{re.escape(self.version)}/([\w-]+)/users", path)
        require(match is not None and method in ("POST", "DELETE"), f"unknown endpoint {method} {path}")
        require(match.group(1) == self.audience_id, f"unknown audience {match.group(1)}")
        require("application/x-www-form-urlencoded" in headers.get("content-type", ""), "payload must be form-encoded")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
        require("payload" in form and "session" in form, "payload and session are required")
        payload, session = json.loads(form["payload"]), json.loads(form["session"])
        schema, data = payload.get("schema"), payload.get("data")
        require(isinstance(schema, list) and isinstance(data, list), "payload needs schema (list) and data (list)")
        require(len(data) <= MAX_USERS, f"{len(data)} users in one request; the maximum is {MAX_USERS}")
        require(set(schema) - {"LOOKALIKE_VALUE"} <= set(HASHED_KEYS), f"unsupported schema keys {schema}")
        require(method == "POST" or "LOOKALIKE_VALUE" not in schema, "LOOKALIKE_VALUE only on add")
        for key in ("session_id", "batch_seq", "last_batch_flag", "estimated_num_total"):
            require(key in session, f"session.{key} is required")
        state = self.sessions.setdefault(
            int(session["session_id"]),
            {"num_received": 0, "num_invalid_entries": 0, "num_matched": 0, "stage": "uploading", "last_seq": 0},
        )
        require(int(session["batch_seq"]) >= 1, "batch_seq starts at 1")
        state["last_seq"] = int(session["batch_seq"])
        if session["last_batch_flag"]:
            state["stage"] = "processing"
        hashed_positions = [i for i, k in enumerate(schema) if k != "LOOKALIKE_VALUE"]
        value_position = schema.index("LOOKALIKE_VALUE") if "LOOKALIKE_VALUE" in schema else None
        invalid = 0
        for row in data:
            require(isinstance(row, list) and len(row) == len(schema), "each data row must match the schema")
            keys = tuple(row[i] for i in hashed_positions)
            if not all(k == "" or is_hex64(k) for k in keys):
                raise Violation("identifiers must be SHA-256 hex (64 lowercase hex characters)")
            if value_position is not None:
                value = row[value_position]
                require(isinstance(value, (int, float)) and value >= 0, "LOOKALIKE_VALUE must be a number >= 0")
            if not any(keys):
                invalid += 1
                continue
            member = dict(zip([schema[i] for i in hashed_positions], keys))
            full_key = tuple(member.get(k, "") for k in HASHED_KEYS)
            if method == "POST":
                self.members[full_key] = row[value_position] if value_position is not None else None
            else:
                self.members.pop(full_key, None)
        state["num_received"] += len(data)
        state["num_invalid_entries"] += invalid
        return Reply(
            200,
            {
                "audience_id": self.audience_id,
                "session_id": str(session["session_id"]),
                "num_received": len(data),
                "num_invalid_entries": invalid,
                "invalid_entry_samples": {},
            },
        )

    def emails(self) -> set[str]:
        """Hashed emails currently in the audience."""
        return {key[0] for key in self.members}
