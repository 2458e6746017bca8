"""`python -m orchestration.cli forget` and the erasure pass every run starts with (issue 17, item 1)."""

from __future__ import annotations

import json
import subprocess

import duckdb
import pytest

from activation import ledger
from orchestration import cli
from orchestration.lib.erasure import apply_erasures, landing_requests
from orchestration.lib.settings import load_settings
from privacy.erasure import take_compaction_due
from privacy.receipts import HEAD_FILE, verify_chain
from tests.conftest import PROJECT_ROOT

PERSON, EMAIL = "0000007", "grace@example.com"


@pytest.fixture
def installation(tmp_path, monkeypatch):
    """A data folder whose warehouse holds the person in raw, a mart and the champions audience (dry-run syncs)."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("SEGMINT_DATA_DIR", str(data))
    monkeypatch.setenv("SEGMINT_WAREHOUSE", str(data / "warehouse.duckdb"))
    for name in ("SEGMINT_LANDING_DIR", "SEGMINT_PRIVACY_SALT", "SEGMINT_META_ACCESS_TOKEN", "SEGMINT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    with duckdb.connect(str(data / "warehouse.duckdb")) as conn:
        conn.execute("create schema raw; create schema marts; create schema audiences; create schema edge")
        conn.execute(
            "create table raw.customers (customer_id varchar, email varchar, phone varchar, country varchar, "
            "first_name varchar, last_name varchar, postal_code varchar)"
        )
        conn.execute(
            f"insert into raw.customers values ('{PERSON}', '{EMAIL}', null, 'US', 'Grace', 'Hopper', null), "
            "('0000008', 'b@example.com', null, 'US', 'B', 'C', null)"
        )
        # As the graph builds them: the sync edge is a view over raw.customers, the audience table pseudonymous.
        conn.execute(
            "create view edge.customer_contacts as "
            "select customer_id, email, phone, first_name, last_name, postal_code from raw.customers"
        )
        conn.execute("create table raw.events (customer_id varchar, anonymous_id varchar)")
        conn.execute(f"create table marts.customer_scores as select '{PERSON}' as customer_id, 1.0 as predicted_clv")
        conn.execute(
            f"create table audiences.champions as select '{PERSON}' as customer_id, false as is_control, "
            "true as marketing_consent, 'US' as country, 1.0 as predicted_clv, null::double as value"
        )
    (data / "exports").mkdir()
    (data / "exports" / "champions_meta_customer_list.csv").write_text(f"email\n{EMAIL}\n")
    return data


def test_forget_erases_now_writes_a_receipt_and_owes_removals_to_dry_run_destinations(installation, capsys):
    assert cli.main(["forget", PERSON, "--requested-at", "2026-11-20T09:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "erased receipt #1" in out and "1 files" in out

    with duckdb.connect(str(installation / "warehouse.duckdb")) as conn:
        assert conn.execute("select count(*) from marts.customer_scores").fetchone()[0] == 0
        assert conn.execute("select count(*) from raw.customers").fetchone()[0] == 1
        receipt = conn.execute("select requested_at, source, removed_json from privacy.erasure_receipts").fetchone()
        owed = conn.execute("select distinct destination from sync.erasure_removals order by 1").fetchall()
        assert verify_chain(conn, installation / "privacy" / HEAD_FILE).ok
    assert str(receipt[0]) == "2026-11-20 09:00:00" and receipt[1] == "cli"
    destinations = json.loads(receipt[2])["destinations"]
    # Every champions destination runs dry here; the consenting member is owed a removal at each.
    assert [d for (d,) in owed] == ["google_data_manager", "hubspot", "klaviyo", "meta", "webhook"]
    assert set(destinations) >= {f"champions/{d}" for (d,) in owed}
    assert not (installation / "exports" / "champions_meta_customer_list.csv").exists()
    assert take_compaction_due(installation)


def test_forgetting_the_same_person_twice_writes_one_receipt(installation, capsys):
    assert cli.main(["forget", PERSON]) == 0
    assert cli.main(["forget", PERSON]) == 0
    assert "1 of the ids were erased before" in capsys.readouterr().out
    with duckdb.connect(str(installation / "warehouse.duckdb")) as conn:
        assert conn.execute("select count(*) from privacy.erasure_receipts").fetchone()[0] == 1


def test_a_live_destination_keeps_its_ledger_row_for_the_next_sync(installation):
    with duckdb.connect(str(installation / "warehouse.duckdb")) as conn:
        ledger.ensure_schema(conn)
        conn.execute(
            f"insert into sync.destination_members values ('meta', 'champions', '{PERSON}', '{{}}', 'f', null, "
            "null, 'confirmed', 'run', null, null, now())"
        )
        outcome = apply_erasures(conn, landing_requests_for(installation), load_settings())
        assert conn.execute("select count(*) from sync.destination_members").fetchone()[0] == 1
        assert conn.execute("select count(*) from sync.erasure_removals where destination = 'meta'").fetchone()[0] == 0
    assert json.loads(outcome.receipts[0]["removed_json"])["destinations"]["champions/meta"].startswith("ledger")


def landing_requests_for(data):
    landing = data / "landing"
    landing.mkdir()
    (landing / "deletion_requests.csv").write_text(f"customer_id,requested_at\n{PERSON},2026-11-01\n")
    requests = landing_requests(landing)
    assert [(r.customer_id, r.source) for r in requests] == [(PERSON, "deletion_requests.csv")]
    return requests


def test_a_bad_salt_setting_is_one_line_and_exit_1(installation, monkeypatch, capsys):
    monkeypatch.setenv("SEGMINT_PRIVACY_SALT", "short")
    assert cli.main(["forget", PERSON]) == 1
    assert (
        capsys.readouterr().err.strip()
        == "segmint: forget: SEGMINT_PRIVACY_SALT must be at least 16 characters (a random secret)"
    )


def test_make_forget_runs_the_cli_with_the_id():
    # `make -n` prints the recipe without running anything (no install in a worktree).
    printed = subprocess.run(
        ["make", "-n", "--no-print-directory", "forget", "ID=0000042"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '-m orchestration.cli forget "0000042"' in printed
