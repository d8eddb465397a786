"""Shared fixtures: real servers on loopback, nothing mocked."""

import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from process import RUNNING

pytest_plugins = ["targets", "receivers", "docker_api", "sdnotify_socket", "action_rig"]


@pytest.fixture(autouse=True)
async def no_daemon_outlives_its_test() -> AsyncIterator[None]:
    """A test that fails half-way must not leave ``vigild run`` behind."""
    yield
    for daemon in list(RUNNING):
        await daemon.kill()


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The process's local zone set to Central European time (a POSIX rule, so no tz
    database is needed), for whatever shows local times; subprocesses inherit it."""
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
    time.tzset()
    yield "CET"
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
