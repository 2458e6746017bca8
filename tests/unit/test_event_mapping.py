"""Event vocabulary mapping: presets, user rules, URL regexes, precedence, unmapped counting and the 20 % warning."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from landing.event_mapping import (
    PAGE_PATH_PATTERN,
    EventMapping,
    EventMappingError,
    load_event_mapping,
    map_event_vocabulary,
    parse_event_mapping,
    too_many_unmapped,
    unmapped_share,
    unmapped_summary,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The issue's third-party tool: its own names, none of them segmint vocabulary.
FOREIGN_RULES = {
    "version": 1,
    "rules": [
        {"when": {"event": "catalog"}, "then": {"event_type": "page_view", "page_type": "category"}},
        {"when": {"event_regex": r"^product\d*$"}, "then": {"event_type": "product_view", "page_type": "product"}},
        {"when": {"event": ["cart", "CART_ADD"]}, "then": {"event_type": "add_to_cart"}},
        {"when": {"event": "delivery_choice"}, "then": {"event_type": "shipping_info_viewed"}},
        {"when": {"event": "payment_done"}, "then": {"event_type": "purchase"}},
    ],
}


def keys(*rows: tuple) -> pd.DataFrame:
    """(event_type, page_type, page_path, count) rows as the asset reads them from raw.events."""
    return pd.DataFrame(rows, columns=["source_event_type", "source_page_type", "source_page_path", "event_count"])


def mapped(vocabulary: pd.DataFrame, event: str, page_type: str = "", path: str = "") -> tuple:
    row = vocabulary[
        (vocabulary["source_event_type"] == event)
        & (vocabulary["source_page_type"] == page_type)
        & (vocabulary["source_page_path"] == path)
    ].iloc[0]
    text = [None if pd.isna(row[column]) else row[column] for column in ("event_type", "page_type")]
    return text[0], text[1], bool(row["is_mapped"])


def test_segmint_names_map_to_themselves_and_unknown_names_stay_unmapped():
    vocabulary = map_event_vocabulary(
        keys(("product_view", "product", "", 5), ("page_view", "sale", "", 3), ("catalog", "", "", 2)), EventMapping()
    )
    assert mapped(vocabulary, "product_view", "product") == ("product_view", "product", True)
    assert mapped(vocabulary, "page_view", "sale") == ("page_view", "sale", True)
    assert mapped(vocabulary, "catalog") == (None, None, False)
    assert unmapped_share(vocabulary) == pytest.approx(0.2)


def test_the_ga4_preset_maps_recommended_ecommerce_events():
    vocabulary = map_event_vocabulary(
        keys(
            ("view_item", "", "", 10),
            ("add_to_cart", "", "", 4),
            ("begin_checkout", "", "", 2),
            ("add_shipping_info", "", "", 2),
            ("purchase", "", "", 1),
            ("view_item_list", "", "", 6),
            ("session_start", "", "", 8),
            ("view_promotion", "", "", 3),
        ),
        EventMapping(),
        source_format="ga4",
    )
    assert mapped(vocabulary, "view_item") == ("product_view", "product", True)
    assert mapped(vocabulary, "add_shipping_info") == ("shipping_info_viewed", "checkout", True)
    assert mapped(vocabulary, "view_item_list") == ("page_view", "category", True)
    assert mapped(vocabulary, "purchase") == ("purchase", None, True)
    # Known but meaningless for behaviour: mapped to `other`, so it is not reported as unmapped.
    assert mapped(vocabulary, "session_start") == ("other", None, True)
    assert unmapped_share(vocabulary) == 0.0


def test_the_segment_preset_maps_spec_v2_names_case_insensitively():
    vocabulary = map_event_vocabulary(
        keys(
            ("Product Viewed", "", "", 5),
            ("Product Added", "", "", 2),
            ("Order Completed", "", "", 1),
            ("Checkout Started", "", "", 1),
            ("Coupon Applied", "", "", 1),
            ("Products Searched", "", "", 1),
        ),
        EventMapping(preset="segment"),
    )
    assert mapped(vocabulary, "Product Viewed") == ("product_view", "product", True)
    assert mapped(vocabulary, "Product Added")[0] == "add_to_cart"
    assert mapped(vocabulary, "Order Completed")[0] == "purchase"
    assert mapped(vocabulary, "Coupon Applied")[0] == "discount_code_applied"
    assert mapped(vocabulary, "Products Searched")[:2] == ("search", "search")


def test_the_shopify_preset_maps_web_pixel_events():
    vocabulary = map_event_vocabulary(
        keys(("product_viewed", "", "", 1), ("checkout_completed", "", "", 1), ("collection_viewed", "", "", 1)),
        EventMapping(),
        source_format="shopify",
    )
    assert mapped(vocabulary, "product_viewed")[0] == "product_view"
    assert mapped(vocabulary, "checkout_completed")[0] == "purchase"
    assert mapped(vocabulary, "collection_viewed")[1] == "category"


def test_user_rules_map_a_third_party_tools_own_names():
    mapping = parse_event_mapping(FOREIGN_RULES)
    vocabulary = map_event_vocabulary(
        keys(
            ("catalog", "", "", 40),
            ("product1", "", "", 30),
            ("product", "", "", 5),
            ("Cart", "", "", 10),
            ("delivery_choice", "", "", 5),
            ("payment_done", "", "", 5),
            ("heartbeat", "", "", 5),
        ),
        mapping,
    )
    assert mapped(vocabulary, "catalog") == ("page_view", "category", True)
    assert mapped(vocabulary, "product1") == ("product_view", "product", True)
    assert mapped(vocabulary, "Cart") == ("add_to_cart", None, True)
    assert mapped(vocabulary, "delivery_choice")[0] == "shipping_info_viewed"
    assert mapped(vocabulary, "payment_done")[0] == "purchase"
    assert vocabulary.loc[vocabulary["source_event_type"] == "catalog", "mapped_by"].item() == "rule: rule 1"
    assert unmapped_summary(vocabulary).to_dict("records") == [
        {"source_event_type": "heartbeat", "events": 5, "share": 0.05}
    ]


def test_user_rules_come_before_the_preset_and_the_preset_before_identity():
    mapping = parse_event_mapping(
        {"version": 1, "preset": "ga4", "rules": [{"when": {"event": "view_promotion"}, "then": {"page_type": "sale"}}]}
    )
    vocabulary = map_event_vocabulary(keys(("view_promotion", "", "", 1), ("search", "", "", 1)), mapping)
    # The rule set only the page type; the event type still comes from the preset.
    assert mapped(vocabulary, "view_promotion") == ("other", "sale", True)
    override = parse_event_mapping(
        {"version": 1, "rules": [{"when": {"event": "purchase"}, "then": {"event_type": "other"}}]}
    )
    assert mapped(map_event_vocabulary(keys(("purchase", "", "", 1)), override), "purchase")[0] == "other"


def test_regexes_on_the_url_path_and_the_page_type_set_the_page_type():
    mapping = parse_event_mapping(
        {
            "version": 1,
            "rules": [
                {"when": {"event": "page_view", "page_url": r"^/avis/"}, "then": {"page_type": "reviews"}},
                {"when": {"page_type_regex": "^promo"}, "then": {"page_type": "sale"}},
            ],
        }
    )
    vocabulary = map_event_vocabulary(
        keys(
            ("page_view", "", "/avis/chair-2", 3),
            ("page_view", "", "/products/chair-2", 3),
            ("page_view", "Promotions", "", 2),
            ("page_view", "", "/unknown", 2),
        ),
        mapping,
    )
    assert mapped(vocabulary, "page_view", path="/avis/chair-2")[1] == "reviews"
    assert mapped(vocabulary, "page_view", path="/products/chair-2")[1] == "product"  # common URL conventions
    assert mapped(vocabulary, "page_view", page_type="Promotions")[1] == "sale"
    assert mapped(vocabulary, "page_view", path="/unknown") == ("page_view", None, True)


def test_a_stated_page_type_beats_a_url_convention():
    vocabulary = map_event_vocabulary(keys(("page_view", "reviews", "/products/x", 1)), EventMapping())
    assert mapped(vocabulary, "page_view", "reviews", "/products/x")[1] == "reviews"


def test_more_than_a_fifth_unmapped_warns_and_exactly_a_fifth_does_not():
    vocabulary = map_event_vocabulary(keys(("page_view", "", "", 80), ("catalog", "", "", 20)), EventMapping())
    assert unmapped_share(vocabulary) == pytest.approx(0.2)
    assert not too_many_unmapped(vocabulary)
    vocabulary = map_event_vocabulary(keys(("page_view", "", "", 79), ("catalog", "", "", 21)), EventMapping())
    assert too_many_unmapped(vocabulary)
    assert not too_many_unmapped(map_event_vocabulary(keys(), EventMapping()))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"rules": []}, "`version: None` is not supported"),
        ({"version": 2}, "`version: 2` is not supported"),
        ({"version": 1, "preset": "snowplow"}, "unknown preset 'snowplow'"),
        (
            {"version": 1, "rules": [{"when": {"event": "x"}, "then": {"event_type": "buy"}}]},
            "rule 1: event_type 'buy' is not segmint vocabulary",
        ),
        (
            {"version": 1, "rules": [{"when": {"page_url": "("}, "then": {"page_type": "sale"}}]},
            "rule 1: `page_url` '(' is not a valid regex",
        ),
        ({"version": 1, "rules": [{"when": {"url": "x"}, "then": {"page_type": "sale"}}]}, "rule 1: `when` needs"),
        ({"version": 1, "rules": [{"event": "x", "event_type": "purchase"}]}, "rule 1: expected `when:`"),
        ({"version": 1, "mappings": []}, "unknown key(s) mappings"),
    ],
)
def test_a_bad_mapping_file_is_refused_in_one_line_naming_the_rule(document, message):
    with pytest.raises(EventMappingError) as error:
        parse_event_mapping(document, source="event_mapping.yaml")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_the_shipped_mapping_file_loads_and_the_readme_example_maps_the_issue_names():
    shipped = load_event_mapping(PROJECT_ROOT / "config" / "event_mapping.yaml")
    assert shipped.version == 1 and shipped.preset == "auto"
    with pytest.raises(EventMappingError, match="not found"):
        load_event_mapping(PROJECT_ROOT / "config" / "missing.yaml")


def test_the_page_path_key_is_spelled_the_same_in_python_and_in_dbt():
    macro = (PROJECT_ROOT / "dbt_project" / "macros" / "stage_events.sql").read_text()
    assert PAGE_PATH_PATTERN in macro


def test_the_segment_preset_reads_a_screen_call_as_a_page_view_and_a_page_name_as_its_type():
    # Regression: mobile `screen` calls were unmapped, so an app's browsing fed no behaviour feature.
    vocabulary = map_event_vocabulary(
        keys(("screen", "Product Detail", "", 3), ("page", "Product", "/p/7", 2), ("page", "Home", "/", 1)),
        EventMapping(preset="segment"),
    )
    assert mapped(vocabulary, "screen", "Product Detail")[0] == "page_view"
    assert mapped(vocabulary, "page", "Product", "/p/7")[:2] == ("page_view", "product")
    assert mapped(vocabulary, "page", "Home", "/")[:2] == ("page_view", "home")


def test_the_ga4_preset_reads_an_app_screen_view_as_a_page_view():
    # Regression: screen_view (a GA4 app's page view) was unmapped, so an app's browsing fed no behaviour feature.
    vocabulary = map_event_vocabulary(keys(("screen_view", "Product", "", 4)), EventMapping(preset="ga4"))
    assert mapped(vocabulary, "screen_view", "Product")[:2] == ("page_view", "product")
