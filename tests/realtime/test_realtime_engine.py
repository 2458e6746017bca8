"""The source documents' journeys on the pure engine (no HTTP): segments, transitions, time, scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from realtime.engine import Engine
from realtime.events import parse_event
from tests.realtime.helpers import KNOWN_CUSTOMER, at

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def send(engine: Engine, received: datetime = NOW, **fields):
    event = parse_event({"anonymous_id": "anon-1", **fields}, received)
    return engine.apply(event, received.timestamp())


def test_organic_landing_is_general_interest(engine):
    result = send(
        engine,
        event_type="page_view",
        page_type="home",
        occurred_at=at(0, NOW),
        utm_source="google",
        utm_medium="organic",
    )
    assert result.segments == ["general_interest"]
    assert result.entered == ["general_interest"] and result.exited == []
    assert result.id == "anon-1" and result.event_id.startswith("rt_") and len(result.event_id) == 35
    assert [t["segment"] for t in result.transitions] == ["general_interest"]
    assert result.transitions[0]["source"] == "realtime" and result.transitions[0]["known_customer"] is False


def test_three_shoe_views_video_and_cart_enter_high_intent_and_leave_general_interest(engine):
    results = [send(engine, event_type="page_view", page_type="home", occurred_at=at(0, NOW))]
    for minute, product in enumerate(["p1", "p2", "p3"], start=1):
        results.append(
            send(engine, event_type="product_view", product_id=product, category="Shoes", occurred_at=at(minute, NOW))
        )
    results.append(send(engine, event_type="video_play", product_id="p3", occurred_at=at(5, NOW)))
    assert all("high_intent:shoes" not in r.segments for r in results), (
        "views and a video without a cart add are not enough"
    )
    cart = send(engine, event_type="add_to_cart", product_id="p3", occurred_at=at(6, NOW))
    assert cart.entered == ["high_intent:shoes"]
    assert cart.exited == ["general_interest"]
    assert "general_interest" not in cart.segments
    assert {(t["segment"], t["change"]) for t in cart.transitions} == {
        ("high_intent:shoes", "entered"),
        ("general_interest", "exited"),
    }


def test_a_video_play_is_a_strong_signal(engine):
    send(engine, event_type="product_view", product_id="b1", category="bags", occurred_at=at(0, NOW))
    send(engine, event_type="video_play", product_id="b1", occurred_at=at(1, NOW))
    assert (
        "high_intent:bags" in send(engine, event_type="add_to_cart", product_id="b1", occurred_at=at(2, NOW)).segments
    )
    # without the video, one view and a cart add stay general interest
    other = parse_event(
        {
            "anonymous_id": "anon-2",
            "event_type": "product_view",
            "product_id": "x",
            "category": "hats",
            "occurred_at": at(0, NOW),
        },
        NOW,
    )
    engine.apply(other, NOW.timestamp())
    cart = parse_event(
        {"anonymous_id": "anon-2", "event_type": "add_to_cart", "product_id": "x", "occurred_at": at(1, NOW)}, NOW
    )
    assert engine.apply(cart, NOW.timestamp()).segments[0] == "general_interest"


def test_affiliate_from_a_premium_partner_is_premium_interest_on_arrival(engine):
    result = send(
        engine, event_type="page_view", occurred_at=at(0, NOW), utm_medium="affiliate", utm_source="luxury-partner"
    )
    assert "premium_interest" in result.segments and "general_interest" not in result.segments
    other = parse_event(
        {"anonymous_id": "anon-9", "event_type": "page_view", "utm_medium": "affiliate", "utm_source": "coupon-site"},
        NOW,
    )
    assert engine.apply(other, NOW.timestamp()).segments == ["general_interest"]


def test_device_and_late_night_from_the_offset_of_occurred_at(engine):
    # 22:30 in Paris (+01:00) is 21:30 UTC: late night by local time
    late = send(engine, event_type="page_view", device="Mobile", occurred_at="2026-11-26T22:30:00+01:00")
    assert "device:mobile" in late.segments and "late_night" in late.segments
    # the same instant written in UTC is 21:30 local: not late night
    utc = parse_event(
        {
            "anonymous_id": "anon-u",
            "event_type": "page_view",
            "device": "laptop",
            "occurred_at": "2026-11-26T21:30:00+00:00",
        },
        NOW,
    )
    segments = engine.apply(utc, NOW.timestamp()).segments
    assert "device:desktop" in segments and "late_night" not in segments
    # 04:59 local is still late night, 05:00 is not; the device follows the latest event
    early = send(engine, event_type="page_view", device="desktop", occurred_at="2026-11-27T04:59:00+01:00")
    assert "late_night" in early.segments and early.entered == ["device:desktop"] and early.exited == ["device:mobile"]
    assert "late_night" not in send(engine, event_type="page_view", occurred_at="2026-11-27T05:00:00+01:00").segments


def test_motivation_keywords_from_utm_content(engine):
    result = send(engine, event_type="page_view", occurred_at=at(0, NOW), utm_content="Ad-DURABILITY-v2")
    assert "motivation:durability" in result.segments
    assert (
        "motivation:style"
        in send(engine, event_type="page_view", occurred_at=at(1, NOW), utm_content="style_story").segments
    )


def test_cart_abandoner_after_30_idle_minutes_on_read_and_sweep(engine):
    t0 = NOW - timedelta(minutes=40)
    send(engine, event_type="product_view", product_id="s1", category="shoes", occurred_at=at(0, t0))
    send(engine, event_type="add_to_cart", product_id="s1", occurred_at=at(1, t0))
    send(engine, event_type="add_to_cart", product_id="s2", category="socks", occurred_at=at(2, t0))
    # 29 minutes after the last event: not yet
    assert "cart_abandoner" not in engine.segments_at("anon-1", (t0 + timedelta(minutes=31)).timestamp())
    # 30 minutes idle against the receive clock: the session lapsed, the cart was abandoned
    profile = engine.profile("anon-1", NOW.timestamp())
    assert profile["segments"] == ["cart_abandoner"] and profile["cart"] == ["s1", "s2"]
    assert profile["recommended_action"].startswith("Send the cart reminder")
    transitions = engine.sweep(NOW.timestamp())
    changes = {(t["segment"], t["change"]) for t in transitions}
    assert ("cart_abandoner", "entered") in changes and ("general_interest", "exited") in changes
    entered = next(t for t in transitions if t["segment"] == "cart_abandoner")
    assert entered["occurred_at"] == (t0 + timedelta(minutes=32)).isoformat()
    assert engine.sweep(NOW.timestamp()) == [], "a second sweep finds nothing new"
    # coming back exits cart_abandoner; a purchase empties the cart for good
    back = send(engine, event_type="page_view", occurred_at=at(40, t0))
    assert "cart_abandoner" in back.exited and back.segments[0] == "general_interest"
    send(engine, event_type="purchase", occurred_at=at(41, t0), value=99.0)
    assert engine.profile("anon-1", (NOW + timedelta(hours=1)).timestamp())["segments"] == []


def test_a_new_session_after_30_minutes_resets_session_segments(engine):
    send(engine, event_type="page_view", occurred_at=at(0, NOW), utm_medium="affiliate", utm_source="luxury-partner")
    result = send(engine, event_type="page_view", occurred_at=at(31, NOW))
    assert result.segments == ["general_interest"] and result.exited == ["premium_interest"]


def test_duplicate_event_id_is_counted_once(engine):
    first = send(
        engine, event_id="e-1", event_type="product_view", category="shoes", product_id="p", occurred_at=at(0, NOW)
    )
    again = send(
        engine, event_id="e-1", event_type="product_view", category="shoes", product_id="p", occurred_at=at(0, NOW)
    )
    assert not first.duplicate and again.duplicate and again.event_id == "e-1"
    assert again.segments == first.segments and again.entered == [] and again.transitions == []
    assert engine.stats["accepted"] == 1 and engine.stats["duplicate"] == 1
    assert engine.visitors["anon-1"].counts["events"] == 1


def test_known_customer_profile_carries_batch_scores_and_no_pii(engine):
    result = send(engine, customer_id=KNOWN_CUSTOMER, anonymous_id=None, event_type="page_view", occurred_at=at(0, NOW))
    assert result.id == KNOWN_CUSTOMER and result.transitions[0]["known_customer"] is True
    profile = engine.profile(KNOWN_CUSTOMER, NOW.timestamp())
    assert profile["known_customer"] is True
    assert profile["rfm_segment"] == "Champions" and profile["behavioral_segment"] == "Researchers"
    assert profile["predicted_clv"] == 812.25 and profile["purchase_propensity"] == 0.87
    assert profile["recommended_action"] == "Reward and retain; ask for reviews."
    assert profile["lookalike_score"] is None
    text = repr(profile).lower()
    assert "@" not in text and "vip" not in text and "+33" not in text and "bob" not in text
    assert {"email", "phone", "first_name", "last_name"}.isdisjoint(profile)
    # a known customer never seen by the service still has a profile; an unknown id has none
    assert engine.profile("C-0002", NOW.timestamp())["predicted_clv"] == 40.5
    assert engine.profile("C-0003", NOW.timestamp())["predicted_clv"] is None
    assert engine.profile("nobody", NOW.timestamp()) is None


def test_anonymous_visitor_gets_the_lookalike_score_after_enough_events(engine):
    for minute in range(4):
        send(engine, event_type="gallery_view", occurred_at=at(minute, NOW))
    assert engine.profile("anon-1", NOW.timestamp())["lookalike_score"] is None
    send(engine, event_type="video_play", occurred_at=at(5, NOW))
    score = engine.profile("anon-1", NOW.timestamp())["lookalike_score"]
    assert 0.5 < score <= 1.0, "all-visual browsing looks like the synthetic high-value buyers"
    for minute in range(5):
        send(engine, anonymous_id="anon-sale", event_type="page_view", page_type="sale", occurred_at=at(minute, NOW))
    assert engine.profile("anon-sale", NOW.timestamp())["lookalike_score"] < score


def test_identified_event_continues_the_anonymous_session(engine):
    send(engine, event_type="product_view", product_id="p", category="shoes", occurred_at=at(0, NOW))
    result = send(engine, customer_id=KNOWN_CUSTOMER, event_type="add_to_cart", product_id="p", occurred_at=at(1, NOW))
    assert result.id == KNOWN_CUSTOMER and result.entered == ["general_interest"]
    moves = {(t["id"], t["segment"], t["change"], t["known_customer"]) for t in result.transitions}
    assert moves == {
        ("anon-1", "general_interest", "exited", False),
        (KNOWN_CUSTOMER, "general_interest", "entered", True),
    }
    assert engine.profile("anon-1", NOW.timestamp())["id"] == KNOWN_CUSTOMER
    assert engine.profile(KNOWN_CUSTOMER, NOW.timestamp())["cart"] == ["p"]


def test_old_visitors_are_forgotten_after_the_retention_window(engine):
    send(engine, event_type="page_view", occurred_at=at(0, NOW - timedelta(days=2)), received=NOW - timedelta(days=2))
    engine.sweep(NOW.timestamp())
    engine.sweep(NOW.timestamp())
    assert "anon-1" not in engine.visitors and engine.stats["evicted"] == 1
