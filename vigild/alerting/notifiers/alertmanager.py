"""``type = "alertmanager"``: ``POST /api/v2/alerts`` to an Alertmanager or an HA cluster.

vigild then plays the part Prometheus plays for Alertmanager: it tells every
peer in ``urls`` about every open alert again each time its target is probed
(``keepalive``), with an ``endsAt`` four intervals ahead, so an alert vigild
stops talking about (vigild stopped, the host died) resolves by itself. The
peers deduplicate among themselves (gossip), so each is told everything; one
peer accepting is a delivery.

An Alertmanager alert is identified by its labels, and ``severity`` is one of
them: a warning and a critical of the same target and metric are two alerts
there. So an escalation or de-escalation also ends the alert of the old
severity, and a resolution ends the alert of the severity last posted.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog
import yarl
from pydantic import BaseModel, Field, field_validator

from vigild.alerting.notifiers import base, posting
from vigild.alerting.notifiers.webhook import alert_json
from vigild.fields import http_url
from vigild.model import Severity, rfc3339

if TYPE_CHECKING:
    from vigild.config import NotifierConfig
    from vigild.model import AlertEvent, Notification

__all__ = ["KEEPALIVE_INTERVALS", "AlertmanagerNotifier", "postable_alerts"]

log = structlog.get_logger("vigild.alertmanager")

KEEPALIVE_INTERVALS = 4
"""A firing alert's ``endsAt`` is this many intervals ahead: a repeat or two may be late
(a slow cycle, a retry) before Alertmanager takes the alert for resolved."""

_API_PATH = "/api/v2/alerts"
_IDENTITY = ("alertname", "target", "metric", "severity")
_LABEL_NAME = re.compile(r"[^A-Za-z0-9_]")


class BasicAuth(base.Options):
    username: str
    password: str = Field(repr=False)


class AlertmanagerOptions(base.Options):
    urls: list[str] = Field(min_length=1)
    """Base URLs of the peers (``http://am-1:9093``); the API path is added."""
    headers: dict[str, str] = {}
    basic_auth: BasicAuth | None = None

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, values: list[str]) -> list[str]:
        urls = []
        for value in (v.strip() for v in values):
            if not value:  # an unset ${AM_URL:-}: that peer is left out
                continue
            urls.append(http_url(value, "every url").rstrip("/").removesuffix(_API_PATH))
        return urls


def postable_alerts(
    notification: Notification,
    external_url: str,
    *,
    now: float,
    interval: float,
    posted: Mapping[str, Severity] | None = None,
    page_url: str | None = None,
) -> list[dict[str, Any]]:
    """The body of ``POST /api/v2/alerts`` for ``notification`` (Alertmanager's postableAlerts).

    ``posted`` is the severity each open alert was last posted with: a resolution
    ends that one (after a de-escalation, not the highest reached), and a change
    of level ends it too when the engine has no ``previous`` to name (after flapping).
    """
    posted = posted or {}
    ahead = now + KEEPALIVE_INTERVALS * interval
    alerts = []

    def shape(
        event: AlertEvent, ends: float | None = None, *, severity: Severity | None = None
    ) -> dict[str, Any]:
        return _postable(event, now, external_url, ends, severity=severity, page_url=page_url)

    for event in notification.events:
        if event.kind == "action":
            continue  # not an alert: Alertmanager would take it for one
        if event.kind == "test":
            alerts.append(shape(event, ahead))
            continue
        # The levels Alertmanager may hold this alert at: what the engine last told
        # (``previous``) and what this process last posted.
        known = {s for s in (event.previous, posted.get(event.fingerprint)) if s is not None}
        if event.kind == "resolved":
            for level in sorted(known or {event.severity}):
                alerts.append(shape(event, severity=level))
            continue
        # Any other level's alert ends now; its summary tells why (an escalation).
        for level in sorted(known - {event.severity}):
            alerts.append(shape(event, now, severity=level))
        # Repeats and escalations read as "firing": Alertmanager shows the latest
        # annotations, and a keep-alive must not turn them into "still firing".
        shown = event if event.kind == "flapping" else dataclasses.replace(event, kind="firing")
        alerts.append(shape(shown, ahead))
    return alerts


def _postable(
    event: AlertEvent,
    now: float,
    external_url: str,
    ends: float | None = None,
    *,
    severity: Severity | None = None,
    page_url: str | None = None,
) -> dict[str, Any]:
    """One postableAlert; ``severity`` names the alert of another level than the event's."""
    # The webhook's alert, as Alertmanager itself would describe it, less the fields
    # only Alertmanager computes (status, fingerprint).
    shaped = alert_json(event, now, external_url, page_url=page_url)
    labels = {_label_name(k): v for k, v in shaped["labels"].items() if v}
    labels.update((k, shaped["labels"][k]) for k in _IDENTITY)
    if severity is not None:
        labels["severity"] = severity.label
    return {
        "labels": labels,
        "annotations": shaped["annotations"],
        "startsAt": shaped["startsAt"],
        "endsAt": shaped["endsAt"] if ends is None else rfc3339(ends),
        "generatorURL": shaped["generatorURL"],
    }


def _label_name(name: str) -> str:
    """A valid Prometheus label name: Alertmanager refuses an alert with any other."""
    clean = _LABEL_NAME.sub("_", name)
    return "_" + clean if clean[:1].isdigit() else clean


class AlertmanagerNotifier(base.Notifier):
    """Posts every alert event to every Alertmanager peer in ``urls``, concurrently."""

    Options = AlertmanagerOptions
    keepalive = True

    def __init__(self, config: NotifierConfig, context: base.NotifierContext) -> None:
        super().__init__(config, context)
        self.options = base.own_options(config, AlertmanagerOptions)
        self._headers = {**self.options.headers, "Content-Type": "application/json"}
        auth = self.options.basic_auth
        if auth is not None:
            # By hand: aiohttp's BasicAuth helper is deprecated in some versions vigild allows.
            pair = f"{auth.username}:{auth.password}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        # Short of the delivery timeout: a peer that hangs must not veto the others.
        self._timeout = aiohttp.ClientTimeout(total=config.timeout * 0.8)
        self._posted: dict[str, Severity] = {}
        """fingerprint → the severity the open alert was last posted with."""
        self._peer_errors: dict[str, str] = {}
        """Peers whose last post failed while another accepted, with the reason logged."""

    @classmethod
    def is_disabled(cls, options: BaseModel) -> bool:
        return isinstance(options, AlertmanagerOptions) and not options.urls

    async def send(self, notification: Notification) -> None:
        alerts = postable_alerts(
            notification,
            self.context.external_url,
            now=time.time(),
            interval=self.context.interval,
            posted=self._posted,
            page_url=self.context.page_url,
        )
        if not alerts:
            return  # only action reports, which Alertmanager has no place for
        body = json.dumps(alerts).encode()
        urls = self.options.urls
        outcomes = await asyncio.gather(*(self._post(url, body) for url in urls))
        failures = [(url, e) for url, e in zip(urls, outcomes, strict=True) if e is not None]
        if len(failures) == len(urls):
            reasons = "; ".join(f"{_where(url)}: {error.reason}" for url, error in failures)
            raise base.DeliveryError(
                self.context.redact(f"alertmanager: no peer accepted the alerts: {reasons}"),
                retryable=any(error.retryable for _, error in failures),
            )
        self._remember(notification)
        self._note_peers(failures)

    async def _post(self, url: str, body: bytes) -> base.DeliveryError | None:
        try:
            status, reason, answer = await posting.post(
                self.context.session,
                url + _API_PATH,
                data=body,
                headers=self._headers,
                timeout=self._timeout,
            )
        except base.DeliveryError as exc:
            return exc
        if 200 <= status < 300:
            return None
        return posting.answer_error(
            status,
            posting.said_in(answer, "message", "error", redact=self.context.redact) or reason,
        )

    def _remember(self, notification: Notification) -> None:
        for event in notification.events:
            if event.kind == "resolved":
                self._posted.pop(event.fingerprint, None)
            elif event.kind not in ("test", "action"):
                self._posted[event.fingerprint] = event.severity

    def _note_peers(self, failures: list[tuple[str, base.DeliveryError]]) -> None:
        """Log a peer's failure once, and its recovery, not every keep-alive in between."""
        failed = {url: error.reason for url, error in failures}
        for url in list(self._peer_errors):
            if url not in failed:
                del self._peer_errors[url]
                log.info(
                    "alertmanager peer accepts alerts again",
                    notifier=self.name,
                    peer=self.context.redact(_where(url)),
                )
        for url, reason in failed.items():
            if self._peer_errors.get(url) != reason:
                self._peer_errors[url] = reason
                log.warning(
                    "alertmanager peer failed; another accepted the alerts",
                    notifier=self.name,
                    peer=self.context.redact(_where(url)),
                    error=self.context.redact(reason),
                )


def _where(url: str) -> str:
    """``http://am-1:9093``: the peer as it may be shown, without credentials or path."""
    try:
        parsed = yarl.URL(url)
        return str(parsed.origin())
    except ValueError:
        return "alertmanager"
