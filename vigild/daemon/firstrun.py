"""The line a person starting vigild reads once the first cycle is done."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vigild.client import local_url
from vigild.fields import unix_listen
from vigild.model import Severity
from vigild.wording import counted

__all__ = ["first_cycle_line"]


def first_cycle_line(
    targets: int, severities: Iterable[Severity], listen: str, state_path: Path
) -> str:
    """``watching 3 targets (2 ok, 1 critical) · status page http://127.0.0.1:9469/ ·
    state ./vigild-state.db``: what is watched, how it is, where to look next.

    Args:
        severities: the worst current verdict of each target probed so far.
    """
    counts = dict.fromkeys(Severity, 0)
    for severity in severities:
        counts[severity] += 1
    probed = sum(counts.values())
    parts = [f"{count} {level.label}" for level, count in counts.items() if count]
    if probed < targets:
        parts.append(f"{targets - probed} not probed yet")
    watching = f"watching {counted(targets, 'target')}"
    watching += f" ({', '.join(parts)})" if parts else ""
    page = f"API on {listen}" if unix_listen(listen) else f"status page {local_url(listen)}/"
    # Path() drops the "./" a person wrote, and with it the hint of where it is.
    relative = not state_path.is_absolute() and state_path.parts[:1] != ("..",)
    return f"{watching} · {page} · state {'./' if relative else ''}{state_path}"
