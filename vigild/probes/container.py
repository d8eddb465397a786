"""Container probe: Docker or Podman containers, through the Engine API both serve.

A target names one container (``container``, a name or id) or selects every
container carrying some labels (``container_labels``); then each container is
its own observation, ``target/container``. Per container: inspect (state,
health, restart count) and, while it runs, one stats sample, one-shot.

``cpu_percent`` and ``memory_percent`` are ``docker stats``'s figures. CPU use
is a rate between two samples: one-shot stats leave ``precpu_stats`` empty, and
so does Podman without streaming, so the probe keeps each container's previous
sample itself, and carries it, with the restart history behind
``recent_restarts``, through the state file: ``--once`` from cron gets both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self

from pydantic import model_validator

from vigild.config import TargetConfig
from vigild.engine_api import EngineError
from vigild.fields import DAY, HOUR, MINUTE, EngineUrl, duration_between
from vigild.model import Observation
from vigild.probes.base import Probe, ProbeContext
from vigild.probes.container_stats import (
    HEALTH_LEVELS,
    NO_DATA,
    count,
    cpu_percent,
    health_of,
    listed_name,
    memory_percent,
    stopped_error,
    unhealthy_error,
)

__all__ = ["ContainerProbe", "ContainerTarget"]

MAX_EVENTS = 256
"""Restart increases remembered per container: a crash loop must not grow the state file."""

_CALL_SHARE = 0.9
"""Each engine call must end by this share of the probe's timeout: one container's
stats that hang become that container's error, before the whole probe times out."""

RETIRE_AFTER = 5 * MINUTE
"""A label-selected container gone this long is retired: its alerts resolve with
``RETIRED`` and it is no longer reported (discovery's default ``retire_after``)."""
RETIRED = "container removed"
"""The note of the resolved message of a retired container's alerts (discovery's too)."""

_STATS_METRICS = frozenset({"cpu_percent", "memory_percent"})
_NOT_RUNNING = frozenset({"cpu_percent", "memory_percent", "container_health"})


@dataclass(slots=True)
class _Seen:
    """What the probe remembers of one container between probes (and runs)."""

    id: str
    restarts: int | None = None
    events: list[tuple[float, int]] = field(default_factory=list)
    """(time, increase of RestartCount) for each probe that saw one."""
    cpu: tuple[float, float] | None = None
    """(total_usage, system_cpu_usage) of the last stats sample."""


@dataclass(slots=True)
class _Reading:
    """One container's metrics as they are read, and why any is without a value."""

    metrics: dict[str, float] = field(default_factory=dict)
    no_data: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)

    def set(self, metric: str, value: float | None, why: str) -> None:
        if value is not None:
            self.metrics[metric] = value
        else:
            (self.no_data if why == NO_DATA else self.missing).add(metric)

    def observation(self, name: str, now: float, up: bool, error: str | None) -> Observation:
        return Observation(
            name,
            now,
            up,
            error,
            self.metrics,
            missing=frozenset(self.missing),
            no_data=frozenset(self.no_data),
        )


class ContainerTarget(TargetConfig):
    """Containers under Docker or Podman, through the Engine API both serve."""

    REPORTED = frozenset(
        {
            "up",
            "running",
            "container_health",
            "restarts",
            "recent_restarts",
            "cpu_percent",
            "memory_percent",
        }
    )

    type: Literal["container"] = "container"
    container: str | None = None
    """A container's name or id."""
    container_labels: dict[str, str] = {}
    """Every container carrying these labels (``com.docker.compose.service``), one each."""
    engine: EngineUrl | None = None
    """``unix:///var/run/docker.sock`` or ``tcp://host:2375``; unset: ``$DOCKER_HOST``,
    then the first of ``DEFAULT_ENGINES`` that exists."""
    restart_window: Annotated[float, duration_between(MINUTE, 30 * DAY)] = HOUR
    """``recent_restarts`` counts restarts within this long."""

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if (self.container is None) == (not self.container_labels):
            raise ValueError("give either container (a name or id) or container_labels")
        return self

    @property
    def expands(self) -> bool:
        """Selected by labels: one observation per matching container, ``name/container``."""
        return bool(self.container_labels)

    def address(self) -> str | None:
        return f"container {self.container}" if self.container else None


class ContainerProbe(Probe):
    """Probes one ``type = "container"`` target through its engine's client."""

    keeps_state = True
    Options = ContainerTarget
    target: ContainerTarget

    def __init__(self, target: ContainerTarget, timeout: float, context: ProbeContext) -> None:
        super().__init__(target, timeout, context)
        self.engine = context.engine(target.engine)
        self._seen: dict[str, _Seen] = {}
        """By container name (label targets) or by the configured name or id."""
        self._gone: dict[str, float] = {}
        """Label targets: container name → when a probe first found it gone."""
        self._target_down = False
        """A label target reported its own name down (nothing matched, or the engine
        failed before any container was known): the next probe that finds containers
        reports that name up once, so its alert resolves."""
        self._timeout_error = f"timeout after {timeout:g}s"
        self._deadline = 0.0
        matchers = ", ".join(f'{k}="{v}"' for k, v in target.container_labels.items())
        self._no_match_error = f"no container matches container_labels {{{matchers}}}"

    async def probe(self, now: float) -> Sequence[Observation]:
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self.timeout * _CALL_SHARE
        try:
            async with asyncio.timeout(self.timeout):
                if self.target.expands:
                    return await self._probe_labels(now)
                assert self.target.container is not None  # the config requires one selector
                name = self.target.container
                return (await self._probe_container(name, name, self.target.name, now),)
        except TimeoutError:
            return self._all_down(now, self._timeout_error)

    def _call_timeout(self) -> float:
        return max(0.001, self._deadline - asyncio.get_running_loop().time())

    async def _probe_labels(self, now: float) -> list[Observation]:
        name = self.target.name
        try:
            listed = await self.engine.list_containers(
                self.target.container_labels, within=self._call_timeout()
            )
        except EngineError as exc:
            return self._all_down(now, str(exc))
        found: dict[str, str] = {}
        for item in listed:
            container = listed_name(item)
            container_id = item.get("Id")
            if container is not None and isinstance(container_id, str) and container_id:
                found[container] = container_id
        observations = list(
            await asyncio.gather(
                *(self._probe_container(found[c], c, f"{name}/{c}", now) for c in sorted(found))
            )
        )
        for back in found.keys() & self._gone.keys():
            del self._gone[back]
        for gone in sorted(self._seen.keys() - found.keys()):
            retired = None
            if now - self._gone.setdefault(gone, now) >= RETIRE_AFTER:
                retired = RETIRED
                del self._seen[gone], self._gone[gone]
            else:
                # Its counters died with it: a container of that name later is a new one.
                self._seen[gone].cpu = None
            observations.append(
                Observation(f"{name}/{gone}", now, False, "no such container", retired=retired)
            )
        if not observations:
            self._target_down = True
            return [Observation(name, now, False, self._no_match_error)]
        if found and self._target_down:
            self._target_down = False
            observations.append(Observation(name, now, True))
        return observations

    def _all_down(self, now: float, error: str) -> list[Observation]:
        """Every container the probe knows is down with ``error`` (engine gone, timeout)."""
        name = self.target.name
        if not self.target.expands:
            return [Observation(name, now, False, error)]
        if not self._seen:
            self._target_down = True
            return [Observation(name, now, False, error)]
        return [Observation(f"{name}/{c}", now, False, error) for c in sorted(self._seen)]

    async def _probe_container(
        self, reference: str, key: str, observed: str, now: float
    ) -> Observation:
        try:
            info = await self.engine.inspect(reference, within=self._call_timeout())
        except EngineError as exc:
            if exc.not_found:
                seen = self._seen.get(key)
                if seen is not None:
                    seen.cpu = None
            return Observation(observed, now, False, str(exc))
        state = info.get("State")
        if not isinstance(state, dict):
            malformed = "unexpected answer from container engine: inspect has no State"
            return Observation(observed, now, False, malformed)
        container_id = info.get("Id")
        if not isinstance(container_id, str) or not container_id:
            container_id = reference
        seen = self._seen.get(key)
        first_sight = seen is None
        if seen is None or seen.id != container_id:
            # A new container, or one recreated under the same name: its counters start
            # again, while restarts of the one before still happened within the window.
            seen = self._seen[key] = _Seen(
                container_id, events=seen.events if seen is not None else []
            )
        reading = _Reading()
        self._restarts(seen, info.get("RestartCount"), now, first_sight, reading)

        status = state.get("Status")
        running = status == "running" if isinstance(status, str) else state.get("Running") is True
        reading.metrics["running"] = 1.0 if running else 0.0
        if not running:
            seen.cpu = None  # a stopped container's counters start again when it does
            reading.no_data |= _NOT_RUNNING
            return reading.observation(observed, now, False, stopped_error(status, state))

        health = health_of(state)
        reading.set("container_health", HEALTH_LEVELS.get(health or ""), NO_DATA)
        error: str | None = None
        try:
            stats = await self.engine.stats(seen.id, within=self._call_timeout())
        except EngineError as exc:
            reading.missing |= _STATS_METRICS
            error = f"stats: {exc}"
        else:
            cpu, why, sample = cpu_percent(stats, seen.cpu)
            if sample is not None:
                seen.cpu = sample
            reading.set("cpu_percent", cpu, why)
            reading.set("memory_percent", *memory_percent(stats))
        if health == "unhealthy":
            return reading.observation(observed, now, False, unhealthy_error(state, self.secrets))
        return reading.observation(observed, now, True, error)

    def _restarts(
        self, seen: _Seen, count: Any, now: float, first_sight: bool, reading: _Reading
    ) -> None:
        """``restarts`` as the engine counts them; ``recent_restarts``: their increase
        within ``restart_window``, from what this probe saw."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            reading.missing.add("restarts")
            reading.no_data.add("recent_restarts")
            return
        reading.metrics["restarts"] = float(count)
        previous, seen.restarts = seen.restarts, count
        # A lower count is the engine starting over (a manual start resets it), not a restart.
        if previous is not None and count > previous:
            seen.events.append((now, count - previous))
            del seen.events[:-MAX_EVENTS]
        since = now - self.target.restart_window
        seen.events[:] = [event for event in seen.events if event[0] > since]
        if first_sight:
            reading.no_data.add("recent_restarts")  # restarts before our first look: unknown
            return
        reading.metrics["recent_restarts"] = float(sum(n for t, n in seen.events if t <= now))

    # -- state ------------------------------------------------------------

    def _selector(self) -> dict[str, Any]:
        target = self.target
        return {
            "container": target.container,
            "labels": target.container_labels,
            "engine": target.engine,
        }

    def saved_state(self) -> dict[str, Any]:
        return {
            "selector": self._selector(),
            "containers": {
                key: {
                    "id": seen.id,
                    "restarts": seen.restarts,
                    "events": [list(event) for event in seen.events],
                    "cpu": list(seen.cpu) if seen.cpu is not None else None,
                }
                for key, seen in self._seen.items()
            },
            "target_down": self._target_down,
            "gone": dict(self._gone),  # `--once` from cron retires them too
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        containers = state.get("containers")
        # Containers another selection found (the config changed) are nothing to this one:
        # restored, they would be reported gone while they run.
        if not isinstance(containers, dict) or state.get("selector") != self._selector():
            return
        restored: dict[str, _Seen] = {}
        for key, entry in containers.items():
            seen = _restored(entry)
            if isinstance(key, str) and seen is not None:
                restored[key] = seen
        self._seen = restored
        self._target_down = state.get("target_down") is True
        gone = state.get("gone")
        if isinstance(gone, dict):
            self._gone = {
                k: float(v)
                for k, v in gone.items()
                if k in restored and isinstance(v, int | float) and not isinstance(v, bool)
            }


def _restored(entry: Any) -> _Seen | None:
    """One container's saved state, or None when it does not fit."""
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        return None
    restarts = entry.get("restarts")
    if not isinstance(restarts, int) or isinstance(restarts, bool) or restarts < 0:
        restarts = None
    events: list[tuple[float, int]] = []
    raw_events = entry.get("events")
    for event in raw_events if isinstance(raw_events, list) else ():
        if (
            isinstance(event, list)
            and len(event) == 2
            and count(event[0]) is not None
            and isinstance(event[1], int)
            and event[1] > 0
        ):
            events.append((float(event[0]), event[1]))
    cpu = entry.get("cpu")
    sample: tuple[float, float] | None = None
    if isinstance(cpu, list) and len(cpu) == 2:
        total, system = count(cpu[0]), count(cpu[1])
        if total is not None and system is not None:
            sample = (total, system)
    return _Seen(entry["id"], restarts, events[-MAX_EVENTS:], sample)
