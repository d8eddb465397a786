"""A reload is one swap of every part: all of the new config, or none of it."""

from __future__ import annotations

import asyncio
import gc
import importlib
import textwrap
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from targets import closed_port

from vigild import plugins
from vigild.assembly import Config, load
from vigild.daemon.runtime import Runtime

RELAY = '''
from pathlib import Path

from vigild.alerting.notifiers.base import Notifier, Options


class RelayOptions(Options):
    gate: str


class Relay(Notifier):
    """A third party's backend that needs its relay up to be built."""

    Options = RelayOptions

    def __init__(self, config, context):
        super().__init__(config, context)
        if not Path(config.options.gate).exists():
            raise RuntimeError("relay unreachable")

    async def send(self, notification):
        pass
'''


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A ``relay`` notifier installed as a plugin (an entry point, as a package would
    install it), built only while the returned file exists."""
    site = tmp_path / "site"
    info = site / "relay_notifier-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: relay-notifier\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[vigild.notifiers]\nrelay = relay_notifier:Relay\n")
    (site / "relay_notifier.py").write_text(RELAY)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    _forget_plugins()  # an earlier test in this process may have read the entry points
    up = tmp_path / "relay-up"
    up.touch()
    yield up
    _forget_plugins()  # so no later test sees the relay once its site is gone


def _forget_plugins() -> None:
    """vigild reads the installed entry points once per process; this test installs one."""
    for cached in (plugins._installed, plugins._registered, plugins.find):
        cached.cache_clear()


def config(tmp_path: Path, gate: Path, *targets: str) -> Config:
    port = closed_port()
    path = tmp_path / "vigild.toml"
    text = f'[daemon]\nstate_path = "{tmp_path / "state.db"}"\n'
    text += f'\n[[notifiers]]\nname = "relay"\ntype = "relay"\ngate = "{gate}"\n'
    for name in targets:
        text += f'\n[[targets]]\nname = "{name}"\ntype = "http"\nurl = "http://127.0.0.1:{port}/"\n'
    path.write_text(textwrap.dedent(text))
    return load(path)


async def test_a_reload_that_cannot_be_built_leaves_every_running_part(
    tmp_path: Path, gate: Path
) -> None:
    runtime = await Runtime(config(tmp_path, gate, "api")).open()
    try:
        await runtime.run_cycle()
        running = runtime.parts
        [alert] = running.engine.alerts()  # api is down

        gate.unlink()  # noqa: ASYNC240 - a test's own file, before any await that matters
        with pytest.raises(RuntimeError, match="relay unreachable"):
            runtime.prepare(config(tmp_path, gate, "api", "db"))

        assert runtime.parts is running
        assert [w.target.name for w in running.watched] == ["api"]
        assert list(running.engine.alerts()) == [alert]
        await runtime.run_cycle()
        assert sorted(runtime.board.latest) == ["api"]
    finally:
        await runtime.close(drain=0.0)


async def test_a_reload_keeps_the_alerts_and_no_part_of_the_old_config(
    tmp_path: Path, gate: Path
) -> None:
    runtime = await Runtime(config(tmp_path, gate, "api")).open()
    try:
        await runtime.run_cycle()
        [alert] = runtime.parts.engine.alerts()
        old = runtime.parts
        gone = [weakref.ref(p) for p in (old.engine, old.delivery, old.actions, old.heartbeat)]
        runtime.parts.delivery.start()

        new = runtime.prepare(config(tmp_path, gate, "api", "db"))
        await runtime.retire(runtime.swap(new))
        del old
        await asyncio.sleep(0)  # the stopped workers' done callbacks still hold them
        gc.collect()

        assert runtime.parts is new
        assert [r() for r in gone] == [None, None, None, None]
        assert list(new.engine.alerts()) == [alert]  # the same alert, still open
        await runtime.run_cycle()
        assert sorted(runtime.board.latest) == ["api", "db"]
    finally:
        await runtime.close(drain=0.0)
