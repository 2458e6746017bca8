"""A CSV file whose lines end both in CRLF and in LF (a Windows export to which another tool appended the day's
rows) stops with a line naming that cause (branch dailyred: `The CSV Parser state machine reached an invalid
state`, with no hint of why), and a file with one kind of line end reads as before."""

import gzip

import duckdb
import pytest

from landing.sources import LandingError, line_ending_counts, load_csv

HEADER = b"order_id,customer_id,ordered_at,order_total\r\n"
CRLF_ROWS = b"o1,c1,2024-03-01,10\r\no2,c1,2024-03-02,20\r\n"
LF_ROWS = b"o3,c2,2024-03-03,5\no4,c2,2024-03-04,6\n"


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_mixed_line_endings_stop_with_their_cause(tmp_path, suffix):
    data = HEADER + CRLF_ROWS + LF_ROWS
    path = tmp_path / f"orders{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    assert line_ending_counts(path) == (3, 2)
    with pytest.raises(LandingError, match=r"both CRLF \(Windows, 3 lines\) and LF \(2 lines\)"):
        load_csv(duckdb.connect(), path, "t")


def test_one_kind_of_line_end_reads(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_bytes(HEADER + CRLF_ROWS)
    assert line_ending_counts(path) == (3, 0)
    assert load_csv(duckdb.connect(), path, "t").rows_in == 2


def test_a_crlf_split_across_read_chunks_is_counted_once(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_bytes(b"a" * ((1 << 20) - 1) + b"\r\nb\r\n")
    assert line_ending_counts(path) == (2, 0)
