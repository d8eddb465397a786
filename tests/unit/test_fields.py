"""Sizes: vigild's own parser next to pydantic's ``ByteSize``.

DESIGN.md suggests ``ByteSize`` for sizes, if it reads the same inputs. It does
not: it takes trailing words, a boolean, fractional bytes, one-letter units,
non-ASCII digits and underscores, where a ``max_body`` key refuses them (as every
other key of the file refuses what it cannot read exactly). This lists both sides;
the day ``ByteSize`` refuses what ours refuses, the last test fails and ours
can go.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import ByteSize, TypeAdapter, ValidationError

from vigild.fields import size_between

OURS = TypeAdapter(Annotated[int, size_between(0, 2**62)])
PYDANTIC = TypeAdapter(ByteSize)

BOTH_READ = {
    "1024": 1024,
    1024: 1024,
    "1B": 1,
    "1 B": 1,
    "64KB": 64_000,
    "64kb": 64_000,
    "64KiB": 65_536,
    "1MiB": 2**20,
    "1 MiB": 2**20,
    " 1mib ": 2**20,
    "2GB": 2 * 10**9,
    "1 GiB": 2**30,
}
BOTH_REFUSE = ["", "-1", "0x10", "1e3", "1Ki", "MiB", 1.5, None, [1]]
ONLY_PYDANTIC_READS = {
    "1 MiB extra": 2**20,  # the rest of the text is ignored
    True: 1,
    "1.5MiB": 1_572_864,
    "1k": 1000,
    "1M": 10**6,
    "1TiB": 2**40,
    "١٢٣": 123,
    "1_000": 1000,
    "10000000000000000": 10**16,  # ours stops at 15 digits
}


def read(adapter: TypeAdapter[Any], value: object) -> int | None:
    try:
        return int(adapter.validate_python(value))
    except ValidationError:
        return None


@pytest.mark.parametrize(("text", "size"), BOTH_READ.items())
def test_both_read_the_same_sizes(text: object, size: int) -> None:
    assert read(OURS, text) == read(PYDANTIC, text) == size


@pytest.mark.parametrize("text", BOTH_REFUSE)
def test_both_refuse(text: object) -> None:
    assert read(OURS, text) is read(PYDANTIC, text) is None


@pytest.mark.parametrize(("text", "size"), ONLY_PYDANTIC_READS.items())
def test_bytesize_reads_what_a_config_key_must_refuse(text: object, size: int) -> None:
    assert read(PYDANTIC, text) == size
    assert read(OURS, text) is None
