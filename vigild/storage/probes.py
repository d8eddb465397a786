"""What probes carry from one run to the next (a counter's previous sample), per target."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from vigild.storage.file import StateFile

__all__ = ["ProbeStates"]


class ProbeStates:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def load(self) -> dict[str, dict[str, Any]]:
        states = {}
        for target, text in self._file.db.execute("SELECT target, state FROM probe_state"):
            try:
                states[target] = json.loads(text)
            except ValueError:
                continue  # a rate starts again; nothing else depends on it
        return states

    def save(self, states: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """One transaction per cycle, whatever the number of targets."""
        with self._file.transaction():
            self._file.db.executemany(
                "INSERT INTO probe_state (target, state) VALUES (?, ?) "
                "ON CONFLICT (target) DO UPDATE SET state = excluded.state",
                ((target, json.dumps(state)) for target, state in states),
            )
