"""Cycles keep their schedule: a hung target costs only its own probes, and reloads
apply whole, one at a time, however many SIGHUPs arrive."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from process import Daemon, environment, listen_address, sample, scrape, until
from receivers import Receiver
from targets import TargetServer, closed_port
from two_targets import two_targets


async def metric(daemon: Daemon, name: str, **labels: str) -> float:
    return sample(await scrape(daemon), name, **labels)


async def test_a_hung_target_does_not_slow_the_others_of_its_interval(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    healthy = target_server.route("/healthy")
    target_server.route("/hung", delay=30.0)
    listen = listen_address()
    config = two_targets(tmp_path / "t.toml", target_server, receiver, listen)
    daemon = await Daemon(config, listen).start()
    await daemon.wait_ready()
    await until(lambda: healthy.hits >= 2, what="the first probes")

    started, hits = time.monotonic(), healthy.hits
    cycles = await metric(daemon, "vigild_cycle_lateness_seconds_count", interval="1s")
    await until(lambda: healthy.hits >= hits + 6, within=20, what="six more probes")
    elapsed = time.monotonic() - started
    probed = healthy.hits - hits
    started_cycles = (
        await metric(daemon, "vigild_cycle_lateness_seconds_count", interval="1s") - cycles
    )
    # Every cycle starts on schedule and probes the healthy target (a second's slack
    # for the probe in flight at each end of the window).
    assert started_cycles >= elapsed - 2
    assert probed >= 0.95 * started_cycles - 1
    # Only the hung target pays: skipped while its previous probe is in flight.
    assert await metric(daemon, "vigild_probes_skipped_total", target="healthy") == 0
    assert await metric(daemon, "vigild_probes_skipped_total", target="hung") >= 1
    assert len(daemon.events("probe skipped: the previous one is still running")) == 1
    assert await daemon.stop() == 0


async def test_a_hup_storm_reloads_one_at_a_time_and_pages_once(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    target_server.route("/healthy", status=503)
    target_server.route("/hung", status=200)
    receiver.status = 503  # the firing waits in the outbox, in backoff
    listen = listen_address()
    config = two_targets(tmp_path / "t.toml", target_server, receiver, listen)
    daemon = await Daemon(config, listen).start()
    await daemon.wait_ready()
    await receiver.wait_for(1)

    for _ in range(50):
        daemon.signal(signal.SIGHUP)
        await asyncio.sleep(0.02)
    await daemon.wait_log("config reloaded")
    receiver.status = 200
    accepted_from = len(receiver.requests)
    await until(lambda: len(receiver.requests) > accepted_from, within=20, what="the delivery")
    await receiver.wait_quiet(3.0)

    delivered = [r.json for r in receiver.requests[accepted_from:]]
    assert [(h["status"], a["labels"]["target"]) for h in delivered for a in h["alerts"]] == [
        ("firing", "healthy")
    ]
    # HUPs that came during a reload made one more reload, not one each.
    assert 1 <= len(daemon.events("config reloaded")) < 50
    assert await metric(daemon, "vigild_reloads_total", outcome="applied") == len(
        daemon.events("config reloaded")
    )
    assert not [line for line in daemon.log if "never retrieved" in line or "Traceback" in line]
    assert await daemon.stop() == 0


async def test_a_reload_check_config_would_refuse_keeps_everything_running(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    healthy = target_server.route("/healthy")
    target_server.route("/hung")
    listen = listen_address()
    config = two_targets(tmp_path / "t.toml", target_server, receiver, listen)
    daemon = await Daemon(config, listen).start()
    await daemon.wait_ready()

    config.write_text(config.read_text().replace('interval = "1s"', "interval = 1e300"))
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log("reload rejected, keeping the running config")
    assert await metric(daemon, "vigild_reloads_total", outcome="rejected") == 1
    hits = healthy.hits
    await until(lambda: healthy.hits >= hits + 2, what="probes go on after the rejected reload")
    assert (await daemon.get("/readyz"))[0] == 200
    assert await daemon.stop() == 0


async def test_a_clean_stop_removes_the_unix_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "vigild.sock"
    config = tmp_path / "t.toml"
    config.write_text(
        f'[daemon]\nlisten = "unix:{socket_path}"\nstate_path = "{tmp_path / "s.db"}"\n'
        '[[targets]]\nname = "host"\ntype = "host"\n'
    )
    daemon = Daemon(config, "127.0.0.1:1", environment())
    await daemon.start()
    await until(socket_path.exists, what="the socket")
    await daemon.wait_log("vigild started")
    assert await daemon.stop() == 0
    assert not socket_path.exists()


async def test_listening_beyond_loopback_without_a_token_warns(tmp_path: Path) -> None:
    port = closed_port()
    config = tmp_path / "t.toml"
    config.write_text(
        f'[daemon]\nlisten = "0.0.0.0:{port}"\nstate_path = "{tmp_path / "s.db"}"\n'
        '[[targets]]\nname = "host"\ntype = "host"\n'
    )
    daemon = await Daemon(config, f"127.0.0.1:{port}", environment()).start()
    await daemon.wait_ready()
    assert await daemon.stop() == 0
    [warning] = [e for e in daemon.log if "open to the network" in e]
    assert '"level": "warning"' in warning
