"""The HTTP interface of issue 16 on a real uvicorn subprocess (`python -m realtime.cli serve`, what `make serve` runs)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests

from realtime.log import log_dir, read_events, read_transitions
from tests.realtime.helpers import KNOWN_CUSTOMER, Server, at, build_bundle


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("serve") / "data"
    build_bundle(data)
    running = Server(data).start()
    yield running
    running.stop()


def test_healthz_names_the_bundle(server):
    body = server.get("/healthz").json()
    assert body["status"] == "ok" and re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{10}", body["bundle_version"])


def test_journeys_over_http(server):
    organic = server.post(
        {"anonymous_id": "v-organic", "event_type": "page_view", "utm_source": "google", "utm_medium": "organic"}
    )
    assert organic.status_code == 200
    body = organic.json()
    assert set(body) == {"event_id", "id", "segments", "entered", "exited"}
    assert body["id"] == "v-organic" and "general_interest" in body["segments"]

    journey = [
        {
            "anonymous_id": "v-shoes",
            "event_type": "product_view",
            "product_id": f"s{i}",
            "category": "shoes",
            "occurred_at": at(i),
        }
        for i in range(3)
    ]
    journey += [
        {
            "anonymous_id": "v-shoes",
            "event_type": "video_play",
            "product_id": "s2",
            "category": "shoes",
            "occurred_at": at(4),
        },
        {
            "anonymous_id": "v-shoes",
            "event_type": "add_to_cart",
            "product_id": "s2",
            "category": "shoes",
            "occurred_at": at(5),
        },
    ]
    results = server.post({"events": journey}).json()["results"]
    assert [r["id"] for r in results] == ["v-shoes"] * 5
    assert results[-1]["entered"] == ["high_intent:shoes"] and results[-1]["exited"] == ["general_interest"]

    premium = server.post(
        {"anonymous_id": "v-lux", "event_type": "page_view", "utm_medium": "affiliate", "utm_source": "luxury-partner"}
    ).json()
    assert "premium_interest" in premium["segments"]

    night = server.post(
        {
            "anonymous_id": "v-night",
            "event_type": "page_view",
            "device": "smartphone",
            "occurred_at": "2026-11-26T23:10:00-05:00",
        }
    ).json()
    assert {"device:mobile", "late_night"} <= set(night["segments"])

    ad = server.post({"anonymous_id": "v-ad", "event_type": "page_view", "utm_content": "style-lookbook"}).json()
    assert "motivation:style" in ad["segments"]


def test_cart_abandoner_is_evaluated_on_read_against_receive_time(server):
    added = datetime.now(UTC) - timedelta(minutes=31)
    server.post(
        {
            "anonymous_id": "v-cart",
            "event_type": "add_to_cart",
            "product_id": "sku-9",
            "category": "bags",
            "occurred_at": added.isoformat(),
        }
    )
    profile = server.get("/v1/profiles/v-cart").json()
    assert profile["segments"] == ["cart_abandoner"] and profile["cart"] == ["sku-9"]
    fresh = server.post({"anonymous_id": "v-cart-2", "event_type": "add_to_cart", "product_id": "sku-1"}).json()
    assert "cart_abandoner" not in fresh["segments"]
    assert "cart_abandoner" not in server.get("/v1/profiles/v-cart-2").json()["segments"]


def test_known_customer_profile_has_batch_scores_and_no_pii(server):
    server.post({"customer_id": KNOWN_CUSTOMER, "event_type": "page_view"})
    response = server.get(f"/v1/profiles/{KNOWN_CUSTOMER}")
    profile = response.json()
    assert set(profile) >= {
        "id",
        "known_customer",
        "segments",
        "rfm_segment",
        "behavioral_segment",
        "predicted_clv",
        "purchase_propensity",
        "recommended_action",
        "cart",
    }
    assert (
        profile["known_customer"] is True
        and profile["rfm_segment"] == "Champions"
        and profile["predicted_clv"] == 812.25
    )
    for secret in ("vip@example.com", "+332", "Bob", "email", "phone", "first_name"):
        assert secret not in response.text
    assert server.get("/v1/profiles/never-seen").status_code == 404
    assert "error" in server.get("/v1/profiles/never-seen").json()


def test_segments_lists_every_rule(server):
    names = [s["name"] for s in server.get("/v1/segments").json()["segments"]]
    assert names == [
        "general_interest",
        "high_intent:<category>",
        "premium_interest",
        "cart_abandoner",
        "device:desktop",
        "device:mobile",
        "late_night",
        "motivation:durability",
        "motivation:style",
    ]


def test_duplicate_event_id_is_acknowledged_again_and_logged_once(server):
    event = {
        "event_id": "dup-1",
        "anonymous_id": "v-dup",
        "event_type": "product_view",
        "category": "hats",
        "product_id": "h1",
    }
    first, second = server.post(event).json(), server.post(event).json()
    assert first["event_id"] == second["event_id"] == "dup-1" and second.get("duplicate") is True
    batch = server.post({"events": [event, {**event, "event_id": "dup-2"}, {**event, "event_id": "dup-2"}]}).json()[
        "results"
    ]
    assert [r.get("duplicate", False) for r in batch] == [True, False, True]
    ids = [e["event_id"] for e in read_events(log_dir(server.data_dir))]
    assert ids.count("dup-1") == 1 and ids.count("dup-2") == 1


BAD_INPUTS = [
    ("malformed JSON", b'{"anonymous_id": "x", "event_type": ', "body"),
    ("missing event_type", {"anonymous_id": "x"}, "event_type"),
    ("both ids missing", {"event_type": "page_view"}, "customer_id"),
    ("unparseable time", {"anonymous_id": "x", "event_type": "page_view", "occurred_at": "yesterday"}, "occurred_at"),
    (
        "time without offset",
        {"anonymous_id": "x", "event_type": "page_view", "occurred_at": "2026-11-26T10:00:00"},
        "occurred_at",
    ),
    ("wrong type", {"anonymous_id": "x", "event_type": "page_view", "value": "12 EUR"}, "value"),
    (
        "huge number",
        b'{"anonymous_id": "x", "event_type": "page_view", "value": 1' + b"0" * 400 + b"}",
        "body",
    ),  # orjson refuses it: malformed JSON
    ("not an object", [1, 2], "event"),
    ("batch over 1,000", {"events": [{"anonymous_id": "x", "event_type": "page_view"}] * 1001}, "events"),
    (
        "body over 1 MiB",
        {"anonymous_id": "x", "event_type": "page_view", "page_type": "p" * 500, "junk": "x" * (1024 * 1024)},
        "body",
    ),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_INPUTS, ids=[case for case, _, _ in BAD_INPUTS])
def test_bad_input_is_a_4xx_naming_the_field(server, case, body, field):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = requests.post(
        server.url + "/v1/events", data=data, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    payload = response.json()
    assert field in payload["error"] and payload["field"] == field


def test_one_bad_event_rejects_the_whole_batch_naming_its_index(server):
    events = [{"anonymous_id": "v-batch", "event_type": "page_view", "event_id": f"b-{i}"} for i in range(5)]
    events[3] = {"anonymous_id": "v-batch", "event_id": "b-3", "occurred_at": at(0)}
    response = server.post({"events": events})
    assert response.status_code == 400
    assert response.json() == {"error": "events[3].event_type: is required", "field": "event_type", "index": 3}
    assert not any(e["event_id"].startswith("b-") for e in read_events(log_dir(server.data_dir)))
    assert server.get("/v1/profiles/v-batch").status_code == 404


def test_unknown_routes_and_methods_answer_json(server):
    assert server.get("/v2/nothing").status_code == 404 and "error" in server.get("/v2/nothing").json()
    response = requests.put(server.url + "/v1/events", timeout=10)
    assert response.status_code == 405 and "error" in response.json()


def test_metrics_are_prometheus_text(server):
    server.post({"anonymous_id": "v-metrics", "event_type": "page_view"})
    response = server.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    sample = re.compile(
        r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+|^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (\+Inf|NaN)$"
    )
    for line in response.text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    assert re.search(r"^segmint_realtime_events_accepted_total [1-9]", response.text, re.M)
    assert 'segmint_realtime_requests_total{route="/v1/events",code="200"}' in response.text


def test_transitions_are_logged_with_their_source(server):
    server.post({"anonymous_id": "v-trans", "event_type": "page_view", "event_id": "t-1"})
    lines = [t for t in read_transitions(log_dir(server.data_dir)) if t["id"] == "v-trans"]
    assert lines and set(lines[0]) == {
        "id",
        "known_customer",
        "segment",
        "change",
        "event_id",
        "occurred_at",
        "received_at",
        "source",
    }
    assert {(t["segment"], t["change"], t["event_id"], t["source"]) for t in lines} >= {
        ("general_interest", "entered", "t-1", "realtime")
    }


def test_token_auth(tmp_path):
    data = tmp_path / "data"
    build_bundle(data)
    server = Server(data, SEGMINT_SERVE_TOKEN="s3cret").start()
    try:
        assert server.get("/healthz").status_code == 200
        event = {"anonymous_id": "x", "event_type": "page_view"}
        for path in ("/v1/segments", "/metrics", "/v1/profiles/x"):
            assert server.get(path).status_code == 401
            assert server.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        unauthorised = server.post(event)
        assert unauthorised.status_code == 401 and "error" in unauthorised.json()
        assert server.post(event, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert server.get("/v1/profiles/x", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert len(list(read_events(log_dir(data)))) == 1, "only the authorised event reached the log"
    finally:
        server.stop()


def test_cors_for_listed_origins_only(tmp_path):
    data = tmp_path / "data"
    build_bundle(data)
    server = Server(data, SEGMINT_SERVE_CORS_ORIGINS="https://shop.example.com").start()
    try:
        preflight = requests.options(
            server.url + "/v1/events",
            timeout=10,
            headers={
                "Origin": "https://shop.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example.com"
        answer = server.post(
            {"anonymous_id": "x", "event_type": "page_view"}, headers={"Origin": "https://shop.example.com"}
        )
        assert answer.headers["access-control-allow-origin"] == "https://shop.example.com"
        other = server.post(
            {"anonymous_id": "x", "event_type": "page_view"}, headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
    finally:
        server.stop()
