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

from process import write_config
from receivers import Receiver, Recorded

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
