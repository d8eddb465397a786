"""The process's local zone set to Central European time (a POSIX rule, so no tz
database is needed), for whatever shows local times; subprocesses inherit it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def central_european_time() -> Iterator[str]:
    """Local time is Central European time inside; the zone's name is yielded."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
        time.tzset()
        yield "CET"
    time.tzset()
