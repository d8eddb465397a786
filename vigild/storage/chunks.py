"""One block of a series, compressed: millisecond timestamps and float columns.

Timestamps are stored as delta-of-deltas and each column's floats as the XOR
of consecutive values' bits, as Prometheus's TSDB (the Gorilla paper) does;
but where Gorilla packs bits one by one, which in Python costs microseconds a
sample, the integers here are packed whole, their bytes regrouped by position
(every first byte, then every second byte, ...) and the lot compressed with
zlib. A steady series' deltas-of-deltas and XORs are mostly zero bytes, which
regrouped make long runs zlib takes to almost nothing; every step runs in C.
bench/history.py compares the sizes with Gorilla's bit counts.

Any float round-trips bit for bit (NaN, infinities, -0.0); timestamps must be
non-decreasing and within ±2**61 ms, so a delta-of-delta fits 64 bits.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from itertools import accumulate, pairwise
from operator import xor

__all__ = ["MAX_TIME", "decode", "encode"]

MAX_TIME = 2**61
"""Timestamps are milliseconds strictly within ±MAX_TIME."""

_VERSION = 1
_HEADER = struct.Struct(">BIBq")  # version, samples, columns, first timestamp


def _regroup(packed: bytes) -> bytes:
    """Bytes of 8-byte words, by position: every word's first byte, then every second..."""
    return b"".join(packed[i::8] for i in range(8))


def _ungroup(grouped: bytes | memoryview, count: int) -> bytes:
    words = bytearray(8 * count)
    for i in range(8):
        words[i::8] = grouped[i * count : (i + 1) * count]
    return bytes(words)


def encode(times: Sequence[int], columns: Sequence[Sequence[float]]) -> bytes:
    """Compress ``times`` (at least one) and ``columns``, each as long as ``times``."""
    count = len(times)
    if count == 0:
        raise ValueError("a block holds at least one sample")
    if any(len(column) != count for column in columns):
        raise ValueError("every column needs one value per timestamp")
    first = times[0]
    deltas = [b - a for a, b in pairwise(times)]
    if deltas and min(deltas) < 0:
        raise ValueError("timestamps must not decrease")
    if not -MAX_TIME < first <= times[-1] < MAX_TIME:
        raise ValueError("timestamps out of range")
    dods = [b - a for a, b in zip([0, *deltas], deltas, strict=False)]
    parts = [_HEADER.pack(_VERSION, count, len(columns), first)]
    parts.append(_regroup(struct.pack(f">{len(dods)}q", *dods)))
    for column in columns:
        bits = struct.unpack(f">{count}Q", struct.pack(f">{count}d", *column))
        xors = [a ^ b for a, b in zip((0, *bits), bits, strict=False)]
        parts.append(_regroup(struct.pack(f">{count}Q", *xors)))
    return zlib.compress(b"".join(parts), 6)


def decode(block: bytes) -> tuple[list[int], list[list[float]]]:
    """The timestamps and columns ``encode`` was given."""
    data = memoryview(zlib.decompress(block))
    version, count, width, first = _HEADER.unpack_from(data)
    if version != _VERSION:
        raise ValueError(f"unknown history block version {version}")
    offset = _HEADER.size
    size = 8 * (count - 1)
    dods = struct.unpack(f">{count - 1}q", _ungroup(data[offset : offset + size], count - 1))
    offset += size
    times = list(accumulate(accumulate(dods), initial=first))
    columns: list[list[float]] = []
    for _ in range(width):
        xors = struct.unpack(f">{count}Q", _ungroup(data[offset : offset + 8 * count], count))
        offset += 8 * count
        bits = accumulate(xors, xor)
        columns.append(list(struct.unpack(f">{count}d", struct.pack(f">{count}Q", *bits))))
    return times, columns
