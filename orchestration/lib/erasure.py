"""Erasure as the orchestrator runs it: shared by `python -m orchestration.cli forget` and the run's first asset.

The pure work is in privacy/ (warehouse rows, files, suppression list, receipts). Here: which folders are the
landing zone and Dagster's own storage (never rewritten), which destinations owe a removal, and the compaction
of the warehouse file afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from activation import ledger
from activation.audiences import CONTACTS_RELATION, load_audiences, with_contacts
from activation.destinations.factory import build_destination
from activation.destinations.registry import env_var_names
from activation.sync import consenting
from orchestration.lib.settings import CONFIG_DIR, Settings
from privacy.erasure import (
    DELETION_REQUESTS_FILE,
    ErasureRequest,
    erase_subject,
    is_suppressed,
    mark_compaction_due,
    read_deletion_requests,
    verify_salt,
)
from privacy.receipts import HEAD_FILE
from privacy.subjects import load_salt, privacy_dir

AUDIENCES_FILE = CONFIG_DIR / "audiences.yaml"


@dataclass(frozen=True)
class ErasureOutcome:
    """What one pass did: receipts written (one per person erased now) and requests already honoured."""

    receipts: list[dict[str, Any]]
    already_erased: int


def destination_env(env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The destination variables (as ActivationCredentials reads them), to know which destinations run dry."""
    env = os.environ if env is None else env
    return {name: env.get(name) for name in env_var_names()}


def skip_dirs(settings: Settings) -> list[Path]:
    """Never rewritten by erasure: the landing zone (the shop's input; suppressed at ingest instead), the demo's
    ground truth, Dagster's storage (its metadata never carries identifiers), the warehouse file (rows are
    deleted in it, then it is compacted) and the privacy folder (salt, chain head)."""
    dagster_home = os.environ.get("DAGSTER_HOME")
    dirs = [
        settings.landing_dir or settings.demo_landing_dir,
        settings.demo_truth_dir,
        privacy_dir(settings.data_dir),
        settings.warehouse,
        Path(str(settings.warehouse) + ".wal"),
        Path(str(settings.warehouse) + ".tmp"),
    ]
    if dagster_home:
        dirs.append(Path(dagster_home))
    return dirs


def _table_exists(conn: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return (
        conn.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
        ).fetchone()[0]
        > 0
    )


def owe_removals(
    conn: duckdb.DuckDBPyConnection, customer_id: str, settings: Settings, env: Mapping[str, str | None]
) -> dict[str, str]:
    """Arrange the person's removal at every destination where they are a member; `audience/destination` -> how.

    A live destination's ledger row stays until the next run's privacy/owed_removals removes the person (it
    does not wait for the CLV gate). A destination running as a dry-run has no ledger: the removal it would send is
    recorded in sync.erasure_removals from the audience table, and privacy/owed_removals writes it to the request
    files.
    """
    ledger.ensure_schema(conn)
    arranged: dict[str, str] = {}
    contacts = _table_exists(conn, *CONTACTS_RELATION.split("."))
    for audience in load_audiences(AUDIENCES_FILE):
        table_exists = _table_exists(conn, "audiences", audience.name)
        member = (
            conn.execute(f'select * from audiences."{audience.name}" where customer_id = ?', [customer_id]).df()
            if table_exists
            else pd.DataFrame()
        )
        if contacts and not member.empty:
            # Audience tables are pseudonymous: the e-mail and phone an ad platform matches on come from the sync
            # edge (read now, before the person's raw rows are deleted), as in the sync that added them.
            member = with_contacts(conn, member)
        for config in audience.destinations:
            held = conn.execute(
                f"select count(*) from {ledger.SCHEMA}.destination_members where destination = ? and audience = ? "
                "and member_key = ?",
                [config.name, audience.name, customer_id],
            ).fetchone()[0]
            if held:
                arranged[f"{audience.name}/{config.name}"] = "ledger: removed by the next run (privacy/owed_removals)"
                continue
            destination, dry_run = build_destination(config, audience, env, settings.exports_dir / "dry_run")
            if not dry_run or member.empty or bool(member["is_control"].iloc[0]):
                continue
            allowed = member[consenting(member, destination.kind)]
            records = [r for r in (destination.build_record(row) for row in allowed.to_dict("records")) if r]
            # A dry-run "add" never got a record id back; the removal names the one the dry-run reply gave.
            records = [
                r if r.external_id else type(r)(r.member_key, r.identifiers, r.value, f"dry-run-{r.member_key}")
                for r in records
            ]
            if ledger.add_erasure_removals(conn, config.name, audience.name, records):
                arranged[f"{audience.name}/{config.name}"] = (
                    "dry-run: removal written by the next run (privacy/owed_removals)"
                )
    return arranged


def apply_erasures(
    conn: duckdb.DuckDBPyConnection,
    requests: Iterable[ErasureRequest],
    settings: Settings,
    env: Mapping[str, str | None] | None = None,
) -> ErasureOutcome:
    """Erase every requested person not erased before (one receipt each); requests already honoured are skipped.

    Stops with a PrivacyError when the salt is not the one the suppression list was written with.
    """
    salt = load_salt(settings.data_dir)
    verify_salt(conn, salt)
    env = destination_env() if env is None else env
    receipts, already = [], 0
    for request in requests:
        if is_suppressed(conn, salt, request.customer_id):
            already += 1
            continue
        destinations = owe_removals(conn, request.customer_id.strip(), settings, env)
        receipts.append(
            erase_subject(
                conn,
                request,
                salt,
                settings.data_dir,
                skip_dirs(settings),
                privacy_dir(settings.data_dir) / HEAD_FILE,
                destinations,
            )
        )
    if receipts:
        # The syncs that send the removals delete the rows that carried the identifiers (ledger, owed removals):
        # privacy/warehouse_compaction rewrites the file after them.
        mark_compaction_due(settings.data_dir)
    return ErasureOutcome(receipts, already)


def landing_requests(landing_dir: Path) -> list[ErasureRequest]:
    """The requests of the landing zone's deletion_requests.csv (none without the file)."""
    path = Path(landing_dir) / DELETION_REQUESTS_FILE
    return read_deletion_requests(path) if path.is_file() else []
