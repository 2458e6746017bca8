"""The real-time rules file (`config/realtime_rules.yaml`, or SEGMINT_REALTIME_RULES): parsed and validated.

Each segment kind has its parameters in the file; the human-readable rule text served by `GET /v1/segments` is
generated from them here, so the text can never drift from what the engine evaluates (realtime/engine.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RULES_PATH = PROJECT_ROOT / "config" / "realtime_rules.yaml"
RULES_ENV = "SEGMINT_REALTIME_RULES"

GENERAL_INTEREST = "general_interest"
HIGH_INTENT = "high_intent"
PREMIUM_INTEREST = "premium_interest"
CART_ABANDONER = "cart_abandoner"
DEVICE = "device"
LATE_NIGHT = "late_night"
MOTIVATION = "motivation"
SEGMENT_KINDS = (GENERAL_INTEREST, HIGH_INTENT, PREMIUM_INTEREST, CART_ABANDONER, DEVICE, LATE_NIGHT, MOTIVATION)


class RulesError(ValueError):
    """The rules file cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Rules:
    """Every parameter the engine reads. Segment names: see `segment_catalogue`."""

    version: str
    session_timeout_seconds: float
    lookalike_min_events: int
    visitor_retention_seconds: float
    recovery_replay_seconds: float
    min_product_views: int
    strong_signals: frozenset[str]
    strong_signal_weight: int
    requires_add_to_cart: bool
    affiliate_medium: str
    premium_partners: frozenset[str]
    cart_idle_seconds: float
    devices: dict[str, str]  # spelling (lower-case) -> device segment suffix
    late_night_start_hour: int
    late_night_end_hour: int
    motivation_keywords: tuple[str, ...]
    actions: dict[str, str]  # segment kind -> recommended action text
    text: str  # the file as read, packed into the serving bundle

    def segment_catalogue(self) -> list[dict[str, str]]:
        """`GET /v1/segments`: every real-time segment name (templated ones with <placeholder>) and its rule text."""
        timeout = _minutes(self.session_timeout_seconds)
        views = f"{self.min_product_views} or more product views of one category"
        if self.strong_signals:
            views += f" (each {', '.join(sorted(self.strong_signals))} counts as {self.strong_signal_weight})"
        if self.requires_add_to_cart:
            views += " plus an add_to_cart of that category"
        catalogue = [
            {
                "name": GENERAL_INTEREST,
                "rule": f"no high_intent:<category> and no premium_interest applies in the session ({timeout}-minute inactivity window)",
            },
            {"name": "high_intent:<category>", "rule": f"{views} in the session"},
            {
                "name": PREMIUM_INTEREST,
                "rule": f"utm_medium={self.affiliate_medium} and utm_source in premium_partners ({', '.join(sorted(self.premium_partners))}) in the session",
            },
            {
                "name": CART_ABANDONER,
                "rule": f"items added to the cart, no purchase since, {_minutes(self.cart_idle_seconds)} minutes without an event (evaluated against receive time on reads)",
            },
        ]
        for suffix in sorted(set(self.devices.values())):
            spellings = sorted(k for k, v in self.devices.items() if v == suffix)
            catalogue.append(
                {"name": f"device:{suffix}", "rule": f"device of the latest event is one of {', '.join(spellings)}"}
            )
        catalogue.append(
            {
                "name": LATE_NIGHT,
                "rule": f"local time of the latest event (offset of occurred_at) from {self.late_night_start_hour:02d}:00 to {self.late_night_end_hour:02d}:00",
            }
        )
        for keyword in self.motivation_keywords:
            catalogue.append(
                {"name": f"motivation:{keyword}", "rule": f"utm_content contains '{keyword}' in the session"}
            )
        return catalogue


def rules_path(env: dict[str, str] | None = None) -> Path:
    """SEGMINT_REALTIME_RULES when set (must be a file), else config/realtime_rules.yaml."""
    env = os.environ if env is None else env
    raw = env.get(RULES_ENV, "").strip()
    if not raw:
        return DEFAULT_RULES_PATH
    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        raise RulesError(f"{RULES_ENV}={raw!r} is not a file")
    return path


def load_rules(path: str | Path | None = None) -> Rules:
    """Read and validate a rules file (default: `rules_path()`)."""
    path = Path(path) if path is not None else rules_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RulesError(f"cannot read the rules file {path}: {error.strerror}") from None
    return parse_rules(text, source=str(path))


def parse_rules(text: str, source: str = "rules") -> Rules:
    """Rules from YAML text; a RulesError names the key that is missing or wrong."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RulesError(f"{source}: not valid YAML ({error})") from None
    if not isinstance(doc, dict):
        raise RulesError(f"{source}: expected a mapping at the top")
    reader = _Reader(doc, source)
    segments = reader.mapping("segments")
    unknown = sorted(set(segments) - set(SEGMENT_KINDS))
    if unknown:
        raise RulesError(f"{source}: segments.{unknown[0]} is not a known segment kind ({', '.join(SEGMENT_KINDS)})")
    seg = {kind: _Reader(segments.get(kind) or {}, source, f"segments.{kind}.") for kind in SEGMENT_KINDS}
    devices: dict[str, str] = {}
    for suffix, spellings in (segments.get(DEVICE) or {}).items():
        if not isinstance(spellings, list) or not all(isinstance(s, str) for s in spellings):
            raise RulesError(f"{source}: segments.device.{suffix} must be a list of spellings")
        for spelling in spellings:
            devices[spelling.strip().lower()] = str(suffix)
    start, end = seg[LATE_NIGHT].integer("start_hour", 22, 0, 23), seg[LATE_NIGHT].integer("end_hour", 5, 0, 23)
    return Rules(
        version=str(doc.get("version", "")),
        session_timeout_seconds=reader.number("session_timeout_minutes", 30, 1) * 60,
        lookalike_min_events=reader.integer("lookalike_min_events", 5, 1, 10**6),
        visitor_retention_seconds=reader.number("visitor_retention_hours", 24, 1) * 3600,
        recovery_replay_seconds=reader.number("recovery_replay_hours", 2, 1) * 3600,
        min_product_views=seg[HIGH_INTENT].integer("min_product_views", 3, 1, 1000),
        strong_signals=frozenset(s.lower() for s in seg[HIGH_INTENT].strings("strong_signals")),
        strong_signal_weight=seg[HIGH_INTENT].integer("strong_signal_weight", 1, 0, 1000),
        requires_add_to_cart=bool(seg[HIGH_INTENT].doc.get("requires_add_to_cart", True)),
        affiliate_medium=str(seg[PREMIUM_INTEREST].doc.get("utm_medium", "affiliate")).lower(),
        premium_partners=frozenset(s.lower() for s in seg[PREMIUM_INTEREST].strings("premium_partners")),
        cart_idle_seconds=seg[CART_ABANDONER].number("idle_minutes", 30, 1) * 60,
        devices=devices,
        late_night_start_hour=start,
        late_night_end_hour=end,
        motivation_keywords=tuple(s.lower() for s in seg[MOTIVATION].strings("keywords")),
        actions={kind: str(r.doc["action"]) for kind, r in seg.items() if r.doc.get("action")},
        text=text,
    )


class _Reader:
    def __init__(self, doc: Any, source: str, prefix: str = ""):
        if not isinstance(doc, dict):
            raise RulesError(f"{source}: {prefix.rstrip('.') or 'top level'} must be a mapping")
        self.doc, self.source, self.prefix = doc, source, prefix

    def _fail(self, key: str, expected: str) -> RulesError:
        return RulesError(f"{self.source}: {self.prefix}{key}={self.doc.get(key)!r} must be {expected}")

    def mapping(self, key: str) -> dict:
        value = self.doc.get(key)
        if not isinstance(value, dict):
            raise self._fail(key, "a mapping")
        return value

    def number(self, key: str, default: float, minimum: float) -> float:
        value = self.doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise self._fail(key, f"a number >= {minimum}")
        return float(value)

    def integer(self, key: str, default: int, minimum: int, maximum: int) -> int:
        value = self.doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self._fail(key, f"a whole number from {minimum} to {maximum}")
        return value

    def strings(self, key: str) -> list[str]:
        value = self.doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self._fail(key, "a list of non-empty strings")
        return [v.strip() for v in value]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g}"
