"""``vigild run``: the long-running daemon and its lifecycle.

setup() → start() → (reload() on SIGHUP)* → shutdown(). Stop order on
SIGTERM: pause the scheduler → stop the HTTP site → let in-flight cycles
finish within a deadline, then cancel them → drain notifications within a
deadline → close the ClientSession → close SQLite → release the state lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import structlog
from aiohttp import web

from vigild import __version__, logs
from vigild.assembly import Config, load
from vigild.config import ConfigError
from vigild.cookie import cookie_path, remove_cookie, write_cookie
from vigild.daemon.discovered import fresh, removed, start_discovery
from vigild.daemon.firstrun import first_cycle_line
from vigild.daemon.looplag import LoopLag
from vigild.daemon.metrics import HistoryCollector, Metrics
from vigild.daemon.push import PushReceiver
from vigild.daemon.runtime import Runtime, Watchers
from vigild.daemon.scheduler import CycleScheduler
from vigild.daemon.sdnotify import SystemdNotify, Watchdog, status_line
from vigild.daemon.server import make_app, open_site
from vigild.daemon.views import Views
from vigild.discovery import ContainerDiscovery
from vigild.events import CycleCompleted
from vigild.fields import unix_listen
from vigild.model import Severity, worst
from vigild.storage.database import Database
from vigild.tasks import spawn

__all__ = ["Daemon", "LifecycleError"]

log = structlog.get_logger("vigild")

CYCLE_GRACE = 2.0
"""How long a stop waits for running cycles before cancelling their probes."""
DRAIN = 5.0
"""How long a stop gives queued notifications to go out (the rest stay in the outbox)."""
STALL_AFTER = 60.0
"""Slack on top of three of the shortest intervals without a cycle starting or ending,
after which the scheduler counts as stalled and systemd's watchdog pings stop."""
UNREADY_AFTER = 3
"""Shortest intervals without a completed cycle after which /readyz says not ready."""


def _settle_heap() -> None:
    """Move what the config built (probes, rules, models: most of the heap) out of GC's way.

    At 10,000 targets a full collection walks about a million long-lived
    objects; one landing at a cycle's start delays it by hundreds of ms.
    Unfrozen first, so what a reload left behind can still be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class LifecycleError(RuntimeError):
    """A lifecycle method called out of order."""


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        notify: SystemdNotify | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self.clock = clock
        # Cycle staleness (readiness, the watchdog's stall check) is measured on this one,
        # which a wall-clock step cannot move.
        self._monotonic = monotonic
        self.notify = notify if notify is not None else SystemdNotify.from_environment()
        self._watchdog: Watchdog | None = None
        self._loop_lag: LoopLag | None = None
        self._last_cycle = self._monotonic()
        self._last_completed = self._monotonic()
        self._status_sent = ""
        self._greeted = False
        self._first_cycles: set[float] = set()
        self._stage = "new"
        self._inflight: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._reloader: asyncio.Task[None] | None = None
        self._reload_asked = False
        self._file_config = config  # as the file has it, without what discovery adds
        self._applying = asyncio.Lock()
        self.discovery: ContainerDiscovery | None = None

    def _expect(self, stage: str, action: str) -> None:
        if self._stage != stage:
            raise LifecycleError(f"cannot {action} a daemon that is {self._stage}")

    @property
    def config(self) -> Config:
        """The running config: the one the last reload swapped in."""
        return self._config if self._stage == "new" else self.runtime.parts.config

    @property
    def ready(self) -> bool:
        """Config loaded, the scheduler running, and cycles completing."""
        if self._stage != "running" or not self.scheduler.running:
            return False
        shortest = self._shortest_interval()
        return shortest is None or (
            self._monotonic() - self._last_completed < UNREADY_AFTER * shortest
        )

    def _shortest_interval(self) -> float | None:
        daemon = self.config.daemon
        return min((t.effective_interval(daemon) for t in self.config.targets), default=None)

    async def setup(self) -> None:
        self._expect("new", "set up")
        self.runtime = await Runtime(self._config, clock=self.clock).open(
            watchers=self._watchers, undiscovered=self._config.discovery.containers is not None
        )
        # Only once the state lock is ours: a second daemon refused by the lock must not
        # replace the running one's cookie.
        self._cookie_path = cookie_path(self.config.daemon.state_path)
        self._cookie = write_cookie(self._cookie_path)
        self.metrics.registry.register(HistoryCollector(self.runtime.history_writer))
        views = Views(self.runtime, lambda: self.config, self.clock)
        app = make_app(
            exposition=self.metrics.exposition,
            status=views.moment,
            ready=lambda: self.ready,
            secrets=lambda: self.config.secrets,  # a reload changes them
            silences=lambda: self.runtime.parts.engine.policy.silences,
            api_token=lambda: self.config.daemon.api_token,
            cookie=self._cookie,
            unix_socket=unix_listen(self.config.daemon.listen) is not None,
            clock=self.clock,
            page=views.page,
            history=views.history,
            pushes=PushReceiver(
                lambda: self.config,
                self.runtime.db.push_runs,
                clock=self.clock,
                judge_now=self._judge_now,
                count=self.metrics.ping_outcome,
            ),
            week=views.week,
        )
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self.runner.setup()
        self.scheduler = CycleScheduler(self._start_cycle)
        self._stage = "set up"

    def _watchers(self, db: Database) -> Watchers:
        config = self._config
        self.metrics = Metrics(
            secrets=lambda: self.config.secrets,  # a reload changes them
            pending=lambda: self.runtime.delivery.pending,
            state_file=db.file,
            replica=config.daemon.replica,
        )
        self.metrics.declare_actions(a.name for a in config.actions)
        return Watchers(self.metrics, self._cycle_completed)

    async def start(self) -> None:
        self._expect("set up", "start")
        await open_site(self.runner, self.config.daemon)
        self.runtime.delivery.start()
        _settle_heap()
        self.scheduler.start(self.scheduler.plan(self.runtime.parts.cycles))
        self._loop_lag = LoopLag(self.metrics.loop_lag.observe)
        self._loop_lag.start()
        self._stage = "running"
        self.discovery = start_discovery(self.config, self._discovered)
        log.info(
            "vigild started",
            version=__version__,
            listen=self.config.daemon.listen,
            instance=self.config.daemon.instance,
            external_labels=self.config.daemon.external_labels,
            targets=len(self.config.targets),
            notifiers=[n.name for n in self.config.notifiers],
        )
        self._last_cycle = self._last_completed = self._monotonic()
        self._status_sent = self._status_line()
        self.notify.ready(self._status_sent)
        interval = self.notify.watchdog_interval
        if interval is not None:
            self._watchdog = Watchdog(self.notify, interval, self._scheduler_alive)
            self._watchdog.start()

    def _status_line(self) -> str:
        return status_line(len(self.config.targets), self._worst_per_target())

    def _worst_per_target(self) -> Iterator[Severity]:
        latest = self.runtime.board.latest.values()
        return (worst(v.severity for v in verdicts) for _, verdicts in latest)

    def _cycle_completed(self, event: CycleCompleted) -> None:
        self._last_completed = self._monotonic()
        if not event.recorded:
            return
        line = self._status_line()
        if line != self._status_sent:  # one datagram per change, not per cycle
            self._status_sent = line
            self.notify.status(line)
        self._first_cycles.add(event.interval)
        # Targets of a slower interval start later: greeting before their first
        # cycle would count them as "not probed yet" in the one line a person reads.
        if not self._greeted and self._first_cycles >= set(self.runtime.parts.cycles):
            self._greet()

    def _greet(self) -> None:
        """After every interval's first cycle: what is watched, how it is, and where to look."""
        self._greeted = True
        daemon = self.config.daemon
        log.info(
            first_cycle_line(
                len(self.config.targets),
                self._worst_per_target(),
                daemon.listen,
                daemon.state_path,
            )
        )

    def _scheduler_alive(self) -> bool:
        """Cycles still start or end: a stalled scheduler must look as dead as a hung loop."""
        if self._stage != "running" or not self.scheduler.running:
            return False
        shortest = self._shortest_interval()
        if shortest is None:
            return True  # nothing to schedule: a live loop is all there is to tell
        return self._monotonic() - self._last_cycle < 3 * shortest + STALL_AFTER

    def _start_cycle(self, interval: float, lateness: float) -> None:
        self._track(self._cycle(interval, lateness), f"cycle-{interval:g}s")

    def _track(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = spawn(work, name=name)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    def _judge_now(self, target: str) -> None:
        """A pinged push target is judged at once, not at its next cycle (a shutdown
        waits for it, as for a cycle)."""
        task = spawn(self.runtime.run_target(target), name=f"ping-{target}")
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _cycle(self, interval: float, lateness: float) -> None:
        self._last_cycle = self._monotonic()
        try:
            await self.runtime.run_cycle(interval, lateness=lateness)
            # A cycle's results replace the last cycle's, so allocations and frees cancel
            # out and GC's young generation fills up unnoticed; the first allocation of
            # the next cycle would pay for it (tens of ms at 10,000 targets). Pay now,
            # while nothing waits.
            gc.collect(1)
        except asyncio.CancelledError:
            if self._stage != "stopping":
                raise
            # Our own shutdown cut a slow cycle short: not an error worth a line.
            log.debug("cycle cancelled by shutdown")
        finally:
            self._last_cycle = self._monotonic()

    def request_reload(self) -> None:
        """SIGHUP: one reload at a time; HUPs that arrive meanwhile make one more, not one each."""
        self._reload_asked = True
        if self._reloader is None or self._reloader.done():
            self._reloader = spawn(self._reload_while_asked(), name="reload")

    async def _reload_while_asked(self) -> None:
        while self._reload_asked and self._stage == "running":
            self._reload_asked = False
            await self.reload()

    async def reload(self) -> None:
        """Validate the file again; a broken one is logged and the running config stays.

        systemd hears RELOADING=1 first and READY=1 after, whatever the outcome.
        """
        self._expect("running", "reload")
        self.notify.reloading()
        try:
            await self._reload()
        finally:
            self._last_cycle = self._monotonic()  # the scheduler's jobs were just replaced
            self._status_sent = self._status_line()
            self.notify.ready(self._status_sent)

    async def _reload(self) -> None:
        """All or nothing: every part of the new config, and the scheduler's jobs for
        it, is built before one assignment swaps them in. A failure before that leaves
        the running parts as they were: a config half applied could stop probing for good."""
        try:
            new = await asyncio.to_thread(load, self.config.path)
        except ConfigError as exc:
            log.error("reload rejected, keeping the running config", problems=exc.problems)
            self.metrics.reloaded("rejected")
            return
        for warning in new.warnings:
            log.warning(warning)
        if new.discovery != self._file_config.discovery:  # its stream and state stay
            log.warning("change takes effect after a restart", key="discovery")
        applied = await self._apply(new, "reload")
        self.metrics.reloaded("applied" if applied else "rejected")
        if applied:
            self._file_config = new
            log.info("config reloaded", targets=len(new.targets), path=str(new.path))

    async def _discovered(self) -> None:
        """Applied as a reload applies a file; new targets are probed at once."""
        old = self.config
        if await self._apply(self._file_config, "discovery"):
            parts = self.runtime.parts
            if watched := fresh(old, parts.cycles):
                self._track(self.runtime.cycles.run(parts, watched), "discovered")

    async def _apply(self, loaded: Config, reason: str) -> bool:
        async with self._applying:  # a reload and a discovery change, one after the other
            new = self.discovery.merged(loaded) if self.discovery is not None else loaded
            logs.set_secrets(self.config.secrets | new.secrets)
            try:
                parts = self.runtime.prepare(new)
                try:
                    plan = self.scheduler.plan(parts.cycles)
                except Exception:
                    await self.runtime.discard(parts)
                    raise
            except Exception:
                log.exception(f"{reason} failed while applying: the running config stays")
                logs.set_secrets(self.config.secrets)
                return False
            old = self.runtime.swap(parts, removed(self.config, new))
            self.scheduler.install(plan)
            await self.runtime.retire(old)
            self.metrics.retain(new)
            logs.set_secrets(new.secrets)
            _settle_heap()
            return True

    def stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        if self._stage in ("new", "stopped"):
            return
        self._stage = "stopping"
        log.info("vigild stopping")
        self.notify.stopping()
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._loop_lag is not None:
            self._loop_lag.stop()
        self.scheduler.pause()
        if self.discovery is not None:
            await self.discovery.stop()
        await self.runner.cleanup()
        remove_cookie(self._cookie_path, self._cookie)
        socket_path = unix_listen(self.config.daemon.listen)
        if socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path)
        if self._inflight:
            _done, late = await asyncio.wait(self._inflight, timeout=CYCLE_GRACE)
            for task in late:
                task.cancel()
            # Cancelled cycles still flush their state in their `finally`.
            await asyncio.gather(*late, return_exceptions=True)
        self.scheduler.shutdown()
        await self.runtime.close(drain=DRAIN)
        self._stage = "stopped"
        self.notify.close()
        log.info("vigild stopped")

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT; SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: self.stop,
            signal.SIGINT: self.stop,
            signal.SIGHUP: self.request_reload,
        }
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
        try:
            await self.setup()
            await self.start()
            await self._stop.wait()
        finally:
            for signum in handlers:
                loop.remove_signal_handler(signum)
            if self._reloader is not None:
                self._reloader.cancel()
                await asyncio.gather(self._reloader, return_exceptions=True)
            await self.shutdown()
