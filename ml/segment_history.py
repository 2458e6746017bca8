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

import duckdb
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


# The rule, once, in SQL: DuckDB runs it inside the warehouse (the asset: no table goes through pandas, issue 18)
# and on in-memory frames (advance_history). {history}: the previous batch rows (HISTORY_COLUMNS); {current}:
# customer_id, segment_kind, segment observed on $as_of (a TIMESTAMP). A re-run of the same date first undoes what
# that date changed (rows opened on it go, rows closed on it reopen), so it is idempotent. Open rows whose segment
# changed, or whose customer is no longer scored, close on the as-of date; new customers and changed segments
# open a row from it. A NULL segment counts as a segment of its own (`is distinct from`).
ADVANCE_SQL = """
with undone as (
    select customer_id::varchar as customer_id, segment_kind::varchar as segment_kind, segment::varchar as segment,
        valid_from::timestamp as valid_from,
        case when valid_to = $as_of then null else valid_to end::timestamp as valid_to
    from {history}
    where valid_from is distinct from $as_of
),
observed as (
    select customer_id::varchar as customer_id, segment_kind::varchar as segment_kind, segment::varchar as segment
    from {current}
),
open_rows as (select * from undone where valid_to is null),
closing as (
    select distinct o.customer_id, o.segment_kind
    from open_rows as o left join observed as c using (customer_id, segment_kind)
    where c.customer_id is null or c.segment is distinct from o.segment
),
kept as (
    select u.customer_id, u.segment_kind, u.segment, u.valid_from,
        case when u.valid_to is null and k.customer_id is not null then $as_of else u.valid_to end as valid_to
    from undone as u left join closing as k using (customer_id, segment_kind)
),
opening as (
    select c.customer_id, c.segment_kind, c.segment, $as_of as valid_from, null::timestamp as valid_to
    from observed as c left join open_rows as o using (customer_id, segment_kind)
    where o.customer_id is null or o.segment is distinct from c.segment
)
select * from kept
union all
select * from opening
order by customer_id, segment_kind, valid_from
"""
LATEST_SQL = "select max(greatest(valid_from, coalesce(valid_to, valid_from)))::timestamp from {history}"


def advance_history_sql(conn: duckdb.DuckDBPyConnection, history: str, current: str, as_of: date) -> str:
    """The query of the history after observing `current` on `as_of` (relations named `history` and `current` in
    `conn`); raises HistoryOrderError when `as_of` is before the latest date already in the history."""
    # fetchall, not fetchone: the result is finished, so the caller may register a frame on `conn` next
    latest = conn.execute(LATEST_SQL.format(history=history)).fetchall()[0][0]
    if latest is not None and pd.Timestamp(as_of) < pd.Timestamp(latest):
        raise HistoryOrderError(
            f"as-of {as_of} is before the latest membership date {pd.Timestamp(latest).date()}: "
            "history only moves forward"
        )
    return ADVANCE_SQL.format(history=history, current=current)


def advance_history(history: pd.DataFrame, current: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """History after observing `current` (customer_id, segment_kind, segment) on `as_of` (ADVANCE_SQL on frames)."""
    history = history[HISTORY_COLUMNS] if len(history) else empty_history()
    with duckdb.connect() as conn:
        conn.register("history_frame", history)
        conn.register("current_frame", current[["customer_id", "segment_kind", "segment"]])
        query = advance_history_sql(conn, "history_frame", "current_frame", as_of)
        result = conn.execute(query, {"as_of": pd.Timestamp(as_of).to_pydatetime()}).df()
    return _typed(result)


def _typed(history: pd.DataFrame) -> pd.DataFrame:
    typed = pd.DataFrame({column: history[column].astype("string") for column in HISTORY_COLUMNS[:3]})
    typed["valid_from"] = pd.to_datetime(history["valid_from"]).astype("datetime64[us]")
    typed["valid_to"] = pd.to_datetime(history["valid_to"]).astype("datetime64[us]")
    return typed.reset_index(drop=True)


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
