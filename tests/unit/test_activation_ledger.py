"""Ledger diffing and the change guard."""

import hashlib
import json
import random

import pandas as pd

from activation.ledger import canonical_json, fingerprint_of, plan_diff
from activation.sync import guard_change
from tests.unit.test_activation_http import _awkward_value


def frame(rows, columns=("member_key", "fingerprint", "value", "state")):
    return pd.DataFrame(rows, columns=list(columns))


def test_diff_sends_new_members_removes_leavers_and_keeps_confirmed_ones():
    current = frame([("a", "fa", 1.0), ("b", "fb", 2.0), ("c", "fc", None)], ("member_key", "fingerprint", "value"))
    held = frame([("a", "fa", 1.0, "confirmed"), ("z", "fz", None, "confirmed")])
    diff = plan_diff(current, held)
    assert diff.add == ["b", "c"]
    assert diff.remove == ["z"]
    assert diff.unchanged == ["a"]


def test_pending_rows_from_an_interrupted_run_are_sent_again():
    current = frame([("a", "fa", None), ("b", "fb", None)], ("member_key", "fingerprint", "value"))
    held = frame(
        [("a", "fa", None, "pending_add"), ("b", "fb", None, "pending_remove"), ("c", "fc", None, "pending_remove")]
    )
    diff = plan_diff(current, held)
    assert diff.add == ["a", "b"]
    assert diff.remove == ["c"]
    assert diff.unchanged == []


def test_a_changed_value_is_re_added_and_a_changed_identity_is_replaced():
    current = frame([("a", "fa", 2.0), ("b", "fb-new", None)], ("member_key", "fingerprint", "value"))
    held = frame([("a", "fa", 1.0, "confirmed"), ("b", "fb-old", None, "confirmed")])
    diff = plan_diff(current, held)
    assert diff.add == ["a", "b"]
    assert diff.remove == ["b"]
    assert diff.replace == ["b"]


def test_float_noise_below_a_cent_does_not_trigger_a_resend():
    current = frame([("a", "fa", 10.0000001)], ("member_key", "fingerprint", "value"))
    held = frame([("a", "fa", 10.0, "confirmed")])
    assert plan_diff(current, held).unchanged == ["a"]


def test_guard_blocks_a_shrink_beyond_the_allowed_share_and_passes_within_it():
    ok, message = guard_change(1000, 100, 0.5)
    assert not ok and "-90.0%" in message
    assert guard_change(1000, 1400, 0.5)[0]
    assert not guard_change(1000, 1600, 0.5)[0]


def test_guard_lets_the_first_sync_through():
    assert guard_change(0, 5000, 0.5) == (True, "first sync: 5000 members")


def test_the_diff_in_duckdb_equals_plan_diff_on_random_ledgers():
    """ledger.diff_in_warehouse (SQL, what syncs use) against the reference plan_diff, state for state."""
    import random

    import duckdb

    from activation import ledger

    rng = random.Random(18)
    for trial in range(30):
        conn = duckdb.connect(":memory:")
        ledger.ensure_schema(conn)
        keys = [f"k{i:03d}" for i in range(rng.randint(0, 60))]
        held_rows = []
        for key in rng.sample(keys, rng.randint(0, len(keys))):
            value = rng.choice([None, 1.0, 2.25, 99.99])
            state = rng.choice([ledger.CONFIRMED, ledger.CONFIRMED, ledger.PENDING_ADD, ledger.PENDING_REMOVE])
            held_rows.append((key, f"f{rng.randint(0, 2)}", value, state))
        for key, fingerprint, value, state in held_rows:
            conn.execute(
                "insert into sync.destination_members values ('d', 'a', ?, '{}', ?, ?, null, ?, 'r0', null, null, now())",
                [key, fingerprint, value, state],
            )
        current = frame(
            [
                (key, f"f{rng.randint(0, 2)}", rng.choice([None, 1.0, 2.25, 2.254, 99.99, 99.994, float("nan")]))
                for key in rng.sample(keys, rng.randint(0, len(keys)))
            ],
            ("member_key", "fingerprint", "value"),
        )
        expected = plan_diff(current, ledger.load_ledger(conn, "d", "a"))
        got, rows = ledger.diff_in_warehouse(conn, "d", "a", current)
        assert vars(got) == vars(expected), trial
        needed = set(got.remove) | {k for k, _, _, s in held_rows if s == ledger.PENDING_ADD}
        assert set(rows["member_key"]) == needed


def test_canonical_json_is_json_dumps_sorted_and_compact_byte_for_byte():
    # orjson writes the flat dicts of plain values it agrees on; every other value goes to json.dumps.
    rng = random.Random(7)
    for _ in range(5000):
        value = _awkward_value(rng)
        identifiers = value if isinstance(value, dict) else {"member": value, "email": "a@b.c"}
        try:
            expected = json.dumps(identifiers, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
        except TypeError:  # keys json.dumps cannot sort
            continue
        assert canonical_json(identifiers) == expected, identifiers
    webhook = {"customer_id": "C1", "email": "a@b.c", "marketing_consent": True, "predicted_clv": 1234.5678}
    assert (
        fingerprint_of(webhook)
        == hashlib.sha256(json.dumps(webhook, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    )
