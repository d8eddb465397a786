"""The settings the stages work by, as the engine keeps them across reloads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigild.alerting.silences import Silences
from vigild.alerting.stages.route import Addresses, Labels, Route, no_address, no_labels

__all__ = ["Policy", "no_silences"]


class _NoSilenceStore:
    """For an engine built without silences (tests, tools): nothing to keep."""

    def save(self, silence_id: str, row: dict[str, Any]) -> None:
        raise RuntimeError("this engine keeps no silences")

    def delete(self, silence_id: str) -> None:
        raise RuntimeError("this engine keeps no silences")


def no_silences() -> Silences:
    return Silences(_NoSilenceStore())


@dataclass(frozen=True, slots=True)
class Policy:
    routes: tuple[Route, ...] = ()
    labels: Labels = no_labels
    silences: Silences = field(default_factory=no_silences)
    dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    connectivity: str | None = None
    """The target whose ``up`` alert means vigild itself lost its network."""
    max_per_message: int = 50
    addresses: Addresses = no_address
