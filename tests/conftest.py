"""Shared fixtures: real servers on loopback, nothing mocked."""

from collections.abc import AsyncIterator

import aiohttp
import pytest
from process import RUNNING

pytest_plugins = ["targets", "receivers", "docker_api", "sdnotify_socket"]


@pytest.fixture(autouse=True)
async def no_daemon_outlives_its_test() -> AsyncIterator[None]:
    """A test that fails half-way must not leave ``vigild run`` behind."""
    yield
    for daemon in list(RUNNING):
        await daemon.kill()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
