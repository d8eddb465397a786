"""One build at a time of what an endpoint serves, shared by the requests that ask for it.

At 10,000 targets a status page takes seconds of a worker thread and megabytes while
it is built. Without this, a burst of requests (a dashboard left open in ten tabs, a
reload of each) starts a thread and a copy of everything per request; with it, a
request joins the build queued or in flight for the same thing, and the builds of an
endpoint run one after the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SharedBuilds"]

T = TypeVar("T")


class SharedBuilds(Generic[T]):
    def __init__(self) -> None:
        self._turn = asyncio.Lock()
        self._builds: dict[Hashable, asyncio.Future[T]] = {}

    async def get(self, key: Hashable, build: Callable[[], Awaitable[T]]) -> T:
        """``build()``'s result. Requests for ``key`` while its build is queued or running
        share that build: what it shows was taken when it started, at most one build
        earlier than the request. Builds run one at a time."""
        future = self._builds.get(key)
        if future is None:
            future = self._builds[key] = asyncio.ensure_future(self._run(key, build))
            # A client that leaves does not cancel the others' build; nor is its error
            # reported as never retrieved when every client has left.
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(future)

    async def _run(self, key: Hashable, build: Callable[[], Awaitable[T]]) -> T:
        try:
            async with self._turn:
                return await build()
        finally:
            del self._builds[key]
