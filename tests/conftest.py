"""Shared fixtures: real servers on loopback, nothing mocked."""

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from local_time import central_european_time
from process import RUNNING

pytest_plugins = ["targets", "receivers", "docker_api", "sdnotify_socket", "action_rig"]


@pytest.fixture(autouse=True)
async def no_daemon_outlives_its_test() -> AsyncIterator[None]:
    """A test that fails half-way must not leave ``vigild run`` behind."""
    yield
    for daemon in list(RUNNING):
        await daemon.kill()


@pytest.fixture
def local_zone() -> Iterator[str]:
    """The process's local zone set to Central European time for the test."""
    with central_european_time() as zone:
        yield zone


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
