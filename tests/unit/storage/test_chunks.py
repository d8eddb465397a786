"""History blocks give back exactly what they were given; values are rounded apart."""

from __future__ import annotations

import math
import random
import struct
import sys

from hypothesis import given
from hypothesis import strategies as st

from vigild.storage.chunks import MAX_TIME, decode, encode, keep_bits

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


def test_blocks_of_the_first_format_are_still_read() -> None:
    # Written by the encoder before 12 bits were kept: consecutive values' bits XORed.
    first_format = bytes.fromhex(
        "789c6364606060666260605c2c1113c0800c4a190c52ec1dfe7716fe303060d8b78f819797e1ed5b06"
        "0d0d86de5e067b7bfb0f1f3e3060000028680eaf"
    )
    times, (values, up) = decode(first_format)
    assert times == [1_800_000_000_000, 1_800_000_030_000, 1_800_000_060_100]
    assert _bits(values) == _bits([0.0123, math.nan, -0.0]) and up == [1.0, 0.0, 1.0]


@given(st.lists(floats, max_size=50), st.integers(1, 51))
def test_kept_bits_are_within_half_a_step_and_whole_numbers_are_exact(
    values: list[float], bits: int
) -> None:
    kept = keep_bits(values, bits)
    for value, found in zip(values, kept, strict=True):
        if not math.isfinite(value) or value.is_integer():
            assert _bits([found]) == _bits([value])
        else:
            # Below the smallest normal float the steps are absolute, not relative.
            scale = max(abs(value), sys.float_info.min)
            assert abs(found - value) <= scale * 2.0 ** -(bits + 1)
    assert _bits(keep_bits(kept, bits)) == _bits(kept)  # rounding twice changes nothing


def test_a_noisy_latency_kept_to_twelve_bits_takes_about_two_bytes_a_sample() -> None:
    """A probe's latency is noise in every bit: stored whole, an hour of it takes 8 bytes a
    sample; rounded, the encoder shifts the zero bits out once for the block."""
    rng = random.Random(5)
    times = [1_800_000_000_000 + 30_000 * i for i in range(120)]
    latency = [rng.lognormvariate(math.log(0.004), 0.3) for _ in times]
    assert len(encode(times, [latency])) > 7 * 120
    assert len(encode(times, [keep_bits(latency, 12)])) < 2.5 * 120
