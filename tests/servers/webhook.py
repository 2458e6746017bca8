"""Fake webhook receiver: verifies X-Segmint-Signature, applies each event id once, counts duplicates."""

from __future__ import annotations

from typing import Any

from activation.destinations.webhook import SIGNATURE_HEADER, verify_signature
from tests.servers.base import FakeApi, Reply, json_body, require


class FakeWebhook(FakeApi):
    """Members of one audience as the receiver sees them, built from signed add/remove events."""

    def __init__(self, secret: str = "whsec-test", path: str = "/hooks/segmint"):
        super().__init__()
        self.secret, self.path = secret, path
        self.members: dict[str, dict[str, Any]] = {}
        self.seen_events: set[str] = set()
        self.duplicate_events = 0

    def route(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> Reply:
        require(method == "POST" and path == self.path, f"unknown endpoint {method} {path}")
        require(
            verify_signature(self.secret, headers.get(SIGNATURE_HEADER.lower()), body),
            "bad or stale X-Segmint-Signature",
        )
        require(bool(headers.get("idempotency-key")), "Idempotency-Key header is required")
        event = json_body(body)
        require(event.get("action") in ("add", "remove"), "action must be add or remove")
        for member in event.get("members", []):
            require(len(str(member.get("event_id", ""))) == 64, "every member needs an event_id")
            if member["event_id"] in self.seen_events:
                self.duplicate_events += 1
                continue
            self.seen_events.add(member["event_id"])
            if event["action"] == "add":
                self.members[member["member_key"]] = member
            else:
                self.members.pop(member["member_key"], None)
        return Reply(200, {"received": len(event.get("members", []))})
