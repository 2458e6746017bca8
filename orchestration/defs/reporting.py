"""Segment cards and the marketer's HTML report, with the 'at least three actionable segments' check.

Python owns ml.segment_cards; dbt publishes it as the view marts.segment_cards (dbt_project/models/marts/after_scores/).
"""

from dataclasses import asdict

import dagster as dg
import pandas as pd

from landing.ingest import currency_label
from ml.archetypes import archetype_descriptions
from orchestration.defs.resources import DUCKDB_TAG, SegmintSettings, Warehouse
from orchestration.lib import groups
from orchestration.lib.code_versions import asset_code_versions
from orchestration.lib.keys import (
    BEHAVIORAL_SEGMENTS,
    CLUSTER_PROFILES,
    CUSTOMER_FEATURES,
    CUSTOMER_SCORES,
    SEGMENT_CARDS,
)
from orchestration.lib.metadata import markdown_table
from orchestration.lib.settings import CONFIG_DIR
from orchestration.lib.warehouse_io import present_columns, read_table, table_exists, write_table
from reporting.cards import (
    ATTRIBUTE_COLUMNS,
    SCORE_COLUMNS,
    STRATEGY_FROM_PLAYBOOK,
    build_cards_by_kind,
    count_actionable,
    load_playbook,
    min_customers_per_segment,
)
from reporting.report import RFM_GRID_COLUMNS, build_charts, render_report

PLAYBOOK = CONFIG_DIR / "playbook.yaml"
CARDS_TABLE = "ml.segment_cards"
REPORT_FILE = "segment_report.html"
MIN_ACTIONABLE_SEGMENTS = 3
# A young shop's best kind needs this many times MIN_ACTIONABLE_SEGMENTS x min_customers customers before too few
# actionable segments is a failure (out_of_reach_reason).
YOUNG_SHOP_HEADROOM = 2
RFM_KIND = "RFM segments"
SEGMENT_KINDS = {RFM_KIND: "rfm_segment", "Behavioural segments": "behavioral_segment"}


def _cards_frame(cards_by_kind: dict) -> pd.DataFrame:
    rows = []
    for kind, cards in cards_by_kind.items():
        for card in cards:
            row = asdict(card)
            row["segment_kind"] = kind
            row["defining_attributes"] = "; ".join(a["text"] for a in row["defining_attributes"])
            rows.append(row)
    return pd.DataFrame(rows)


@dg.asset(
    key=SEGMENT_CARDS,
    deps=[CUSTOMER_SCORES, CUSTOMER_FEATURES, BEHAVIORAL_SEGMENTS, CLUSTER_PROFILES],
    group_name=groups.REPORTING,
    kinds={"python", "html", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["segment_cards"],
)
def segment_cards(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: SegmintSettings
) -> dg.MaterializeResult:
    """One row per segment (RFM and behavioural): size, shares, mean CLV, defining attributes and strategy;
    also writes the marketer's report (data/reports/segment_report.html)."""
    s = settings.load()
    playbook = load_playbook(PLAYBOOK)
    with warehouse.connect() as conn:
        # The scores' columns the cards, the RFM chart and the report's facts read: not the whole ~35-column mart
        # (issue 18: at 1 M customers the whole frame held ~1 GiB through this step).
        wanted = ["customer_id", *SEGMENT_KINDS.values(), *SCORE_COLUMNS, *RFM_GRID_COLUMNS, "as_of_date"]
        scores = read_table(
            conn,
            "marts.customer_scores",
            present_columns(conn, "marts.customer_scores", wanted),
            order_by="customer_id",
        )
        # Only what the cards read from the features (their attribute columns), not the whole ~60-column mart:
        # at 1 M customers the whole frame was most of this step's memory (issue 18).
        columns = present_columns(conn, "marts.customer_features", ["customer_id", *ATTRIBUTE_COLUMNS])
        features = read_table(conn, "marts.customer_features", columns, order_by="customer_id")
        profiles = read_table(conn, "ml.cluster_profiles")
        cluster_names = dict(
            conn.execute("select distinct cluster_id, behavioral_segment from ml.behavioral_segments").fetchall()
        )
        currency = report_currency(conn)
        cards_by_kind = build_cards_by_kind(scores, features, SEGMENT_KINDS, playbook)
        table = _cards_frame(cards_by_kind)
        write_table(conn, CARDS_TABLE, table)
    charts = build_charts(cards_by_kind, rfm=scores, profiles=profiles, cluster_names=cluster_names)
    as_of = str(scores["as_of_date"].iloc[0])[:10] if len(scores) else "n/a"
    html = render_report(
        cards_by_kind,
        charts,
        title="Customer segments",
        facts={
            "As of": as_of,
            "Customers": f"{len(scores):,}",
            "Playbook version": str(playbook.get("version")),
            "Predicted CLV horizon": f"{s.horizon_days} days",
            "Currency": currency,
        },
        notes=[f"{name}: {text}" for name, text in archetype_descriptions().items()],
    )
    s.reports_dir.mkdir(parents=True, exist_ok=True)
    report_path = s.reports_dir / REPORT_FILE
    report_path.write_text(html, encoding="utf-8")
    actionable = {kind: count_actionable(cards) for kind, cards in cards_by_kind.items()}
    summary = table[
        [
            "segment_kind",
            "name",
            "size",
            "share_of_customers",
            "share_of_revenue",
            "mean_predicted_clv",
            "is_actionable",
        ]
    ]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "report": dg.MetadataValue.path(str(report_path)),
            "playbook_version": dg.MetadataValue.text(str(playbook.get("version"))),
            "actionable_segments": dg.MetadataValue.json(actionable),
            "cards": markdown_table(summary, max_rows=40),
        }
    )


def report_currency(conn) -> str:
    """The currency every amount of the report is in, as a user reads it: raw.run_context.reporting_currency, or
    that none was given (no order named one and SEGMINT_CURRENCY is unset) instead of None."""
    code = (
        conn.execute("select reporting_currency from raw.run_context").fetchone()[0]
        if table_exists(conn, "raw.run_context")
        else None
    )
    return currency_label(code)


def out_of_reach_reason(
    cards: pd.DataFrame, min_customers: int, history_days: int, horizon_days: int, repeat_buyers: int | None = None
) -> str:
    """Why this shop's data cannot be expected to give MIN_ACTIONABLE_SEGMENTS actionable segments of one kind ('' when
    it can: then too few is a regression and fails at ERROR).

    Out of reach when, in every kind, the customers in segments with a playbook strategy (the only ones that can be
    actionable) are
    - fewer than MIN_ACTIONABLE_SEGMENTS x min_customers (a 1- or 20-customer shop): impossible whatever the split; or
    - fewer than YOUNG_SHOP_HEADROOM times that in a young shop (orders over less than one CLV horizon): its segments
      slice one cohort of new customers unevenly, so three at the bar would have to be most of its customers (issue
      13: 152 customers over 60 days split into behavioural segments of 83, 46 and 23, RFM ones of at most 24; of
      247, only 43 had had time to order twice, the repeat buyers' cluster of 41 was below the bar); or
    - in a young shop with fewer than min_customers `repeat_buyers`, for the RFM kind: ml/rfm.py names nobody lapsing
      or due before one horizon of history, so its one-order customers are only "New Customers" or "Promising" and a
      third RFM segment needs min_customers repeat buyers; the other kinds are then judged by the rules above (a
      60-day orders-only shop of 430 customers, 35 of them repeat buyers: RFM segments of 317 and 78, behavioural
      113 and 77; `make run` exited 1 once its RFM names stopped calling 30-day customers "Lost").
    """
    with_strategy = cards.loc[cards["strategy_source"] == STRATEGY_FROM_PLAYBOOK]
    customers = int(with_strategy.groupby("segment_kind")["size"].sum().max()) if len(with_strategy) else 0
    bar = MIN_ACTIONABLE_SEGMENTS * min_customers
    in_segments = f"{customers} customers in segments with a playbook strategy"
    if customers < bar:
        return (
            f"the shop has {in_segments}, fewer than {MIN_ACTIONABLE_SEGMENTS} segments x {min_customers} "
            "(playbook actionability.min_customers)"
        )
    young = f"a young shop ({history_days} days of orders, less than one CLV horizon of {horizon_days})"
    if history_days < horizon_days and customers < YOUNG_SHOP_HEADROOM * bar:
        return (
            f"{young} with {in_segments}, fewer than {YOUNG_SHOP_HEADROOM} x {MIN_ACTIONABLE_SEGMENTS} segments x "
            f"{min_customers}"
        )
    if history_days < horizon_days and repeat_buyers is not None and repeat_buyers < min_customers:
        other_kinds = with_strategy.loc[with_strategy["segment_kind"] != RFM_KIND]
        others = int(other_kinds.groupby("segment_kind")["size"].sum().max()) if len(other_kinds) else 0
        if others < YOUNG_SHOP_HEADROOM * bar:
            return (
                f"{young}: its RFM names split one-order customers into New Customers and Promising only (nobody is "
                f"named lapsing before one horizon) and its {repeat_buyers} repeat buyers are fewer than "
                f"{min_customers} for a third; the other kinds have at most {others} customers in segments with a "
                f"playbook strategy, fewer than {YOUNG_SHOP_HEADROOM} x {MIN_ACTIONABLE_SEGMENTS} segments x "
                f"{min_customers}"
            )
    return ""


@dg.asset_check(
    asset=SEGMENT_CARDS,
    description=f"At least {MIN_ACTIONABLE_SEGMENTS} segments of one kind are actionable (large enough and with a strategy).",
    additional_deps=[CUSTOMER_FEATURES],  # the shop's history (out_of_reach_reason)
    op_tags=DUCKDB_TAG,
)
def check_enough_actionable_segments(warehouse: Warehouse, settings: SegmintSettings) -> dg.AssetCheckResult:
    """ERROR when no kind has MIN_ACTIONABLE_SEGMENTS actionable segments though the shop's data could give them; a
    WARN that says why when it cannot (out_of_reach_reason: too few customers, or a young shop's)."""
    with warehouse.connect() as conn:
        cards = read_table(conn, CARDS_TABLE)
        [(history_days, repeat_buyers)] = conn.execute(
            "select coalesce(max(tenure_days), 0), count_if(order_count >= 2) from marts.customer_features"
        ).fetchall()
    per_kind = cards.groupby("segment_kind")["is_actionable"].sum().astype(int).to_dict()
    best = max(per_kind.values(), default=0)
    passed = best >= MIN_ACTIONABLE_SEGMENTS
    not_actionable = cards.loc[~cards["is_actionable"].astype(bool)]
    # On failure the line names what to fix: the segments held back and why (too small, no playbook strategy).
    why_not = "; ".join(f"{row.name}: {row.actionability_reason}" for row in not_actionable.head(3).itertuples())
    out_of_reach = out_of_reach_reason(
        cards,
        min_customers_per_segment(load_playbook(PLAYBOOK)),
        int(history_days),
        settings.load().horizon_days,
        int(repeat_buyers),
    )
    return dg.AssetCheckResult(
        passed=passed,
        # A shop whose data cannot give enough actionable segments is told so, not failed every day.
        severity=dg.AssetCheckSeverity.WARN if out_of_reach else dg.AssetCheckSeverity.ERROR,
        description=f"{best} actionable segments (need {MIN_ACTIONABLE_SEGMENTS})"
        + ("" if passed or not why_not else f"; not actionable: {why_not}")
        + (f"; a warning only: {out_of_reach}" if out_of_reach and not passed else ""),
        metadata={
            "actionable_by_kind": dg.MetadataValue.json(per_kind),
            "threshold": dg.MetadataValue.int(MIN_ACTIONABLE_SEGMENTS),
            "history_days": dg.MetadataValue.int(int(history_days)),
            "not_actionable": markdown_table(
                cards.loc[
                    ~cards["is_actionable"].astype(bool), ["segment_kind", "name", "size", "actionability_reason"]
                ]
            ),
        },
    )
