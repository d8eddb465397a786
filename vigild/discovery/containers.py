"""Targets from container labels, kept current through the engine's events.

The engine's list is the truth: each event of interest, a reconnect after the
engine went away, and every ``RESYNC`` seconds read it again and compare. An
event missed while the stream was down is caught by the list that follows the
reconnect. A container that leaves the list is held (its alerts neither page
nor resolve) for ``retire_after``, then retired; one that comes back by its
name in the meantime (a compose recreate) just carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import replace

import structlog

from vigild.assembly import Config, dependency_cycles
from vigild.config import TargetConfig
from vigild.config_sections import ContainerDiscoveryConfig
from vigild.discovery.labels import Container, LabelError, Target, targets_of
from vigild.engine_api import EngineClient, EngineError
from vigild.tasks import spawn

__all__ = ["EVENTS", "RESYNC", "ContainerDiscovery"]

log = structlog.get_logger("vigild")

EVENTS = ("start", "die", "destroy", "rename", "health_status")
RESYNC = 300.0
BACKOFF = (0.5, 30.0)
"""The first and the longest wait before connecting to the events stream again."""


class ContainerDiscovery:
    """Follows one engine; ``changed`` is awaited whenever what it would add changes."""

    def __init__(
        self,
        settings: ContainerDiscoveryConfig,
        client: EngineClient,
        changed: Callable[[], Awaitable[None]],
        *,
        clock: Callable[[], float] = time.monotonic,
        resync: float = RESYNC,
        backoff: tuple[float, float] = BACKOFF,
    ) -> None:
        self.settings = settings
        self.client = client
        self._changed = changed
        self._clock = clock
        self._resync = resync
        self._backoff = backoff
        self.containers: dict[str, Container] = {}
        """Enabled containers by name, the held ones too."""
        self.leaving: dict[str, float] = {}
        """Container name → when it retires (clock time)."""
        self._wake = asyncio.Event()
        self._stale = True
        self._next_resync = 0.0
        self._warned: set[Hashable] = set()
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    # -- what it adds -----------------------------------------------------

    def merged(self, config: Config) -> Config:
        """``config`` (from the file) with the discovered targets added; a file target
        wins a name clash, and a container with a bad label is left out."""
        taken = {t.name for t in config.targets}
        chosen: list[tuple[str, tuple[Target, ...]]] = []
        # Running ones first: a recreated container takes its names back from the held one.
        for name in sorted(self.containers, key=lambda n: (n in self.leaving, n)):
            found = self.describe(self.containers[name], config)
            if found is None:
                continue
            clash = [t.config.name for t in found if t.config.name in taken]
            if clash:
                if name not in self.leaving:
                    self._warn_once(
                        ("clash", name, clash[0]),
                        "discovered target skipped: the name is taken",
                        container=name,
                        target=clash[0],
                    )
                continue
            taken.update(t.config.name for t in found)
            chosen.append((name, found))
        targets = list(config.targets)
        rules = dict(config.rules)
        sources: dict[str, str] = {}
        held: list[TargetConfig] = []
        for name, found in self._dependable(chosen, taken, config):
            for target in found:
                rules[target.config.name] = target.rules
                sources[target.config.name] = name
                if name in self.leaving:
                    held.append(target.config)
                else:
                    targets.append(target.config)
        return replace(
            config, targets=tuple(targets), rules=rules, sources=sources, held=tuple(held)
        )

    def _dependable(
        self, chosen: list[tuple[str, tuple[Target, ...]]], taken: set[str], config: Config
    ) -> list[tuple[str, tuple[Target, ...]]]:
        """``chosen`` but for containers whose ``vigild.depends_on`` names no target, or
        closes a loop (which would hold back every alert in it)."""
        graph = {t.name: t.depends_on for t in config.targets}
        graph.update((t.config.name, t.config.depends_on) for _, found in chosen for t in found)
        looped = {n for cycle in dependency_cycles(graph) for n in cycle}
        kept = []
        for name, found in chosen:
            wanted = [d for t in found for d in t.config.depends_on]
            missing = [d for d in wanted if d not in taken]
            if missing or any(t.config.name in looped for t in found):
                reason = f"no target named {missing[0]!r}" if missing else "a depends_on loop"
                self._warn_once(
                    ("depends", name, reason),
                    "container skipped: bad label",
                    container=name,
                    label="vigild.depends_on",
                    reason=reason,
                )
                continue
            kept.append((name, found))
        return kept

    def describe(self, container: Container, config: Config) -> tuple[Target, ...] | None:
        """The container's targets, or None after one warning about its bad label."""
        try:
            return targets_of(container, self.settings, config.defaults)
        except LabelError as exc:
            self._warn_once(
                ("label", container.id, exc.label, exc.reason),
                "container skipped: bad label",
                container=container.name,
                label=exc.label,
                reason=exc.reason,
            )
            return None

    def _warn_once(self, key: Hashable, event: str, **fields: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(event, **fields)

    # -- following the engine ---------------------------------------------

    async def list(self) -> list[Container]:
        """The enabled containers the engine has now, running or not."""
        listed = await self.client.list_containers({self.settings.enable_label: "true"})
        return [Container.from_listing(item) for item in listed]

    async def look(self, *, quiet: bool = False) -> bool:
        """List the engine's containers once (``vigild --once`` does only this); whether
        the engine answered. A failure is logged unless ``quiet``."""
        try:
            listed = await self.list()
        except EngineError as exc:
            if not quiet:
                log.warning("container discovery cannot list containers", error=str(exc))
            return False
        self._update({c.name: c for c in listed}, self._clock())
        return True

    def start(self) -> None:
        self._task = spawn(self.run(), name="container-discovery")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()

    async def run(self) -> None:
        follower = spawn(self._follow(), name="container-events")
        try:
            while True:
                await self._step()
                due = [self._next_resync, *self.leaving.values()]
                # Not wait_for: on 3.11 a cancel that meets its timeout can hang there.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, min(due) - self._clock())):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def _step(self) -> None:
        now = self._clock()
        before = (dict(self.containers), set(self.leaving))
        if self._stale or now >= self._next_resync:
            self._stale = False
            # Logged once an outage: the reconnect tries again.
            self._failing = not await self.look(quiet=self._failing)
            wait = min(self._resync, self._backoff[1]) if self._failing else self._resync
            self._next_resync = now + wait
        for name, when in list(self.leaving.items()):
            if when <= now:
                del self.leaving[name], self.containers[name]
                log.info("discovered container retired", container=name)
        if (self.containers, set(self.leaving)) != before:
            try:
                await self._changed()
            except Exception:
                log.exception("cannot apply what container discovery found")

    def _update(self, listed: dict[str, Container], now: float) -> None:
        for name in self.containers.keys() - listed.keys():
            self.leaving.setdefault(name, now + self.settings.retire_after)
        for name, container in listed.items():
            self.leaving.pop(name, None)
            self.containers[name] = container

    def _resync_now(self) -> None:
        self._stale = True
        self._wake.set()

    async def _follow(self) -> None:
        filters = {
            "type": ["container"],
            "event": list(EVENTS),
            "label": [self.settings.enable_label],
        }
        delay, longest = self._backoff
        connected = True

        def opened() -> None:
            nonlocal delay, connected
            if not connected:
                log.info("container events followed again")
            delay, connected = self._backoff[0], True
            self._resync_now()  # what happened while the stream was down

        while True:
            try:
                async for _event in self.client.events(filters, opened=opened):
                    self._resync_now()
                reason = "the engine closed the events stream"
            except EngineError as exc:
                reason = str(exc)
            if connected:  # once an outage, not at every attempt
                log.warning("container events lost, reconnecting", reason=reason)
            connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)
