"""Dynamic segment membership as a validity-interval history (SCD type 2), advanced one as-of date at a time.

Grain: one row per customer, segment kind and stretch of time in one segment:
`customer_id, segment_kind, segment, valid_from, valid_to` (valid_to NULL = still a member). A transition
such as Loyal Customers -> At Risk closes one row and opens the next on the same date, so it can be queried:

    select * from marts.segment_membership_history h1 join marts.segment_membership_history h2
      using (customer_id, segment_kind) where h1.valid_to = h2.valid_from
      and h1.segment = 'Loyal Customers' and h2.segment = 'At Risk'

Decisions: history only moves forward. Re-running the latest as-of date replaces that date's changes
(idempotent); an as-of date earlier than the latest one is refused with a clear reason rather than rewriting
the past (backfills of old dates do not change history).
"""

from __future__ import annotations

from datetime import date

import pandas as pd

HISTORY_COLUMNS = ["customer_id", "segment_kind", "segment", "valid_from", "valid_to"]


class HistoryOrderError(ValueError):
    """The as-of date is before the latest date already in the history."""


def empty_history() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype="string"),
            "segment_kind": pd.Series(dtype="string"),
            "segment": pd.Series(dtype="string"),
            "valid_from": pd.Series(dtype="datetime64[us]"),
            "valid_to": pd.Series(dtype="datetime64[us]"),
        }
    )


def _undo_date(history: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Remove what a previous run on the same as-of date changed, so the re-run is idempotent."""
    kept = history[history["valid_from"] != as_of].copy()
    reopened = kept["valid_to"] == as_of
    kept.loc[reopened, "valid_to"] = pd.NaT
    return kept


def advance_history(history: pd.DataFrame, current: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """History after observing `current` (customer_id, segment_kind, segment) on `as_of`."""
    as_of_ts = pd.Timestamp(as_of)
    history = history[HISTORY_COLUMNS].copy() if len(history) else empty_history()
    if len(history):
        latest = max(history["valid_from"].max(), history["valid_to"].max() if history["valid_to"].notna().any() else history["valid_from"].max())
        if as_of_ts < latest:
            raise HistoryOrderError(
                f"as-of {as_of} is before the latest membership date {latest.date()}: history only moves forward"
            )
        history = _undo_date(history, as_of_ts)

    current = current[["customer_id", "segment_kind", "segment"]].astype("string")
    open_rows = history[history["valid_to"].isna()]
    merged = open_rows.merge(current, on=["customer_id", "segment_kind"], how="outer", suffixes=("_open", ""), indicator=True)

    # Open rows whose segment changed, or whose customer is no longer scored, close on the as-of date.
    closing = merged[(merged["_merge"] == "left_only") | ((merged["_merge"] == "both") & (merged["segment_open"] != merged["segment"]))]
    closing_keys = set(zip(closing["customer_id"], closing["segment_kind"]))
    is_open = history["valid_to"].isna()
    keys = list(zip(history["customer_id"], history["segment_kind"]))
    close_mask = is_open & pd.Series([key in closing_keys for key in keys], index=history.index)
    history.loc[close_mask, "valid_to"] = as_of_ts

    # Customers that are new, or whose segment changed, open a row from the as-of date.
    opening = merged[(merged["_merge"] == "right_only") | ((merged["_merge"] == "both") & (merged["segment_open"] != merged["segment"]))]
    new_rows = pd.DataFrame(
        {
            "customer_id": opening["customer_id"].astype("string"),
            "segment_kind": opening["segment_kind"].astype("string"),
            "segment": opening["segment"].astype("string"),
            "valid_from": as_of_ts,
            "valid_to": pd.NaT,
        }
    )
    result = pd.concat([history, new_rows], ignore_index=True)
    result["valid_from"] = pd.to_datetime(result["valid_from"])
    result["valid_to"] = pd.to_datetime(result["valid_to"])
    return result.sort_values(["customer_id", "segment_kind", "valid_from"], kind="stable").reset_index(drop=True)[HISTORY_COLUMNS]


def transitions(history: pd.DataFrame) -> pd.DataFrame:
    """One row per segment change: customer_id, segment_kind, from_segment, to_segment, changed_on."""
    closed = history[history["valid_to"].notna()]
    nxt = history.rename(columns={"segment": "to_segment", "valid_from": "changed_on"})[
        ["customer_id", "segment_kind", "to_segment", "changed_on"]
    ]
    joined = closed.merge(nxt, left_on=["customer_id", "segment_kind", "valid_to"], right_on=["customer_id", "segment_kind", "changed_on"])
    return joined.rename(columns={"segment": "from_segment"})[["customer_id", "segment_kind", "from_segment", "to_segment", "changed_on"]]
