"""``type = "apprise"`` (the default): any apprise URL, Discord, Slack, Telegram, e-mail ...

apprise is imported on the first send, not with this module: it takes a good
part of the time ``vigild --once`` may spend starting. Its ``notify`` is
blocking, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, field_validator

from vigild.alerting.notifiers import base, text
from vigild.model import Severity

if TYPE_CHECKING:
    import apprise

    from vigild.config import NotifierConfig
    from vigild.model import Notification

__all__ = ["AppriseNotifier", "notify_type"]

_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*)://")

_RENDERS_MARKDOWN = frozenset({"NotifyDiscord", "NotifyMatrix"})
"""Services apprise sends as plain text by default whose clients render markdown: told
to send markdown unless the URL says ``format=``. Discord then sends an embed, coloured
by the notify type."""


def notify_type(notification: Notification) -> str:
    """apprise's notify type: the colour and icon a reader sees first."""
    if notification.is_test:
        return "info"
    if notification.status == "resolved":
        return "success"
    severity = notification.severity
    if severity is Severity.CRITICAL:
        return "failure"
    if severity.routing_rank == Severity.WARNING:  # UNKNOWN reads as a warning
        return "warning"
    return "info"


class AppriseNotifier(base.Notifier):
    """Sends the human-readable message of ``text`` through one apprise URL."""

    class Options(base.Options):
        url: str

        @field_validator("url")
        @classmethod
        def _strip(cls, value: str) -> str:
            return value.strip()

    def __init__(self, config: NotifierConfig, context: base.NotifierContext) -> None:
        super().__init__(config, context)
        self.options = base.own_options(config, self.Options)
        self._apprise: apprise.Apprise | None = None
        self._markdown = True
        """The service renders markdown (or HTML, which apprise converts it to)."""
        self._where = "apprise"
        """The destination as it may be shown: apprise's privacy form, host only."""
        self._unusable: str | None = None
        """Why the URL cannot be used: it will not parse on the next send either."""
        self._building = asyncio.Lock()

    @classmethod
    def is_disabled(cls, options: BaseModel) -> bool:
        return isinstance(options, cls.Options) and not options.url

    @classmethod
    def unusable(cls, options: BaseModel) -> str | None:
        if not isinstance(options, cls.Options) or not options.url:
            return None
        import apprise

        return None if apprise.Apprise.instantiate(options.url) else _refused(options.url)

    async def send(self, notification: Notification) -> None:
        sender = await self._sender()
        # A caller's timeout abandons the thread without stopping it; apprise's own
        # socket timeouts (4 s connect, 4 s read by default) end it soon after.
        markdown = self._markdown
        delivered = await asyncio.to_thread(
            sender.notify,
            body=text.body(notification, page_url=self.context.page_url, markdown=markdown),
            title=text.title(notification, self.context.instance),
            notify_type=notify_type(notification),
            body_format="markdown" if markdown else "text",
        )
        # apprise says only yes or no; its own log line (at warning) has the reason.
        if not delivered:
            raise base.DeliveryError(
                self.context.redact(f"apprise could not deliver to {self._where}"),
                retryable=True,
            )

    async def close(self) -> None:
        self._apprise = None

    async def _sender(self) -> apprise.Apprise:
        async with self._building:
            if self._unusable is not None:
                raise base.DeliveryError(self._unusable, retryable=False)
            if self._apprise is None:
                # The import and URL parsing take a few hundred ms: keep them off the loop.
                self._apprise = await asyncio.to_thread(self._build)
            return self._apprise

    def _build(self) -> apprise.Apprise:
        import apprise

        # app_id is the sender name some services show (Discord's webhook user name).
        asset = apprise.AppriseAsset(
            app_id="vigild", app_desc="vigild monitoring", async_mode=False
        )
        plugin = apprise.Apprise.instantiate(self.options.url, asset=asset)
        if plugin is None:
            self._unusable = self.context.redact(
                f"notifier {self.name!r}: {_refused(self.options.url)}"
            )
            raise base.DeliveryError(self._unusable, retryable=False)
        if type(plugin).__name__ in _RENDERS_MARKDOWN and not _chooses_format(self.options.url):
            plugin.notify_format = apprise.NotifyFormat.MARKDOWN
        self._markdown = plugin.notify_format in (
            apprise.NotifyFormat.MARKDOWN,
            apprise.NotifyFormat.HTML,
        )
        sender = apprise.Apprise(asset=asset)
        sender.add(plugin)
        self._where = self.context.redact(_redacted(sender.urls(privacy=True)[0]))
        return sender


def _chooses_format(url: str) -> bool:
    """The URL sets apprise's ``format=`` itself: the user's choice stands."""
    query = url.partition("?")[2]
    return any(part.split("=", 1)[0].lower() == "format" for part in query.split("&"))


def _refused(url: str) -> str:
    """Why apprise refused ``url``, naming only its scheme: the rest may be a secret."""
    match = _SCHEME.match(url)
    scheme = f"{match.group(1)}://" if match else "(no scheme)"
    return f"apprise cannot use this url (scheme {scheme}): unknown scheme or malformed url"


def _redacted(private_url: str) -> str:
    """``scheme://host/…``: apprise masks passwords and tokens, but not every plugin
    counts the path as secret (``json://host/<token>``), so the path and query go too."""
    match = re.match(r"^([^:/?#]+://[^/?#]*)(.*)$", private_url)
    if match is None:
        return "apprise"
    head, rest = match.groups()
    return head + ("/…" if rest.strip("/") else "")
