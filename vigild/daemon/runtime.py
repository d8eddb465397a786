"""Everything one run needs, assembled in one place from one config.

``vigild run`` and ``vigild --once`` differ only in what drives the cycles
(APScheduler, or one pass) and what watches the results (/metrics, or a
report): both open a ``Runtime``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Self

import aiohttp
import structlog

from vigild import __version__
from vigild.alerting.actions.runner import ActionRunner
from vigild.alerting.delivery import Delivery
from vigild.alerting.engine import Engine
from vigild.alerting.notifiers.base import Notifier, NotifierContext, backend
from vigild.alerting.silences import Silences
from vigild.assembly import Config
from vigild.daemon.cycle import Cycles
from vigild.daemon.engine_settings import configured_silences, engine_settings
from vigild.daemon.heartbeat import Heartbeat
from vigild.daemon.parts import Parts, Watched
from vigild.derived import Derived
from vigild.events import (
    ActionOutcome,
    CycleCompleted,
    CycleMissed,
    DeliveryOutcome,
    HeartbeatOutcome,
    ObservationRetired,
    ProbeResult,
    Subscribers,
)
from vigild.fields import host_port, split_listen
from vigild.probes.base import ProbeContext, build_probe
from vigild.status import Board
from vigild.storage.database import Database
from vigild.thresholds import base_metric

if TYPE_CHECKING:
    from vigild.daemon.metrics import Metrics
    from vigild.daemon.recorder import HistoryWriter

__all__ = [
    "Runtime",
    "Watchers",
    "build_notifiers",
    "make_session",
]

log = structlog.get_logger("vigild")

NOTIFY_CONNECTIONS = 20


def make_session(concurrency: int) -> aiohttp.ClientSession:
    """The one ClientSession of a run: probes and notifiers share its connection pool."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, ttl_dns_cache=300),
        cookie_jar=aiohttp.DummyCookieJar(),  # a probe must not carry state to the next
        headers={"User-Agent": f"vigild/{__version__}"},
    )


def build_notifiers(config: Config, session: aiohttp.ClientSession) -> dict[str, Notifier]:
    page_url = config.daemon.external_url
    context = NotifierContext(
        session=session,
        external_url=page_url or f"http://{host_port(*split_listen(config.daemon.listen))}",
        page_url=page_url,
        redact=config.redact,
        # The longest: an alert is repeated only when its target is probed again.
        interval=max(
            (t.effective_interval(config.daemon) for t in config.targets),
            default=config.daemon.interval,
        ),
        instance=config.daemon.instance,
    )
    return {n.name: backend(n.type)(n, context) for n in config.notifiers}


WARM_AT_START = 30.0
WARM_AT_RELOAD = 0.5
"""Seconds SLO windows and forecasts may spend warming from the history: past them the
other targets' windows start empty (logged)."""


class Runtime:
    """The parts of a run that outlive a reload (the state file, sessions, the
    status board, runtime silences, alert state), and the ``Parts`` of the
    current config, which a reload replaces whole."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.board = Board()
        self._config = config
        self._watchers: Watchers | None = None
        self._opened = False
        self._cold: list[Derived] = []
        """Derived metrics built with the parts, not yet warmed from the history."""

    async def open(
        self,
        lock_wait: float = 0.0,
        watchers: Callable[[Database], Watchers] | None = None,
        *,
        undiscovered: bool = False,
    ) -> Self:
        """Lock and open the state file, build the parts of the config.

        ``watchers``: what ``vigild run`` adds to the subscribers, made on the state file.
        ``undiscovered``: the targets container discovery adds are not in the config yet.
        """
        self.db = await Database.open(self._config.daemon.state_path, lock_wait=lock_wait)
        self.session = make_session(self._config.daemon.concurrency)
        # Notifications get connections of their own: in the probes' pool they would
        # queue behind a cycle's probes, and a page would wait for the cycle's end.
        self.notify_session = make_session(NOTIFY_CONNECTIONS)
        self.probe_context = ProbeContext(
            self.session, lambda: self.parts.config.secrets, push_runs=self.db.push_runs
        )
        self._runtime_silences = Silences.from_rows(self.db.silences.load(), self.clock())
        self.history_writer = self._history_writer()
        self.cycles = Cycles(self.db, clock=self.clock, wake=self._wake)
        self._watchers = watchers(self.db) if watchers is not None else None
        self.parts = self._build(self._config, None)
        # What a config changed while vigild was stopped no longer watches resolves now,
        # as at a reload; a discovered target's alerts wait for discovery to say.
        self.parts.engine.retain(self._watching(self._config, unknown=undiscovered), self.clock())
        # In a thread: a large history takes a while, and the loop serves meanwhile.
        await asyncio.to_thread(self._warm, self._config, WARM_AT_START)
        states = self.db.probe_states.load()
        for item in self.parts.watched:
            state = states.get(item.target.name)
            if state is not None and item.probe.keeps_state:
                item.probe.restore_state(state)
        self._opened = True
        return self

    def _history_writer(self) -> HistoryWriter:
        """The metrics history: every probe result, handed over once per cycle."""
        from vigild.daemon.recorder import HistoryWriter

        history = self._config.history
        return HistoryWriter(
            history.file(self._config.daemon.state_path), history, clock=self.clock
        )

    @property
    def watched(self) -> Sequence[Watched]:
        return self.parts.watched

    @property
    def delivery(self) -> Delivery:
        return self.parts.delivery

    def _wake(self) -> None:
        self.parts.delivery.wake()

    async def run_cycle(self, interval: float | None = None, *, lateness: float = 0.0) -> None:
        """One cycle of the targets of ``interval`` (None: of every target), on the parts
        current now."""
        parts = self.parts
        if interval is None:
            await self.cycles.run(parts, parts.watched)
        else:
            watched = parts.cycles.get(interval, ())
            await self.cycles.run(parts, watched, interval=interval, lateness=lateness)

    async def run_target(self, name: str) -> None:
        """A cycle of the target ``name`` alone: a push target judged as it is pinged."""
        parts = self.parts
        watched = [item for item in parts.watched if item.target.name == name]
        if watched:
            interval = watched[0].target.effective_interval(parts.config.daemon)
            await self.cycles.run(parts, watched, interval=interval)

    async def close(self, drain: float) -> None:
        """Stop delivery (giving queued messages ``drain`` seconds), then release in reverse."""
        if not self._opened:
            return
        self._opened = False
        parts = self.parts
        # Every step runs even when one fails, and every failure is logged.
        for step in (
            parts.actions.close(),  # first: a run's report still reaches the outbox
            parts.heartbeat.close(),
            parts.delivery.stop(drain),
            self.probe_context.close(),
            self.session.close(),
            self.notify_session.close(),
        ):
            try:
                await step
            except Exception as exc:
                log.error("error while closing", error=str(exc))
        # The last results of a cron run or a stop, off the loop: the writer may be
        # compacting an hour.
        await asyncio.to_thread(self.history_writer.close)
        self.db.close()

    # -- assembling -------------------------------------------------------

    def _build(self, config: Config, previous: Parts | None) -> Parts:
        """Every part of ``config``; what can fail (probes, silences, notifiers, action
        backends) fails here, before anything running is touched."""
        subscribers = Subscribers()
        publish = subscribers.publish
        watched = self._watched(config, previous.watched if previous else ())
        settings = engine_settings(config, self._silences(config), previous)
        engine = (
            previous.engine.successor(**settings)
            if previous
            else Engine(self.db.alerts.load(), **settings)
        )
        actions = ActionRunner(
            self.db,
            engine,
            self.notify_session,
            actions=config.actions,
            enabled=config.daemon.actions_enabled,
            redact=config.redact,
            clock=self.clock,
            on_queued=self._wake,
            publish=publish,
            subreaper=True,  # vigild forks nothing but action commands
            previous=previous.actions if previous else None,
        )
        # Last of what can fail: its notifiers are the one thing here to close again.
        delivery = Delivery(
            self.db.outbox,
            build_notifiers(config, self.notify_session),
            clock=self.clock,
            publish=publish,
        )
        heartbeat = Heartbeat(
            self.notify_session,
            config.daemon.heartbeat_url,
            redact=config.redact,
            publish=publish,
        )
        cycles: dict[float, list[Watched]] = {}
        for item in watched:
            cycles.setdefault(item.target.effective_interval(config.daemon), []).append(item)
        self._subscribe(subscribers, heartbeat)
        return Parts(config, watched, cycles, engine, delivery, actions, heartbeat, subscribers)

    def _subscribe(self, subscribers: Subscribers, heartbeat: Heartbeat) -> None:
        """Who hears what: every subscription of a run is made here."""
        on = subscribers.on
        on(ProbeResult, self.board.probe_result)
        on(ObservationRetired, self.board.observation_retired)
        on(CycleCompleted, heartbeat.cycle_completed)
        on(ProbeResult, self.history_writer.probe_result)
        on(CycleCompleted, self.history_writer.cycle_completed)
        watchers = self._watchers
        if watchers is None:
            return
        metrics = watchers.metrics
        on(ProbeResult, metrics.probe_result)
        on(CycleCompleted, metrics.cycle_completed)
        on(CycleCompleted, watchers.cycle_completed)  # readiness, watchdog, systemd status
        on(CycleMissed, metrics.cycle_missed)
        on(DeliveryOutcome, metrics.delivery_outcome)
        on(ActionOutcome, metrics.action_outcome)
        on(HeartbeatOutcome, metrics.heartbeat_outcome)

    def _silences(self, config: Config) -> Silences:
        return Silences(
            self.db.silences,
            configured=configured_silences(config, self.clock()),
            runtime=self._runtime_silences,  # shared: the API adds to it, a reload keeps it
        )

    def _watched(self, config: Config, previous: Sequence[Watched]) -> list[Watched]:
        """A probe per target; after a reload, an unchanged target keeps its probe, and
        with it a rate's previous sample."""
        daemon = config.daemon
        kept = {item.target.name: item for item in previous}
        watched = []
        cold = []
        for target in config.targets:
            timeout = target.effective_timeout(daemon)
            old = kept.get(target.name)
            rules = config.rules[target.name]
            if old is not None and old.target == target and old.probe.timeout == timeout:
                probe = old.probe
            else:
                probe = build_probe(target, self.probe_context, timeout)
            if old is not None and old.target == target and old.rules == rules:
                derived = old.derived
            elif (derived := Derived.of(target, rules)) is not None:
                cold.append(derived)
            watched.append(Watched(target, probe, rules, derived))
        self._cold = cold
        return watched

    def _warm(self, config: Config, budget: float) -> None:
        """Fill the windows of the targets just built from the history file."""
        cold, self._cold = self._cold, []
        if cold:
            from vigild.daemon.warmup import warm

            warm(cold, config.history, config.daemon.state_path, self.clock(), budget=budget)

    # -- reloading --------------------------------------------------------

    def prepare(self, config: Config) -> Parts:
        """The parts of a validated new config, built beside the running ones."""
        parts = self._build(config, self.parts)
        # On the loop, while cycles run: only the targets the reload changed, briefly.
        self._warm(config, WARM_AT_RELOAD)
        return parts

    def swap(self, parts: Parts, notes: Mapping[str, str] | None = None) -> Parts:
        """Put ``parts`` in place of the running ones, in one assignment; alert state
        and the outbox carry over (``notes``: why a target's alerts resolve, by target).
        Returns the old parts, for ``retire``."""
        old, self.parts = self.parts, parts
        config = parts.config
        for key in ("state_path", "listen", "replica"):
            if getattr(old.config.daemon, key) != getattr(config.daemon, key):
                log.warning("change takes effect after a restart", key=f"daemon.{key}")
        if old.config.history != config.history:
            log.warning("change takes effect after a restart", key="history")
        parts.engine.retain(self._watching(config), self.clock(), notes)
        self.board.retain(config.owner_of)
        return old

    @staticmethod
    def _watching(config: Config, *, unknown: bool = False) -> Callable[[str, str], bool]:
        """Whether ``config`` watches a target's (or a container's) metric; ``unknown``:
        the answer for a target ``config`` does not have (one discovery may add yet)."""
        rules = config.rules

        def watched(observed: str, metric: str) -> bool:
            owner = config.owner_of(observed)
            if owner is None:
                return unknown
            return metric in rules[owner] or base_metric(metric) in rules[owner]

        return watched

    async def retire(self, old: Parts) -> None:
        """Stop what the swapped-out parts run, and let the new delivery begin."""
        await old.heartbeat.close()
        await old.delivery.stop(drain=2.0)  # never two deliveries on one outbox
        self.parts.delivery.start()
        self.cycles.flush(self.parts.engine)  # what the new config no longer watches resolves

    async def discard(self, parts: Parts) -> None:
        """Let go of parts that were prepared and never swapped in."""
        await parts.delivery.stop(drain=0)


class Watchers(NamedTuple):
    """What ``vigild run`` adds to a run's subscribers (``--once`` has none)."""

    metrics: Metrics
    cycle_completed: Callable[[CycleCompleted], None]
