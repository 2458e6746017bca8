"""Avro files (BigQuery's AVRO extract of a table) read as the JSON lines the same table's JSON extract holds.

BigQuery can extract a table with nested and repeated fields (GA4's events_YYYYMMDD) as NEWLINE_DELIMITED_JSON,
PARQUET or AVRO, never CSV. An Avro record becomes one JSON text, so the GA4 translator reads it exactly as it reads
a JSON line (and a Parquet row, made JSON by to_json): one owner for every GA4 rule, whatever the file format.
`origin_row` is the record's 1-based number in the file, as for Parquet.

BigQuery's Avro types (Google's "Avro export details"): INTEGER long, FLOAT double, BOOLEAN boolean, STRING string,
BYTES bytes, RECORD record, REPEATED array, NULLABLE a union with null; NUMERIC and BIGNUMERIC bytes with the
decimal logical type; DATE int (date), TIME long (time-micros), TIMESTAMP long: with the timestamp-micros logical
type when the extract sets use_avro_logical_types, else the bare long. The JSON text of each:
- a TIMESTAMP is written as its microseconds since the epoch either way (the bare long's value), so both
  extract settings read the same (GA4's event_timestamp is an INT64 of microseconds anyway);
- a decimal as its exact text (`59.900000000`), as BigQuery's JSON extract writes NUMERIC;
- bytes in base64, DATE/TIME/DATETIME in ISO text, as the JSON extract writes them;
- a NaN or infinite double as the text "NaN"/"Infinity"/"-Infinity" (JSON has no such numbers; the record stays
  valid JSON instead of being quarantined as malformed).
Blocks compressed with deflate or snappy (BigQuery's two Avro codecs) are read; snappy needs `cramjam`, pinned
with fastavro. A file that is no Avro, or is damaged, is one LandingError naming it: no record of it is read.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import fastavro

from landing.sources import LandingError

# Records turned into JSON text per batch handed to DuckDB: bounds memory on a GB-sized daily export.
BATCH_RECORDS = 20_000
# Every Avro object container file starts with these 4 bytes (Avro spec, "Object Container Files"); fastavro 1.13
# does not check them, and reads a file whose first byte was damaged as if it were whole.
AVRO_MAGIC = b"Obj\x01"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_NON_FINITE = ("NaN", "Infinity")


def avro_field_names(path: Path) -> set[str]:
    """The top-level field names of an Avro file's schema (its header alone is read); none when it is no Avro."""
    try:
        with path.open("rb") as handle:
            if handle.read(len(AVRO_MAGIC)) != AVRO_MAGIC:
                return set()
            handle.seek(0)
            schema = fastavro.reader(handle).writer_schema
    except Exception:  # any unreadable header: not an Avro file, so not a GA4 one either
        return set()
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return set()
    return {str(field["name"]) for field in schema.get("fields", [])}


def _json_value(value: object) -> object:
    """The JSON value of an Avro value that json cannot write (the module docstring's mapping)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # local-timestamp-*: a civil date and time, as BigQuery's DATETIME
            return value.isoformat(sep=" ")
        return (value - _EPOCH) // _MICROSECOND
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"an Avro value of type {type(value).__name__} has no JSON form")


def _finite(value: object) -> object:
    """`value` with NaN and infinite floats as their text (rare: only records that hold one are walked)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def record_json(record: object) -> str:
    """One Avro record (as fastavro reads it) as JSON text."""
    text = json.dumps(record, default=_json_value, ensure_ascii=False, separators=(",", ":"))
    if any(word in text for word in _NON_FINITE):  # cheap test; a string holding the word costs one re-walk
        text = json.dumps(_finite(record), default=_json_value, ensure_ascii=False, separators=(",", ":"))
    return text


def avro_json_batches(path: Path, batch_records: int = BATCH_RECORDS) -> Iterator[list[str]]:
    """The records of an Avro file as JSON texts, in file order, `batch_records` at a time.

    A file that cannot be read to its end (no Avro header, a damaged or cut block, an unknown codec) is a
    LandingError: its records are never half read, so the file's counts always reconcile."""
    batch: list[str] = []
    try:
        with path.open("rb") as handle:
            if handle.read(len(AVRO_MAGIC)) != AVRO_MAGIC:
                raise LandingError(
                    f"{path.name}: cannot be read as Avro (no Avro header: the file does not start with Obj\\x01)"
                )
            handle.seek(0)
            for record in fastavro.reader(handle):
                batch.append(record_json(record))
                if len(batch) >= batch_records:
                    yield batch
                    batch = []
    except LandingError:
        raise
    except Exception as error:  # fastavro raises ValueError, EOFError, zlib.error ... on a damaged file
        first_line = (str(error).splitlines() or [""])[0]
        raise LandingError(
            f"{path.name}: cannot be read as Avro ({type(error).__name__}: {first_line}); the file is damaged or cut "
            "short: extract the table again"
        ) from None
    if batch:
        yield batch
