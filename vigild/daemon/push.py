"""Pings that reach the daemon (``POST /ping/<key>...``): recorded in the state file,
then the pinged target is judged at once, not at its next cycle."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from vigild.assembly import Config
from vigild.probes.push import PushTarget, keep_output, parse_ping
from vigild.storage.pings import Ping, PushRuns

__all__ = ["PING_OUTCOMES", "PushReceiver", "UnknownKey"]

PING_OUTCOMES = ("recorded", "unknown_key", "invalid", "failed")


class UnknownKey(LookupError):
    """No push target answers to the key."""


class PushReceiver:
    def __init__(
        self,
        config: Callable[[], Config],
        runs: PushRuns,
        *,
        clock: Callable[[], float],
        judge_now: Callable[[str], None],
        count: Callable[[str], None],
    ) -> None:
        """
        Args:
            config: the running config (a reload changes the targets and their keys).
            judge_now: starts an evaluation of the named target.
            count: one outcome of ``PING_OUTCOMES`` per ping.
        """
        self._config = config
        self._runs = runs
        self._clock = clock
        self._judge_now = judge_now
        self._count = count

    def receive(self, key: str, what: str, body: bytes, *, authorized: bool) -> str:
        """Record a ping; the name of the target it was for.

        ``authorized`` (the request carried the API token or the cookie): the target's
        name is a key too, so ``vigild ping`` needs no ``ping_key``.

        Raises:
            ValueError: ``what`` is not start, fail or an exit status.
            UnknownKey: no push target has ``key``.
            StateFileError, sqlite3.Error: the state file could not record it.
        """
        try:
            kind, status = parse_ping(what)
        except ValueError:
            self._count("invalid")
            raise
        target = self._target(key, authorized)
        if target is None:
            self._count("unknown_key")
            raise UnknownKey(key)
        config = self._config()
        ping = Ping(kind, self._clock(), status, keep_output(body, config.secrets))
        try:
            self._runs.record(target, ping)
        except Exception:
            self._count("failed")
            raise
        self._count("recorded")
        self._judge_now(target)
        return target

    def _target(self, key: str, authorized: bool) -> str | None:
        targets = [t for t in self._config().targets if isinstance(t, PushTarget)]
        # Every key is compared, to the end: the time taken says nothing about them.
        keyed = [t.name for t in targets if hmac.compare_digest(t.key.encode(), key.encode())]
        if keyed:
            return keyed[0]
        if authorized:
            return next((t.name for t in targets if t.name == key), None)
        return None
