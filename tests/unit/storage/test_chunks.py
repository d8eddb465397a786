"""History blocks give back exactly what they were given."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from vigild.storage.chunks import MAX_TIME, decode, encode

floats = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)


def _bits(values: list[float]) -> list[int]:
    return [struct.unpack(">Q", struct.pack(">d", v))[0] for v in values]


@st.composite
def blocks(draw: st.DrawFn) -> tuple[list[int], list[list[float]]]:
    first = draw(st.integers(-MAX_TIME + 1, MAX_TIME - 1))
    steps = draw(st.lists(st.integers(0, 2**40), min_size=0, max_size=300))
    times = [first]
    for step in steps:
        if times[-1] + step >= MAX_TIME:
            break
        times.append(times[-1] + step)
    width = draw(st.integers(0, 5))
    column = st.lists(floats, min_size=len(times), max_size=len(times))
    columns = [draw(column) for _ in range(width)]
    return times, columns


@given(blocks())
def test_any_floats_and_increasing_times_round_trip_bit_for_bit(
    block: tuple[list[int], list[list[float]]],
) -> None:
    times, columns = block
    found_times, found_columns = decode(encode(times, columns))
    assert found_times == times
    # Bits, not ==: NaN payloads and -0.0 come back as they went in.
    assert [_bits(c) for c in found_columns] == [_bits(c) for c in columns]


def test_a_steady_series_takes_a_few_bits_a_sample() -> None:
    times = [1_700_000_000_000 + 30_000 * i for i in range(120)]
    block = encode(times, [[1.0] * 120])
    assert len(block) < 60
