"""File schemas and an append-only CSV/Parquet writer, so big tables can be written block by block."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from demo_shop import config as c

FileFormat = Literal["csv", "parquet"]
FILE_FORMATS: tuple[str, ...] = ("csv", "parquet")

_TEXT, _MONEY, _TIME, _FLAG = pa.string(), pa.float64(), pa.timestamp("s"), pa.bool_()
_TYPES: dict[str, pa.DataType] = {
    "ordered_at": _TIME,
    "occurred_at": _TIME,
    "signed_up_at": _TIME,
    "order_total": _MONEY,
    "discount_amount": _MONEY,
    "purchase_rate": _MONEY,
    "dropout_rate": _MONEY,
    "future_revenue": _MONEY,
    "future_order_count": pa.int64(),
    "marketing_consent": _FLAG,
    "is_alive_at_end_date": _FLAG,
    "converts_in_future": _FLAG,
}


def schema_of(columns: tuple[str, ...]) -> pa.Schema:
    """Arrow schema for these columns: text unless the column is a time, an amount, a count or a flag."""
    return pa.schema([(name, _TYPES.get(name, _TEXT)) for name in columns])


ORDERS_SCHEMA = schema_of(c.ORDER_COLUMNS)
CUSTOMERS_SCHEMA = schema_of(c.CUSTOMER_COLUMNS)
EVENTS_SCHEMA = schema_of(c.EVENT_COLUMNS)
CUSTOMERS_TRUTH_SCHEMA = schema_of(c.CUSTOMER_TRUTH_COLUMNS)
PROSPECTS_TRUTH_SCHEMA = schema_of(c.PROSPECT_TRUTH_COLUMNS)


class TableFileWriter:
    """Writes one CSV (header once) or Parquet file with a fixed schema from any number of tables.

    Writing runs on one background thread (Arrow releases the GIL while encoding), so the caller can build the
    next block meanwhile; at most one block waits, which bounds memory, and blocks land in call order.
    """

    def __init__(self, path: Path, schema: pa.Schema, file_format: FileFormat) -> None:
        if file_format not in FILE_FORMATS:
            raise ValueError(f"file_format must be one of {FILE_FORMATS}, got {file_format!r}")
        self.path, self.schema, self.rows = path, schema, 0
        if file_format == "parquet":
            self._writer: pq.ParquetWriter | pa_csv.CSVWriter = pq.ParquetWriter(path, schema, compression="zstd")
        else:
            self._writer = pa_csv.CSVWriter(path, schema)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-shop-writer")
        self._pending: Future[None] | None = None

    def _wait_for_pending(self) -> None:
        if self._pending is not None:
            self._pending.result()  # re-raises a write error here, in the caller's thread
            self._pending = None

    def write(self, table: pa.Table) -> None:
        """Append the rows of `table` (columns in schema order, cast to the schema's types)."""
        block = table.select(self.schema.names).cast(self.schema)
        self._wait_for_pending()
        self._pending = self._executor.submit(self._writer.write_table, block)
        self.rows += table.num_rows

    def close(self) -> None:
        """Finish pending writes and close the file."""
        try:
            self._wait_for_pending()
        finally:
            self._executor.shutdown(wait=True)
            self._writer.close()

    def __enter__(self) -> TableFileWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def write_table(path: Path, table: pa.Table, schema: pa.Schema, file_format: FileFormat) -> int:
    """Write one whole table to one file; returns its row count."""
    with TableFileWriter(path, schema, file_format) as writer:
        writer.write(table)
        return writer.rows
