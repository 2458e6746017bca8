from datetime import date

import pandas as pd
import pytest

from ml.segment_history import (
    HistoryOrderError,
    advance_history,
    empty_history,
    realtime_history,
    transitions,
    with_realtime,
)


def _current(rows):
    return pd.DataFrame(rows, columns=["customer_id", "segment_kind", "segment"])


def test_a_change_of_segment_closes_one_row_and_opens_the_next_on_the_same_date():
    h = advance_history(
        empty_history(), _current([("007", "rfm", "Loyal Customers"), ("8", "rfm", "Lost")]), date(2025, 1, 1)
    )
    h = advance_history(h, _current([("007", "rfm", "At Risk"), ("8", "rfm", "Lost")]), date(2025, 2, 1))
    mine = h[h["customer_id"] == "007"]
    assert list(mine["segment"]) == ["Loyal Customers", "At Risk"]
    assert mine["valid_to"].iloc[0] == pd.Timestamp("2025-02-01") and pd.isna(mine["valid_to"].iloc[1])
    assert len(h[h["customer_id"] == "8"]) == 1  # unchanged customers keep one open row
    moves = transitions(h)
    assert moves[["customer_id", "from_segment", "to_segment"]].values.tolist() == [
        ["007", "Loyal Customers", "At Risk"]
    ]


def test_rerunning_the_same_as_of_date_gives_the_same_history():
    first = advance_history(empty_history(), _current([("1", "rfm", "Champions")]), date(2025, 1, 1))
    second = advance_history(first, _current([("1", "rfm", "At Risk")]), date(2025, 2, 1))
    again = advance_history(second, _current([("1", "rfm", "At Risk")]), date(2025, 2, 1))
    pd.testing.assert_frame_equal(second, again)
    changed_mind = advance_history(second, _current([("1", "rfm", "Champions")]), date(2025, 2, 1))
    assert len(changed_mind) == 1 and pd.isna(changed_mind["valid_to"].iloc[0])


def test_an_as_of_date_before_the_history_is_refused():
    h = advance_history(empty_history(), _current([("1", "rfm", "Champions")]), date(2025, 3, 1))
    with pytest.raises(HistoryOrderError, match="only moves forward"):
        advance_history(h, _current([("1", "rfm", "Lost")]), date(2025, 1, 1))


# ---- real-time segments from the service's transitions ---------------------------------------------------------


def _moves(rows):
    frame = pd.DataFrame(rows, columns=["id", "segment", "change", "occurred_at"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], format="ISO8601")
    return frame


def test_realtime_transitions_become_intervals_several_open_at_once_and_after_as_of_left_out():
    moves = _moves(
        [
            ("v1", "general_interest", "entered", "2026-11-24 10:00:00"),
            ("v1", "device:mobile", "entered", "2026-11-24 10:00:00"),
            ("v1", "high_intent:shoes", "entered", "2026-11-24 10:05:30.250"),
            ("v1", "general_interest", "exited", "2026-11-24 10:05:30.250"),
            ("v2", "cart_abandoner", "exited", "2026-11-24 09:00:00"),  # an exit with no entry in the log: nothing
            ("v2", "cart_abandoner", "entered", "2026-11-24 11:00:00"),
            ("v2", "cart_abandoner", "entered", "2026-11-24 11:10:00"),  # a repeat continues the stretch
            ("v2", "cart_abandoner", "exited", "2026-11-26 08:00:00"),  # after the as-of date: still open on it
        ]
    )
    history = realtime_history(moves, date(2026, 11, 25))
    rows = [
        (r.customer_id, r.segment, str(r.valid_from), None if pd.isna(r.valid_to) else str(r.valid_to))
        for r in history.itertuples()
    ]
    assert rows == [
        ("v1", "device:mobile", "2026-11-24 10:00:00", None),
        ("v1", "general_interest", "2026-11-24 10:00:00", "2026-11-24 10:05:30.250000"),
        ("v1", "high_intent:shoes", "2026-11-24 10:05:30.250000", None),
        ("v2", "cart_abandoner", "2026-11-24 11:00:00", None),
    ]
    assert set(history["segment_kind"]) == {"realtime"} and set(history["source"]) == {"realtime"}
    later = realtime_history(moves, date(2026, 11, 26))
    assert str(later.loc[later["customer_id"] == "v2", "valid_to"].iloc[0]) == "2026-11-26 08:00:00"


def test_batch_and_realtime_rows_share_the_table_with_their_source():
    batch = advance_history(empty_history(), _current([("1", "rfm_segment", "Champions")]), date(2026, 11, 25))
    live = realtime_history(_moves([("1", "premium_interest", "entered", "2026-11-25 22:00:00")]), date(2026, 11, 25))
    combined = with_realtime(batch, live)
    assert list(combined.columns) == ["customer_id", "segment_kind", "segment", "valid_from", "valid_to", "source"]
    assert combined[["segment", "source"]].values.tolist() == [["Champions", "batch"], ["premium_interest", "realtime"]]
    assert realtime_history(_moves([]), date(2026, 11, 25)).empty
