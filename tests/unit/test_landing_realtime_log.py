"""The real-time service's durable log read by the next ingest as landing events (landing/realtime_log.py).

The log files are written here in the shared contract's format (one JSON object per line, every field present,
absent ones null), as the service writes them; each planted defect is labelled in a comment.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from landing import ingest_landing

ORDERS = "order_id,customer_id,ordered_at,order_total\no1,c1,2026-11-20,10.00\n"
AS_OF = date(2026, 11, 25)
FIELDS = (
    "event_id",
    "customer_id",
    "anonymous_id",
    "event_type",
    "occurred_at",
    "received_at",
    "page_type",
    "product_id",
    "category",
    "device",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "value",
)


def event(event_id: str, occurred_at: str = "2026-11-24T23:10:00+01:00", **fields) -> str:
    """One log line as the service writes it: every contract field, absent ones null."""
    record = {name: None for name in FIELDS}
    record |= {
        "event_id": event_id,
        "anonymous_id": "v1",
        "event_type": "product_view",
        "occurred_at": occurred_at,
        "received_at": "2026-11-24T22:10:00.123456+00:00",
    }
    record |= fields
    return json.dumps(record)


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    yield connection
    connection.close()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    (folder / "orders.csv").write_text(ORDERS)
    return folder


def write_log(log_dir: Path, name: str, lines: list[str], end: str = "\n") -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / name
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


def ingest(conn, landing: Path, log_dir: Path, work_dir: Path | None = None):
    return ingest_landing(
        conn, landing, as_of=AS_OF, horizon_days=365, is_demo=False, work_dir=work_dir, realtime_log_dir=log_dir
    )


def reconciliation(conn) -> list[tuple]:
    """Per log file: rows in, accepted, quarantined, and the rows actually in raw.events and raw.quarantine."""
    return conn.execute("""
        select l.source_file, l.rows_in, l.rows_accepted, l.rows_quarantined, l.rows_after_as_of,
               (select count(*) from raw.events e where e.origin_file = l.source_file),
               (select count(*) from raw.quarantine q where q.source_file = l.source_file)
        from raw.ingest_log l where l.source_file like 'realtime/log/%' order by 1""").fetchall()


def test_every_acknowledged_event_of_the_log_lands_in_raw_events_and_a_torn_last_line_is_counted(
    conn, landing, tmp_path
):
    log_dir = tmp_path / "data" / "realtime" / "log"
    acknowledged = [f"rt_{i:032x}" for i in range(1, 6)]
    write_log(
        log_dir,
        "events-20261124T220000-101.jsonl",
        [
            event(
                acknowledged[0],
                customer_id="c1",
                anonymous_id=None,
                event_type="add_to_cart",
                product_id="p9",
                category="shoes",
                utm_source="luxury-partner",
                utm_medium="affiliate",
                utm_content="durability",
                value=59.9,
                device="mobile",
                page_type="product",
            ),
            event(acknowledged[1]),
            event(acknowledged[2], occurred_at="2026-11-24T10:00:00Z"),
            # Defect: the service crashed mid-write; this event was never acknowledged.
            '{"event_id": "rt_torn", "anonymous_id": "v1", "event_ty',
        ],
        end="",
    )
    # A second instance's log, gathered in a sub-folder (realtime/router.py).
    write_log(
        log_dir / "instance-b",
        "events-20261124T230000-202.jsonl",
        [
            event(acknowledged[3], anonymous_id="v2", event_type="video_play"),
            "",  # a blank line is no record
            event(acknowledged[4], anonymous_id="v3", event_type="page_view"),
        ],
    )

    report = ingest(conn, landing, log_dir)

    rows = conn.execute("select event_id, count(*) from raw.events group by 1 order by 1").fetchall()
    assert rows == [(event_id, 1) for event_id in sorted(acknowledged)]
    first = conn.execute(
        """
        select customer_id, anonymous_id, occurred_at::varchar, event_type, category, utm_medium, utm_content,
               value, utm_source, device, page_type, product_id, origin_file, origin_row, source_file, source_row
        from raw.events where event_id = ?""",
        [acknowledged[0]],
    ).fetchone()
    assert first == (
        "c1",
        None,
        "2026-11-24 22:10:00",
        "add_to_cart",
        "shoes",
        "affiliate",
        "durability",
        59.9,
        "luxury-partner",
        "mobile",
        "product",
        "p9",
        "realtime/log/events-20261124T220000-101.jsonl",
        1,
        "realtime/log/events-20261124T220000-101.jsonl",
        1,
    )
    torn = conn.execute("select source_file, source_row, reason from raw.quarantine").fetchall()
    assert len(torn) == 1
    assert torn[0][:2] == ("realtime/log/events-20261124T220000-101.jsonl", 4)
    assert torn[0][2].startswith("torn_last_line: ")
    # rows in = accepted + quarantined per log file, and the raw tables hold exactly those rows.
    assert reconciliation(conn) == [
        ("realtime/log/events-20261124T220000-101.jsonl", 4, 3, 1, 0, 3, 1),
        ("realtime/log/instance-b/events-20261124T230000-202.jsonl", 2, 2, 0, 0, 2, 0),
    ]
    assert (report.realtime_log.rows_in, report.realtime_log.rows_accepted) == (6, 5)
    assert report.realtime_log.reasons == {"torn_last_line": 1}


def test_an_event_id_in_the_shop_file_and_in_the_log_is_ingested_once_and_reruns_add_nothing(conn, landing, tmp_path):
    log_dir = tmp_path / "realtime" / "log"
    (landing / "events.csv").write_text(
        "event_id,anonymous_id,occurred_at,event_type\nshared,v1,2026-11-24 10:00:00,page_view\nshop_only,v1,"
        "2026-11-24 10:01:00,page_view\n"
    )
    write_log(
        log_dir,
        "events-20261124T220000-101.jsonl",
        [
            # Defect: the same event reached the shop's export and the service.
            event("shared", occurred_at="2026-11-24T10:00:00.5Z"),
            event("rt_1", value=19.9),
            # Defect: the same event logged again by another process (identical values, another receive time).
            event("rt_1", value=19.9).replace("22:10:00.123456", "22:11:00"),
            # Defect: after the as-of date: counted as such, kept in the log for a later run.
            event("rt_late", occurred_at="2026-11-26T09:00:00+00:00"),
            # Defect: a broken line in the middle of a file is malformed, not torn.
            "{not json",
            # Defect: a decimal comma among JSON numbers (decimal points): the minority mark is invalid_number.
            event("rt_2", value="12,50"),
            event("rt_3", value=5.25),
        ],
    )

    for _ in range(2):  # a re-run reads the same log and ingests nothing twice
        ingest(conn, landing, log_dir, work_dir=tmp_path / "work")
        ids = [row[0] for row in conn.execute("select event_id from raw.events order by event_id").fetchall()]
        assert ids == ["rt_1", "rt_3", "shared", "shop_only"]
        assert conn.execute("select source_file from raw.events where event_id = 'shared'").fetchone() == (
            "events.csv",
        )
        reasons = dict(
            conn.execute(
                "select source_row, split_part(reason, ':', 1) from raw.quarantine "
                "where source_file like 'realtime/log/%'"
            ).fetchall()
        )
        assert reasons == {
            1: "duplicate_in_landing_file",
            3: "duplicate_identical",
            4: "after_as_of",
            5: "malformed_json",
            6: "invalid_number",
        }
        assert reconciliation(conn) == [("realtime/log/events-20261124T220000-101.jsonl", 7, 2, 5, 1, 2, 5)]
    assert (tmp_path / "work" / "realtime" / "realtime_events.parquet").is_file()
    assert (log_dir / "events-20261124T220000-101.jsonl").read_text().count("\n") == 7  # the log is never modified


def test_a_shop_events_file_keeps_the_new_optional_columns(conn, landing, tmp_path):
    (landing / "events.csv").write_text(
        "event_id,customer_id,occurred_at,event_type,category,utm_medium,utm_content,value\n"
        "e1,c1,2026-11-24 10:00:00,add_to_cart,shoes,affiliate,style,19.90\n"
        "e2,c1,2026-11-24 10:00:00,add_to_cart,shoes,affiliate,style,abc\n"  # Defect: value is not a number.
    )
    ingest(conn, landing, tmp_path / "no-log")
    assert conn.execute("select event_id, category, utm_medium, utm_content, value from raw.events").fetchall() == [
        ("e1", "shoes", "affiliate", "style", 19.9)
    ]
    assert conn.execute("select reason from raw.quarantine").fetchone()[0] == "invalid_number: value='abc'"


def transition(segment: str, change: str, occurred_at: str = "2026-11-24T23:10:00+01:00", **fields) -> str:
    record = {
        "id": "v1",
        "known_customer": False,
        "segment": segment,
        "change": change,
        "event_id": "rt_1",
        "occurred_at": occurred_at,
        "received_at": "2026-11-24T22:10:00Z",
        "source": "realtime",
    } | fields
    return json.dumps(record)


def test_transitions_are_read_in_utc_and_lines_that_are_not_transitions_are_counted(conn, tmp_path):
    from landing.realtime_log import read_transitions, transition_log_files

    log_dir = tmp_path / "realtime" / "log"
    write_log(
        log_dir,
        "transitions-20261124T220000-101.jsonl",
        [
            transition("high_intent:shoes", "entered", id="c1", known_customer=True),
            transition("general_interest", "left"),  # Defect: not entered/exited.
            transition("late_night", "entered", occurred_at="yesterday"),  # Defect: not a time.
            '{"id": "v1", "segm',  # Defect: torn by a crash.
        ],
        end="",
    )
    write_log(log_dir, "events-20261124T220000-101.jsonl", [event("rt_1")])  # not a transitions file
    log = read_transitions(conn, transition_log_files(log_dir), log_dir)
    assert log.lines_read == 4
    assert log.set_aside == {"invalid_change": 1, "invalid_timestamp": 1, "torn_last_line": 1}
    row = log.transitions.iloc[0]
    assert (row["id"], bool(row["known_customer"]), row["segment"], row["change"], str(row["occurred_at"])) == (
        "c1",
        True,
        "high_intent:shoes",
        "entered",
        "2026-11-24 22:10:00",
    )
    assert row["origin_file"] == "realtime/log/transitions-20261124T220000-101.jsonl" and len(log.transitions) == 1
    assert log.examples[0].startswith("realtime/log/transitions-20261124T220000-101.jsonl:2: invalid_change")


def test_an_erased_persons_log_events_are_suppressed_unread_and_the_log_file_still_reconciles(conn, landing, tmp_path):
    from functools import partial

    from landing.ingest import Suppression
    from privacy.subjects import subject_hash

    salt = "a-test-salt-of-16-chars"
    log_dir = tmp_path / "data" / "realtime" / "log"
    write_log(
        log_dir,
        "events-20261124T221000-1.jsonl",
        [
            event("rt_keep", customer_id="c1"),
            event("rt_erased", customer_id="c-erased"),  # planted: a person on the suppression list
        ],
    )
    suppression = Suppression(frozenset({subject_hash(salt, "c-erased")}), partial(subject_hash, salt))
    ingest_landing(
        conn, landing, as_of=AS_OF, horizon_days=365, is_demo=False, realtime_log_dir=log_dir, suppression=suppression
    )
    assert [r[0] for r in conn.execute("select event_id from raw.events").fetchall()] == ["rt_keep"]
    assert conn.execute("select count(*) from raw.quarantine where raw_record like '%c-erased%'").fetchone()[0] == 0
    log = conn.execute(
        "select rows_in, rows_accepted, rows_quarantined, rows_suppressed from raw.ingest_log "
        "where source_file like 'realtime/log/%'"
    ).fetchone()
    assert log == (2, 1, 0, 1)
