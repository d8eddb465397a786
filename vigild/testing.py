"""Helpers for testing code built on vigild: a clock that tests move by hand.

The engine and delivery take ``clock=`` (any ``() -> float``), so a test can
walk an incident through hours in milliseconds.
"""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """Unix time that only moves when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
