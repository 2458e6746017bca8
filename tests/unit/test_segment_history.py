from datetime import date

import pandas as pd
import pytest

from ml.segment_history import HistoryOrderError, advance_history, empty_history, transitions


def _current(rows):
    return pd.DataFrame(rows, columns=["customer_id", "segment_kind", "segment"])


def test_a_change_of_segment_closes_one_row_and_opens_the_next_on_the_same_date():
    h = advance_history(empty_history(), _current([("007", "rfm", "Loyal Customers"), ("8", "rfm", "Lost")]), date(2025, 1, 1))
    h = advance_history(h, _current([("007", "rfm", "At Risk"), ("8", "rfm", "Lost")]), date(2025, 2, 1))
    mine = h[h["customer_id"] == "007"]
    assert list(mine["segment"]) == ["Loyal Customers", "At Risk"]
    assert mine["valid_to"].iloc[0] == pd.Timestamp("2025-02-01") and pd.isna(mine["valid_to"].iloc[1])
    assert len(h[h["customer_id"] == "8"]) == 1  # unchanged customers keep one open row
    moves = transitions(h)
    assert moves[["customer_id", "from_segment", "to_segment"]].values.tolist() == [["007", "Loyal Customers", "At Risk"]]


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
