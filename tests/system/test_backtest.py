"""``vigild backtest`` against what a real daemon sent: an outage and a latency
excursion recorded through ``vigild run``, replayed from its history file."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from process import Daemon, environment, listen_address, run, until, write_config
from receivers import Receiver
from targets import TargetServer

INTERVAL = 1.0

BODY = """
[alerting]
group_wait = "0s"

[[targets]]
name = "api"
type = "http"
url = "{url}"
interval = "1s"
timeout = "0.9s"
thresholds.latency_seconds = {{ warning = {warning}, critical = 5 }}

[[notifiers]]
name = "hook"
type = "webhook"
url = "{hook}"
"""


def _queued(daemon: Daemon) -> list[tuple[float, str, str, str, str]]:
    """What the daemon queued for its notifier, from its log: (when, target, metric,
    severity, kind)."""
    return [
        (
            datetime.fromisoformat(e["timestamp"]).timestamp(),
            e["target"],
            e["metric"],
            e["severity"],
            e["kind"],
        )
        for e in daemon.events("notification queued")
    ]


def _delivered(receiver: Receiver) -> list[tuple[str, str, str, str]]:
    return [
        (a["labels"]["target"], a["labels"]["metric"], a["labels"]["severity"], a["status"])
        for request in receiver.requests
        for a in request.json["alerts"]
    ]


def _listed(document: dict[str, Any]) -> list[tuple[float, str, str, str, str]]:
    return [
        (n["at"], n["target"], n["metric"], n["severity"], n["kind"])
        for n in document["notifications"]
    ]


def _same(replayed: list[tuple[float, ...]], sent: list[tuple[float, ...]]) -> None:
    """The same notifications in the same order, each within one interval of the real one
    (the replay's time is the reading's; the daemon's, when it queued the message)."""
    assert [r[1:] for r in replayed] == [s[1:] for s in sent]
    for (at, *_), (queued, *_) in zip(replayed, sent, strict=True):
        assert at <= queued <= at + INTERVAL, (at, queued)


async def _backtest(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    finished = await run("backtest", "--format", "json", "--since", "1h", *args, env=env)
    assert finished.returncode == 0, finished.stderr
    document: dict[str, Any] = finished.json
    return document


async def test_backtest_reproduces_what_the_daemon_sent_and_a_lower_threshold_adds_to_it(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    listen = listen_address()
    body = BODY.format(url=target_server.url(), hook=receiver.url(), warning=0.4)
    config = write_config(tmp_path, listen, body)
    daemon = await Daemon(config, listen).start()
    await daemon.wait_ready()

    async def readings(count: int) -> None:
        hits = target_server.hits
        await until(lambda: target_server.hits >= hits + count, what=f"{count} probes")

    await readings(2)
    target_server.status = 503  # the outage
    await receiver.wait_for(1)
    target_server.status = 200
    await receiver.wait_for(2)
    await readings(2)
    target_server.delay = 0.5  # the latency excursion: a warning
    await receiver.wait_for(3)
    await readings(2)
    target_server.delay = 0.0
    await receiver.wait_for(4, timeout=10)
    await readings(2)
    small = time.time()
    target_server.delay = 0.2  # under the warning line: nothing is sent
    await readings(3)
    target_server.delay = 0.0
    await readings(3)
    sent = _queued(daemon)
    assert [s[2:] for s in sent] == [
        ("up", "critical", "firing"),
        ("up", "critical", "resolved"),
        ("latency_seconds", "warning", "firing"),
        ("latency_seconds", "warning", "resolved"),
    ]
    assert _delivered(receiver) == [
        (t, m, sev, "resolved" if kind == "resolved" else "firing") for _, t, m, sev, kind in sent
    ]

    # While the daemon runs: the history is read beside its writer, the state file's
    # lock is not taken.
    document = await _backtest("--config", str(config))
    assert "running" not in document
    assert [t["tier"] for t in document["tiers"]] == ["raw"]
    _same(_listed(document), sent)
    assert document["summary"]["pages"] == 1
    assert document["summary"]["targets"] == {"api": {"notifications": 4, "pages": 1}}

    # A lowered warning line, beside the running config (found through VIGILD_CONFIG).
    lowered = tmp_path / "lowered.toml"
    lowered.write_text(config.read_text().replace("warning = 0.4", "warning = 0.1"))
    both = await _backtest("--config", str(lowered), env=environment(VIGILD_CONFIG=str(config)))
    assert both["config"] == str(lowered) and both["running"]["config"] == str(config)
    _same(_listed(both["running"]), sent)
    extra = [n for n in _listed(both) if n not in _listed(both["running"])]
    assert [n[1:] for n in extra] == [
        ("api", "latency_seconds", "warning", "firing"),
        ("api", "latency_seconds", "warning", "resolved"),
    ]
    assert small <= extra[0][0] < extra[1][0]
    assert await daemon.stop() == 0

    # With the daemon stopped, after a cron run (which records its probe too).
    once = await run("--once", "--config", str(config))
    assert once.returncode == 0, once.stderr
    after = await _backtest("--config", str(config))
    _same(_listed(after), sent)
    text = await run("backtest", "--config", str(config), "--since", "1h")
    assert text.returncode == 0, text.stderr
    assert "api up critical firing" in text.stdout
