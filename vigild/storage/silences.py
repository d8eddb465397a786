"""Runtime silences (the API's), in their config form, by id."""

from __future__ import annotations

import json
from typing import Any

from vigild.storage.file import StateFile

__all__ = ["Silences"]


class Silences:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def load(self) -> list[tuple[str, dict[str, Any]]]:
        rows = []
        for silence_id, text in self._file.db.execute("SELECT id, silence FROM silences"):
            try:
                rows.append((silence_id, json.loads(text)))
            except ValueError:
                continue
        return rows

    def save(self, silence_id: str, row: dict[str, Any]) -> None:
        self._file.db.execute(
            "INSERT INTO silences (id, silence) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET silence = excluded.silence",
            (silence_id, json.dumps(row)),
        )

    def delete(self, silence_id: str) -> None:
        self._file.db.execute("DELETE FROM silences WHERE id = ?", (silence_id,))
