"""The segment report: ONE self-contained HTML file (inline CSS, charts as base64 PNG) a marketer can read.

Charts are drawn with matplotlib's object API (`matplotlib.figure.Figure`, Agg canvas), never pyplot, so no
global backend or window state is touched; matplotlib is imported inside `_figure` so importing this module
reads no config or font files. The markup lives in the Jinja2 template reporting/templates/segment_report.html.j2,
rendered with autoescaping, so every text from the data is HTML-escaped and a designer can edit the page without
touching Python.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jinja2
import numpy as np
import pandas as pd

from reporting.cards import SegmentCard

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_TEMPLATE = "segment_report.html.j2"  # in reporting/templates/, shipped as package data
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


RFM_GRID_COLUMNS = ("recency_score", "frequency_score")  # what rfm_grid_chart reads of its frame


def rfm_grid_chart(rfm: pd.DataFrame) -> Chart:
    """Heatmap of customer counts by recency score (rows) and frequency score (columns)."""
    grid = pd.crosstab(rfm["recency_score"], rfm["frequency_score"]).reindex(
        index=range(5, 0, -1), columns=range(1, 6), fill_value=0
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
    template = _environment().get_template(REPORT_TEMPLATE)
    return (
        template.render(
            cards_by_kind=cards_by_kind, charts=list(charts), title=title, facts=facts or {}, notes=list(notes)
        )
        + "\n"
    )


@functools.cache
def _environment() -> jinja2.Environment:
    """Templates shipped inside the package (package data), autoescaped, failing loudly on a misspelt name."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )
    environment.filters.update(percent=_percent, money=_money, thousands=_thousands)
    return environment


def _figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure  # lazy: matplotlib reads its rc and font cache on import

    return Figure(figsize=figsize)


def _png(figure: Figure) -> str:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _percent(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.1%}"


def _money(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:,.2f}"


def _thousands(value: int) -> str:
    return f"{value:,}"
