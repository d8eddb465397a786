"""One build at a time per endpoint, shared by the requests that come while it is pending."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from vigild.daemon.shared import SharedBuilds


class Builds:
    """Builds that finish when the test says so, noting when they start."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = asyncio.Event()

    def of(self, what: str) -> Callable[[], Awaitable[str]]:
        async def build() -> str:
            self.started.append(what)
            await self.release.wait()
            return f"{what} #{len(self.started)}"

        return build


async def test_requests_for_a_pending_build_share_it_and_builds_run_one_at_a_time() -> None:
    shared: SharedBuilds[str] = SharedBuilds()
    builds = Builds()
    first = [asyncio.create_task(shared.get("page 1", builds.of("page 1"))) for _ in range(3)]
    other = asyncio.create_task(shared.get("page 2", builds.of("page 2")))
    await asyncio.sleep(0)
    later = asyncio.create_task(shared.get("page 1", builds.of("page 1")))
    await asyncio.sleep(0)
    assert builds.started == ["page 1"]  # page 2 waits its turn
    builds.release.set()
    assert await asyncio.gather(*first, later) == ["page 1 #1"] * 4
    assert await other == "page 2 #2"
    # Done: the next request builds again.
    assert await shared.get("page 1", builds.of("page 1")) == "page 1 #3"


async def test_a_request_that_leaves_does_not_cancel_the_build_of_the_others() -> None:
    shared: SharedBuilds[str] = SharedBuilds()
    builds = Builds()
    leaving = asyncio.create_task(shared.get("page", builds.of("page")))
    staying = asyncio.create_task(shared.get("page", builds.of("page")))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    builds.release.set()
    assert await staying == "page #1"
    assert leaving.cancelled()
