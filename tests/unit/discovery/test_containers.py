"""Discovery following the Engine-API-shaped server: events, resyncs, retirement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from docker_api import EngineFactory, FakeEngine
from structlog.testing import capture_logs

from vigild.assembly import Config, load
from vigild.config_sections import ContainerDiscoveryConfig
from vigild.discovery import ContainerDiscovery
from vigild.engine_api import connect

ENABLED = {"vigild.enable": "true"}


class Follower:
    """A running discovery and the config it would make after each change."""

    def __init__(self, engine: FakeEngine, base: Config, retire_after: float) -> None:
        settings = ContainerDiscoveryConfig(engine=engine.url, retire_after=retire_after)
        self.base = base
        self.changes = 0
        self.changed = asyncio.Event()
        self.discovery = ContainerDiscovery(
            settings, connect(engine.url), self._changed, backoff=(0.05, 0.2)
        )

    async def _changed(self) -> None:
        self.changes += 1
        self.changed.set()

    @property
    def config(self) -> Config:
        return self.discovery.merged(self.base)

    def names(self) -> tuple[list[str], list[str]]:
        config = self.config
        return sorted(t.name for t in config.targets), sorted(t.name for t in config.held)

    async def until(self, names: list[str], held: list[str] = [], within: float = 3.0) -> None:  # noqa: B006
        async with asyncio.timeout(within):
            while self.names() != (names, held):
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
def base(tmp_path: Path) -> Config:
    path = tmp_path / "thresholds.toml"
    path.write_text('[[targets]]\nname = "db"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 5432\n')
    return load(path, check_notifier_urls=False)


@pytest.fixture(params=["docker", "podman"])
async def engine(request: pytest.FixtureRequest, engine_factory: EngineFactory) -> FakeEngine:
    return await engine_factory(request.param)


async def follow(
    engine: FakeEngine, base: Config, retire_after: float = 0.3
) -> AsyncIterator[Follower]:
    follower = Follower(engine, base, retire_after)
    follower.discovery.start()
    try:
        yield follower
    finally:
        await follower.discovery.stop()


async def test_a_started_container_is_found_from_its_event(
    engine: FakeEngine, base: Config
) -> None:
    engine.run("old", labels=ENABLED)
    engine.run("ignored")
    async for found in follow(engine, base):
        await found.until(["db", "old"])
        await engine.streaming()
        engine.run("web-1", labels={**ENABLED, "com.docker.compose.service": "web"})
        await found.until(["db", "old", "web"], within=1.0)
        assert found.config.sources == {"old": "old", "web": "web-1"}


async def test_a_destroyed_container_is_held_then_retired(engine: FakeEngine, base: Config) -> None:
    engine.run("web", labels={**ENABLED, "vigild.http.path": "/health"})
    async for found in follow(engine, base):
        await found.until(["db", "web", "web/http"])
        engine.destroy("web")
        await found.until(["db"], held=["web", "web/http"])
        assert set(found.config.rules) >= {"web", "web/http"}  # its alerts stay as they are
        await found.until(["db"])
        assert "web" not in found.config.rules


async def test_a_recreate_under_the_same_name_is_never_retired(
    engine: FakeEngine, base: Config
) -> None:
    engine.run("web", labels=ENABLED)
    async for found in follow(engine, base, retire_after=0.5):
        await found.until(["db", "web"])
        engine.destroy("web")
        await found.until(["db"], held=["web"])
        engine.run("web", labels=ENABLED)
        await found.until(["db", "web"])
        await asyncio.sleep(0.6)  # past when the first one would have retired
        assert found.names() == (["db", "web"], [])


async def test_events_missed_while_the_engine_restarts_are_caught_by_the_resync(
    engine: FakeEngine, base: Config
) -> None:
    engine.run("web", labels=ENABLED)
    with capture_logs() as logs:
        async for found in follow(engine, base, retire_after=60):
            await found.until(["db", "web"])
            await engine.streaming()
            opened = engine.streams_opened
            await engine.stop()
            engine.destroy("web")
            engine.run("api", labels=ENABLED)
            await asyncio.sleep(0.5)  # a few reconnects fail meanwhile
            await engine.start()
            await found.until(["api", "db"], held=["web"])
            await engine.streaming(opened + 1)  # it follows the events again
    told = [e["event"] for e in logs if e["event"].startswith("container events")]
    assert told == ["container events lost, reconnecting", "container events followed again"]


async def test_a_bad_label_skips_its_container_with_one_warning(
    engine: FakeEngine, base: Config
) -> None:
    engine.run("web", labels={**ENABLED, "vigild.interval": "often"})
    engine.run("api", labels=ENABLED)
    with capture_logs() as logs:
        async for found in follow(engine, base):
            await found.until(["api", "db"])
            for _ in range(3):
                found.discovery.merged(base)  # every resync and every reload merges again
    warnings = [e for e in logs if e["event"] == "container skipped: bad label"]
    assert warnings == [
        {
            "event": "container skipped: bad label",
            "log_level": "warning",
            "container": "web",
            "label": "vigild.interval",
            "reason": warnings[0]["reason"],
        }
    ]


async def test_a_file_target_wins_a_name_clash(engine: FakeEngine, base: Config) -> None:
    engine.run("db", labels=ENABLED)
    with capture_logs() as logs:
        async for found in follow(engine, base):
            await asyncio.wait_for(found.changed.wait(), 3)  # the container is seen
            assert found.names() == (["db"], [])
            assert found.config.sources == {}
    assert [e["event"] for e in logs].count("discovered target skipped: the name is taken") == 1


async def test_depends_on_must_name_a_target_and_close_no_loop(
    engine: FakeEngine, base: Config
) -> None:
    engine.run("api", labels={**ENABLED, "vigild.depends_on": "db, cache"})
    engine.run("cache", labels=ENABLED)
    engine.run("a", labels={**ENABLED, "vigild.depends_on": "b"})
    engine.run("b", labels={**ENABLED, "vigild.depends_on": "a"})
    engine.run("web", labels={**ENABLED, "vigild.depends_on": "nothing"})
    with capture_logs() as logs:
        async for found in follow(engine, base):
            await found.until(["api", "cache", "db"])
            [api] = [t for t in found.config.targets if t.name == "api"]
            assert api.depends_on == ["db", "cache"]
    skipped = {
        (e["container"], e["reason"]) for e in logs if e["event"] == "container skipped: bad label"
    }
    assert skipped == {
        ("a", "a depends_on loop"),
        ("b", "a depends_on loop"),
        ("web", "no target named 'nothing'"),
    }
