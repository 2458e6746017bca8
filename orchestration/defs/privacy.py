"""Privacy in the graph: erasure requests applied before ingest, the receipt chain check, the consent checks.

`privacy/erasure_receipts` runs first in every run (raw tables depend on it): it applies the landing zone's
`deletion_requests.csv` (requests already honoured are skipped), so the ingest after it reads the updated
suppression list. `python -m orchestration.cli forget` does the same work without a run. Metadata here carries
counts only, never an identifier: Dagster's event log is kept for good, so nothing personal is written to it.
"""

import dagster as dg

from activation.audiences import Audience
from activation.destinations.base import CONSENT_REQUIRED_KINDS
from activation.destinations.factory import build_destination
from activation.http import DestinationError
from activation.ledger import ensure_schema, load_ledger
from activation.sync import send_owed_removals
from orchestration.defs.audiences import AUDIENCES
from orchestration.defs.landing import landing_files
from orchestration.defs.resources import DUCKDB_TAG, ActivationCredentials, SegmintSettings, Warehouse
from orchestration.lib import groups, keys
from orchestration.lib.erasure import apply_erasures, landing_requests
from orchestration.lib.keys import ERASURE_RECEIPTS
from privacy.consent import member_keys_without_consent, members_without_consent
from privacy.erasure import compact_warehouse, suppressed_hashes, take_compaction_due
from privacy.receipts import HEAD_FILE, RECEIPTS, ensure_receipts, verify_chain
from privacy.subjects import PrivacyError, load_salt, privacy_dir, subject_hash


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ERASURE_RECEIPTS,
            deps=[landing_files],
            group_name=groups.LANDING,
            kinds={"python", "duckdb"},
            description="One row per erasure (append-only, hash-chained); applies the landing zone's deletion_requests.csv first.",
        ),
        dg.AssetSpec(
            keys.ERASURE_SUPPRESSION,
            deps=[landing_files],
            group_name=groups.LANDING,
            kinds={"python", "duckdb"},
            description="One row per erased identifier as a salted hash: the ingest drops matching rows.",
        ),
        dg.AssetSpec(
            keys.SALT_FINGERPRINT,
            deps=[landing_files],
            group_name=groups.LANDING,
            kinds={"python", "duckdb"},
            description="One row: the fingerprint of the salt the suppression hashes were made with (a changed salt stops the run).",
        ),
    ],
    # Issue 15: every table an asset; the op keeps its single-asset name for run configs and step lines.
    name="privacy__erasure_receipts",
    op_tags=DUCKDB_TAG,
)
def erasure_receipts(settings: SegmintSettings, warehouse: Warehouse):
    """Erasures applied, their receipts, the suppression list and the salt fingerprint: one step, three tables."""
    s = settings.load()
    try:
        requests = landing_requests(s.landing_dir or s.demo_landing_dir)
        with warehouse.connect() as conn:
            outcome = apply_erasures(conn, requests, s)
            ensure_receipts(conn)
            total = conn.execute(f"select count(*) from {RECEIPTS}").fetchone()[0]
            suppressed = len(suppressed_hashes(conn))
    except PrivacyError as error:  # a malformed requests file or a changed salt: one line, and nothing ingested
        raise dg.Failure(description=str(error), allow_retries=False) from None
    if outcome.receipts:
        warehouse.release()  # the compaction opens the file alone and swaps it (the run's handle reopens it)
        compact_warehouse(s.warehouse)  # no deleted row may survive in the file's free blocks
    yield dg.MaterializeResult(
        asset_key=ERASURE_RECEIPTS,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(int(total)),
            "requests_in_landing_zone": dg.MetadataValue.int(len(requests)),
            "erased_now": dg.MetadataValue.int(len(outcome.receipts)),
            "already_erased": dg.MetadataValue.int(outcome.already_erased),
            "suppressed_identifiers": dg.MetadataValue.int(suppressed),
        },
    )
    yield dg.MaterializeResult(
        asset_key=keys.ERASURE_SUPPRESSION, metadata={"dagster/row_count": dg.MetadataValue.int(suppressed)}
    )
    yield dg.MaterializeResult(asset_key=keys.SALT_FINGERPRINT)


@dg.asset(
    key=keys.OWED_REMOVALS,
    # Not downstream of ml/clv_activation_gate: a closed gate holds back the syncs, never a removal privacy owes.
    deps=[
        ERASURE_RECEIPTS,
        keys.ERASURE_SUPPRESSION,
        keys.RAW_CUSTOMERS,
        *(keys.sync_ledger(t) for t in keys.SYNC_LEDGER_TABLES),
    ],
    group_name=groups.AUDIENCES,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
)
def owed_removals(
    context: dg.AssetExecutionContext,
    settings: SegmintSettings,
    warehouse: Warehouse,
    credentials: ActivationCredentials,
) -> dg.MaterializeResult:
    """Every destination and audience: the removals owed to erased persons and withdrawn consents, sent now.

    Through the sync path (activation.sync.send_owed_removals: ledger states, batches, dry-run files named
    `owed_removal_*`), so the ledger stays true and the sync/* assets after it find nothing left to remove. An
    erased member is one whose customer id is on the suppression list; consent is read from raw.customers as the
    blocking consent check does. Nothing is sent when nothing is owed. Metadata: counts only.
    """
    s = settings.load()
    env = credentials.values()
    salt = load_salt(s.data_dir)
    rows = []
    with warehouse.connect() as conn:
        ensure_schema(conn)
        suppressed = suppressed_hashes(conn)
        for audience in AUDIENCES:
            for config in audience.destinations:
                destination, dry_run = build_destination(config, audience, env, s.exports_dir / "dry_run")
                held = load_ledger(conn, config.name, audience.name)["member_key"]
                erased = {k for k in held if subject_hash(salt, k) in suppressed}
                lacking = (
                    set(member_keys_without_consent(conn, config.name, audience.name))
                    if destination.kind in CONSENT_REQUIRED_KINDS
                    else set()
                )
                try:
                    report = send_owed_removals(
                        conn, audience, destination, f"{context.run_id}-owed-removals", erased, lacking, dry_run
                    )
                except DestinationError as error:
                    raise dg.Failure(description=f"{audience.name} -> {config.name}: {error}") from None
                if report is not None:
                    rows.append(
                        {
                            "destination": f"{audience.name}/{config.name}",
                            "mode": "dry-run" if dry_run else "live",
                            "erased": len(erased),
                            "without_consent": len(lacking - erased),
                            "removed": report.removed,
                            "failed": report.failed,
                        }
                    )
    return dg.MaterializeResult(
        metadata={
            "destinations_with_removals": dg.MetadataValue.int(len(rows)),
            "removed": dg.MetadataValue.int(sum(r["removed"] for r in rows)),
            "failed": dg.MetadataValue.int(sum(r["failed"] for r in rows)),
            "by_destination": dg.MetadataValue.json(rows),
        }
    )


@dg.asset(
    key=keys.WAREHOUSE_COMPACTION,
    deps=[keys.OWED_REMOVALS, *(keys.sync(a.name, d.name) for a in AUDIENCES for d in a.destinations)],
    group_name=groups.AUDIENCES,
    kinds={"python", "duckdb"},
    op_tags=DUCKDB_TAG,
)
def warehouse_compaction(settings: SegmintSettings, warehouse: Warehouse) -> dg.MaterializeResult:
    """After the syncs that followed an erasure: the warehouse file rewritten, so no deleted identifier survives in it.

    The owed removals and syncs delete the ledger rows that carried an erased person's identifiers, and DuckDB
    leaves deleted rows' bytes in its file until it is rewritten. Nothing to do in a run without a new erasure.
    """
    s = settings.load()
    compacted = take_compaction_due(s.data_dir)
    if compacted:
        warehouse.release()  # the compaction opens the file alone and swaps it (the run's handle reopens it)
        compact_warehouse(s.warehouse)
    return dg.MaterializeResult(
        metadata={
            "compacted": dg.MetadataValue.bool(compacted),
            "warehouse_mb": dg.MetadataValue.float(
                round(s.warehouse.stat().st_size / 1e6, 1) if s.warehouse.exists() else 0.0
            ),
        }
    )


@dg.asset_check(
    asset=ERASURE_RECEIPTS,
    description=(
        "Every erasure receipt links to the one before it and its hash matches its content, and the chain ends at "
        "the head recorded outside the warehouse (nothing edited, reordered or removed)."
    ),
    op_tags=DUCKDB_TAG,
)
def check_receipt_chain_verifies(settings: SegmintSettings, warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as conn:
        result = verify_chain(conn, privacy_dir(settings.load().data_dir) / HEAD_FILE)
    return dg.AssetCheckResult(
        passed=result.ok,
        severity=dg.AssetCheckSeverity.ERROR,
        description="receipt chain verifies" if result.ok else result.problem,
        metadata={"receipts": dg.MetadataValue.int(result.receipts)},
    )


def _consent_check(audience: Audience, destination_name: str) -> dg.AssetChecksDefinition:
    config = next(d for d in audience.destinations if d.name == destination_name)

    @dg.asset_check(
        asset=keys.sync(audience.name, destination_name),
        name="check_members_have_marketing_consent",
        description=(
            f"Fails when {destination_name}, if it is an ad or e-mail destination, holds a member of "
            f"{audience.name} (sync ledger) whose marketing_consent is not true."
        ),
        blocking=True,
        op_tags=DUCKDB_TAG,
    )
    def _check(settings: SegmintSettings, warehouse: Warehouse) -> dg.AssetCheckResult:
        destination, _ = build_destination(config, audience, {}, settings.load().exports_dir / "dry_run")
        if destination.kind not in CONSENT_REQUIRED_KINDS:
            return dg.AssetCheckResult(
                passed=True,
                description=f"{destination.kind} destination: consent not required",
                metadata={"kind": dg.MetadataValue.text(destination.kind)},
            )
        with warehouse.connect() as conn:
            ensure_schema(conn)
            lacking = members_without_consent(conn, destination_name, audience.name)
        return dg.AssetCheckResult(
            passed=lacking == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            description="every member has marketing consent"
            if lacking == 0
            else f"{lacking} member(s) of {audience.name} at {destination_name} lack marketing consent",
            metadata={
                "members_without_consent": dg.MetadataValue.int(lacking),
                "kind": dg.MetadataValue.text(destination.kind),
            },
        )

    return _check


consent_checks = [_consent_check(a, d.name) for a in AUDIENCES for d in a.destinations]
