"""The storage package's one error, in a module of its own so nothing imports in a loop."""

from __future__ import annotations

__all__ = ["StateFileError"]


class StateFileError(Exception):
    """The state file cannot be opened, locked or migrated, or is not vigild's."""
