"""Audiences: one asset per audience in config/audiences.yaml, its upload files, one sync asset per destination.

The audience file is read when the code location loads (like dbt's manifest), so each audience and destination
appears as its own asset with lineage back to customer_scores. A blocking check per audience stops its syncs when
the audience would grow or shrink by more than its max_change_share since the destinations' last state.

The CLV activation gate (ml/clv_activation_gate, orchestration/defs/clv.py) is upstream of every sync and of the
exports of value-based audiences (activation.audiences.is_value_based: the upload carries a model value such as
lookalike_seed's predicted CLV, or the rule selects by a model output such as high_value_at_risk's top-20 %
predicted CLV). When no model passes the gate those are skipped; audiences selected on past behaviour only
(champions) still get their export files, and every audience table is still built for people to read.

An audience on a real-time segment (`realtime_segment` in audiences.yaml) reads its current members from the
segment service's transitions log when it is built; the sensor `segmint_realtime_audience_sync`
(orchestration/defs/sensors.py) rebuilds and syncs it when that segment changes.

Reads declared: audiences read marts.customer_scores and, for contact data, only the sync edge
edge.customer_contacts (a dbt view; dbt_project/models/edge/). The exports, guard checks and syncs match people on
the contact fields' normal forms and hashes, which the asset edge_forms/customer_match_forms keeps per customer in
edge_forms.customer_match_forms (activation.member_records.refresh_match_forms): computed once per run, and only for the
customers whose contact row changed since the last run, instead of once per audience, destination and step. A
destination without column-wise builders (a third-party one) still reads the plain contact fields from the edge. The sync ledger (schema `sync`) is declared by the
`sync_ledger_tables` assets, which create its tables; every sync asset depends on them and appends to them.
activation/audience_lift is written here and published by dbt as the view marts.audience_lift.
"""

import dagster as dg
import duckdb
import pandas as pd

from activation.audiences import (
    CONTACTS_RELATION,
    GUARD_OFF,
    SCORES_RELATION,
    Audience,
    DestinationConfig,
    current_realtime_members,
    is_value_based,
    load_audiences,
    select_members,
)
from activation.destinations.factory import build_destination
from activation.exports import export_audience_csvs
from activation.http import DestinationError
from activation.ledger import SCHEMA, ensure_schema, previous_audience_size
from activation.member_records import (
    FORM_COLUMNS,
    MATCH_FORMS_TABLE,
    StaleMatchFormsError,
    audience_forms,
    audience_record_counts,
    refresh_match_forms,
)
from activation.sync import SyncGuardError, guard_change, lift_by_audience, sync_audience
from landing.realtime_log import read_transitions, transition_log_files
from orchestration.defs.resources import DUCKDB_TAG, ActivationCredentials, SegmintSettings, SparkEngine, Warehouse
from orchestration.lib import groups, keys, spark_audiences
from orchestration.lib.code_versions import asset_code_versions
from orchestration.lib.keys import (
    AUDIENCE_LIFT,
    CLV_ACTIVATION_GATE,
    CLV_PREDICTIONS,
    CUSTOMER_CONTACTS,
    CUSTOMER_MATCH_FORMS,
    CUSTOMER_SCORES,
    FAIRNESS_AUDIT,
    OWED_REMOVALS,
    RAW_ORDERS,
    SYNC_LEDGER_TABLES,
    sync_ledger,
)
from orchestration.lib.metadata import markdown_table
from orchestration.lib.settings import CONFIG_DIR
from orchestration.lib.warehouse_io import read_table, write_table

AUDIENCES_FILE = CONFIG_DIR / "audiences.yaml"
LIFT_TABLE = "activation.audience_lift"
LEDGER_DESCRIPTIONS = {
    "destination_members": "One row per destination, audience and member the destination holds (or is about to: pending_add/pending_remove).",
    "runs": "One row per sync run of an audience to a destination: sizes planned and reached, added, removed, failed, status.",
    "batches": "One row per request batch sent to a destination, with what it confirmed.",
    "control_group": "One row per run, audience and customer held out of the sync as control.",
    "erasure_removals": "One row per destination, audience and erased member whose removal is still owed: the identifiers it needs, deleted once sent.",
    "members_provenance": "One row per run, audience and member (treated or control) with the model version and rule that chose them.",
}
LEDGER = {table: sync_ledger(table) for table in SYNC_LEDGER_TABLES}
# Pseudonymous: contact fields (activation.audiences.CONTACT_COLUMNS) are joined at the sync edge, not stored.
MEMBER_COLUMNS = [
    "customer_id",
    "is_control",
    "value",
    "marketing_consent",
    "country",
    "predicted_clv",
    "purchase_propensity",
    "rfm_segment",
    "behavioral_segment",
]


def _members_table(audience: Audience) -> str:
    return f"audiences.{audience.name}"


def _members_with_forms(
    conn: duckdb.DuckDBPyConnection,
    audience: Audience,
    contact_fields: bool = False,
    where: str | None = None,
    form_columns: tuple[str, ...] = FORM_COLUMNS,
    score_columns: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The audience's members with their contact forms (normal forms and hashes, read from
    edge_forms.customer_match_forms), for a destination (the sync edge) only; `contact_fields`: with the plain contact
    fields too (a destination without column-wise builders builds each record from them); `where`: only the members
    it holds for (columns of the audience table as `members.<column>`); `form_columns`: only these forms (a sync
    reads those its destination's records are built from, its FORMS_READ); `score_columns`: with these columns of
    marts.customer_scores, joined for the members where the audience table lacks them (its SCORES_READ)."""
    try:
        return audience_forms(
            conn,
            _members_table(audience),
            CONTACTS_RELATION,
            where=where,
            forms_table=MATCH_FORMS_TABLE,
            contact_fields=contact_fields,
            form_columns=form_columns,
            scores=SCORES_RELATION,
            score_columns=score_columns,
        )
    except StaleMatchFormsError as error:
        raise dg.Failure(description=f"{audience.name}: {error}") from None


# The members upload files hold: treated (not in the control group) and consenting (activation.exports).
EXPORTED_MEMBERS = "not members.is_control and coalesce(members.marketing_consent, false)"


@dg.asset(
    key=CUSTOMER_MATCH_FORMS,
    deps=[CUSTOMER_CONTACTS],
    group_name=groups.AUDIENCES,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["customer_match_forms"],
)
def customer_match_forms(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per customer of edge.customer_contacts: the normal forms and SHA-256 hashes of the contact fields that
    destinations match on (personal data, erased with the person), computed again only when the contact row changed."""
    with warehouse.connect() as conn:
        counts = refresh_match_forms(conn, CONTACTS_RELATION, MATCH_FORMS_TABLE)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(counts["customers"]),
            # customers = kept + computed: rows whose contact fields (and rules) did not change are not recomputed.
            "kept": dg.MetadataValue.int(counts["kept"]),
            "computed": dg.MetadataValue.int(counts["computed"]),
            "deleted_stale_or_gone": dg.MetadataValue.int(counts["deleted"]),
        }
    )


def _audience_asset(audience: Audience) -> dg.AssetsDefinition:
    @dg.asset(
        key=keys.audience(audience.name),
        deps=[CUSTOMER_SCORES, CUSTOMER_CONTACTS],
        group_name=groups.AUDIENCES,
        kinds={"python", "duckdb"},
        op_tags=DUCKDB_TAG,
        description=f"{audience.description} One row per member; is_control marks the held-out control group.",
        metadata={"rule": audience.rule, "control_share": audience.control_share},
        code_version=asset_code_versions()["audience_members"],
    )
    def _members(warehouse: Warehouse, settings: SegmintSettings, spark: SparkEngine) -> dg.MaterializeResult:
        realtime: dict[str, dg.MetadataValue] = {}
        with warehouse.connect() as conn:
            live = None
            if audience.realtime_segment is not None:
                log_dir = settings.load().realtime_log_dir
                log = read_transitions(conn, transition_log_files(log_dir), log_dir)
                live = current_realtime_members(log.transitions, audience)
                realtime = {
                    "realtime_segment": dg.MetadataValue.text(audience.realtime_segment),
                    "known_customers_in_segment": dg.MetadataValue.int(len(live)),
                    "transition_lines_read": dg.MetadataValue.int(log.lines_read),
                    "transition_lines_set_aside": dg.MetadataValue.json(log.set_aside),
                }
            # SEGMINT_ENGINE=spark: the rule runs in Spark SQL over the Spark marts; only the members come back. A
            # real-time audience's event-triggered run (the sensor's) starts no Spark for it: without a running
            # Spark it reads the same Parquet tables through DuckDB's views (same members, a second, no JVM start).
            engine = warehouse.resolved_engine()
            if engine == "spark" and audience.realtime_segment is not None and not spark.running():
                engine = "duckdb views"
            if engine == "spark":
                members = spark_audiences.select_members_on_spark(spark.session(), conn, audience, live)
            else:
                members = select_members(conn, audience, live)
            kept = [c for c in MEMBER_COLUMNS if c in members.columns]
            write_table(conn, _members_table(audience), members[kept])
        consenting = members["marketing_consent"].fillna(False).astype(bool)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(len(members)),
                "treated": dg.MetadataValue.int(int((~members["is_control"]).sum())),
                "control": dg.MetadataValue.int(int(members["is_control"].sum())),
                "with_marketing_consent": dg.MetadataValue.int(int(consenting.sum())),
                "mean_predicted_clv": dg.MetadataValue.float(
                    float(members["predicted_clv"].mean()) if len(members) else 0.0
                ),
                "rule": dg.MetadataValue.text(audience.rule),
                "selected_in": dg.MetadataValue.text(engine),
                **realtime,
            }
        )

    return _members


def _guard_check(audience: Audience) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=keys.audience(audience.name),
        name="check_size_change_within_guard",
        description=(
            f"Blocks the syncs of {audience.name} when any destination would change size by more than "
            f"{audience.max_change_share:.0%} since its last confirmed state (a bad upstream run must not empty an ad audience)."
            if audience.max_change_share != GUARD_OFF
            else f"{audience.name} follows a real-time segment whose members come and go: no size guard (set max_change_share to add one)."
        ),
        blocking=True,
        # The members' contact fields come from the sync edge, the destinations' last state from the ledger.
        additional_deps=[CUSTOMER_CONTACTS, CUSTOMER_MATCH_FORMS, LEDGER["destination_members"], LEDGER["runs"]],
        op_tags=DUCKDB_TAG,
    )
    def _check(
        warehouse: Warehouse, settings: SegmintSettings, credentials: ActivationCredentials
    ) -> dg.AssetCheckResult:
        env = credentials.values()
        rows = []
        with warehouse.connect() as conn:
            ensure_schema(conn)
            # Counts, not plans: every destination's record count in one DuckDB query, no record is built.
            destinations = [
                build_destination(config, audience, env, settings.load().exports_dir / "dry_run")[0]
                for config in audience.destinations
            ]
            sizes = audience_record_counts(
                conn, _members_table(audience), CONTACTS_RELATION, destinations, forms_table=MATCH_FORMS_TABLE
            )
            for config, destination in zip(audience.destinations, destinations, strict=True):
                previous = previous_audience_size(conn, destination.name, audience.name)
                new_size = sizes[destination.name]
                ok, message = guard_change(previous, new_size, audience.max_change_share)
                rows.append(
                    {
                        "destination": config.name,
                        "previous_size": previous,
                        "new_size": new_size,
                        "ok": ok,
                        "message": message,
                    }
                )
        table = pd.DataFrame(rows)
        passed = bool(table["ok"].all()) if len(table) else True
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description="within guard" if passed else "; ".join(table.loc[~table["ok"], "message"]),
            metadata={
                "destinations": markdown_table(table),
                "max_change_share": dg.MetadataValue.float(audience.max_change_share),
            },
        )

    return _check


def _export_asset(audience: Audience) -> dg.AssetsDefinition:
    @dg.asset(
        key=keys.export(audience.name),
        # The bias audit (orchestration/defs/fairness.py): exports and syncs wait for it, so its check can block them.
        deps=[
            keys.audience(audience.name),
            CUSTOMER_MATCH_FORMS,
            FAIRNESS_AUDIT,
            *([CLV_ACTIVATION_GATE] if is_value_based(audience) else []),
        ],
        group_name=groups.AUDIENCES,
        kinds={"python", "csv"},
        op_tags=DUCKDB_TAG,
        description=f"Upload files (Meta customer list, Google Customer Match) for {audience.name}: treated, consenting members.",
        code_version=asset_code_versions()["audience_exports"],
    )
    def _export(warehouse: Warehouse, settings: SegmintSettings) -> dg.MaterializeResult:
        with warehouse.connect() as conn:
            # Only the rows the files hold are read (export_audience_csvs applies the same filter to any frame).
            members = _members_with_forms(conn, audience, where=EXPORTED_MEMBERS)
        out_dir = settings.load().exports_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        # The contact forms are already on `members` (computed while the warehouse was open).
        paths = export_audience_csvs(members, audience.name, out_dir, value_based=audience.value_column is not None)
        return dg.MaterializeResult(
            metadata={name: dg.MetadataValue.path(str(path)) for name, path in paths.items()}
            | {"rows": dg.MetadataValue.int(sum(1 for _ in open(paths["meta"], encoding="utf-8")) - 1)}
        )

    return _export


def _scores_joined(audience: Audience, config: DestinationConfig) -> tuple[str, ...]:
    """The marts.customer_scores columns a destination reads that the audience table does not carry (its
    SCORES_READ less MEMBER_COLUMNS): the sync reads them from marts.customer_scores. Asked of the destination built
    as in a dry-run (no credentials; building sends and writes nothing)."""
    destination, _ = build_destination(config, audience, {}, ".")
    return tuple(c for c in getattr(destination, "SCORES_READ", ()) if c not in MEMBER_COLUMNS)


def _sync_asset(audience: Audience, destination_name: str) -> dg.AssetsDefinition:
    config = next(d for d in audience.destinations if d.name == destination_name)
    scores_joined = _scores_joined(audience, config)

    @dg.asset(
        key=keys.sync(audience.name, destination_name),
        deps=[
            keys.audience(audience.name),
            CUSTOMER_CONTACTS,
            CUSTOMER_MATCH_FORMS,
            CLV_PREDICTIONS,
            CLV_ACTIVATION_GATE,
            FAIRNESS_AUDIT,
            # Score columns its records carry that the audience table does not (Salesforce's reason codes).
            *([CUSTOMER_SCORES] if scores_joined else []),
            # After the removal-only pass (orchestration/defs/privacy.py), so a removal is never sent twice.
            OWED_REMOVALS,
            *LEDGER.values(),
        ],
        group_name=groups.AUDIENCES,
        kinds={"python", config.type},
        op_tags=DUCKDB_TAG,
        description=(
            f"{audience.name} synced to {destination_name} ({config.type}): only additions and removals since the "
            "ledger's last confirmed state; a dry-run (request files) when its credentials are not set."
        ),
    )
    def _sync(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        settings: SegmintSettings,
        credentials: ActivationCredentials,
    ) -> dg.MaterializeResult:
        dry_run_dir = settings.load().exports_dir / "dry_run"
        destination, dry_run = build_destination(config, audience, credentials.values(), dry_run_dir)
        with warehouse.connect() as conn:
            members = _members_with_forms(
                conn,
                audience,
                contact_fields=not hasattr(destination, "build_records"),
                form_columns=getattr(destination, "FORMS_READ", FORM_COLUMNS),
                score_columns=scores_joined,
            )
            model_version = conn.execute("select any_value(model_version) from ml.clv_predictions").fetchone()[0]
            try:
                report = sync_audience(
                    conn, audience, destination, context.run_id, model_version, dry_run=dry_run, members=members
                )
            except (DestinationError, SyncGuardError) as error:
                raise dg.Failure(description=f"{audience.name} -> {destination_name}: {error}") from None
        return dg.MaterializeResult(
            metadata={
                "mode": dg.MetadataValue.text("dry-run" if dry_run else "live"),
                "added": dg.MetadataValue.int(report.added),
                "removed": dg.MetadataValue.int(report.removed),
                "unchanged": dg.MetadataValue.int(report.unchanged),
                "failed": dg.MetadataValue.int(report.failed),
                "batches": dg.MetadataValue.int(report.batches),
                "duration_s": dg.MetadataValue.float(round(report.duration_s, 3)),
                "skipped_no_consent": dg.MetadataValue.int(report.skipped_no_consent),
                "control_held_out": dg.MetadataValue.int(report.control),
                "model_version": dg.MetadataValue.text(str(model_version)),
                "readback": dg.MetadataValue.json(report.readback),
                "dry_run_requests": dg.MetadataValue.path(str(dry_run_dir / audience.name))
                if dry_run
                else dg.MetadataValue.text("sent"),
            }
        )

    return _sync


def build_audience_definitions(
    audiences: list[Audience],
) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    assets, checks = [], []
    for audience in audiences:
        assets += [_audience_asset(audience), _export_asset(audience)]
        assets += [_sync_asset(audience, d.name) for d in audience.destinations]
        checks.append(_guard_check(audience))
    return assets, checks


AUDIENCES = load_audiences(AUDIENCES_FILE)
audience_assets, audience_checks = build_audience_definitions(AUDIENCES)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            description=f"{LEDGER_DESCRIPTIONS[table]} Appended by every sync/* asset.",
            group_name=groups.AUDIENCES,
            kinds={"duckdb"},
        )
        for table, key in LEDGER.items()
    ],
    op_tags=DUCKDB_TAG,
)
def sync_ledger_tables(warehouse: Warehouse):
    """The sync ledger's tables (activation/ledger.py), created when missing; the syncs append to them."""
    with warehouse.connect() as conn:
        ensure_schema(conn)
        counts = {table: conn.execute(f"select count(*) from {SCHEMA}.{table}").fetchone()[0] for table in LEDGER}
    for table, key in LEDGER.items():
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": dg.MetadataValue.int(counts[table])})


@dg.asset(
    key=AUDIENCE_LIFT,
    deps=[
        *(keys.sync(a.name, d.name) for a in AUDIENCES for d in a.destinations),
        LEDGER["members_provenance"],
        RAW_ORDERS,
    ],
    group_name=groups.AUDIENCES,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
    code_version=asset_code_versions()["audience_lift"],
)
def audience_lift(warehouse: Warehouse) -> dg.MaterializeResult:
    """One row per audience: later orders and revenue of treated vs held-out control members (lift, Welch p-value)."""
    with warehouse.connect() as conn:
        ensure_schema(conn)
        assignments = read_table(conn, "sync.members_provenance")
        if len(assignments):
            # Only the orders of customers a live sync assigned count (lift_by_audience joins on them), not the
            # whole order history; in the reporting currency: fx_rate converts orders given in another one
            # (landing/README.md).
            orders = conn.execute(
                "select customer_id, ordered_at, order_total * fx_rate as order_total from raw.orders "
                "where customer_id in (select customer_id from sync.members_provenance)"
            ).df()
            lift = lift_by_audience(assignments, orders)
        else:  # no live sync yet (dry-runs record no members): nothing to compare, no order read
            lift = pd.DataFrame({"audience": pd.Series(dtype="string")})
        write_table(conn, LIFT_TABLE, lift)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(lift)),
            "lift": markdown_table(lift)
            if len(lift)
            else dg.MetadataValue.text(
                "no live sync has recorded members yet: lift accrues as orders arrive after the first live sync"
            ),
        }
    )
