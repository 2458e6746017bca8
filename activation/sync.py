"""Diff-based, consent-aware, resumable sync of one audience to one destination, the change guard, and lift.

Flow of `sync_audience`: select members (rule in DuckDB) -> drop the control group -> consent filter (ad and
email destinations get marketing_consent = true only; CRM and webhook get everyone) -> build the destination's
records (normalized, hashed where the platform requires), column-wise for all members at once
(activation/member_records.py: the audience's contact forms are computed once in DuckDB and shared by its
destinations) -> diff against the ledger, in DuckDB, on member keys first: only the members the ledger holds get
a fingerprint to compare (a new member is an add whatever its identifiers) -> removes, then adds, in batches of at most
`destination.max_batch`; each batch is written `pending_*` before sending and marked confirmed only after the API
confirmed it -> read back what the destination reports. Only the records that are sent become SyncRecord objects.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from activation import ledger
from activation import member_records as mr
from activation.audiences import Audience, select_members
from activation.destinations.base import CONSENT_REQUIRED_KINDS, Destination, chunked
from activation.http import ERASED_MARKER, DestinationError
from activation.identifiers import is_sha256_hex
from activation.ledger import SyncRecord


class SyncGuardError(RuntimeError):
    """The audience would change size by more than its max_change_share since the destination's last state."""


@dataclass
class SyncPlan:
    """What a sync would do: the records to hold, the diff against the ledger and the size change.

    `records`: one row per member the destination would hold (member_records.RECORD_COLUMNS), indexed by
    member_key; `ledger_rows`: the ledger rows to remove and those pending_add (ledger.diff_in_warehouse).
    """

    records: pd.DataFrame
    ledger_rows: pd.DataFrame
    diff: ledger.Diff
    previous_size: int
    new_size: int
    members: int
    control: int
    skipped_no_consent: int
    skipped_unmatchable: int


@dataclass
class SyncReport:
    """What one sync did (the numbers the orchestrator shows as metadata)."""

    audience: str
    destination: str
    run_id: str
    dry_run: bool
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    batches: int = 0
    duration_s: float = 0.0
    readback: dict[str, Any] = field(default_factory=dict)
    members: int = 0
    control: int = 0
    skipped_no_consent: int = 0
    skipped_unmatchable: int = 0
    failures: dict[str, str] = field(default_factory=dict)


def guard_change(previous_size: int, new_size: int, max_change_share: float) -> tuple[bool, str]:
    """(ok, message): not ok when the size moves by more than max_change_share of the previous size.

    A first sync (previous size 0) always passes: there is nothing to protect yet.
    """
    if previous_size <= 0:
        return True, f"first sync: {new_size} members"
    change = (new_size - previous_size) / previous_size
    message = (
        f"audience size {previous_size} -> {new_size} ({change:+.1%}); allowed change is +/-{max_change_share:.0%}"
    )
    return abs(change) <= max_change_share, message


def consenting(members: pd.DataFrame, destination_kind: str) -> pd.Series:
    """Boolean mask of members this kind of destination may receive (unknown consent counts as no)."""
    if destination_kind not in CONSENT_REQUIRED_KINDS:
        return pd.Series(True, index=members.index)
    return members["marketing_consent"].fillna(False).astype(bool)


def _allowed(members: pd.DataFrame, destination: Destination) -> tuple[int, pd.DataFrame]:
    """(treated, allowed): how many members are outside the control group, and those of them this destination may
    receive (one selection of the members' rows, not two: the frame carries every contact form)."""
    treated = ~members["is_control"].astype(bool)
    return int(treated.sum()), members[treated & consenting(members, destination.kind)]


def planned_size(conn: duckdb.DuckDBPyConnection, destination: Destination, members: pd.DataFrame) -> int:
    """How many members the destination would hold after a sync: counted, without fingerprints or a diff.

    `members`: the audience's members with contact fields, ideally with member_records.contact_forms already
    added (then shared by every destination of the audience). This is what the size guard needs.
    """
    _, allowed = _allowed(members, destination)
    records = mr.records_frame(conn, destination, allowed, fingerprints=False)
    return int(records["member_key"].nunique())


def plan_sync(
    conn: duckdb.DuckDBPyConnection, audience: Audience, destination: Destination, members: pd.DataFrame | None = None
) -> SyncPlan:
    """The diff a sync would send, without sending anything.

    Records are built column-wise (member_records.records_frame) and diffed against the ledger in DuckDB.
    """
    ledger.ensure_schema(conn)
    members = select_members(conn, audience) if members is None else members
    treated, allowed = _allowed(members, destination)
    # Keys first: only a member the ledger holds needs its fingerprint for the diff (identity unchanged or
    # replaced); a new member is an add whatever it is. A sent record's fingerprint is computed when it is read.
    records = mr.records_frame(conn, destination, allowed, fingerprints=False)
    held_keys = ledger.held_member_keys(conn, destination.name, audience.name)
    if held_keys:
        compared = records["member_key"].isin(held_keys).to_numpy()
        records.loc[compared, "fingerprint"] = [
            ledger.fingerprint_of(identity) for identity in records.loc[compared, "identifiers"]
        ]
    diff, held = ledger.diff_in_warehouse(conn, destination.name, audience.name, records)
    return SyncPlan(
        records=records.set_index("member_key", drop=False),
        ledger_rows=held,
        diff=diff,
        previous_size=ledger.previous_audience_size(conn, destination.name, audience.name),
        new_size=len(records),
        members=len(members),
        control=int(members["is_control"].sum()),
        skipped_no_consent=treated - len(allowed),
        skipped_unmatchable=len(allowed) - len(records),
    )


def _reconcile(
    conn: duckdb.DuckDBPyConnection, destination: Destination, audience: str, readback: dict[str, Any]
) -> dict[str, Any]:
    """Compare what the destination reports (list size, member record ids) with the ledger's confirmed rows."""
    member_ids = readback.pop("member_record_ids", None)
    if member_ids is None:
        if "list_size" in readback:
            readback["ledger_size"] = ledger.confirmed_size(conn, destination.name, audience)
            readback["agrees_with_ledger"] = readback["list_size"] == readback["ledger_size"]
        return readback
    confirmed_ids = ledger.confirmed_external_ids(conn, destination.name, audience)
    listed = set(member_ids)
    readback["ledger_size"] = len(confirmed_ids)
    readback["in_destination_not_in_ledger"] = len(listed - confirmed_ids)
    readback["in_ledger_not_in_destination"] = len(confirmed_ids - listed)
    readback["agrees_with_ledger"] = listed == confirmed_ids
    return readback


def sync_audience(
    conn: duckdb.DuckDBPyConnection,
    audience: Audience,
    destination: Destination,
    run_id: str,
    model_version: str | None,
    dry_run: bool = False,
    members: pd.DataFrame | None = None,
    enforce_guard: bool = True,
) -> SyncReport:
    """Send one audience's additions and removals to one destination; see the module docstring for the flow.

    Dry-run: the destination must have been built with a dry_run_dir (its requests become JSON files); member
    rows, provenance and control group are not touched (only a `dry_run` row in sync.runs). A DestinationError
    (4xx, or retries exhausted) marks the run failed and propagates;
    everything confirmed before it stays confirmed, the rest stays pending and is re-sent by the next run.
    """
    started = time.monotonic()
    with dry_run_pass(destination, dry_run):  # the folder shows this run's requests only, also on none or failure
        return _sync_audience(
            conn, audience, destination, run_id, model_version, dry_run, members, enforce_guard, started
        )


def _sync_audience(
    conn: duckdb.DuckDBPyConnection,
    audience: Audience,
    destination: Destination,
    run_id: str,
    model_version: str | None,
    dry_run: bool,
    members: pd.DataFrame | None,
    enforce_guard: bool,
    started: float,
) -> SyncReport:
    members = select_members(conn, audience) if members is None else members
    plan = plan_sync(conn, audience, destination, members)
    report = SyncReport(
        audience=audience.name,
        destination=destination.name,
        run_id=run_id,
        dry_run=dry_run,
        unchanged=len(plan.diff.unchanged),
        members=plan.members,
        control=plan.control,
        skipped_no_consent=plan.skipped_no_consent,
        skipped_unmatchable=plan.skipped_unmatchable,
    )
    ok, message = guard_change(plan.previous_size, plan.new_size, audience.max_change_share)
    if enforce_guard and not ok:
        raise SyncGuardError(f"{audience.name} -> {destination.name}: {message}")
    if not dry_run:
        ledger.record_membership(conn, run_id, audience.name, members, model_version, audience.rule)
    ledger.start_run(
        conn,
        run_id,
        audience.name,
        destination.name,
        model_version,
        audience.rule,
        dry_run,
        plan.previous_size,
        plan.new_size,
    )
    removes = ledger.records_from_ledger(plan.ledger_rows, plan.diff.remove)
    # Removals owed for erased persons (captured while this destination ran as a dry-run): a dry-run writes them,
    # with the plain identifiers masked, so the request files never keep them; a live destination never received
    # them (its ledger has no row), so there is nothing to remove there and they are only settled.
    removing = set(plan.diff.remove)
    owed = [
        r
        for r in ledger.erasure_removals(conn, destination.name, audience.name)
        if r.member_key not in removing and r.member_key not in plan.records.index
    ]
    if dry_run and owed:
        removes += owed
        _mask_in_dry_run_files(destination, owed)
    pending = _pending_add_origins(plan.ledger_rows)
    adds = _records_to_add(plan.records.loc[plan.diff.add], pending, run_id)
    try:
        destination.begin(len(adds), len(removes))
        for action, records in (("remove", removes), ("add", adds)):
            for batch in chunked(records, destination.max_batch):
                _send_batch(conn, audience, destination, run_id, model_version, action, batch, dry_run, report)
        report.readback = _reconcile(conn, destination, audience.name, destination.readback())
    except DestinationError as error:
        report.duration_s = time.monotonic() - started
        ledger.finish_run(conn, run_id, audience.name, destination.name, "failed", vars(report), error.message)
        raise
    ledger.settle_erasure_removals(conn, destination.name, audience.name, [r.member_key for r in owed])
    report.duration_s = time.monotonic() - started
    status = "dry_run" if dry_run else ("partial" if report.failed else "succeeded")
    ledger.finish_run(conn, run_id, audience.name, destination.name, status, vars(report))
    return report


OWED_REMOVALS_FILE_PREFIX = "owed_removal_"


@contextmanager
def dry_run_pass(destination: Destination, dry_run: bool, prefix: str = "") -> Iterator[None]:
    """Inside: a dry run's pass, which ends with only its own files with this prefix in the destination's folder
    (HttpClient.start_dry_run_pass / finish_dry_run_pass: overwrite, then delete what it did not rewrite), also
    when it writes none or fails. Nothing for a live destination."""
    client = getattr(destination, "http", None)
    if not dry_run or client is None or not client.dry_run:
        yield
        return
    client.start_dry_run_pass(prefix)
    try:
        yield
    finally:
        client.finish_dry_run_pass()


def send_owed_removals(
    conn: duckdb.DuckDBPyConnection,
    audience: Audience,
    destination: Destination,
    run_id: str,
    erased: set[str],
    without_consent: set[str],
    dry_run: bool = False,
) -> SyncReport | None:
    """Remove from one destination only what privacy owes it, with nothing added: None when nothing is owed.

    Owed: the ledger members who were erased (`erased`) or lack marketing consent (`without_consent`, for an ad
    or e-mail destination), and the removals recorded in sync.erasure_removals while it ran as a dry-run. The same
    batches, ledger states and dry-run files as `sync_audience`, whose next diff then finds nothing left to remove;
    it does not wait for the CLV activation gate (a removal needs no model). Erased persons' plain identifiers are
    masked in dry-run files; a live destination never received the dry-run removals, so they are only settled.
    """
    ledger.ensure_schema(conn)
    with dry_run_pass(destination, dry_run, OWED_REMOVALS_FILE_PREFIX):
        held = ledger.load_ledger(conn, destination.name, audience.name)
        keys = sorted(set(held["member_key"]) & (set(erased) | set(without_consent)))
        owed = [r for r in ledger.erasure_removals(conn, destination.name, audience.name) if r.member_key not in keys]
        if not keys and not owed:
            return None
        removes = ledger.records_from_ledger(held, keys)
        if dry_run:
            removes += owed
            masked = set(erased) | {r.member_key for r in owed}
            _mask_in_dry_run_files(destination, [r for r in removes if r.member_key in masked])
            client = getattr(destination, "http", None)
            if client is not None:
                client.file_prefix = OWED_REMOVALS_FILE_PREFIX
        report = SyncReport(audience=audience.name, destination=destination.name, run_id=run_id, dry_run=dry_run)
        if removes:
            started = time.monotonic()
            previous = ledger.previous_audience_size(conn, destination.name, audience.name)
            # What the destination is meant to hold afterwards, so the next sync's size guard compares with it.
            ledger.start_run(
                conn,
                run_id,
                audience.name,
                destination.name,
                None,
                audience.rule,
                dry_run,
                previous,
                len(held) - len(keys),
            )
            try:
                destination.begin(0, len(removes))
                for batch in chunked(removes, destination.max_batch):
                    _send_batch(conn, audience, destination, run_id, None, "remove", batch, dry_run, report)
                report.readback = _reconcile(conn, destination, audience.name, destination.readback())
            except DestinationError as error:
                report.duration_s = time.monotonic() - started
                ledger.finish_run(conn, run_id, audience.name, destination.name, "failed", vars(report), error.message)
                raise
            report.duration_s = time.monotonic() - started
            status = "dry_run" if dry_run else ("partial" if report.failed else "succeeded")
            ledger.finish_run(conn, run_id, audience.name, destination.name, status, vars(report), "owed removals only")
        ledger.settle_erasure_removals(conn, destination.name, audience.name, [r.member_key for r in owed])
        return report


def _mask_in_dry_run_files(destination: Destination, records: list[SyncRecord]) -> None:
    """Mask erased persons' plain identifiers (ids, e-mails, phones) in the destination's dry-run request files."""
    client = getattr(destination, "http", None)
    if client is None:
        return
    for record in records:
        values = [record.member_key] + [
            str(v)
            for k, v in record.identifiers.items()
            if isinstance(v, str) and not is_sha256_hex(v) and ("email" in k or "phone" in k or k.endswith("id"))
        ]
        client.masked.update({value: ERASED_MARKER for value in values if value})


def _pending_add_origins(held: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """member_key -> (fingerprint, run_id) of rows left pending_add by an interrupted run."""
    pending = held[held["state"] == ledger.PENDING_ADD]
    return {row.member_key: (row.fingerprint, row.run_id) for row in pending.itertuples(index=False)}


def _records_to_add(records: pd.DataFrame, pending: dict[str, tuple[str, str]], run_id: str) -> list[SyncRecord]:
    """The SyncRecords of the rows to add, each tagged with its origin run (`_with_origin`, without a copy per
    record: a resumed run's pending rows are few, every other record's origin is this run)."""
    out = []
    for key, identifiers, value, fingerprint in zip(
        records["member_key"], records["identifiers"], records["value"], records["fingerprint"], strict=True
    ):
        record = SyncRecord(key, identifiers, value, origin_run_id=run_id)
        if isinstance(fingerprint, str):
            record.__dict__["fingerprint"] = fingerprint  # functools.cached_property's slot: no second hash
        if key in pending:
            record = _with_origin(record, pending, run_id)
        out.append(record)
    return out


def _with_origin(record: SyncRecord, pending: dict[str, tuple[str, str]], run_id: str) -> SyncRecord:
    """The record tagged with the run that first sent this exact change (a pending row's run when resuming)."""
    fingerprint, origin = pending.get(record.member_key, ("", run_id))
    tagged = replace(record, origin_run_id=origin if fingerprint and fingerprint == record.fingerprint else run_id)
    if "fingerprint" in record.__dict__:  # keep the cached fingerprint (same identifiers)
        tagged.__dict__["fingerprint"] = record.__dict__["fingerprint"]
    return tagged


def _send_batch(
    conn: duckdb.DuckDBPyConnection,
    audience: Audience,
    destination: Destination,
    run_id: str,
    model_version: str | None,
    action: str,
    batch: list[SyncRecord],
    dry_run: bool,
    report: SyncReport,
) -> None:
    keys = [r.member_key for r in batch]
    if not dry_run:
        if action == "add":
            ledger.mark_pending_add(conn, destination.name, audience.name, batch, run_id, model_version, audience.rule)
        else:
            ledger.mark_pending_remove(conn, destination.name, audience.name, keys)
    result = destination.send_adds(batch) if action == "add" else destination.send_removes(batch)
    report.batches += 1
    if not dry_run:
        if action == "add":
            ledger.confirm_adds(conn, destination.name, audience.name, result.confirmed, result.external_ids)
        else:
            ledger.confirm_removes(conn, destination.name, audience.name, result.confirmed)
        ledger.record_batch(
            conn,
            run_id,
            audience.name,
            destination.name,
            report.batches,
            action,
            len(batch),
            len(result.confirmed),
            len(result.failed),
            result.response,
        )
    if action == "add":
        report.added += len(result.confirmed)
    else:
        report.removed += len(result.confirmed)
    report.failed += len(result.failed)
    for key, reason in list(result.failed.items())[:20]:
        report.failures[key] = reason


def lift_by_audience(assignments: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    """Treated vs control, per audience: buyers share, orders and revenue per customer after first assignment.

    assignments: audience, customer_id, is_control, recorded_at (e.g. sync.members_provenance);
    orders: customer_id, ordered_at, order_total (e.g. raw.orders). A customer counts from the first run that
    put them in the audience, in the group of that run (the hash makes the group stable). Revenue is in the
    order currency; p_value is Welch's t-test on revenue per customer (NaN when a group has < 2 customers).
    """
    first = (
        assignments.sort_values("recorded_at")
        .groupby(["audience", "customer_id"], as_index=False)
        .first()[["audience", "customer_id", "is_control", "recorded_at"]]
    )
    joined = first.merge(orders[["customer_id", "ordered_at", "order_total"]], on="customer_id", how="left")
    after = joined["ordered_at"] > joined["recorded_at"]
    joined["orders_after"] = after.astype(int)
    joined["revenue_after"] = joined["order_total"].where(after, 0.0).fillna(0.0)
    per_customer = joined.groupby(["audience", "customer_id", "is_control"], as_index=False).agg(
        orders_after=("orders_after", "sum"), revenue_after=("revenue_after", "sum")
    )
    rows = []
    for audience_name, group in per_customer.groupby("audience"):
        treated = group[~group["is_control"].astype(bool)]
        control = group[group["is_control"].astype(bool)]
        row: dict[str, Any] = {"audience": audience_name}
        for label, part in (("treated", treated), ("control", control)):
            row[f"{label}_customers"] = len(part)
            row[f"{label}_buyer_share"] = float((part["orders_after"] > 0).mean()) if len(part) else np.nan
            row[f"{label}_orders_per_customer"] = float(part["orders_after"].mean()) if len(part) else np.nan
            row[f"{label}_revenue_per_customer"] = float(part["revenue_after"].mean()) if len(part) else np.nan
        row["revenue_per_customer_lift"] = row["treated_revenue_per_customer"] - row["control_revenue_per_customer"]
        base = row["control_revenue_per_customer"]
        row["relative_revenue_lift"] = row["revenue_per_customer_lift"] / base if base and base == base else np.nan
        spread = treated["revenue_after"].std() + control["revenue_after"].std() if len(treated) >= 2 else 0
        if len(treated) >= 2 and len(control) >= 2 and spread > 0:
            with warnings.catch_warnings():  # a group with identical values is fine for Welch's test
                warnings.simplefilter("ignore", RuntimeWarning)
                row["p_value"] = float(
                    stats.ttest_ind(treated["revenue_after"], control["revenue_after"], equal_var=False).pvalue
                )
        else:
            row["p_value"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)
