"""The interface a notifier implements, and the registry that finds one by ``type``.

A third party adds a backend by publishing a ``Notifier`` subclass under the
``vigild.notifiers`` entry-point group; the config then accepts its ``type``
and validates its keys with the backend's own ``Options`` model.
"""

from __future__ import annotations

import functools
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from vigild import plugins
from vigild.plugins import Options, own_options

if TYPE_CHECKING:
    import aiohttp

    from vigild.config import NotifierConfig
    from vigild.model import Notification

__all__ = ["DeliveryError", "Notifier", "NotifierContext", "Options", "backend", "own_options"]

GROUP = "vigild.notifiers"


class DeliveryError(Exception):
    """A send that failed; ``retryable`` says whether trying again can help.

    The message is shown in logs and must not contain the notifier's URL or keys.
    """

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class NotifierContext:
    """What a backend may use from the daemon."""

    session: aiohttp.ClientSession
    external_url: str
    """Where a reader can see vigild's status, e.g. ``http://127.0.0.1:9469``."""
    redact: Callable[[str], str]
    page_url: str | None = None
    """``[daemon] external_url``: the status page as readers reach it; messages link
    to a target's row on it only when it is set (the listen address is seldom reachable
    from a phone)."""
    interval: float = 30.0
    """The longest target interval: at most this long passes before a ``keepalive``
    backend hears of an open alert again."""
    instance: str = field(default_factory=socket.gethostname)
    """``[daemon] instance``: the host a reader is told the message comes from."""


class Notifier(ABC):
    Options: ClassVar[type[BaseModel]] = Options
    keepalive: ClassVar[bool] = False
    """The receiver forgets an alert it is not told about again (Alertmanager resolves
    it at ``endsAt``): the engine then repeats every open alert each time its target
    is probed, instead of each ``repeat_interval``."""

    def __init__(self, config: NotifierConfig, context: NotifierContext) -> None:
        self.config = config
        self.name = config.name
        self.context = context

    @classmethod
    def is_disabled(cls, options: BaseModel) -> bool:
        """True when the options leave nothing to send to (an empty ``${VAR:-}`` URL)."""
        return False

    @classmethod
    def unusable(cls, options: BaseModel) -> str | None:
        """Why these options can never deliver (the backend's own parser refuses its URL),
        or None. Checked when the config is loaded; it may be slow (``--once`` skips it)."""
        return None

    @abstractmethod
    async def send(self, notification: Notification) -> None:
        """Deliver one message, or raise ``DeliveryError``. Timeouts are the caller's."""

    async def close(self) -> None:  # noqa: B027 - most backends hold nothing of their own
        """Release what the backend holds."""


@functools.cache
def backend(kind: str) -> type[Notifier]:
    found: type[Notifier] = plugins.find(GROUP, kind, Notifier, "notifier")
    return found
