"""GA4's BigQuery export extracted as Avro (landing/formats/avro.py) reads as the same export as JSON or Parquet.

The Avro files are written here from JSON records with the types BigQuery's Avro extract gives GA4's columns
(GA4_AVRO_SCHEMA: INT64 -> long, FLOAT64 -> double, RECORD -> record, REPEATED -> array, NULLABLE -> union with
null); `logical_types=True` writes what use_avro_logical_types changes (TIMESTAMP as timestamp-micros).
"""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import json
from pathlib import Path

import duckdb
import fastavro
import pytest

from demo_shop import generate_shop
from demo_shop.source_formats import write_source_format
from landing import LandingError, ingest_landing
from landing.formats import detect_format
from landing.formats.avro import record_json

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "formats" / "ga4" / "events_20251201.jsonl"
TABLES_SQL = {
    "events": "SELECT * EXCLUDE (origin_file) FROM raw.events ORDER BY event_id",
    "orders": "SELECT * EXCLUDE (origin_file) FROM raw.orders ORDER BY order_id",
}
EVENTS_SQL = "SELECT event_id, customer_id, event_type, page_url FROM raw.events ORDER BY event_id"
# The reasons name the file ("first seen at <file> line 4"): the file's name is left out to compare formats.
QUARANTINE_SQL = "SELECT source_row, replace(reason, source_file, '<file>') AS reason FROM raw.quarantine ORDER BY source_row, reason"
LOG_SQL = "SELECT source_file, table_name, rows_in, rows_accepted, rows_quarantined FROM raw.ingest_log ORDER BY 1, 2"


def nullable(avro_type) -> list:
    return ["null", avro_type]


def record(name: str, fields: dict) -> dict:
    return {"type": "record", "name": name, "fields": [{"name": k, "type": nullable(v)} for k, v in fields.items()]}


def array_of(item: dict) -> dict:
    return {"type": "array", "items": item}


PARAM_VALUE = record(
    "value", {"string_value": "string", "int_value": "long", "float_value": "double", "double_value": "double"}
)
# The part of Google's "[GA4] BigQuery Export schema" the fixtures use, as BigQuery's Avro extract types it.
GA4_AVRO_FIELDS = {
    "event_date": "string",
    "event_timestamp": "long",
    "event_name": "string",
    "event_params": array_of(record("event_params", {"key": "string", "value": PARAM_VALUE})),
    "user_id": "string",
    "user_pseudo_id": "string",
    "device": record("device", {"category": "string"}),
    "traffic_source": record("traffic_source", {"name": "string", "medium": "string", "source": "string"}),
    "collected_traffic_source": record(
        "collected_traffic_source", {"manual_source": "string", "manual_campaign_name": "string"}
    ),
    "ecommerce": record(
        "ecommerce", {"transaction_id": "string", "purchase_revenue": "double", "refund_value": "double"}
    ),
    "items": array_of(
        record("items", {"item_id": "string", "item_name": "string", "price": "double", "quantity": "long"})
    ),
    "stream_id": "string",
    "batch_event_index": "long",
}
TIMESTAMP_MICROS = {"type": "long", "logicalType": "timestamp-micros"}


def ga4_avro_schema(logical_types: bool = False) -> dict:
    fields = dict(GA4_AVRO_FIELDS)
    if logical_types:
        fields["event_timestamp"] = TIMESTAMP_MICROS
    return fastavro.parse_schema(record("events", fields))


def typed(value, avro_type):
    """A JSON value as BigQuery stores it in a column of `avro_type` (a value that is no number -> NULL)."""
    if isinstance(avro_type, list):
        return None if value is None else typed(value, avro_type[1])
    if isinstance(avro_type, dict) and avro_type["type"] == "record":
        value = value or {}
        return {f["name"]: typed(value.get(f["name"]), f["type"]) for f in avro_type["fields"]}
    if isinstance(avro_type, dict) and avro_type["type"] == "array":
        return [typed(item, avro_type["items"]) for item in value or []]
    if avro_type == TIMESTAMP_MICROS:
        micros = typed(value, "long")
        return None if micros is None else dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    try:
        return {"long": int, "double": float}.get(avro_type, str)(value)
    except ValueError:
        return None


def write_ga4_avro(records: list[dict], path: Path, codec: str = "deflate", logical_types: bool = False) -> None:
    schema = ga4_avro_schema(logical_types)
    with path.open("wb") as handle:
        fastavro.writer(
            handle, schema, [typed(r, {"type": "record", "fields": schema["fields"]}) for r in records], codec
        )


def json_records(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def valid_fixture_records() -> list[dict]:
    """The GA4 fixture's records that are JSON objects (line 9 is cut off; line 11 is blank)."""
    records = []
    for line in FIXTURE.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    yield connection
    connection.close()


def ingest(conn, landing: Path):
    return ingest_landing(conn, landing, as_of=None, horizon_days=365, is_demo=False)


def raw_tables(conn, lineage: bool = True) -> dict[str, list[tuple]]:
    """The raw tables without the file name; `lineage=False` also leaves out the row number."""
    sql = (
        TABLES_SQL
        if lineage
        else {t: q.replace("EXCLUDE (origin_file)", "EXCLUDE (origin_file, origin_row)") for t, q in TABLES_SQL.items()}
    )
    return {table: conn.execute(query).fetchall() for table, query in sql.items()}


def assert_ingest_log_reconciles(conn) -> None:
    for source_file, table, rows_in, accepted, quarantined in conn.execute(LOG_SQL).fetchall():
        assert rows_in == accepted + quarantined, (source_file, table)


@pytest.fixture(scope="module")
def demo_ga4_export(tmp_path_factory) -> Path:
    """The demo shop's GA4 export (one gzip'd JSON-lines file per month), 200 customers."""
    work = tmp_path_factory.mktemp("demo")
    generate_shop(work / "landing", work / "truth", n_customers=200, seed=11)
    write_source_format(work / "landing", work / "ga4", "ga4")
    return work / "ga4"


def test_the_demo_ga4_export_as_avro_gives_the_same_raw_tables_as_as_json_lines_and_parquet(
    conn, tmp_path, demo_ga4_export
):
    report = ingest(conn, demo_ga4_export)
    expected = raw_tables(conn)
    assert expected["events"] and expected["orders"]
    expected_log = [(name.removesuffix(".jsonl.gz"), *rest) for name, *rest in conn.execute(LOG_SQL).fetchall()]
    for avro_dir, codec in ((tmp_path / "deflate", "deflate"), (tmp_path / "snappy", "snappy")):
        avro_dir.mkdir()
        for path in sorted(demo_ga4_export.iterdir()):
            write_ga4_avro(json_records(path), avro_dir / path.name.replace(".jsonl.gz", ".avro"), codec)
        report = ingest(conn, avro_dir)
        assert report.source_format == "ga4"
        assert raw_tables(conn) == expected, codec
        # Per file and table: the same counts in, accepted and quarantined (the record number is the line number).
        log = [(name.removesuffix(".avro"), *rest) for name, *rest in conn.execute(LOG_SQL).fetchall()]
        assert log == expected_log
        assert_ingest_log_reconciles(conn)
    parquet_dir = tmp_path / "parquet"
    parquet_dir.mkdir()
    for path in sorted((tmp_path / "deflate").iterdir()):
        # Parquet as BigQuery writes it: the typed Avro records, through DuckDB, keep their nested types.
        conn.execute(
            f"COPY (SELECT * REPLACE (CAST(event_timestamp AS BIGINT) AS event_timestamp) FROM read_json("
            f"'{demo_ga4_export / path.name.replace('.avro', '.jsonl.gz')}')) TO '{parquet_dir / path.with_suffix('.parquet').name}'"
        )
    ingest(conn, parquet_dir)
    assert raw_tables(conn) == expected


def test_avro_with_or_without_logical_types_reads_as_the_json_and_parquet_exports(conn, tmp_path):
    json_dir, parquet_dir = tmp_path / "json", tmp_path / "parquet"
    json_dir.mkdir()
    parquet_dir.mkdir()
    (json_dir / "events_20251201.jsonl").write_text(FIXTURE.read_text())
    ingest(conn, json_dir)
    expected_events = conn.execute(EVENTS_SQL).fetchall()
    # The Parquet export numbers its rows as Avro numbers its records (no cut-off or blank lines in either).
    valid = tmp_path / "valid.jsonl"
    valid.write_text("\n".join(json.dumps(r) for r in valid_fixture_records()) + "\n")
    conn.execute(
        f"COPY (SELECT * REPLACE (try_cast(event_timestamp AS BIGINT) AS event_timestamp) FROM read_json('{valid}')) "
        f"TO '{parquet_dir / 'events_20251201.parquet'}'"
    )
    ingest(conn, parquet_dir)
    expected = raw_tables(conn)
    expected_quarantine = conn.execute(QUARANTINE_SQL).fetchall()
    for logical_types in (False, True):
        avro_dir = tmp_path / f"logical_{logical_types}"
        avro_dir.mkdir()
        write_ga4_avro(valid_fixture_records(), avro_dir / "events_20251201.avro", logical_types=logical_types)
        ingest(conn, avro_dir)
        # Same event ids as the JSON lines: they hash the parsed fields, not the file's bytes.
        assert conn.execute(EVENTS_SQL).fetchall() == expected_events
        assert raw_tables(conn) == expected
        # The fixture's event_timestamp 'yesterday' is no INT64 (NULL in Avro and Parquet): the same quarantine.
        assert conn.execute(QUARANTINE_SQL).fetchall() == expected_quarantine
        assert_ingest_log_reconciles(conn)


def test_a_wildcard_split_avro_export_reads_as_the_one_file_with_counts_per_part(conn, tmp_path, demo_ga4_export):
    records = [record for path in sorted(demo_ga4_export.iterdir()) for record in json_records(path)]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()
    write_ga4_avro(records, whole / "events_20251201.avro")
    # bq extract 'gs://bucket/events_20251201-*.avro': parts numbered with 12 digits, sizes as BigQuery chose.
    cuts = [0, len(records) // 3, len(records) // 2, len(records)]
    for part, (start, end) in enumerate(zip(cuts, cuts[1:])):
        write_ga4_avro(records[start:end], parts / f"events_20251201-{part:012d}.avro", codec="snappy")
    ingest(conn, whole)
    expected = raw_tables(conn, lineage=False)
    assert detect_format(parts) == "ga4"
    ingest(conn, parts)
    # Lineage names the part and its record number; everything else is the one file's.
    assert raw_tables(conn, lineage=False) == expected
    log = conn.execute(LOG_SQL).fetchall()
    assert {row[0] for row in log} == {f"events_20251201-{part:012d}.avro" for part in range(3)}
    events_in = {row[0]: row[2] for row in log if row[1] == "events"}
    assert list(events_in.values()) == [b - a for a, b in zip(cuts, cuts[1:])]
    assert_ingest_log_reconciles(conn)


def test_an_avro_file_not_named_like_the_export_is_found_by_its_schema(conn, tmp_path):
    write_ga4_avro(valid_fixture_records(), tmp_path / "ga4_december.avro")
    assert detect_format(tmp_path) == "ga4"
    (tmp_path / "ga4_december.avro").rename(tmp_path / "notes.avro")
    (tmp_path / "notes.avro").write_bytes(b"not avro")
    with pytest.raises(LandingError, match="no known landing format"):
        detect_format(tmp_path)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"{" + data[1:], id="no Avro header"),
        pytest.param(lambda data: data[: len(data) * 2 // 3], id="cut off mid-block"),
        pytest.param(lambda data: data[:-40] + bytes(40), id="block bytes zeroed"),
    ],
)
def test_a_damaged_avro_file_stops_with_one_line_naming_it(conn, tmp_path, damage):
    good = tmp_path / "good.avro"
    write_ga4_avro(valid_fixture_records() * 50, good)  # blocks much longer than the header
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "events_20251201.avro").write_bytes(damage(good.read_bytes()))
    with pytest.raises(LandingError) as error:
        ingest(conn, landing)
    message = str(error.value)
    assert message.startswith("events_20251201.avro: cannot be read as Avro (")
    assert "\n" not in message


def test_avro_values_json_cannot_hold_are_written_as_bigquerys_json_extract_writes_them():
    when = dt.datetime(2025, 12, 1, 10, 0, tzinfo=dt.UTC)
    value = {
        "ts": when,  # timestamp-micros: its microseconds, as the bare long
        "numeric": decimal.Decimal("59.900000000"),  # NUMERIC: the exact text
        "bytes": b"\x00\xff",
        "date": dt.date(2025, 12, 1),
        "nan": float("nan"),
        "inf": [float("-inf")],
    }
    assert json.loads(record_json(value)) == {
        "ts": 1764583200000000,
        "numeric": "59.900000000",
        "bytes": "AP8=",
        "date": "2025-12-01",
        "nan": "NaN",
        "inf": ["-Infinity"],
    }


def test_the_landing_sensor_sees_avro_exports_and_their_parts(tmp_path):
    from orchestration.defs.sensors import scan_landing

    for name in ("events_20251201-000000000000.avro", "events_20251201-000000000001.avro", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert sorted(scan_landing(tmp_path)) == ["events_20251201-000000000000.avro", "events_20251201-000000000001.avro"]
