"""The components one config makes, as one value.

A reload builds a whole new ``Parts`` beside the running one and swaps it in
with one assignment: what fails while building leaves the running parts
untouched, and no component is ever half reconfigured. A cycle takes the parts
current at its start and runs on them to its end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vigild.alerting.actions.runner import ActionRunner
from vigild.alerting.delivery import Delivery
from vigild.alerting.engine import Engine
from vigild.assembly import Config
from vigild.config import TargetConfig
from vigild.daemon.heartbeat import Heartbeat
from vigild.derived import Derived
from vigild.events import Subscribers
from vigild.probes.base import Probe
from vigild.thresholds import Rule

__all__ = ["Parts", "Watched"]


@dataclass(frozen=True, slots=True)
class Watched:
    target: TargetConfig
    probe: Probe
    rules: Mapping[str, Rule]
    derived: Derived | None = None
    """Burn rates and forecasts from the target's recent values; None: it has neither."""


@dataclass(frozen=True, slots=True)
class Parts:
    config: Config
    watched: Sequence[Watched]
    cycles: Mapping[float, Sequence[Watched]]
    """The targets by interval: one cycle, one scheduler job, per interval."""
    engine: Engine
    delivery: Delivery
    actions: ActionRunner
    heartbeat: Heartbeat
    subscribers: Subscribers
