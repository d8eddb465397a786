"""What the fault tests share: one shape of config, and how to read what a receiver got.

Alerts are told apart by the target named in their labels (every alert here is a
target's ``up``), so the counts do not depend on how fingerprints are made.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from process import start, until, write_config
from receivers import Receiver, Recorded
from targets import TargetServer

INTERVAL = 1.0
"""Every target's interval: the shortest a config may ask for."""


def watch(
    directory: Path, listen: str, receiver: Receiver, targets: Mapping[str, str], extra: str = ""
) -> Path:
    """A config probing ``targets`` (name to url or tcp address) every second, and telling
    the receiver's ``/hook`` at once (no group wait). ``extra`` goes at the end."""
    blocks = "".join(
        f'\n[[targets]]\nname = "{name}"\ntype = "http"\nurl = "{url}"\n'
        for name, url in targets.items()
    )
    return write_config(
        directory,
        listen,
        f"""interval = "{INTERVAL:g}s"

[alerting]
group_wait = "0s"
{blocks}
[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}"
{extra}""",
    )


def accepted(receiver: Receiver) -> list[Recorded]:
    """The requests the receiver took (answered 2xx): what a person was told."""
    return [r for r in receiver.requests if 200 <= r.status < 300]


def told(requests: list[Recorded]) -> Counter[tuple[str, str]]:
    """How often each (target, "firing" | "resolved") arrived in these webhook bodies."""
    return Counter(
        (alert["labels"]["target"], alert["status"]) for r in requests for alert in r.json["alerts"]
    )


def resolved(receiver: Receiver, *targets: str) -> bool:
    """Every one of ``targets`` resolved at the receiver (in one message or several)."""
    counts = told(accepted(receiver))
    return all(counts[(target, "resolved")] for target in targets)


def crashes(log: list[str]) -> list[str]:
    """Log lines that show an exception escaped: a traceback, or a task nobody awaited."""
    return [line for line in log if "Traceback" in line or "never retrieved" in line]


def errors(log: list[str]) -> list[dict[str, Any]]:
    """The error-level events among these JSON log lines."""
    found = []
    for line in log:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("level") == "error":
            found.append(event)
    return found


async def restart_and_recover(
    config: Path, listen: str, receiver: Receiver, api: TargetServer, db: TargetServer
) -> None:
    """After an outage of ``api`` and ``db`` paged once each: a restart repeats
    nothing, and their recovery is told once each."""
    restarted = await start(config, listen)
    hits = db.hits
    await until(lambda: db.hits >= hits + 2, what="two cycles after the restart")
    assert told(accepted(receiver)) == {("api", "firing"): 1, ("db", "firing"): 1}  # no repeat

    api.status = db.status = 200
    await until(lambda: resolved(receiver, "api", "db"), what="both resolved")
    await receiver.wait_quiet(1.0)
    assert await restarted.stop() == 0
    assert told(accepted(receiver)) == {
        ("api", "firing"): 1,
        ("db", "firing"): 1,
        ("api", "resolved"): 1,
        ("db", "resolved"): 1,
    }
