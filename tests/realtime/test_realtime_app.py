"""The ASGI app in-process (no server): what happens when the durable log cannot be written."""

from __future__ import annotations

import asyncio
import errno
import json
import time
from datetime import UTC, datetime

import realtime.log
from realtime.app import Service, create_app
from realtime.bundle import bundles_dir
from realtime.log import LogWriter, log_dir, read_events


async def call(app, body: dict) -> tuple[int, dict]:
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/events",
        "raw_path": b"/v1/events",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8700),
    }
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_a_failed_log_write_is_a_503_and_the_retry_is_logged(data_dir, monkeypatch):
    service = Service(bundles_dir(data_dir), log_dir(data_dir), fsync="always")
    app = create_app(service)
    event = {"event_id": "e-disk", "anonymous_id": "v", "event_type": "page_view"}

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    async def scenario():
        await service.start()
        try:
            monkeypatch.setattr(realtime.log.os, "fsync", full_disk)
            status, body = await call(app, event)
            assert status == 503 and "No space left" in body["error"]
            monkeypatch.undo()
            status, body = await call(app, event)
            assert status == 200 and "duplicate" not in body, "the retry is processed, not taken for a duplicate"
        finally:
            await service.stop()

    asyncio.run(scenario())
    assert [e["event_id"] for e in read_events(log_dir(data_dir))].count("e-disk") >= 1


def stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def test_restart_replays_only_the_recovery_window(data_dir):
    old, recent = time.time() - 3 * 3600, time.time() - 600
    writer = LogWriter(log_dir(data_dir), "always")
    writer.append_sync(
        [
            {
                "event_id": "old",
                "anonymous_id": "v-old",
                "event_type": "add_to_cart",
                "product_id": "p",
                "occurred_at": stamp(old),
                "received_at": stamp(old),
            },
            {
                "event_id": "new",
                "anonymous_id": "v-new",
                "event_type": "add_to_cart",
                "product_id": "p",
                "occurred_at": stamp(recent),
                "received_at": stamp(recent),
            },
        ],
        [],
    )
    writer.close()
    service = Service(bundles_dir(data_dir), log_dir(data_dir))
    assert service.recover() == 1, "2 hours by default: the 3-hour-old event stays in the log only"
    assert set(service.engine.visitors) == {"v-new"}


def test_odd_values_in_every_field_never_get_a_5xx(data_dir):
    service = Service(bundles_dir(data_dir), log_dir(data_dir))
    app = create_app(service)
    fields = [
        "event_id",
        "customer_id",
        "anonymous_id",
        "event_type",
        "occurred_at",
        "page_type",
        "product_id",
        "category",
        "device",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "value",
    ]
    odd = [
        None,
        0,
        -1,
        1.5,
        True,
        [],
        {},
        "",
        " ",
        "x" * 600,
        "2026-13-40T00:00:00+00:00",
        "9999-12-31T23:59:59+14:00",
        "é🙂",
    ]

    async def scenario():
        await service.start()
        try:
            for field in fields:
                for value in odd:
                    body = {"anonymous_id": "v-odd", "event_type": "page_view", field: value}
                    status, answer = await call(app, body)
                    assert status < 500 and (status == 200 or "error" in answer), (field, value, status, answer)
                    status, _ = await call(app, {"events": [body, body]})
                    assert status < 500, (field, value, status)
        finally:
            await service.stop()

    asyncio.run(scenario())
