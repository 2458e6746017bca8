"""Seconds of the activation work per audience, in process, on a warehouse the whole graph built (issue 18).

Times, for every audience of config/audiences.yaml: member selection, the size guard over all its destinations, the
export files, and per destination the sync plan and a full dry-run sync (request files in a temporary folder; dry
runs record nothing in the ledger, so each run redoes the same work). Runs on the code of the current directory, so
the same command measures a checkout before issue 18 (where the guard is a plan per destination) and after.

    SEGMINT_WAREHOUSE=/path/warehouse.duckdb PYTHONPATH=. .venv/bin/python scripts/activation_microbench.py
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict

import duckdb

from activation.audiences import load_audiences, select_members, with_contacts
from activation.destinations.factory import build_destination
from activation.exports import export_audience_csvs
from activation.ledger import ensure_schema, previous_audience_size
from activation.sync import guard_change, plan_sync, sync_audience

try:  # after issue 18: the guard counts; the contact forms are computed once per audience
    from activation.member_records import contact_forms
    from activation.sync import planned_size
except ImportError:  # before: the guard planned every destination
    contact_forms = planned_size = None


def main() -> None:
    totals: dict[str, float] = defaultdict(float)
    conn = duckdb.connect(os.environ["SEGMINT_WAREHOUSE"], read_only=False)
    ensure_schema(conn)
    with tempfile.TemporaryDirectory() as out:
        for audience in load_audiences("config/audiences.yaml"):
            if audience.realtime_segment is not None:
                continue  # its members come from the segment service's log, not from a rule
            started = time.perf_counter()
            members = with_contacts(conn, select_members(conn, audience))
            totals["select"] += (select := time.perf_counter() - started)
            started = time.perf_counter()
            if contact_forms is not None:
                members = contact_forms(conn, members)
            for config in audience.destinations:
                destination, _ = build_destination(config, audience, {}, out)
                if planned_size is not None:
                    new_size = planned_size(conn, destination, members)
                    previous = previous_audience_size(conn, destination.name, audience.name)
                else:
                    plan = plan_sync(conn, audience, destination, members)
                    new_size, previous = plan.new_size, plan.previous_size
                guard_change(previous, new_size, audience.max_change_share)
            totals["guard"] += (guard := time.perf_counter() - started)
            started = time.perf_counter()
            export_audience_csvs(members, audience.name, out, value_based=audience.value_column is not None)
            totals["export"] += (export := time.perf_counter() - started)
            print(
                f"{audience.name}: {len(members)} members; select {select:.2f}s, guard {guard:.2f}s, export {export:.2f}s"
            )
            for config in audience.destinations:
                destination, dry_run = build_destination(config, audience, {}, out)
                started = time.perf_counter()
                plan = plan_sync(conn, audience, destination, members)
                totals["plan"] += (planned := time.perf_counter() - started)
                destination, dry_run = build_destination(config, audience, {}, out)
                started = time.perf_counter()
                sync_audience(conn, audience, destination, "bench", None, dry_run=dry_run, members=members)
                totals["dry_run_sync"] += (synced := time.perf_counter() - started)
                print(f"  {config.name}: {plan.new_size} records; plan {planned:.2f}s, dry-run sync {synced:.2f}s")
    print("totals: " + ", ".join(f"{k} {v:.1f}s" for k, v in totals.items()) + f"; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
