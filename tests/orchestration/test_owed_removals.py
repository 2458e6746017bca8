"""privacy/owed_removals (issue 17, items 1 and 2): removals go out even while the CLV activation gate is closed."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from activation import identifiers as ids
from activation import ledger
from activation.destinations.factory import build_destination
from activation.http import ERASED_MARKER
from activation.sync import OWED_REMOVALS_FILE_PREFIX
from orchestration.defs.audiences import AUDIENCES
from orchestration.defs.privacy import owed_removals
from orchestration.defs.resources import ActivationCredentials, SegmintSettings, Warehouse
from orchestration.lib import keys
from privacy.erasure import ErasureRequest, erase_subject
from privacy.receipts import HEAD_FILE
from privacy.subjects import load_salt

ERASED, WITHDRAWN, KEPT = "0000007", "0000008", "0000009"


@pytest.fixture(scope="module")
def graph():
    from orchestration.definitions import defs

    return defs.resolve_asset_graph()


def test_owed_removals_do_not_wait_for_the_clv_gate_and_every_sync_waits_for_them(graph):
    assert keys.CLV_ACTIVATION_GATE not in graph.get_ancestor_asset_keys(keys.OWED_REMOVALS)
    assert keys.ERASURE_RECEIPTS in graph.get(keys.OWED_REMOVALS).parent_keys
    syncs = [k for k in graph.get_all_asset_keys() if k.path[0] == "sync" and len(k.path) == 3]
    assert syncs and all(keys.OWED_REMOVALS in graph.get(k).parent_keys for k in syncs)
    assert keys.OWED_REMOVALS in graph.get(keys.WAREHOUSE_COMPACTION).parent_keys


def _member(customer_id: str) -> dict:
    return {
        "customer_id": customer_id,
        "email": f"p{customer_id}@example.com",
        "phone": None,
        "first_name": "A",
        "last_name": "B",
        "postal_code": None,
        "country": "US",
        "marketing_consent": True,
        "value": None,
        "predicted_clv": 1.0,
    }


def test_an_erased_person_and_a_withdrawn_consent_are_removed_with_no_model_and_no_gate(tmp_path, monkeypatch):
    """No ml/ table exists (no model passed): the pass still writes each owed removal request, and only those."""
    data = tmp_path / "data"
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(data))
    monkeypatch.setenv("SEGMINT_WAREHOUSE", str(data / "warehouse.duckdb"))
    monkeypatch.delenv("SEGMINT_PRIVACY_SALT", raising=False)
    env = ActivationCredentials().values()
    assert not any(env.values())  # every destination is a dry-run here
    champions = next(a for a in AUDIENCES if a.name == "champions")
    dry_run_dir = data / "exports" / "dry_run"
    data.mkdir()
    with duckdb.connect(str(data / "warehouse.duckdb")) as conn:
        conn.execute("create schema raw")
        conn.execute(
            "create table raw.customers (customer_id varchar, email varchar, phone varchar, country varchar, "
            "marketing_consent boolean)"
        )
        conn.executemany(
            "insert into raw.customers values (?, ?, null, 'US', ?)",
            [(c, f"p{c}@example.com", c != WITHDRAWN) for c in (ERASED, WITHDRAWN, KEPT)],
        )
        ledger.ensure_schema(conn)
        for config in champions.destinations:
            destination, _ = build_destination(config, champions, env, dry_run_dir)
            records = [destination.build_record(_member(c)) for c in (ERASED, WITHDRAWN, KEPT)]
            if config.name == "meta":  # held from a time it ran live: a ledger the pass removes from
                ledger.mark_pending_add(conn, config.name, champions.name, records, "run-0", None, champions.rule)
                ledger.confirm_adds(conn, config.name, champions.name, [r.member_key for r in records])
            elif config.name == "webhook":  # a dry-run when the person was erased: the removal is owed
                ledger.add_erasure_removals(conn, config.name, champions.name, records[:1])
        erase_subject(
            conn,
            ErasureRequest(ERASED, None, "cli"),
            load_salt(data),
            data,
            [],
            data / "privacy" / HEAD_FILE,
        )

    result = dg.materialize(
        [owed_removals],
        resources={
            "warehouse": Warehouse(path=str(data / "warehouse.duckdb")),
            "settings": SegmintSettings(landing_dir=str(tmp_path)),
            "credentials": ActivationCredentials(),
        },
    )
    assert result.success
    metadata = result.asset_materializations_for_node("privacy__owed_removals")[0].metadata
    by_destination = {row["destination"]: row for row in metadata["by_destination"].value}
    assert set(by_destination) == {"champions/meta", "champions/webhook"}  # nothing sent where nothing is owed
    assert by_destination["champions/meta"]["removed"] == 2  # erased and consent withdrawn; KEPT stays
    assert by_destination["champions/webhook"]["removed"] == 1

    for destination in ("meta", "webhook"):
        files = {p.name: p.read_text() for p in (dry_run_dir / "champions" / destination).iterdir()}
        assert files and all(name.startswith(OWED_REMOVALS_FILE_PREFIX) for name in files), destination
        text = "".join(files.values())
        assert ERASED not in text and f"p{ERASED}@example.com" not in text, destination  # plain ids masked
    meta = "".join(p.read_text() for p in (dry_run_dir / "champions" / "meta").iterdir())
    hashed = {c: ids.sha256_hex(ids.normalize_email(f"p{c}@example.com")) for c in (ERASED, WITHDRAWN, KEPT)}
    assert hashed[ERASED] in meta and hashed[WITHDRAWN] in meta and hashed[KEPT] not in meta
    webhook = "".join(p.read_text() for p in (dry_run_dir / "champions" / "webhook").iterdir())
    assert ERASED_MARKER in webhook
    with duckdb.connect(str(data / "warehouse.duckdb")) as conn:
        assert conn.execute("select count(*) from sync.erasure_removals").fetchone()[0] == 0
