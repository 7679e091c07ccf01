"""PostgreSQL binary COPY rows built column by column, without a Python loop over rows.

``COPY ... FROM STDIN (FORMAT binary)`` spares the server the text parsing
(and hex decoding of geometry) that costs most of a text COPY: a batch of
50 000 parcels of ~40 vertices goes in about 4x faster.  Each tuple is
``int16 field count`` then, per field, ``int32 length`` (-1 for NULL) and the
value's binary form.  Here every piece is an Arrow binary column and
``binary_join_element_wise`` glues them row by row in C++.

Supported column kinds (the staging and layer tables use nothing else):
``int4``, ``int8``, ``bool``, ``float8``, ``date``, ``text``, ``bytea`` (raw WKB
goes to a bytea column) and ``geometry`` (EWKB, which PostGIS's binary input
reads as it reads WKB).
"""

from __future__ import annotations

import struct
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
_PG_EPOCH = np.datetime64(date(2000, 1, 1), "D")


def _fixed(values: np.ndarray, width: int) -> pa.Array:
    """Each element's ``width`` raw bytes, as a binary column."""
    raw = np.ascontiguousarray(values).tobytes()
    arr = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(raw)])
    return arr.cast(pa.large_binary())


def _lengths(lengths: np.ndarray) -> pa.Array:
    return _fixed(lengths.astype(">i4"), 4)


def int4(values: np.ndarray) -> list[pa.Array]:
    """Non-null 32-bit integers."""
    n = len(values)
    return [_lengths(np.full(n, 4)), _fixed(np.asarray(values).astype(">i4"), 4)]


def constant(value: bytes) -> list[pa.Scalar]:
    """The same non-null value (its binary form) on every row: one scalar, broadcast by ``rows``."""
    return [pa.scalar(struct.pack("!i", len(value)) + value, pa.large_binary())]


def text_constant(value: str) -> list[pa.Scalar]:
    return constant(value.encode("utf-8"))


def int8_constant(value: int) -> list[pa.Scalar]:
    return constant(struct.pack("!q", value))


def int8(values: np.ndarray) -> list[pa.Array]:
    """Non-null 64-bit integers."""
    n = len(values)
    return [_lengths(np.full(n, 8)), _fixed(np.asarray(values).astype(">i8"), 8)]


def boolean(values: np.ndarray) -> list[pa.Array]:
    """Non-null booleans."""
    v = np.asarray(values, dtype=bool)
    return [_lengths(np.full(len(v), 1)), _fixed(v.astype(np.uint8), 1)]


def float8(values: np.ndarray) -> list[pa.Array]:
    """Floats; NaN becomes NULL."""
    v = np.asarray(values, dtype=float)
    null = np.isnan(v)
    data = _fixed(np.where(null, 0.0, v).astype(">f8"), 8)
    if null.any():
        data = pc.if_else(pa.array(null), pa.scalar(b"", pa.large_binary()), data)
    return [_lengths(np.where(null, -1, 8)), data]


def date_(values: np.ndarray) -> list[pa.Array]:
    """``datetime64[D]`` values; NaT becomes NULL."""
    v = np.asarray(values, dtype="datetime64[D]")
    null = np.isnat(v)
    days = np.where(null, 0, (v - _PG_EPOCH).astype(np.int64)).astype(">i4")
    data = _fixed(days, 4)
    if null.any():
        data = pc.if_else(pa.array(null), pa.scalar(b"", pa.large_binary()), data)
    return [_lengths(np.where(null, -1, 4)), data]


def varlen(values: pa.Array) -> list[pa.Array]:
    """Text (UTF-8) or bytes, NULLs kept."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    data = values.cast(pa.large_binary())
    lengths = pc.binary_length(data).fill_null(-1).to_numpy(zero_copy_only=False)
    return [_lengths(lengths), data]


def rows(columns: list[list[pa.Array]]) -> memoryview:
    """The COPY payload of one batch: the tuples of ``columns`` (outputs of the functions above)."""
    n = next(len(piece) for col in columns for piece in col if isinstance(piece, pa.Array))
    pieces = [_fixed(np.full(n, len(columns), dtype=">i2"), 2)]
    for col in columns:
        pieces.extend(col)
    joined = pc.binary_join_element_wise(*pieces, pa.scalar(b"", pa.large_binary()),
                                         null_handling="replace", null_replacement=b"")
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64, count=n + 1, offset=joined.offset * 8)
    return memoryview(joined.buffers()[2])[offsets[0]:offsets[-1]]
