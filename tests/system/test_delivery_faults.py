"""Alert delivery under faults, with ``vigild run`` as a real process.

A receiver that is down, a daemon killed with SIGKILL mid-retry, a thousand
alerts opening at once, an outbox at its bound, one notifier hanging beside a
healthy one, and the heartbeat. Everything is real: subprocesses, HTTP on
127.0.0.1, the SQLite state file.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
import time
from pathlib import Path

import pytest
from process import (
    INSTANCE,
    Daemon,
    Samples,
    listen_address,
    run,
    sample,
    scrape,
    start,
    until,
    wait_metrics,
    write_config,
)
from receivers import Receiver, Receivers, alerts_of
from targets import TargetServer

from vigild.model import Identity

HOST = Identity(INSTANCE)


def notifications(samples: Samples, notifier: str, outcome: str) -> float:
    return sample(samples, "vigild_notifications_total", notifier=notifier, outcome=outcome)


def pending(samples: Samples, notifier: str) -> float:
    return sample(samples, "vigild_outbox_pending", notifier=notifier)


def outbox_rows(config: Path) -> list[tuple[str, int]]:
    """(notifier, attempts) of every message in the state file's outbox, read directly."""
    db = sqlite3.connect(config.parent / "state.db", timeout=5)
    try:
        rows = db.execute("SELECT notifier, attempts FROM outbox ORDER BY id").fetchall()
    finally:
        db.close()
    return [(str(notifier), int(attempts)) for notifier, attempts in rows]


def queued(daemon: Daemon, notifier: str) -> int:
    return sum(1 for e in daemon.events("notification queued") if e["notifier"] == notifier)


async def test_sigkill_during_retries_delivers_the_alert_exactly_once_after_restart(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    target_server.status = 503
    receiver.status = 503
    listen = listen_address()
    config = write_config(
        tmp_path,
        listen,
        f"""interval = "1s"

[alerting]
group_wait = "0s"

[[targets]]
name = "api"
type = "http"
url = "{target_server.url()}"

[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}"
""",
    )
    api_up = HOST.fingerprint("api", "up")
    daemon = await start(config, listen)
    await daemon.wait_log("notification retry")
    await daemon.kill()
    assert daemon.events("notification sent") == []
    assert {a for a, _ in alerts_of(receiver.requests)} == {api_up}  # what was refused
    [(notifier, attempts)] = outbox_rows(config)  # the outbox kept it through SIGKILL
    assert notifier == "hook" and attempts >= 1

    receiver.clear()
    receiver.status = 200
    restarted = await start(config, listen)
    await receiver.wait_for(1, timeout=5)
    hits = target_server.hits
    await until(lambda: target_server.hits >= hits + 2, what="two cycles after the delivery")
    await receiver.wait_quiet(0.4)
    assert alerts_of(receiver.requests) == [(api_up, "firing")]
    assert receiver.requests[0].json["status"] == "firing"
    assert outbox_rows(config) == []
    samples = await scrape(restarted)
    assert notifications(samples, "hook", "sent") == 1
    assert pending(samples, "hook") == 0
    assert await restarted.stop() == 0


ALERTS = 1000
PER_MESSAGE = 50


async def test_a_thousand_alerts_outlast_a_receiver_outage_and_arrive_grouped_once(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    # The receiver is down "for a minute" in spirit: what is tested is the outbox and
    # the backoff (every alert kept, the head retried, the others waiting behind it).
    # The outage lasts three refused attempts (about 3 s); a longer one only adds retries.
    target_server.status = 503  # every path: all targets fail in the first cycle
    receiver.status = 503
    listen = listen_address()
    targets = "".join(
        f'\n[[targets]]\nname = "t{n:04d}"\ntype = "http"\nurl = "{target_server.url(f"/t/{n}")}"\n'
        for n in range(ALERTS)
    )
    config = write_config(
        tmp_path,
        listen,
        f"""interval = "2s"

[alerting]
group_wait = "1s"
max_alerts_per_message = {PER_MESSAGE}
{targets}
[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}"
""",
    )
    daemon = await start(config, listen)
    await receiver.wait_for(3, timeout=15)
    refused = len(receiver.requests)
    receiver.status = 200  # requests from index `refused` on are answered 200
    before = await scrape(daemon)
    assert pending(before, "hook") >= math.ceil(ALERTS / PER_MESSAGE)

    wanted = {HOST.fingerprint(f"t{n:04d}", "up") for n in range(ALERTS)}
    await until(
        lambda: {a for a, _ in alerts_of(receiver.requests[refused:])} >= wanted,
        within=15,
        what="every alert delivered",
    )
    samples = await wait_metrics(
        daemon,
        lambda s: (
            pending(s, "hook") == 0
            and notifications(s, "hook", "sent") == len(receiver.requests) - refused
        ),
        what="sent and pending to agree with the receiver",
    )
    # One more full cycle of the same outage: nothing new to say.
    hits = target_server.hits
    await until(lambda: target_server.hits >= hits + ALERTS, within=6, what="a further cycle")
    await receiver.wait_quiet(0.3)

    accepted = receiver.requests[refused:]
    delivered = alerts_of(accepted)
    assert len(delivered) == ALERTS  # each alert exactly once
    assert {a for a, _ in delivered} == wanted
    assert {status for _, status in delivered} == {"firing"}
    assert math.ceil(ALERTS / PER_MESSAGE) <= len(accepted) <= math.ceil(ALERTS / PER_MESSAGE) + 2
    assert all(len(r.json["alerts"]) <= PER_MESSAGE for r in accepted)
    # The refused attempts were all the head message (nothing overtook it), backing off:
    # 1 s, then 2 s, each with up to 20 % jitter off.
    head = alerts_of(accepted[:1])
    assert all(alerts_of([r]) == head for r in receiver.requests[:refused])
    first, second, third = (r.received_at for r in receiver.requests[:3])
    assert 0.75 <= second - first < 2.0
    assert 1.55 <= third - second < 3.5

    samples = await scrape(daemon)
    assert notifications(samples, "hook", "sent") == len(accepted)
    assert notifications(samples, "hook", "retried") == refused
    assert notifications(samples, "hook", "dropped") == 0
    assert pending(samples, "hook") == 0
    assert outbox_rows(config) == []
    assert await daemon.stop() == 0


@pytest.mark.parametrize("flips", [5, 6])
async def test_max_pending_drops_superseded_messages_first_and_the_last_word_arrives(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver, flips: int
) -> None:
    bound = 3
    steady = target_server.route("/steady", status=503)  # fires once, stays firing
    flappy = target_server.route("/flappy", status=200)  # fires and resolves, again and again
    receiver.status = 503
    listen = listen_address()
    config = write_config(
        tmp_path,
        listen,
        f"""interval = "1s"

[alerting]
group_wait = "0s"
flap_limit = 100

[[targets]]
name = "steady"
type = "http"
url = "{target_server.url("/steady")}"

[[targets]]
name = "flappy"
type = "http"
url = "{target_server.url("/flappy")}"

[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}"
max_pending = {bound}
timeout = "1s"
""",
    )
    daemon = await start(config, listen)
    await until(lambda: queued(daemon, "hook") == 1, what="steady's alert queued")
    highest = 0.0
    # firing, resolved, firing, ...: each message supersedes the one before it.
    for flip in range(flips):
        flappy.status = 503 if flip % 2 == 0 else 200
        await until(lambda n=flip: queued(daemon, "hook") == n + 2, what=f"flip {flip} queued")
        highest = max(highest, pending(await scrape(daemon), "hook"))
    hits = steady.hits
    await until(lambda: steady.hits >= hits + 2, what="two quiet cycles")
    assert len(receiver.requests) >= 1 and not daemon.events("notification sent")
    samples = await scrape(daemon)
    highest = max(highest, pending(samples, "hook"))
    assert highest <= bound
    assert len(outbox_rows(config)) == bound
    messages = 1 + flips
    assert notifications(samples, "hook", "dropped") == messages - bound
    dropped_logged = sum(e["dropped"] for e in daemon.events("outbox full: notifications dropped"))
    assert dropped_logged == messages - bound

    refused = len(receiver.requests)
    receiver.status = 200
    await receiver.wait_for(refused + bound, timeout=10)
    await receiver.wait_quiet(0.4)
    accepted = receiver.requests[refused:]
    delivered = alerts_of(accepted)
    steady_up, flappy_up = HOST.fingerprint("steady", "up"), HOST.fingerprint("flappy", "up")
    # The oldest message covered nothing later (steady's only one): superseded ones went first.
    assert delivered[0] == (steady_up, "firing")
    assert [s for a, s in delivered if a == steady_up] == ["firing"]
    # What was dropped of flappy's story is its beginning: the rest still alternates,
    # never firing twice without the resolve between.
    flappy_told = [s for a, s in delivered if a == flappy_up]
    assert all(a != b for a, b in itertools.pairwise(flappy_told))
    flappy_now = "firing" if flips % 2 else "resolved"
    last: dict[str, str] = {}
    for alert, status in delivered:
        last[alert] = status
    assert last == {steady_up: "firing", flappy_up: flappy_now}
    document = await daemon.status()
    open_alerts = {(a["target"], a["metric"]) for a in document["alerts"]}
    # What the receiver was told last is the truth.
    assert open_alerts == {("steady", "up")} | ({("flappy", "up")} if flips % 2 else set())
    samples = await wait_metrics(
        daemon,
        lambda s: notifications(s, "hook", "sent") == bound and pending(s, "hook") == 0,
        what="the survivors counted as sent",
    )
    assert notifications(samples, "hook", "dropped") == messages - bound
    assert await daemon.stop() == 0


async def test_a_hanging_notifier_does_not_delay_a_healthy_one(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver, receivers: Receivers
) -> None:
    hanging = await receivers.start(Receiver)
    hanging.delay = 10.0  # far beyond its notifier's timeout
    listen = listen_address()
    group_wait, interval = 1.0, 1.0
    config = write_config(
        tmp_path,
        listen,
        f"""interval = "{interval}s"

[alerting]
group_wait = "{group_wait}s"

[[targets]]
name = "api"
type = "http"
url = "{target_server.url()}"

[[notifiers]]
name = "slow"
type = "webhook"
url = "{hanging.url("/slow")}"
timeout = "3s"

[[notifiers]]
name = "fast"
type = "webhook"
url = "{receiver.url("/fast")}"
""",
    )
    daemon = await start(config, listen)
    try:
        await until(lambda: target_server.hits >= 1, what="a first probe")
        allowed = group_wait + interval + 0.5  # scheduling slack on a busy machine

        target_server.status = 503
        failed_at = time.monotonic()
        [fired] = await receiver.wait_for(1, timeout=5)
        assert fired.json["status"] == "firing"
        assert fired.received_at - failed_at < allowed
        await hanging.wait_for(1, timeout=2)  # the slow one got it too, and hangs on it

        target_server.status = 200
        recovered_at = time.monotonic()
        requests = await receiver.wait_for(2, timeout=5)
        assert requests[1].json["status"] == "resolved"
        assert requests[1].received_at - recovered_at < allowed
        # The slow notifier keeps its order: it is still on the firing message.
        assert {r.json["status"] for r in hanging.requests} == {"firing"}
        samples = await scrape(daemon)
        assert notifications(samples, "fast", "sent") == 2
        assert pending(samples, "fast") == 0
        assert pending(samples, "slow") == 2
    finally:
        await daemon.kill()


async def test_heartbeat_pings_after_every_cycle_and_its_failure_harms_nothing(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    listen = listen_address()
    config = write_config(
        tmp_path,
        listen,
        f"""interval = "1s"
heartbeat_url = "{receiver.url("/ping")}"

[[targets]]
name = "api"
type = "http"
url = "{target_server.url()}"
""",
    )
    daemon = await start(config, listen)
    await receiver.wait_for(2, timeout=5)
    assert {(r.method, r.path) for r in receiver.requests} == {("GET", "/ping")}

    receiver.status = 500
    failed = sample(await scrape(daemon), "vigild_heartbeats_total", outcome="failed")
    samples = await wait_metrics(
        daemon,
        lambda s: sample(s, "vigild_heartbeats_total", outcome="failed") >= failed + 3,
        what="failed heartbeats counted",
    )
    assert sample(samples, "vigild_heartbeats_total", outcome="sent") >= 2
    assert abs(time.time() - sample(samples, "vigild_last_cycle_timestamp_seconds")) < 2
    code, _ = await daemon.get("/readyz")
    assert code == 200  # still running, still cycling
    hits = target_server.hits
    await until(lambda: target_server.hits >= hits + 2, what="cycles go on")
    assert len(daemon.events("heartbeat failed")) == 1  # one line per new reason, not per ping
    assert await daemon.stop() == 0
    pings = len(receiver.requests)
    # One ping per completed cycle; the last cycle's may be cut short by the stop.
    assert target_server.hits - 2 <= pings <= target_server.hits

    receiver.status = 200
    finished = await run("--once", "--config", str(config))
    assert finished.returncode == 0, finished.stderr
    assert [(r.method, r.path) for r in receiver.requests[pings:]] == [("GET", "/ping")]
