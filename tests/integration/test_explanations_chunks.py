"""ml/customer_explanations explained in chunks of customers gives the table the one-chunk run gave, row for row
(on a copy of the shared demo deployment's warehouse: no new whole-graph run)."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from orchestration.defs.explanations import write_explanations

pytestmark = pytest.mark.slow


def test_chunks_of_customers_write_the_same_explanations(operated, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(operated.warehouse, warehouse)
    with duckdb.connect(str(warehouse)) as conn:
        whole = conn.execute("select * from ml.customer_explanations").df()
        customers = conn.execute("select count(*) from marts.customer_features").fetchone()[0]
        assert customers > 100  # the demo shop is bigger than one chunk of 37
        rows, written, example = write_explanations(conn, chunk_customers=37)
        chunked = conn.execute("select * from ml.customer_explanations").df()
    assert (rows, written) == (len(whole), customers)
    assert chunked.equals(whole)  # same rows, same order, same types
    assert set(example["segment_kind"]) == {"rfm", "behavioral", "predicted_value"}
