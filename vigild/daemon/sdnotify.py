"""systemd's notify protocol (``sd_notify``), written out: it is a dozen lines of stable protocol.

systemd passes ``$NOTIFY_SOCKET`` (a filesystem path, or ``@name`` in the abstract
namespace) to a ``Type=notify`` service; each message is one datagram of
``KEY=value`` lines. ``$WATCHDOG_USEC`` asks for ``WATCHDOG=1`` at least that often,
and ``$WATCHDOG_PID``, when set, names the one process it is meant for.

Without ``$NOTIFY_SOCKET`` (a terminal, a container, cron) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Iterable, MutableMapping

import structlog

from vigild.model import Severity
from vigild.wording import counted

__all__ = ["SystemdNotify", "Watchdog", "status_line"]

log = structlog.get_logger("vigild")

_ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class SystemdNotify:
    """One process's channel to systemd; ``watchdog`` is the ping period asked for, if any."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address or None
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._socket: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_environment(
        cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = True
    ) -> SystemdNotify:
        """Read systemd's variables, then (by default) remove them, as ``sd_notify`` does with
        ``unset_environment``: an action's command must not speak for vigild to systemd."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET")
        usec = _positive_int(env.get("WATCHDOG_USEC"))
        pid = _positive_int(env.get("WATCHDOG_PID"))
        if pid is not None and pid != os.getpid():
            usec = None  # the watchdog was meant for another process (a wrapper's parent)
        if unset:
            for key in _ENVIRONMENT:
                env.pop(key, None)
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Half the watchdog timeout, as sd_watchdog_enabled(3) recommends; None: no watchdog."""
        if not self.enabled or self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2e6

    def send(self, *fields: str) -> bool:
        """One datagram of ``KEY=value`` lines; False when it could not be sent.

        A failure is logged once, never raised: systemd going away must not stop
        the monitoring.
        """
        if self.address is None:
            return False
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto("\n".join(fields).encode(), target)
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify systemd", socket=self.address, error=str(exc))
                self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def reloading(self) -> bool:
        # systemd matches the reload to this timestamp (required by Type=notify-reload).
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading the config")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class Watchdog:
    """``WATCHDOG=1`` every ``interval`` seconds, sent by a timer on the event loop itself.

    A loop stuck in a blocking call runs no timers, so the pings stop and systemd
    restarts vigild; ``alive`` adds what the loop alone cannot tell (that the
    scheduler still runs cycles). A thread would go on pinging for a dead loop.
    """

    def __init__(self, notify: SystemdNotify, interval: float, alive: Callable[[], bool]) -> None:
        self.notify = notify
        self.interval = interval
        self.alive = alive
        self.pings = 0
        self._handle: asyncio.TimerHandle | None = None
        self._quiet = False

    def start(self) -> None:
        self._tick()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.interval, self._tick)
        if self.alive():
            if self._quiet:
                log.info("watchdog pings resumed")
                self._quiet = False
            if self.notify.send("WATCHDOG=1"):
                self.pings += 1
        elif not self._quiet:
            # Said once: this is the last line before systemd kills a hung vigild.
            log.error("scheduler stalled: withholding watchdog pings")
            self._quiet = True


def status_line(targets: int, severities: Iterable[Severity]) -> str:
    """``"12 targets, 1 critical, 2 warning"``: the one line ``systemctl status`` shows."""
    counts = {level: 0 for level in (Severity.CRITICAL, Severity.WARNING, Severity.UNKNOWN)}
    for severity in severities:
        if severity in counts:
            counts[severity] += 1
    parts = [f"{count} {level.label}" for level, count in counts.items() if count]
    return ", ".join([counted(targets, "target"), *(parts or ["all ok"])])


def _positive_int(value: str | None) -> int | None:
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number is not None and number > 0 else None
