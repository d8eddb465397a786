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
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigild.config import ContainerTarget
from vigild.engine_api import EngineError
from vigild.model import Observation
from vigild.probes.base import Probe, ProbeContext
from vigild.redaction import shorten

__all__ = ["ContainerProbe", "cpu_percent", "memory_percent"]

HEALTH_LEVELS = {"healthy": 0.0, "starting": 1.0, "unhealthy": 2.0}
"""``container_health``; Docker's "none" (no healthcheck) and an absent Health: no value."""

MAX_EVENTS = 256
"""Restart increases remembered per container: a crash loop must not grow the state file."""

_CALL_SHARE = 0.9
"""Each engine call must end by this share of the probe's timeout: one container's
stats that hang become that container's error, before the whole probe times out."""

_STATS_METRICS = frozenset({"cpu_percent", "memory_percent"})
_NOT_RUNNING = frozenset({"cpu_percent", "memory_percent", "container_health"})

# How a computed figure can be without a value.
NO_DATA = "no_data"
"""Nothing to compute yet, for a good reason (first sample, no time passed, no limit)."""
MISSING = "missing"
"""The engine's answer lacks what the figure needs."""


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


class ContainerProbe(Probe):
    """Probes one ``type = "container"`` target through its engine's client."""

    keeps_state = True
    target: ContainerTarget

    def __init__(self, target: ContainerTarget, timeout: float, context: ProbeContext) -> None:
        super().__init__(target, timeout, context)
        self.engine = context.engine(target.engine)
        self._seen: dict[str, _Seen] = {}
        """By container name (label targets) or by the configured name or id."""
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
            container = _listed_name(item)
            container_id = item.get("Id")
            if container is not None and isinstance(container_id, str) and container_id:
                found[container] = container_id
        observations = list(
            await asyncio.gather(
                *(self._probe_container(found[c], c, f"{name}/{c}", now) for c in sorted(found))
            )
        )
        for gone in sorted(self._seen.keys() - found.keys()):
            # Its counters died with it: a container of that name later is a new one.
            self._seen[gone].cpu = None
            observations.append(Observation(f"{name}/{gone}", now, False, "no such container"))
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
            return reading.observation(observed, now, False, _stopped_error(status, state))

        health = _health(state)
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
            return reading.observation(observed, now, False, _unhealthy_error(state, self.secrets))
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
            and _count(event[0]) is not None
            and isinstance(event[1], int)
            and event[1] > 0
        ):
            events.append((float(event[0]), event[1]))
    cpu = entry.get("cpu")
    sample: tuple[float, float] | None = None
    if isinstance(cpu, list) and len(cpu) == 2:
        total, system = _count(cpu[0]), _count(cpu[1])
        if total is not None and system is not None:
            sample = (total, system)
    return _Seen(entry["id"], restarts, events[-MAX_EVENTS:], sample)


# ---------------------------------------------------------------------------
# docker stats's figures


def cpu_percent(
    stats: Mapping[str, Any], previous: tuple[float, float] | None
) -> tuple[float | None, str, tuple[float, float] | None]:
    """``docker stats``'s CPU %: Δtotal_usage / Δsystem_cpu_usage * online CPUs * 100.

    The earlier sample is ``precpu_stats`` when the engine filled it, else
    ``previous`` (the caller's own last sample). Returns (percent or None, why
    None: ``NO_DATA`` or ``MISSING``, this sample for next time).
    """
    cpu_stats = _mapping(stats.get("cpu_stats"))
    usage = _mapping(cpu_stats.get("cpu_usage"))
    total = _count(usage.get("total_usage"))
    system = _count(cpu_stats.get("system_cpu_usage"))
    if total is None or system is None or system == 0:
        return None, MISSING, None
    sample = (total, system)
    cpus = _count(cpu_stats.get("online_cpus")) or 0.0
    if not cpus:
        # Engines before API 1.27 give no online_cpus, only one counter per CPU.
        per_cpu = usage.get("percpu_usage")
        cpus = float(len(per_cpu)) if isinstance(per_cpu, list) else 0.0
    if not cpus:
        return None, MISSING, sample
    pre = _mapping(stats.get("precpu_stats"))
    pre_system = _count(pre.get("system_cpu_usage"))
    pre_total = _count(_mapping(pre.get("cpu_usage")).get("total_usage"))
    before = (pre_total, pre_system) if pre_system and pre_total is not None else previous
    if before is None:
        return None, NO_DATA, sample
    total_delta, system_delta = total - before[0], system - before[1]
    if system_delta <= 0 or total_delta < 0:
        # No time passed, or the counters started again (the container restarted).
        return None, NO_DATA, sample
    return round(total_delta / system_delta * cpus * 100.0, 2), "", sample


def memory_percent(stats: Mapping[str, Any]) -> tuple[float | None, str]:
    """``docker stats``'s MEM %: usage less the page cache it may drop, over the limit.

    The cache is ``total_inactive_file`` on cgroup v1, ``inactive_file`` on v2,
    subtracted only when smaller than usage; Podman gives no ``stats``: raw usage.
    """
    memory = _mapping(stats.get("memory_stats"))
    usage = _count(memory.get("usage"))
    if usage is None:
        return None, MISSING
    limit = _count(memory.get("limit"))
    if not limit:
        return None, NO_DATA  # Docker's own words: 0 only when there is nothing to read
    detail = _mapping(memory.get("stats"))
    used = usage
    cache = _count(detail.get("total_inactive_file"))
    if cache is not None and cache < usage:
        used = usage - cache
    else:
        cache = _count(detail.get("inactive_file"))
        if cache is not None and cache < usage:
            used = usage - cache
    return round(used / limit * 100.0, 2), ""


# ---------------------------------------------------------------------------
# Reading the engine's answers


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> float | None:
    """A counter as the engine writes it (a non-negative number), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _listed_name(item: Mapping[str, Any]) -> str | None:
    names = item.get("Names")
    if isinstance(names, list) and names and isinstance(names[0], str):
        name = names[0].lstrip("/")
        return name or None
    return None


def _health(state: Mapping[str, Any]) -> str | None:
    health = state.get("Health")
    status = health.get("Status") if isinstance(health, dict) else None
    return status if isinstance(status, str) and status in HEALTH_LEVELS else None


def _stopped_error(status: Any, state: Mapping[str, Any]) -> str:
    word = status if isinstance(status, str) and status else "not running"
    if word in {"exited", "stopped", "dead"}:
        code = state.get("ExitCode")
        details = [f"code {code}"] if isinstance(code, int) and not isinstance(code, bool) else []
        if state.get("OOMKilled") is True:
            details.append("out of memory")
        if details:
            return f"container is {word} ({', '.join(details)})"
    return f"container is {word}"


def _unhealthy_error(state: Mapping[str, Any], secrets: frozenset[str]) -> str:
    """ "container is unhealthy", with the last check's first line when it said something."""
    health = _mapping(state.get("Health"))
    log = health.get("Log")
    last = log[-1] if isinstance(log, list) and log else None
    output = _mapping(last).get("Output")
    text = (
        output.strip().splitlines()[0].strip() if isinstance(output, str) and output.strip() else ""
    )
    if not text:
        return "container is unhealthy"
    return f"container is unhealthy: {shorten(text, 120, secrets)}"
