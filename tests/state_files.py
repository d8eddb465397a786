"""The state file as a test removes it, and what vigild logs when it recreates one."""

from __future__ import annotations

from pathlib import Path

RECREATED = "state file was deleted while vigild ran: recreated it from memory"


def remove_state(path: Path) -> None:
    """``rm state.db*``: the database, its WAL and shared memory, and the lock."""
    for found in path.parent.glob(path.name + "*"):
        found.unlink()
