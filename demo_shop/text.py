"""Vectorised text columns as Arrow arrays: zero-padded ids, hex ids, vocabulary lookups.

Formatting millions of ids with Python f-strings costs seconds; writing the digits into a fixed-width byte matrix
and handing it to Arrow as a string buffer costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_MAX_INT32_BYTES = 2**31 - 1


def fixed_width_strings(chars: np.ndarray) -> pa.StringArray:
    """One Arrow string per row of a (n, width) uint8 ASCII matrix."""
    n_rows, width = chars.shape
    if n_rows * width > _MAX_INT32_BYTES:
        raise ValueError("too many characters for one Arrow string array; generate in smaller blocks")
    offsets = np.arange(0, (n_rows + 1) * width, width, dtype=np.int32) if n_rows else np.zeros(1, np.int32)
    data = np.ascontiguousarray(chars, dtype=np.uint8)
    return pa.StringArray.from_buffers(n_rows, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data.tobytes()))


def _with_prefix(prefix: str, digits: np.ndarray) -> np.ndarray:
    prefix_bytes = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    return np.hstack([np.broadcast_to(prefix_bytes, (len(digits), len(prefix_bytes))), digits])


def zero_padded(numbers: np.ndarray, width: int, prefix: str = "") -> pa.StringArray:
    """Non-negative integers as zero-padded decimal text, e.g. 4711 -> "0004711" (width 7)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(numbers) and (numbers.min() < 0 or numbers.max() >= 10**width):
        raise ValueError(f"numbers must lie in [0, 10**{width})")
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = ((numbers[:, None] // powers) % 10 + ord("0")).astype(np.uint8)
    return fixed_width_strings(_with_prefix(prefix, digits))


def hex_text(numbers: np.ndarray, width: int, prefix: str = "") -> pa.StringArray:
    """Non-negative integers as fixed-width lowercase hex text, e.g. 255 -> "0000ff" (width 6)."""
    numbers = np.asarray(numbers, dtype=np.uint64)
    shifts = (4 * np.arange(width - 1, -1, -1)).astype(np.uint64)
    digits = _HEX_DIGITS[((numbers[:, None] >> shifts) & np.uint64(15)).astype(np.intp)]
    return fixed_width_strings(_with_prefix(prefix, digits))


def from_vocabulary(vocabulary: Sequence[str], codes: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Plain string column: vocabulary[code] per row, null where `missing` is true (or code < 0)."""
    codes = np.asarray(codes)
    null_mask = codes < 0 if missing is None else (np.asarray(missing) | (codes < 0))
    indices = pa.array(np.where(null_mask, 0, codes).astype(np.int32), mask=null_mask)
    return pa.array(list(vocabulary), pa.string()).take(indices)
