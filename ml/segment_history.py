"""Dynamic segment membership as a validity-interval history (SCD type 2), advanced one as-of date at a time.

Grain: one row per customer, segment kind and stretch of time in one segment:
`customer_id, segment_kind, segment, valid_from, valid_to` (valid_to NULL = still a member). A transition
such as Loyal Customers -> At Risk closes one row and opens the next on the same date, so it can be queried:

    select * from marts.segment_membership_history h1 join marts.segment_membership_history h2
      using (customer_id, segment_kind) where h1.valid_to = h2.valid_from
      and h1.segment = 'Loyal Customers' and h2.segment = 'At Risk'

Real-time segments (the segment service, realtime/) join the same table with `source` = 'realtime' (batch rows:
'batch'), `segment_kind` = 'realtime', `customer_id` = the visitor id and timestamps to the microsecond, from the
service's transitions (`realtime_history`); they are rebuilt from the log on every run.

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
        latest = max(
            history["valid_from"].max(),
            history["valid_to"].max() if history["valid_to"].notna().any() else history["valid_from"].max(),
        )
        if as_of_ts < latest:
            raise HistoryOrderError(
                f"as-of {as_of} is before the latest membership date {latest.date()}: history only moves forward"
            )
        history = _undo_date(history, as_of_ts)

    current = current[["customer_id", "segment_kind", "segment"]].astype("string")
    history = history.reset_index(drop=True)
    # Each open row carries its position through the merge, so closing it is one vectorised assignment (a Python
    # set lookup per history row cost seconds at 1 M customers: issue 18).
    open_rows = history[history["valid_to"].isna()].reset_index(names="_row")
    merged = open_rows.merge(
        current, on=["customer_id", "segment_kind"], how="outer", suffixes=("_open", ""), indicator=True
    )

    # Open rows whose segment changed, or whose customer is no longer scored, close on the as-of date.
    closing = merged[
        (merged["_merge"] == "left_only")
        | ((merged["_merge"] == "both") & (merged["segment_open"] != merged["segment"]))
    ]
    history.loc[closing["_row"].to_numpy(dtype="int64"), "valid_to"] = as_of_ts

    # Customers that are new, or whose segment changed, open a row from the as-of date.
    opening = merged[
        (merged["_merge"] == "right_only")
        | ((merged["_merge"] == "both") & (merged["segment_open"] != merged["segment"]))
    ]
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
    return result.sort_values(["customer_id", "segment_kind", "valid_from"], kind="stable").reset_index(drop=True)[
        HISTORY_COLUMNS
    ]


def transitions(history: pd.DataFrame) -> pd.DataFrame:
    """One row per segment change: customer_id, segment_kind, from_segment, to_segment, changed_on."""
    closed = history[history["valid_to"].notna()]
    nxt = history.rename(columns={"segment": "to_segment", "valid_from": "changed_on"})[
        ["customer_id", "segment_kind", "to_segment", "changed_on"]
    ]
    joined = closed.merge(
        nxt, left_on=["customer_id", "segment_kind", "valid_to"], right_on=["customer_id", "segment_kind", "changed_on"]
    )
    return joined.rename(columns={"segment": "from_segment"})[
        ["customer_id", "segment_kind", "from_segment", "to_segment", "changed_on"]
    ]


# ---- real-time segments (the segment service's transitions log) -----------------------------------------------

BATCH, REALTIME = "batch", "realtime"
SOURCES = (BATCH, REALTIME)
REALTIME_KIND = "realtime"


def realtime_history(moves: pd.DataFrame, as_of: date | None) -> pd.DataFrame:
    """Validity intervals of real-time segments from their transitions, up to the end of the as-of date.

    `moves`: id, segment, change (entered/exited), occurred_at (UTC), in log order. One row per visitor, segment
    and stretch of membership: `customer_id` = the visitor's id (the customer_id when known, else the anonymous
    id), `segment_kind` = 'realtime', valid_from = the entering event's time, valid_to = the exiting one's (NULL:
    still a member on the as-of date). Several real-time segments can be open at once (device:mobile and
    high_intent:shoes). A repeated change (entered twice) continues the stretch; an exit with no entry in the log
    opens nothing. Transitions after the as-of date are left for a later run, as raw events are.
    """
    columns = [*HISTORY_COLUMNS, "source"]
    if not len(moves):
        return empty_history().assign(source=pd.Series(dtype="string"))[columns]
    moves = moves[["id", "segment", "change", "occurred_at"]].copy()
    moves["occurred_at"] = pd.to_datetime(moves["occurred_at"]).astype("datetime64[us]")
    if as_of is not None:
        moves = moves[moves["occurred_at"] < pd.Timestamp(as_of) + pd.Timedelta(days=1)]
    # Stable sort: transitions at the same instant keep their log order.
    moves = moves.sort_values(["id", "segment", "occurred_at"], kind="stable")
    same_key = moves.groupby(["id", "segment"], sort=False)
    previous = same_key["change"].shift()
    # Collapse repeats and drop leading exits: what is left alternates entered, exited, entered, ...
    kept = moves[(moves["change"] != previous) & ~(previous.isna() & (moves["change"] == "exited"))]
    kept = kept.assign(next_at=kept.groupby(["id", "segment"], sort=False)["occurred_at"].shift(-1))
    entered = kept[kept["change"] == "entered"]
    history = pd.DataFrame(
        {
            "customer_id": entered["id"].astype("string"),
            "segment_kind": pd.Series(REALTIME_KIND, index=entered.index, dtype="string"),
            "segment": entered["segment"].astype("string"),
            "valid_from": entered["occurred_at"].astype("datetime64[us]"),
            "valid_to": entered["next_at"].astype("datetime64[us]"),
            "source": pd.Series(REALTIME, index=entered.index, dtype="string"),
        }
    )
    return history.sort_values(["customer_id", "segment", "valid_from"], kind="stable").reset_index(drop=True)[columns]


def with_realtime(batch: pd.DataFrame, realtime: pd.DataFrame) -> pd.DataFrame:
    """The batch history (source 'batch') and the real-time one (source 'realtime') in one table."""
    batch = batch[HISTORY_COLUMNS].assign(source=pd.Series(BATCH, index=batch.index, dtype="string"))
    combined = pd.concat([batch, realtime[[*HISTORY_COLUMNS, "source"]]], ignore_index=True)
    combined["valid_from"] = pd.to_datetime(combined["valid_from"]).astype("datetime64[us]")
    combined["valid_to"] = pd.to_datetime(combined["valid_to"]).astype("datetime64[us]")
    return combined
