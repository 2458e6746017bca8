"""Source event names -> segmint's event vocabulary (config/event_mapping.yaml), as a pure function.

Grain: one row per distinct (source_event_type, source_page_type, source_page_path) of raw.events with its event
count in, the same rows out with the segmint `event_type` / `page_type` they mean. The asset
`raw/event_vocabulary` writes that table and dbt's `stage_events` joins it, so raw stays raw and the daily
staging applies the very same mapping.

How a value is resolved, per output field (`event_type` and `page_type` independently), first match wins:
1. the user's rules in the YAML, in file order (a rule sets only the fields it names);
2. the preset of the source format (`segmint`, `ga4`, `segment`, `shopify`): exact event names;
3. identity: a source value that is already segmint vocabulary keeps its meaning (GA4's `purchase` is `purchase`);
4. common shop URL conventions for the page type (COMMON_URL_RULES: /products/ -> product, /cart -> cart, ...),
   only when the events carry a page_url and the preset is not `none`.
`other` is a valid target: "known, carries no behaviour" (GA4's `session_start`); it counts as mapped but feeds no
feature. An event is *mapped* when it ends with a segmint event_type or page_type; everything else is unmapped,
counted and listed, and the asset check warns when unmapped events exceed UNMAPPED_WARN_SHARE.

Matching: event names and page types compare case-insensitively after trimming (the SQL keys are lower-cased);
`event_regex`, `page_type_regex` and `page_url` are Python regexes searched case-insensitively; `page_url` is
searched in the URL's path (scheme, host, query and fragment removed, lower-cased: PAGE_PATH_SQL).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

SUPPORTED_VERSIONS = (1,)
UNMAPPED_WARN_SHARE = 0.20
OTHER = "other"

EVENT_TYPES: tuple[str, ...] = (
    "page_view", "product_view", "add_to_cart", "begin_checkout", "shipping_info_viewed", "purchase", "review_read",
    "compare_used", "gallery_view", "video_play", "countdown_view", "low_stock_view", "discount_code_applied",
    "search",
)  # fmt: skip
PAGE_TYPES: tuple[str, ...] = (
    "home", "category", "product", "sale", "about", "brand", "reviews", "comparison", "gallery", "cart", "checkout",
    "blog", "search",
)  # fmt: skip
SOURCE_FORMATS = ("segmint", "ga4", "segment", "shopify")
PRESET_NAMES = (*SOURCE_FORMATS, "none")

# The URL path of a page_url, lower-cased: the key the vocabulary table and dbt's stage_events share. dbt's macro
# `page_path` spells the same expression (tests/unit/test_event_mapping.py pins the two together).
PAGE_PATH_PATTERN = r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*)?([^?#]*)"
KEY_COLUMNS = ["source_event_type", "source_page_type", "source_page_path"]
VOCABULARY_COLUMNS = [*KEY_COLUMNS, "event_count", "event_type", "page_type", "is_mapped", "mapped_by"]

RULE_MATCHERS = ("event", "event_regex", "page_type", "page_type_regex", "page_url")
RULE_TARGETS = ("event_type", "page_type")


class EventMappingError(ValueError):
    """The mapping file cannot be used; the message names the file, the rule and what is wrong."""


@dataclass(frozen=True)
class Rule:
    """All conditions in `when` must hold; `then` sets event_type and/or page_type."""

    name: str
    events: frozenset[str] = frozenset()
    event_regex: re.Pattern | None = None
    page_types: frozenset[str] = frozenset()
    page_type_regex: re.Pattern | None = None
    page_url: re.Pattern | None = None
    event_type: str | None = None
    page_type: str | None = None


@dataclass(frozen=True)
class EventMapping:
    """A parsed mapping file: its version, the preset it asks for and the user's rules."""

    version: int = 1
    preset: str = "auto"  # auto = the source format of the run (raw.run_context.source_format)
    rules: tuple[Rule, ...] = ()
    source: str = "built-in defaults"


@dataclass(frozen=True)
class Preset:
    """Built-in knowledge of one source format: exact event names and URL conventions."""

    name: str
    events: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)  # name -> (event_type, page_type)
    documentation: str = ""


def _targets(event_type: str | None = None, page_type: str | None = None) -> tuple[str | None, str | None]:
    return (event_type, page_type)


# URL conventions shared by every preset (only used when events carry a page_url): common shop paths, Shopify's
# (/products/, /collections/, /cart, /checkouts/, /blogs/, /pages/about, /search) included. Ordered: first match wins.
COMMON_URL_RULES: tuple[tuple[str, str], ...] = (
    (r"^/?$", "home"),
    (r"/reviews?(/|$)", "reviews"),
    (r"/compare|/comparison", "comparison"),
    (r"/products?/", "product"),
    (r"/sale(s)?(/|$)|/outlet|/deals?(/|$)|/clearance", "sale"),
    (r"/about|/our-story", "about"),
    (r"/brands?(/|$)", "brand"),
    (r"/gallery|/lookbook", "gallery"),
    (r"/cart(/|$)|/basket", "cart"),
    (r"/checkouts?(/|$)", "checkout"),
    (r"/blogs?(/|$)|/journal", "blog"),
    (r"/search", "search"),
    (r"/collections?(/|$)|/categor|/shop(/|$)", "category"),
)

PRESETS: dict[str, Preset] = {
    "segmint": Preset("segmint", {}, "segmint's own contract: its vocabulary maps to itself (identity)."),
    "none": Preset("none", {}, "No preset: only the user's rules and identity."),
    # GA4 recommended e-commerce events and automatically collected / enhanced-measurement events
    # (https://developers.google.com/analytics/devguides/collection/ga4/reference/events).
    "ga4": Preset(
        "ga4",
        {
            "page_view": _targets("page_view"),
            "screen_view": _targets("page_view"),  # an app's page view (automatically collected)
            "view_item": _targets("product_view", "product"),
            "view_item_list": _targets("page_view", "category"),
            "select_item": _targets(OTHER),
            "view_cart": _targets("page_view", "cart"),
            "add_to_cart": _targets("add_to_cart"),
            "remove_from_cart": _targets(OTHER),
            "add_to_wishlist": _targets(OTHER),
            "begin_checkout": _targets("begin_checkout", "checkout"),
            "add_shipping_info": _targets("shipping_info_viewed", "checkout"),
            "add_payment_info": _targets(OTHER, "checkout"),
            "purchase": _targets("purchase"),
            "refund": _targets(OTHER),
            "view_promotion": _targets(OTHER),
            "select_promotion": _targets(OTHER, "sale"),
            "search": _targets("search", "search"),
            "view_search_results": _targets("search", "search"),
            "video_start": _targets("video_play"),
            "video_progress": _targets(OTHER),
            "video_complete": _targets(OTHER),
            **{
                name: _targets(OTHER)
                for name in (
                    "session_start",
                    "first_visit",
                    "user_engagement",
                    "scroll",
                    "click",
                    "file_download",
                    "form_start",
                    "form_submit",
                    "login",
                    "sign_up",
                    "share",
                    "generate_lead",
                    "first_open",
                )
            },
        },
        "GA4 recommended e-commerce events (view_item, add_to_cart, begin_checkout, add_shipping_info, purchase, ...).",
    ),
    # Segment / RudderStack E-commerce spec v2 (https://segment.com/docs/connections/spec/ecommerce/v2/).
    "segment": Preset(
        "segment",
        {
            "page": _targets("page_view"),
            "screen": _targets("page_view"),  # a mobile app's page call
            "page viewed": _targets("page_view"),
            "loaded a page": _targets("page_view"),
            "products searched": _targets("search", "search"),
            "product list viewed": _targets("page_view", "category"),
            "product list filtered": _targets("page_view", "category"),
            "promotion viewed": _targets(OTHER),
            "promotion clicked": _targets(OTHER, "sale"),
            "product clicked": _targets(OTHER),
            "product viewed": _targets("product_view", "product"),
            "product added": _targets("add_to_cart"),
            "product removed": _targets(OTHER),
            "cart viewed": _targets("page_view", "cart"),
            "checkout started": _targets("begin_checkout", "checkout"),
            "checkout step viewed": _targets(OTHER, "checkout"),
            "checkout step completed": _targets(OTHER, "checkout"),
            "payment info entered": _targets(OTHER, "checkout"),
            "order completed": _targets("purchase"),
            "order updated": _targets(OTHER),
            "order refunded": _targets(OTHER),
            "order cancelled": _targets(OTHER),
            "coupon entered": _targets(OTHER),
            "coupon applied": _targets("discount_code_applied"),
            "coupon denied": _targets(OTHER),
            "coupon removed": _targets(OTHER),
            "product added to wishlist": _targets(OTHER),
            "product removed from wishlist": _targets(OTHER),
            "wishlist product added to cart": _targets("add_to_cart"),
            "product shared": _targets(OTHER),
            "cart shared": _targets(OTHER),
            "product reviewed": _targets(OTHER),
        },
        "Segment / RudderStack E-commerce spec v2 (Product Viewed, Product Added, Order Completed, ...).",
    ),
    # Shopify admin exports carry no events; a shop that exports its Web Pixels standard events gets these
    # (https://shopify.dev/docs/api/web-pixels-api/standard-events).
    "shopify": Preset(
        "shopify",
        {
            "page_viewed": _targets("page_view"),
            "product_viewed": _targets("product_view", "product"),
            "collection_viewed": _targets("page_view", "category"),
            "search_submitted": _targets("search", "search"),
            "cart_viewed": _targets("page_view", "cart"),
            "product_added_to_cart": _targets("add_to_cart"),
            "product_removed_from_cart": _targets(OTHER),
            "checkout_started": _targets("begin_checkout", "checkout"),
            "checkout_contact_info_submitted": _targets(OTHER, "checkout"),
            "checkout_address_info_submitted": _targets(OTHER, "checkout"),
            "checkout_shipping_info_submitted": _targets("shipping_info_viewed", "checkout"),
            "payment_info_submitted": _targets(OTHER, "checkout"),
            "checkout_completed": _targets("purchase"),
            "alert_displayed": _targets(OTHER),
            "ui_extension_errored": _targets(OTHER),
        },
        "Shopify Web Pixels standard events (product_viewed, product_added_to_cart, checkout_completed, ...).",
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# Reading the file


def load_event_mapping(path: Path | None) -> EventMapping:
    """The mapping in `path`; built-in defaults (preset auto, no rules) when path is None or the default is absent."""
    if path is None:
        return EventMapping()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EventMappingError(f"{path}: event mapping file not found") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise EventMappingError(f"{path}: not valid YAML{where}") from None
    return parse_event_mapping(document, source=str(path))


def parse_event_mapping(document: Any, source: str = "event_mapping.yaml") -> EventMapping:
    """Validate a loaded YAML document; every error names the file and the rule."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise EventMappingError(f"{source}: expected a mapping with `version`, `preset` and `rules`")
    unknown = sorted(set(document) - {"version", "preset", "rules"})
    if unknown:
        raise EventMappingError(f"{source}: unknown key(s) {', '.join(unknown)} (expected version, preset, rules)")
    version = document.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise EventMappingError(
            f"{source}: `version: {version}` is not supported (supported: {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    preset = str(document.get("preset", "auto")).strip().lower()
    if preset != "auto" and preset not in PRESETS:
        raise EventMappingError(f"{source}: unknown preset {preset!r} (use auto, {', '.join(PRESET_NAMES)})")
    raw_rules = document.get("rules") or []
    if not isinstance(raw_rules, list):
        raise EventMappingError(f"{source}: `rules` must be a list")
    rules = tuple(_parse_rule(raw, f"{source}: rule {number}") for number, raw in enumerate(raw_rules, start=1))
    return EventMapping(version=version, preset=preset, rules=rules, source=source)


def _parse_rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, dict) or set(raw) - {"when", "then", "name"} or "when" not in raw or "then" not in raw:
        raise EventMappingError(f"{where}: expected `when:` (conditions) and `then:` (event_type and/or page_type)")
    when, then = raw["when"], raw["then"]
    if not isinstance(when, dict) or not when or set(when) - set(RULE_MATCHERS):
        raise EventMappingError(f"{where}: `when` needs one or more of {', '.join(RULE_MATCHERS)}")
    if not isinstance(then, dict) or not then or set(then) - set(RULE_TARGETS):
        raise EventMappingError(f"{where}: `then` needs event_type and/or page_type")
    event_type = _target(then.get("event_type"), EVENT_TYPES, "event_type", where)
    page_type = _target(then.get("page_type"), PAGE_TYPES, "page_type", where)
    name = str(raw.get("name") or where.rsplit(": ", 1)[-1])
    return Rule(
        name=name,
        events=_names(when.get("event"), "event", where),
        event_regex=_regex(when.get("event_regex"), "event_regex", where),
        page_types=_names(when.get("page_type"), "page_type", where),
        page_type_regex=_regex(when.get("page_type_regex"), "page_type_regex", where),
        page_url=_regex(when.get("page_url"), "page_url", where),
        event_type=event_type,
        page_type=page_type,
    )


def _target(value: Any, allowed: tuple[str, ...], field_name: str, where: str) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    if text not in (*allowed, OTHER):
        choices = ", ".join((*allowed, OTHER))
        raise EventMappingError(f"{where}: {field_name} {value!r} is not segmint vocabulary ({choices})")
    return text


def _names(value: Any, field_name: str, where: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    values = value if isinstance(value, list) else [value]
    if not values or any(not isinstance(v, (str, int)) or not str(v).strip() for v in values):
        raise EventMappingError(f"{where}: `{field_name}` must be a name or a list of names")
    return frozenset(normalise_name(v) for v in values)


def _regex(value: Any, field_name: str, where: str) -> re.Pattern | None:
    if value is None:
        return None
    try:
        return re.compile(str(value), re.IGNORECASE)
    except re.error as error:
        raise EventMappingError(f"{where}: `{field_name}` {value!r} is not a valid regex ({error})") from None


def normalise_name(value: Any) -> str:
    """How names compare: trimmed and lower-cased (the SQL keys are `lower(trim(...))`)."""
    return str(value).strip().lower()


def resolve_preset(mapping: EventMapping, source_format: str | None) -> Preset:
    """The preset to apply: the file's, or with `auto` the run's source format (segmint when unknown)."""
    if mapping.preset != "auto":
        return PRESETS[mapping.preset]
    return PRESETS.get(normalise_name(source_format or "segmint"), PRESETS["segmint"])


# ---------------------------------------------------------------------------------------------------------------
# Applying it


def map_event_vocabulary(keys: pd.DataFrame, mapping: EventMapping, source_format: str | None = None) -> pd.DataFrame:
    """One row per distinct key (KEY_COLUMNS + event_count) -> VOCABULARY_COLUMNS.

    `event_type`/`page_type` are segmint vocabulary or `other`, NULL when nothing maps; `mapped_by` says which
    rule, preset or identity set the event_type (else the page_type); `is_mapped` = either field is set.
    """
    preset = resolve_preset(mapping, source_format)
    frame = keys[[*KEY_COLUMNS, "event_count"]].copy().reset_index(drop=True)
    for column in KEY_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str)
    event_names = frame["source_event_type"].map(normalise_name)
    page_types = frame["source_page_type"].map(normalise_name)
    paths = frame["source_page_path"]

    resolved: dict[str, pd.Series] = {
        target: pd.Series([None] * len(frame), index=frame.index, dtype=object) for target in RULE_TARGETS
    }
    source_of: dict[str, pd.Series] = {
        target: pd.Series([None] * len(frame), index=frame.index, dtype=object) for target in RULE_TARGETS
    }

    def assign(target: str, mask: pd.Series, value: str | pd.Series, by: str) -> None:
        open_rows = mask & resolved[target].isna()
        if isinstance(value, pd.Series):
            open_rows &= value.notna()
        if not open_rows.any():
            return
        resolved[target] = resolved[target].where(~open_rows, value if not isinstance(value, pd.Series) else value)
        source_of[target] = source_of[target].where(~open_rows, by)

    # 1. The user's rules, in file order.
    for rule in mapping.rules:
        mask = _rule_mask(rule, event_names, page_types, paths)
        for target in RULE_TARGETS:
            value = getattr(rule, target)
            if value is not None:
                assign(target, mask, value, f"rule: {rule.name}")
    # 2. The preset: exact event names, then URL conventions for the page type.
    preset_events = {normalise_name(name): targets for name, targets in preset.events.items()}
    for position, target in enumerate(RULE_TARGETS):
        by_name = event_names.map(lambda name, p=position: preset_events.get(name, (None, None))[p])
        assign(target, by_name.notna(), by_name, f"preset: {preset.name}")
    # 3. Identity: values already in segmint's vocabulary keep their meaning.
    assign("event_type", event_names.isin(EVENT_TYPES), event_names, "identity")
    assign("page_type", page_types.isin(PAGE_TYPES), page_types, "identity")
    # 4. Common URL conventions, last: a page type the source states beats one guessed from the path.
    if preset.name != "none":
        unique_paths = pd.Series(paths.unique())
        url_page_types = dict(zip(unique_paths, unique_paths.map(_url_page_type), strict=True))
        assign("page_type", pd.Series(True, index=frame.index), paths.map(url_page_types), "url conventions")

    frame["event_type"] = resolved["event_type"]
    frame["page_type"] = resolved["page_type"]
    frame["is_mapped"] = frame["event_type"].notna() | frame["page_type"].notna()
    frame["mapped_by"] = source_of["event_type"].fillna(source_of["page_type"])
    frame["event_count"] = frame["event_count"].astype("int64")
    # Text dtype even when every value is NULL (all unmapped), so the table's columns are VARCHAR, not NULL-typed.
    for column in [*KEY_COLUMNS, "event_type", "page_type", "mapped_by"]:
        frame[column] = frame[column].astype("string")
    return frame[VOCABULARY_COLUMNS]


def _rule_mask(rule: Rule, event_names: pd.Series, page_types: pd.Series, paths: pd.Series) -> pd.Series:
    mask = pd.Series(True, index=event_names.index)
    if rule.events:
        mask &= event_names.isin(rule.events)
    if rule.event_regex is not None:
        mask &= _search(event_names, rule.event_regex)
    if rule.page_types:
        mask &= page_types.isin(rule.page_types)
    if rule.page_type_regex is not None:
        mask &= _search(page_types, rule.page_type_regex)
    if rule.page_url is not None:
        mask &= _search(paths, rule.page_url) & (paths != "")
    return mask


def _search(values: pd.Series, pattern: re.Pattern) -> pd.Series:
    # Evaluate each distinct value once: a shop has few event names but may have many pages.
    unique = pd.Series(values.unique())
    hits = dict(zip(unique, unique.map(lambda text: pattern.search(text) is not None), strict=True))
    return values.map(hits).astype(bool)


_COMMON_URL_PATTERNS = tuple((re.compile(pattern, re.IGNORECASE), page) for pattern, page in COMMON_URL_RULES)


def _url_page_type(path: str) -> str | None:
    if not path:
        return None
    for pattern, page_type in _COMMON_URL_PATTERNS:
        if pattern.search(path):
            return page_type
    return None


# ---------------------------------------------------------------------------------------------------------------
# Reporting


def unmapped_summary(vocabulary: pd.DataFrame) -> pd.DataFrame:
    """Unmapped source event names, most frequent first: source_event_type, events, share (of all events)."""
    total = int(vocabulary["event_count"].sum())
    unmapped = vocabulary.loc[~vocabulary["is_mapped"]]
    summary = (
        unmapped.groupby("source_event_type", as_index=False)["event_count"]
        .sum()
        .rename(columns={"event_count": "events"})
        .sort_values(["events", "source_event_type"], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )
    summary["share"] = (summary["events"] / total).round(4) if total else 0.0
    return summary


def unmapped_share(vocabulary: pd.DataFrame) -> float:
    """Share of all events (0..1) that map to nothing; 0 when there are no events."""
    total = int(vocabulary["event_count"].sum())
    if total == 0:
        return 0.0
    return float(vocabulary.loc[~vocabulary["is_mapped"], "event_count"].sum() / total)


def too_many_unmapped(vocabulary: pd.DataFrame, threshold: float = UNMAPPED_WARN_SHARE) -> bool:
    """The warning rule: more than `threshold` of the events map to nothing."""
    return unmapped_share(vocabulary) > threshold
