"""The config's ``[history]`` and ``[discovery]`` sections (a leaf, like config.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from vigild.config import _Strict
from vigild.fields import DAY, HOUR, MINUTE, EngineUrl, duration_between, size_between

__all__ = ["ContainerDiscoveryConfig", "DiscoveryConfig", "HistoryConfig"]


class HistoryConfig(_Strict):
    """``[history]``: how long each tier of the metrics history is kept, and its cap."""

    raw: Annotated[float, duration_between(HOUR, 35 * DAY)] = 48 * HOUR
    five_minute: Annotated[float, duration_between(HOUR, 400 * DAY)] = 14 * DAY
    hourly: Annotated[float, duration_between(DAY, 3650 * DAY)] = 180 * DAY
    max_size: Annotated[int, size_between(2**20, 2**40)] = 2**30
    path: Path | None = None
    """Default: beside the state file, ``state.db`` → ``state-history.db``."""

    def file(self, state_path: Path) -> Path:
        if self.path is not None:
            return self.path
        return state_path.with_name(f"{state_path.stem}-history{state_path.suffix or '.db'}")


class ContainerDiscoveryConfig(_Strict):
    """``[discovery.containers]``: targets from the labels of running containers."""

    engine: EngineUrl | None = None
    """As a container target's ``engine``; unset: ``$DOCKER_HOST``, then the usual sockets."""
    enable_label: str = Field(default="vigild.enable", min_length=1)
    """Only containers carrying this label set to ``true`` become targets."""
    retire_after: Annotated[float, duration_between(0, DAY)] = 5 * MINUTE
    """A removed container's alerts resolve after this, unless it comes back by its name."""


class DiscoveryConfig(_Strict):
    containers: ContainerDiscoveryConfig | None = None
