"""How long vigild's own work keeps the event loop from running anything else.

A timer asks to run every ``period`` seconds; how late it actually runs is the
time the loop spent in a callback that did not yield (a page render, a big
parse, a history write). Two callbacks a second: cheap enough to be always on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["LoopLag"]

PERIOD = 0.5


class LoopLag:
    def __init__(self, observe: Callable[[float], None], period: float = PERIOD) -> None:
        self.observe = observe
        self.period = period
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + self.period
        self._handle = loop.call_at(self._due, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        # asyncio runs a timer up to one clock resolution early: never a negative lag.
        self.observe(max(0.0, loop.time() - self._due))
        self._schedule(loop)
