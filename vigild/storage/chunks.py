"""One block of a series, compressed: millisecond timestamps and float columns.

Timestamps are stored as delta-of-deltas, as Prometheus's TSDB (the Gorilla
paper) does. A column's floats are stored as the differences of consecutive
values' bits read as integers: for values of one sign, close values have close
bits, so the differences are small. Their trailing zero bits, which every
difference shares when the values were rounded (``keep_bits``), are shifted out
once for the column, and the rest is zigzag-coded so small negatives are small
too. Where Gorilla packs bits one by one, which in Python costs microseconds a
sample, the integers here are packed whole, their bytes regrouped by position
(every first byte, then every second byte, ...) and the lot compressed with
zlib: a steady or rounded series leaves long runs of zero bytes, which zlib
takes to almost nothing, and every step runs in C. bench/history.py measures
the sizes.

``encode`` and ``decode`` are lossless: any float round-trips bit for bit (NaN,
infinities, -0.0); timestamps must be non-decreasing and within ±2**61 ms, so a
delta-of-delta fits 64 bits. Blocks of the first format (consecutive values'
bits XORed) are still read.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from functools import reduce
from itertools import accumulate, pairwise
from operator import or_, sub, xor

__all__ = ["MAX_TIME", "decode", "encode", "keep_bits"]

MAX_TIME = 2**61
"""Timestamps are milliseconds strictly within ±MAX_TIME."""

_VERSION = 2
_XOR_VERSION = 1
_HEADER = struct.Struct(">BIBq")  # version, samples, columns, first timestamp
_WORD = 2**64
_SIGN = 2**63


def keep_bits(values: Sequence[float], bits: int) -> list[float]:
    """``values`` rounded to ``bits`` bits of mantissa (to nearest; a relative error of at
    most 2**-(bits + 1)); whole numbers, infinities and NaN are kept exactly, so counts,
    states and status codes never change."""
    if not 0 < bits < 52:
        raise ValueError("keep 1 to 51 bits of mantissa")
    count = len(values)
    shift = 52 - bits
    half = 1 << (shift - 1)
    words = struct.unpack(f">{count}Q", struct.pack(f">{count}d", *values))
    # Adding half a step to the magnitude rounds it; a carry into the exponent is the
    # next power of two, which is right. Only finite non-integers get here, and every
    # float near the largest finite one is a whole number, so nothing becomes infinite.
    kept = [
        word if value.is_integer() or not math.isfinite(value) else (word + half) >> shift << shift
        for value, word in zip(values, words, strict=True)
    ]
    return list(struct.unpack(f">{count}d", struct.pack(f">{count}Q", *kept)))


def _regroup(packed: bytes) -> bytes:
    """Bytes of 8-byte words, by position: every word's first byte, then every second..."""
    return b"".join(packed[i::8] for i in range(8))


def _ungroup(grouped: bytes | memoryview, count: int) -> bytes:
    words = bytearray(8 * count)
    for i in range(8):
        words[i::8] = grouped[i * count : (i + 1) * count]
    return bytes(words)


def _encode_column(column: Sequence[float]) -> bytes:
    count = len(column)
    words = struct.unpack(f">{count}q", struct.pack(f">{count}d", *column))
    differences = list(map(sub, words, (0, *words[:-1])))
    if max(differences) >= _SIGN or min(differences) < -_SIGN:
        # Across signs a difference can overflow 64 bits: taken modulo 2**64 (read as
        # signed) it fits, and adding the differences back modulo 2**64 still gives
        # the words exactly.
        differences = [(d + _SIGN) % _WORD - _SIGN for d in differences]
    union = reduce(or_, differences)
    shift = (union & -union).bit_length() - 1 if union else 0
    # Zigzag: small negatives become small positives, and every value fits 64 bits.
    zigzag = [((d >> shift) << 1) ^ (d >> 63) for d in differences]
    return bytes([shift]) + _regroup(struct.pack(f">{count}Q", *zigzag))


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
    parts.extend(_encode_column(column) for column in columns)
    return zlib.compress(b"".join(parts), 6)


def _decode_column(data: memoryview, count: int) -> list[float]:
    shift = data[0]
    zigzag = struct.unpack(f">{count}Q", _ungroup(data[1 : 1 + 8 * count], count))
    differences = [((z >> 1) ^ -(z & 1)) << shift for z in zigzag]
    words = [w % _WORD for w in accumulate(differences)]
    return list(struct.unpack(f">{count}d", struct.pack(f">{count}Q", *words)))


def _decode_xor_column(data: memoryview, count: int) -> list[float]:
    xors = struct.unpack(f">{count}Q", _ungroup(data[: 8 * count], count))
    bits = accumulate(xors, xor)
    return list(struct.unpack(f">{count}d", struct.pack(f">{count}Q", *bits)))


def decode(block: bytes) -> tuple[list[int], list[list[float]]]:
    """The timestamps and columns ``encode`` was given."""
    data = memoryview(zlib.decompress(block))
    version, count, width, first = _HEADER.unpack_from(data)
    if version not in (_VERSION, _XOR_VERSION):
        raise ValueError(f"unknown history block version {version}")
    offset = _HEADER.size
    size = 8 * (count - 1)
    dods = struct.unpack(f">{count - 1}q", _ungroup(data[offset : offset + size], count - 1))
    offset += size
    times = list(accumulate(accumulate(dods), initial=first))
    columns: list[list[float]] = []
    for _ in range(width):
        if version == _XOR_VERSION:
            columns.append(_decode_xor_column(data[offset:], count))
            offset += 8 * count
        else:
            columns.append(_decode_column(data[offset:], count))
            offset += 1 + 8 * count
    return times, columns
