"""Everything one run needs, assembled in one place from one config.

``vigild run`` and ``vigild --once`` differ only in what drives the cycles
(APScheduler, or one pass) and what watches the results (/metrics, or a
report): both open a ``Runtime``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Self

import aiohttp
import structlog

from vigild import __version__
from vigild.alerting.actions.runner import ActionRunner
from vigild.alerting.delivery import Delivery, OutcomeListener
from vigild.alerting.engine import Engine
from vigild.alerting.notifiers.base import Notifier, NotifierContext, backend
from vigild.alerting.silences import Silences
from vigild.alerting.stages.route import Route
from vigild.config import Config, split_listen
from vigild.daemon.cycle import Pipeline, ResultListener, Watched
from vigild.daemon.heartbeat import Heartbeat
from vigild.model import Identity, Observation
from vigild.probes.base import ProbeContext, build_probe
from vigild.status import Board
from vigild.storage.database import Database
from vigild.thresholds import Verdict, base_metric

if TYPE_CHECKING:
    from vigild.daemon.recorder import HistoryWriter

__all__ = ["Runtime", "build_notifiers", "make_session"]

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
    host, port = split_listen(config.daemon.listen)
    shown = f"[{host}]" if ":" in host else host
    context = NotifierContext(
        session=session,
        external_url=f"http://{shown}:{port}",
        redact=config.redact,
        # The longest: an alert is repeated only when its target is probed again.
        interval=max(
            (t.effective_interval(config.daemon) for t in config.targets),
            default=config.daemon.interval,
        ),
        instance=config.daemon.instance,
    )
    return {n.name: backend(n.type)(n, context) for n in config.notifiers}


class Runtime:
    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.result_listeners: list[ResultListener] = []
        self.outcome_listeners: list[OutcomeListener] = []
        self.cycle_listeners: list[Callable[[float], None]] = []
        self.skip_listeners: list[Callable[[str], None]] = []
        self.heartbeat_listeners: list[Callable[[str], None]] = []
        self.board = Board()
        self._opened = False

    async def open(self, lock_wait: float = 0.0) -> Self:
        """Lock and open the state file, build probes, notifiers and the pipeline."""
        self.db = await Database.open(self.config.daemon.state_path, lock_wait=lock_wait)
        self.session = make_session(self.config.daemon.concurrency)
        # Notifications get connections of their own: in the probes' pool they would
        # queue behind a cycle's probes, and a page would wait for the cycle's end.
        self.notify_session = make_session(NOTIFY_CONNECTIONS)
        self.probe_context = ProbeContext(self.session, self.config.secrets)
        self.watched, self._target_labels = self._watched(self.config)
        states = self.db.probe_states.load()
        for item in self.watched:
            state = states.get(item.target.name)
            if state is not None and item.probe.keeps_state:
                item.probe.restore_state(state)
        self._runtime_silences = Silences.from_rows(self.db.silences.load(), self.clock())
        self.engine = Engine(self.db.alerts.load(), (), flap_limit=self.config.alerting.flap_limit)
        self._configure_engine(self._silences(self.config))
        self.delivery = self._delivery(self.config)
        self.actions = ActionRunner(
            self.db,
            self.engine,
            self.notify_session,
            clock=self.clock,
            on_queued=self.delivery.wake,
            subreaper=True,  # vigild forks nothing but action commands
        )
        self._configure_actions(self.config)
        self.history_writer = self._history_writer()
        self.pipeline = Pipeline(
            self.engine,
            self.db,
            clock=self.clock,
            concurrency=self.config.daemon.concurrency,
            group_wait=self.config.alerting.group_wait,
            on_result=self._on_result,
            on_queued=self.delivery.wake,
            on_skipped=self._on_skipped,
            first=self.config.daemon.connectivity_check,
        )
        self.heartbeat = Heartbeat(
            self.notify_session,
            self.config.daemon.heartbeat_url,
            redact=self.config.redact,
            on_outcome=self._on_heartbeat,
        )
        self._opened = True
        return self

    def _history_writer(self) -> HistoryWriter:
        """Every probe result goes to the metrics history, handed over once per cycle."""
        from vigild.daemon.recorder import HistoryWriter

        history = self.config.history
        writer = HistoryWriter(
            history.file(self.config.daemon.state_path), history, clock=self.clock
        )
        self.result_listeners.append(writer.observed)
        self.cycle_listeners.append(writer.cycle_completed)
        return writer

    async def run_cycle(self, watched: Sequence[Watched]) -> None:
        """One cycle; a completed one is announced to listeners and the heartbeat."""
        # Also when this cycle writes nothing: a state file deleted during a quiet
        # outage must be back before a restart reads it.
        self.db.check()
        if not await self.pipeline.run_cycle(watched):
            return
        now = self.clock()
        self.engine.policy.silences.prune(now)
        self.actions.evaluate(now)
        for listener in self.cycle_listeners:
            listener(now)
        self.heartbeat.ping()

    async def close(self, drain: float) -> None:
        """Stop delivery (giving queued messages ``drain`` seconds), then release in reverse."""
        if not self._opened:
            return
        self._opened = False
        # Every step runs even when one fails, and every failure is logged.
        for step in (
            self.actions.close(),  # first: a run's report still reaches the outbox
            self.heartbeat.close(),
            self.delivery.stop(drain),
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

    def _silences(self, config: Config) -> Silences:
        now = self.clock()
        return Silences(
            self.db.silences,
            configured=tuple(
                s.silence(f"config-{i}", now, "config") for i, s in enumerate(config.silences)
            ),
            runtime=self._runtime_silences,  # shared: the API adds to it, a reload keeps it
        )

    def _configure_engine(self, silences: Silences) -> None:
        config = self.config
        self.engine.configure(
            self._routes(),
            flap_limit=config.alerting.flap_limit,
            labels=self._labels,
            redact=config.redact,
            silences=silences,
            dependencies={t.name: tuple(t.depends_on) for t in config.targets if t.depends_on},
            connectivity=config.daemon.connectivity_check,
            max_per_message=config.alerting.max_alerts_per_message,
            identity=Identity.of(config.daemon.instance, config.daemon.external_labels),
        )

    def _configure_actions(self, config: Config) -> None:
        self.actions.configure(
            config.actions, enabled=config.daemon.actions_enabled, redact=config.redact
        )

    def _routes(self) -> list[Route]:
        return [
            Route(
                name=n.name,
                min_rank=n.min_rank,
                send_resolved=n.send_resolved,
                repeat_interval=self.config.daemon.interval
                if backend(n.type).keepalive
                else n.repeat_interval or self.config.alerting.repeat_interval,
                keepalive=backend(n.type).keepalive,
            )
            for n in self.config.notifiers
        ]

    def _labels(self, observed: str) -> tuple[tuple[str, str], ...]:
        """The alert labels of a target, or of the target a container came from."""
        labels = self._target_labels.get(observed)
        if labels is None:
            owner = self.config.owner_of(observed)
            labels = self._target_labels.get(owner, ()) if owner is not None else ()
        return labels

    def _delivery(self, config: Config) -> Delivery:
        return Delivery(
            self.db.outbox,
            build_notifiers(config, self.notify_session),
            clock=self.clock,
            on_outcome=self._on_outcome,
        )

    def _on_heartbeat(self, outcome: str) -> None:
        for listener in self.heartbeat_listeners:
            listener(outcome)

    def _on_skipped(self, target: str) -> None:
        for listener in self.skip_listeners:
            listener(target)

    def _on_outcome(self, notifier: str, outcome: str, age: float) -> None:
        for listener in self.outcome_listeners:
            listener(notifier, outcome, age)

    def _watched(
        self, config: Config, previous: Sequence[Watched] = ()
    ) -> tuple[list[Watched], dict[str, tuple[tuple[str, str], ...]]]:
        """A probe per target, and each target's alert labels; after a reload, an
        unchanged target keeps its probe, and with it a rate's previous sample."""
        daemon = config.daemon
        labels = {t.name: tuple(sorted(t.labels.items())) for t in config.targets}
        kept = {item.target.name: item for item in previous}
        watched = []
        for target in config.targets:
            timeout = target.effective_timeout(daemon)
            old = kept.get(target.name)
            if old is not None and old.target == target and old.probe.timeout == timeout:
                probe = old.probe
            else:
                probe = build_probe(target, self.probe_context, timeout)
            watched.append(Watched(target, probe, config.rules[target.name]))
        return watched, labels

    def cycles(self) -> dict[float, list[Watched]]:
        """Targets grouped by interval: one cycle, one scheduler job, per interval."""
        grouped: dict[float, list[Watched]] = {}
        for item in self.watched:
            grouped.setdefault(item.target.effective_interval(self.config.daemon), []).append(item)
        return grouped

    def _on_result(self, item: Watched, observation: Observation, verdicts: list[Verdict]) -> None:
        self.board.record(item.target.name, observation, verdicts)
        for listener in self.result_listeners:
            listener(item, observation, verdicts)

    # -- reloading --------------------------------------------------------

    async def apply(self, config: Config) -> None:
        """Switch to a validated new config; alert state and the outbox carry over.

        What can fail (probes, silences, notifiers, action backends) is built
        first, while the running parts go on untouched; only then is it swapped in.
        """
        watched, labels = self._watched(config, self.watched)
        silences = self._silences(config)
        delivery = self._delivery(config)
        try:
            self._configure_actions(config)
        except Exception:
            await delivery.stop(drain=0)
            raise
        old = self.config
        self.config = config
        for key in ("state_path", "listen", "replica"):
            if getattr(old.daemon, key) != getattr(config.daemon, key):
                log.warning("change takes effect after a restart", key=f"daemon.{key}")
        if old.history != config.history:
            log.warning("change takes effect after a restart", key="history")
        self.probe_context.secrets = config.secrets
        self.watched, self._target_labels = watched, labels
        self._configure_engine(silences)
        rules = config.rules

        def still_watched(observed: str, metric: str) -> bool:
            owner = config.owner_of(observed)
            return owner is not None and (
                metric in rules[owner] or base_metric(metric) in rules[owner]
            )

        self.engine.retain(still_watched, self.clock())
        self.board.retain(config.owner_of)
        self.pipeline.concurrency = config.daemon.concurrency
        self.pipeline.group_wait = config.alerting.group_wait
        self.pipeline.first = config.daemon.connectivity_check
        self.heartbeat.url = config.daemon.heartbeat_url
        await self.delivery.stop(drain=2.0)
        self.delivery = delivery
        self.pipeline.on_queued = self.delivery.wake
        self.actions.on_queued = self.delivery.wake
        self.delivery.start()
        self.pipeline.flush()
