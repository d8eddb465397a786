"""The daemon in this process: its lifecycle in order, a reload that fails half-way and
rolls back, and readiness when no cycle completes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from process import listen_address, until
from receivers import Receiver
from targets import TargetServer
from two_targets import two_targets

from vigild.assembly import load
from vigild.daemon.app import Daemon as InProcessDaemon
from vigild.daemon.app import LifecycleError
from vigild.daemon.scheduler import CycleScheduler, Plan
from vigild.testing import FakeClock


async def test_readyz_turns_unready_when_no_cycle_completes(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    target_server.route("/healthy")
    target_server.route("/hung")
    config = two_targets(tmp_path / "t.toml", target_server, receiver, listen_address())
    clock = FakeClock()
    app = InProcessDaemon(load(config), monotonic=clock)
    await app.setup()
    await app.start()
    try:
        assert app.ready
        app.scheduler.pause()  # a stalled scheduler: cycles stop completing
        clock.advance(3 * 1.0 - 0.1)  # just short of three of the config's 1 s intervals
        assert app.ready
        clock.advance(0.2)
        assert not app.ready
        app.scheduler._scheduler.resume()
        await until(lambda: app.ready, within=10, what="ready again once cycles complete")
    finally:
        await app.shutdown()


async def test_lifecycle_out_of_order_fails_loudly(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        f'[daemon]\nlisten = "{listen_address()}"\nstate_path = "{tmp_path / "s.db"}"\n'
        '[[targets]]\nname = "host"\ntype = "host"\n'
    )
    app = InProcessDaemon(load(path))
    with pytest.raises(LifecycleError, match="cannot start a daemon that is new"):
        await app.start()
    await app.setup()
    try:
        with pytest.raises(LifecycleError, match="cannot set up a daemon that is set up"):
            await app.setup()
        await app.start()
        assert app.ready
    finally:
        await app.shutdown()
    assert not app.ready
    await app.shutdown()  # a second stop is harmless


async def test_a_reload_that_fails_halfway_leaves_the_running_config(
    tmp_path: Path,
    target_server: TargetServer,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    healthy = target_server.route("/healthy")
    target_server.route("/hung")
    config = two_targets(tmp_path / "t.toml", target_server, receiver, listen_address())
    app = InProcessDaemon(load(config))
    await app.setup()
    await app.start()
    try:
        config.write_text(config.read_text().replace('name = "hung"', 'name = "renamed"'))
        calls = 0

        def failing(cycles: Mapping[float, Sequence[object]]) -> Plan:
            nonlocal calls
            calls += 1
            raise OverflowError("date value out of range")

        monkeypatch.setattr(CycleScheduler, "plan", staticmethod(failing))
        await app.reload()
        assert calls == 1
        rejected = app.metrics.registry.get_sample_value(
            "vigild_reloads_total", {"outcome": "rejected"}
        )
        assert rejected == 1
        assert [t.name for t in app.config.targets] == ["healthy", "hung"]
        assert [w.target.name for w in app.runtime.watched] == ["healthy", "hung"]
        hits = healthy.hits
        await until(lambda: healthy.hits >= hits + 2, what="probing goes on, on the old config")
        assert app.ready
    finally:
        await app.shutdown()
