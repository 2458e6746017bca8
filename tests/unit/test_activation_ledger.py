"""Ledger diffing and the change guard."""

import pandas as pd

from activation.ledger import plan_diff
from activation.sync import guard_change


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
