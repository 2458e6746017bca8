from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.archetypes import BEHAVIOUR_ARCHETYPES, NO_WEB_ACTIVITY, PURCHASE_ARCHETYPES
from ml.rfm import SEGMENT_NAMES
from reporting.cards import (
    STRATEGY_FROM_DEFAULT,
    build_cards_by_kind,
    build_segment_cards,
    count_actionable,
    load_playbook,
    playbook_problems,
)
from reporting.report import build_charts, render_report

PLAYBOOK_PATH = Path(__file__).resolve().parents[2] / "config" / "playbook.yaml"


@pytest.fixture(scope="module")
def playbook() -> dict:
    return load_playbook(PLAYBOOK_PATH)


@pytest.fixture(scope="module")
def shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    """600 customers: researchers (high research share, high CLV), bargain hunters, and 10 unnamed oddballs."""
    rng = np.random.default_rng(0)
    segment = np.array(["High-Intent Researchers"] * 300 + ["Discount Seekers"] * 290 + ["Odd cluster"] * 10)
    researcher = segment == "High-Intent Researchers"
    ids = [f"c{i:04d}" for i in range(600)]
    features = pd.DataFrame(
        {
            "customer_id": ids,
            "research_share": np.where(researcher, rng.normal(0.3, 0.05, 600), rng.normal(0.05, 0.02, 600)),
            "sale_share": np.where(researcher, rng.normal(0.05, 0.02, 600), rng.normal(0.35, 0.05, 600)),
            "brand_share": rng.normal(0.05, 0.02, 600),
            "order_count": rng.integers(1, 4, 600),
            "recency_days": rng.integers(0, 400, 600),
        }
    )
    scores = pd.DataFrame(
        {
            "customer_id": ids,
            "behavioral_segment": segment,
            "rfm_segment": np.where(np.arange(600) < 400, "Champions", "Lost"),
            "predicted_clv": np.where(researcher, 200.0, 50.0),
            "total_revenue": np.where(researcher, 300.0, 100.0),
        }
    )
    return scores, features


def test_every_segment_gets_one_card_with_size_and_value_shares(shop, playbook):
    scores, features = shop
    cards = build_segment_cards(scores, features, "behavioral_segment", playbook)
    by_name = {card.name: card for card in cards}
    assert [card.name for card in cards] == ["High-Intent Researchers", "Discount Seekers", "Odd cluster"]
    assert by_name["High-Intent Researchers"].size == 300
    assert by_name["High-Intent Researchers"].share_of_customers == pytest.approx(0.5)
    assert by_name["High-Intent Researchers"].share_of_revenue == pytest.approx(90000 / (90000 + 30000))
    assert by_name["High-Intent Researchers"].mean_predicted_clv == pytest.approx(200.0)
    assert sum(card.share_of_customers for card in cards) == pytest.approx(1.0)


def test_defining_attributes_are_the_largest_differences_in_plain_words(shop, playbook):
    scores, features = shop
    researchers = build_segment_cards(scores, features, "behavioral_segment", playbook)[0]
    assert {attribute.feature for attribute in researchers.defining_attributes[:2]} == {"research_share", "sale_share"}
    assert "brand_share" not in {attribute.feature for attribute in researchers.defining_attributes}
    by_feature = {attribute.feature: attribute for attribute in researchers.defining_attributes}
    assert by_feature["research_share"].text.startswith("Share of visits spent on reviews and comparisons: 30% vs ")
    assert by_feature["research_share"].text.endswith("for all customers (higher)")
    assert by_feature["sale_share"].text.endswith("for all customers (lower)")


def test_strategy_comes_from_the_playbook_and_unknown_segments_are_not_actionable(shop, playbook):
    scores, features = shop
    cards = {card.name: card for card in build_segment_cards(scores, features, "behavioral_segment", playbook)}
    assert cards["Discount Seekers"].strategy == playbook["segments"]["Discount Seekers"]["strategy"]
    assert cards["Discount Seekers"].is_actionable
    odd = cards["Odd cluster"]
    assert odd.strategy_source == STRATEGY_FROM_DEFAULT and odd.strategy == playbook["default"]["strategy"]
    assert not odd.is_actionable
    assert "no strategy in the playbook" in odd.actionability_reason
    assert "fewer than 50 customers" in odd.actionability_reason
    assert count_actionable(list(cards.values())) == 2


def test_a_small_segment_with_a_strategy_is_not_actionable(shop, playbook):
    scores, features = shop
    scores = scores.assign(behavioral_segment=np.where(np.arange(600) < 5, "Visual Browsers", "Discount Seekers"))
    cards = {card.name: card for card in build_segment_cards(scores, features, "behavioral_segment", playbook)}
    assert not cards["Visual Browsers"].is_actionable
    assert cards["Discount Seekers"].is_actionable


def test_cards_without_clv_predictions_say_not_available(shop, playbook):
    scores, features = shop
    cards = build_segment_cards(scores.drop(columns=["predicted_clv"]), features, "rfm_segment", playbook)
    assert all(np.isnan(card.mean_predicted_clv) for card in cards)


def test_the_playbook_has_a_version_and_an_entry_for_every_named_segment(playbook):
    assert playbook["version"]
    named = {*SEGMENT_NAMES, *(a.name for a in BEHAVIOUR_ARCHETYPES), *(a.name for a in PURCHASE_ARCHETYPES)}
    assert named | {NO_WEB_ACTIVITY} <= set(playbook["segments"])
    assert playbook_problems(playbook) == []


def test_a_playbook_without_version_or_strategy_is_rejected(tmp_path):
    path = tmp_path / "playbook.yaml"
    path.write_text("default: {strategy: x, channel: y, creative_angle: z}\nsegments:\n  Champions: {channel: y}\n")
    with pytest.raises(ValueError, match="missing `version`.*Champions"):
        load_playbook(path)


class _CardCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cards: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "article" and "card" in attributes.get("class", ""):
            self.cards.append(attributes["data-segment"])
        if tag == "img":
            self.images.append(attributes["src"])
        if tag in {"script", "link", "iframe"} or (tag == "img" and not attributes["src"].startswith("data:")):
            self.external.append(tag)


@pytest.fixture(scope="module")
def report(shop, playbook) -> tuple[str, dict]:
    scores, features = shop
    cards_by_kind = {
        "RFM segments": build_segment_cards(scores, features, "rfm_segment", playbook),
        "Behavioural segments": build_segment_cards(scores, features, "behavioral_segment", playbook),
    }
    rfm = pd.DataFrame({"recency_score": [5, 5, 1, 2], "frequency_score": [1, 4, 1, 1]})
    profiles = pd.DataFrame(
        {
            "cluster_id": [0, 0, 1, 1],
            "n_customers": [300, 300, 290, 290],
            "feature": ["research_share", "sale_share"] * 2,
            "mean": [0.3, 0.05, 0.05, 0.35],
            "base_mean": [0.18, 0.2, 0.18, 0.2],
            "z_score": [1.0, -1.0, -1.0, 1.0],
        }
    )
    charts = build_charts(cards_by_kind, rfm=rfm, profiles=profiles, cluster_names={0: "High-Intent Researchers"})
    html = render_report(cards_by_kind, charts, facts={"As of": "2026-11-01"}, notes=["k=2 <by silhouette>"])
    return html, cards_by_kind


def test_the_report_contains_every_segments_card(report):
    html, cards_by_kind = report
    collector = _CardCollector()
    collector.feed(html)
    expected = [card.name for cards in cards_by_kind.values() for card in cards]
    assert sorted(collector.cards) == sorted(expected)
    assert len(collector.cards) == 5


def test_the_report_is_self_contained_with_its_charts_inline(report):
    html, _ = report
    collector = _CardCollector()
    collector.feed(html)
    # Two kinds x (size/value + CLV) + RFM grid + cluster heatmap.
    assert len(collector.images) == 6
    assert all(src.startswith("data:image/png;base64,") for src in collector.images)
    assert collector.external == []
    assert "<style>" in html and "http://" not in html and "https://" not in html


def test_text_from_the_data_is_escaped(shop, playbook):
    scores, features = shop
    scores = scores.assign(behavioral_segment="<script>alert(1)</script>")
    cards = {"Behavioural": build_segment_cards(scores, features, "behavioral_segment", playbook)}
    html = render_report(cards, title="A & B")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "A &amp; B" in html


def test_the_report_template_ships_with_the_package():
    import fnmatch
    import tomllib

    from reporting.report import REPORT_TEMPLATE

    root = Path(__file__).resolve().parents[2]
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert (root / "reporting" / "templates" / REPORT_TEMPLATE).is_file()
    assert any(fnmatch.fnmatch(f"templates/{REPORT_TEMPLATE}", pattern) for pattern in package_data["reporting"])


def test_cards_of_every_kind_from_one_base_are_the_cards_built_kind_by_kind(shop, playbook):
    # Issue 18: the asset joins scores and features once for both kinds; every number must be the one a card built
    # on its own base gets (missing segments, missing features and unmatched customers included).
    scores, features = shop
    scores = scores.copy()
    scores.loc[::9, "behavioral_segment"] = None
    scores.loc[::11, "predicted_clv"] = np.nan
    features = features.drop(index=range(0, 600, 13)).sample(frac=1.0, random_state=1)  # unmatched, shuffled
    kinds = {"RFM segments": "rfm_segment", "Behavioural segments": "behavioral_segment"}
    together = build_cards_by_kind(scores, features, kinds, playbook)
    assert list(together) == list(kinds)
    for kind, column in kinds.items():
        alone = build_segment_cards(scores, features, column, playbook)
        assert repr(together[kind]) == repr(alone)  # repr: NaN fields compare equal, floats to the last digit
        assert len(alone) >= 2
