"""The segment report: ONE self-contained HTML file (inline CSS, charts as base64 PNG) a marketer can read.

Charts are drawn with matplotlib's object API (`matplotlib.figure.Figure`, Agg canvas), never pyplot, so no
global backend or window state is touched; matplotlib is imported inside `_figure` so importing this module
reads no config or font files. Every text from the data is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from reporting.cards import SegmentCard

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CHART_DPI = 110
SHARE_COLOUR = "#4C72B0"
REVENUE_COLOUR = "#DD8452"
CLV_COLOUR = "#55A868"


@dataclass(frozen=True)
class Chart:
    """A chart ready for the report: a title, one plain-words sentence on how to read it, and a PNG."""

    title: str
    explanation: str
    png_base64: str


def build_charts(
    cards_by_kind: Mapping[str, Sequence[SegmentCard]],
    rfm: pd.DataFrame | None = None,
    profiles: pd.DataFrame | None = None,
    cluster_names: Mapping[int, str] | None = None,
) -> list[Chart]:
    """The standard chart set: sizes vs value shares and CLV per segment kind, the RFM grid, the cluster heatmap."""
    charts = []
    for kind, cards in cards_by_kind.items():
        if cards:
            charts.append(segment_share_chart(kind, cards))
            if any(pd.notna(card.mean_predicted_clv) for card in cards):
                charts.append(clv_by_segment_chart(kind, cards))
    if rfm is not None and not rfm.empty:
        charts.append(rfm_grid_chart(rfm))
    if profiles is not None and not profiles.empty:
        charts.append(cluster_heatmap_chart(profiles, cluster_names or {}))
    return charts


def segment_share_chart(kind: str, cards: Sequence[SegmentCard]) -> Chart:
    """Paired bars per segment: share of customers vs share of revenue."""
    names = [card.name for card in cards][::-1]
    customer_share = [card.share_of_customers * 100 for card in cards][::-1]
    revenue_share = [np.nan_to_num(card.share_of_revenue) * 100 for card in cards][::-1]
    figure = _figure(figsize=(8, 0.45 * len(cards) + 1.2))
    axes = figure.subplots()
    positions = np.arange(len(names))
    axes.barh(positions + 0.2, customer_share, height=0.4, color=SHARE_COLOUR, label="% of customers")
    axes.barh(positions - 0.2, revenue_share, height=0.4, color=REVENUE_COLOUR, label="% of revenue")
    axes.set_yticks(positions, names)
    axes.set_xlabel("percent")
    axes.legend(loc="lower right")
    axes.grid(axis="x", alpha=0.3)
    return Chart(
        f"{kind}: size and value",
        "Blue is the share of customers in each segment, orange its share of revenue. An orange bar longer "
        "than the blue one means the segment is worth more than its size suggests.",
        _png(figure),
    )


def clv_by_segment_chart(kind: str, cards: Sequence[SegmentCard]) -> Chart:
    """Bars: mean predicted customer lifetime value per segment."""
    ordered = sorted(cards, key=lambda card: np.nan_to_num(card.mean_predicted_clv))
    figure = _figure(figsize=(8, 0.45 * len(cards) + 1.2))
    axes = figure.subplots()
    axes.barh([card.name for card in ordered], [np.nan_to_num(card.mean_predicted_clv) for card in ordered],
              color=CLV_COLOUR)  # fmt: skip
    axes.set_xlabel("mean predicted value over the forecast horizon")
    axes.grid(axis="x", alpha=0.3)
    return Chart(
        f"{kind}: predicted customer value",
        "The average amount a customer in each segment is expected to spend over the forecast horizon.",
        _png(figure),
    )


def rfm_grid_chart(rfm: pd.DataFrame) -> Chart:
    """Heatmap of customer counts by recency score (rows) and frequency score (columns)."""
    grid = (
        pd.crosstab(rfm["recency_score"], rfm["frequency_score"])
        .reindex(index=range(5, 0, -1), columns=range(1, 6), fill_value=0)
    )
    figure = _figure(figsize=(6, 4.5))
    axes = figure.subplots()
    image = axes.imshow(grid.to_numpy(), cmap="Blues")
    axes.set_xticks(range(5), [f"F{score}" for score in grid.columns])
    axes.set_yticks(range(5), [f"R{score}" for score in grid.index])
    axes.set_xlabel("frequency score (1 = one order, 5 = six or more)")
    axes.set_ylabel("recency score (5 = most recent)")
    peak = grid.to_numpy().max() or 1
    for row, recency in enumerate(grid.index):
        for column, frequency in enumerate(grid.columns):
            count = int(grid.loc[recency, frequency])
            axes.text(column, row, f"{count:,}", ha="center", va="center",
                      color="white" if count > peak / 2 else "black", fontsize=9)  # fmt: skip
    figure.colorbar(image, ax=axes, label="customers")
    return Chart(
        "RFM grid: recency x frequency",
        "Each cell counts customers by how recently (rows, 5 = most recent fifth) and how often (columns) they "
        "bought. Most shops have a heavy first column: customers with a single order.",
        _png(figure),
    )


def cluster_heatmap_chart(profiles: pd.DataFrame, cluster_names: Mapping[int, str]) -> Chart:
    """Heatmap of cluster profiles: z-score of each behaviour feature per cluster (red above, blue below average)."""
    matrix = profiles.pivot(index="cluster_id", columns="feature", values="z_score").sort_index()
    sizes = profiles.groupby("cluster_id")["n_customers"].first()
    labels = [f"{cluster_names.get(int(cluster_id), f'cluster {cluster_id}')} ({sizes[cluster_id]:,})"
              for cluster_id in matrix.index]  # fmt: skip
    values = matrix.to_numpy(dtype=float)
    limit = max(1.0, float(np.nanmax(np.abs(values)))) if values.size else 1.0
    figure = _figure(figsize=(1.0 * len(matrix.columns) + 4, 0.55 * len(matrix) + 2.5))
    axes = figure.subplots()
    image = axes.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axes.set_xticks(range(len(matrix.columns)), [column.replace("_", " ") for column in matrix.columns],
                    rotation=35, ha="right")  # fmt: skip
    axes.set_yticks(range(len(labels)), labels)
    for row in range(values.shape[0]):
        for column in range(values.shape[1]):
            value = values[row, column]
            axes.text(column, row, f"{value:+.1f}", ha="center", va="center", fontsize=8,
                      color="white" if abs(value) > 0.6 * limit else "black")  # fmt: skip
    figure.colorbar(image, ax=axes, label="standard deviations from the average customer")
    return Chart(
        "Behaviour clusters: what makes each one different",
        "Each row is a cluster (customers in brackets). Red cells are well above the average customer, blue well "
        "below; +1.0 means one standard deviation above average.",
        _png(figure),
    )


def render_report(
    cards_by_kind: Mapping[str, Sequence[SegmentCard]],
    charts: Iterable[Chart] = (),
    *,
    title: str = "Customer segments",
    facts: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The whole report as one HTML string: facts, charts, then a summary table and every card per segment kind."""
    sections = [
        f"<header><h1>{_text(title)}</h1>{_facts_list(facts or {})}</header>",
        _how_to_read(),
    ]
    charts = list(charts)
    if charts:
        sections.append("<section><h2>Charts</h2>" + "".join(_chart_html(chart) for chart in charts) + "</section>")
    for kind, cards in cards_by_kind.items():
        sections.append(_kind_section(kind, cards))
    if notes:
        items = "".join(f"<li>{_text(note)}</li>" for note in notes)
        sections.append(f'<section class="notes"><h2>Method notes</h2><ul>{items}</ul></section>')
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_text(title)}</title><style>{_CSS}</style></head>\n<body><main>\n{body}\n</main></body></html>\n"
    )


def _kind_section(kind: str, cards: Sequence[SegmentCard]) -> str:
    if not cards:
        return f"<section><h2>{_text(kind)}</h2><p>No segments.</p></section>"
    actionable = sum(card.is_actionable for card in cards)
    rows = "".join(
        "<tr>"
        f"<td>{_text(card.name)}</td><td class=num>{card.size:,}</td>"
        f"<td class=num>{_percent(card.share_of_customers)}</td><td class=num>{_percent(card.share_of_revenue)}</td>"
        f"<td class=num>{_money(card.mean_predicted_clv)}</td><td>{'yes' if card.is_actionable else 'no'}</td>"
        "</tr>"
        for card in cards
    )
    table = (
        "<table><thead><tr><th>Segment</th><th>Customers</th><th>% of customers</th><th>% of revenue</th>"
        f"<th>Mean predicted value</th><th>Actionable</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return (
        f"<section><h2>{_text(kind)}</h2>"
        f"<p>{len(cards)} segments, {actionable} of them actionable (large enough and with a strategy).</p>"
        f"{table}<div class=cards>{''.join(_card_html(card) for card in cards)}</div></section>"
    )


def _card_html(card: SegmentCard) -> str:
    attributes = "".join(f"<li>{_text(attribute.text)}</li>" for attribute in card.defining_attributes)
    attributes_html = f"<ul>{attributes}</ul>" if attributes else "<p>Close to the average customer everywhere.</p>"
    badge = (
        '<span class="badge ok">Actionable</span>'
        if card.is_actionable
        else f'<span class="badge no">Not actionable: {_text(card.actionability_reason)}</span>'
    )
    default_note = (
        "<p class=muted>Generic strategy: this segment has no entry in the playbook yet.</p>"
        if card.strategy_source != "playbook"
        else ""
    )
    return (
        f'<article class="card" data-segment="{_text(card.name)}" data-kind="{_text(card.segment_column)}">'
        f"<h3>{_text(card.name)}</h3>{badge}"
        "<dl>"
        f"<dt>Customers</dt><dd>{card.size:,} ({_percent(card.share_of_customers)} of all customers)</dd>"
        f"<dt>Revenue</dt><dd>{_percent(card.share_of_revenue)} of all revenue</dd>"
        f"<dt>Mean predicted value</dt><dd>{_money(card.mean_predicted_clv)}</dd>"
        "</dl>"
        f"<h4>What sets them apart</h4>{attributes_html}"
        f"<h4>What to do</h4><dl><dt>Strategy</dt><dd>{_text(card.strategy)}</dd>"
        f"<dt>Channel</dt><dd>{_text(card.channel)}</dd>"
        f"<dt>Creative angle</dt><dd>{_text(card.creative_angle)}</dd></dl>{default_note}"
        "</article>"
    )


def _chart_html(chart: Chart) -> str:
    return (
        f"<figure><h3>{_text(chart.title)}</h3>"
        f'<img alt="{_text(chart.title)}" src="data:image/png;base64,{chart.png_base64}">'
        f"<figcaption>{_text(chart.explanation)}</figcaption></figure>"
    )


def _facts_list(facts: Mapping[str, str]) -> str:
    if not facts:
        return ""
    items = "".join(f"<dt>{_text(key)}</dt><dd>{_text(value)}</dd>" for key, value in facts.items())
    return f'<dl class="facts">{items}</dl>'


def _how_to_read() -> str:
    return (
        "<section><h2>How to read this report</h2><ul>"
        "<li><b>RFM segments</b> group customers by how <i>recently</i> and how <i>often</i> they bought and how "
        "much they <i>spent</i> (scores 1-5, 5 = best). Every customer is in exactly one RFM segment.</li>"
        "<li><b>Behavioural segments</b> group customers by how they browse the shop (reviews, sale pages, brand "
        "pages, galleries, countdowns). Customers without tracked visits are listed as <i>No Web Activity</i>.</li>"
        "<li><b>What sets them apart</b> lists the measures where a segment differs most from the average "
        "customer.</li>"
        "<li><b>Mean predicted value</b> is the average amount a customer is expected to spend over the forecast "
        "horizon.</li>"
        "<li>A segment is <b>actionable</b> when it is large enough for a campaign and the playbook has a strategy "
        "for it.</li></ul></section>"
    )


def _figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure  # lazy: matplotlib reads its rc and font cache on import

    return Figure(figsize=figsize)


def _png(figure: Figure) -> str:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _percent(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.1%}"


def _money(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:,.2f}"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 8px}h2{margin-top:36px;border-bottom:2px solid #dde1e7;padding-bottom:4px}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
.facts dt{font-weight:600}.facts dd{margin:0}
table{border-collapse:collapse;width:100%;background:#fff;margin:12px 0}
th,td{padding:6px 10px;border-bottom:1px solid #e5e8ec;text-align:left}td.num{text-align:right}
figure{background:#fff;margin:16px 0;padding:12px;border-radius:8px}figure img{max-width:100%}
figcaption{color:#4a5565}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:16px}
.card{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.card h3{margin:0 0 6px}.card h4{margin:14px 0 4px}
.card dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:8px 0}
.card dt{font-weight:600}.card dd{margin:0}.card ul{padding-left:18px;margin:4px 0}
.badge{display:inline-block;font-size:12px;padding:2px 8px;border-radius:10px}
.badge.ok{background:#dff3e4;color:#1e6b34}.badge.no{background:#fbe9e7;color:#8a2b1f}
.muted{color:#6b7482;font-size:13px}.notes li{margin:4px 0}
"""
