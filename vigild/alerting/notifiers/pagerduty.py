"""``type = "pagerduty"``: PagerDuty's Events API v2, natively.

Every alert is one PagerDuty alert, keyed by its fingerprint (``dedup_key``):
firing, escalation, de-escalation, repeats and flapping are ``trigger``
events (a trigger with an open ``dedup_key`` updates that alert instead of
opening another), resolution is a ``resolve``. The Events API takes one event
per request, so a notification of several alerts is several requests, sent in
order.

Partial delivery: when a request fails part way through a notification with
an error worth retrying (429, 5xx, a network error or the caller's timeout),
``send`` raises and the outbox retries the whole notification. This notifier
remembers how far the notification got and carries on from there, so a large
notification makes progress on every attempt and the events already accepted
are not sent again. After a restart that memory is gone and the notification
is sent from its first event: harmless, because PagerDuty deduplicates a
trigger by ``dedup_key`` and ignores a resolve for an alert already resolved.
An event PagerDuty rejects (400: the body can never be accepted) does not hold
back the others; the notification then fails for good, with PagerDuty's reasons.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vigild.alerting.notifiers import base, posting, text
from vigild.fields import http_url
from vigild.model import Severity, rfc3339
from vigild.redaction import shorten
from vigild.thresholds import base_metric

if TYPE_CHECKING:
    from vigild.config import NotifierConfig
    from vigild.model import AlertEvent, Notification

__all__ = ["DEFAULT_EVENTS_URL", "PagerDutyNotifier", "pagerduty_events"]

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024
"""PagerDuty's limit on ``payload.summary``; longer ones are cut rather than refused."""

_SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.WARNING: "warning",
    # "a reachable target that cannot give the metric": something is broken, not just high.
    Severity.UNKNOWN: "error",
    Severity.OK: "info",
}


class PagerDutyOptions(base.Options):
    model_config = ConfigDict(populate_by_name=True)

    routing_key: str = Field(repr=False)
    events_url: str = DEFAULT_EVENTS_URL
    source: str | None = None
    """``payload.source``; default ``[daemon] instance``."""
    component: str | None = None
    """``payload.component``; default the alert's target."""
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    """``payload.class``; default the alert's metric name (``disk_percent``)."""

    @field_validator("routing_key")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("events_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value.strip(), "events_url")


def pagerduty_events(
    notification: Notification,
    options: PagerDutyOptions,
    external_url: str,
    source: str,
    page_url: str | None = None,
) -> list[dict[str, Any]]:
    """The Events API v2 request bodies for ``notification``, in the order to send them."""
    status_url = external_url.rstrip("/") + "/api/status"
    bodies: list[dict[str, Any]] = []
    for event in notification.events:
        if event.kind == "action":
            continue  # an action's report is for people; a trigger could reopen an incident
        if event.kind == "test":
            # A test must not leave an incident open: trigger, then resolve it at once.
            trigger = _trigger(event, notification.created, options, status_url, source)
            trigger["payload"]["summary"] = f"[TEST] vigild test-notify from {source}"
            trigger["payload"]["custom_details"] = {"message": text.summary(event, 0.0)}
            bodies += [trigger, _resolve(event, options)]
        elif event.kind == "resolved":
            bodies.append(_resolve(event, options))
        else:
            trigger = _trigger(event, notification.created, options, status_url, source)
            if page_url:
                link = {"href": text.row_link(page_url, event.target), "text": "Status page"}
                trigger["links"].insert(-1, link)
            bodies.append(trigger)
    return bodies


def _resolve(event: AlertEvent, options: PagerDutyOptions) -> dict[str, Any]:
    # A resolve needs nothing but the key: PagerDuty ignores any payload on it.
    return {
        "routing_key": options.routing_key,
        "event_action": "resolve",
        "dedup_key": event.fingerprint,
    }


def _trigger(
    event: AlertEvent,
    now: float,
    options: PagerDutyOptions,
    status_url: str,
    source: str,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "summary": _summary(event, now, source),
        "source": source,
        "severity": _SEVERITY[event.severity],
        "timestamp": rfc3339(now),
        "component": options.component or event.target,
        "class": options.class_ or base_metric(event.metric),
        "custom_details": _details(event),
    }
    if options.group:
        payload["group"] = options.group
    links = [{"href": event.runbook, "text": "Runbook"}] if event.runbook else []
    links.append({"href": status_url, "text": "vigild status"})
    return {
        "routing_key": options.routing_key,
        "event_action": "trigger",
        "dedup_key": event.fingerprint,
        "payload": payload,
        "client": "vigild",
        "client_url": status_url,
        "links": links,
    }


def _summary(event: AlertEvent, now: float, source: str) -> str:
    """``db is DOWN: connection refused on unraid``: the title every backend shows."""
    return shorten(text.summary(event, now, source), SUMMARY_MAX)


def _details(event: AlertEvent) -> dict[str, Any]:
    details: dict[str, Any] = {
        "target": event.target,
        "metric": event.metric,
        "kind": event.kind,
        "severity": event.severity.label,
    }
    if event.previous is not None:
        details["previous"] = event.previous.label
    if event.value is not None:
        details["value"] = _number(event.value)
    if event.threshold is not None:
        details["threshold"] = _number(event.threshold)
    details["since"] = rfc3339(event.since)
    if event.note:
        details["note"] = event.note
    if event.address:
        details["address"] = event.address
    if event.labels or event.origin:
        details["labels"] = {**dict(event.labels), **dict(event.origin)}
    return details


def _number(value: float) -> float | str:
    # NaN and infinities are not JSON: PagerDuty would refuse the whole event.
    return value if math.isfinite(value) else text.number(value)


class PagerDutyNotifier(base.Notifier):
    """Sends one Events API v2 request per alert event to ``events_url``."""

    Options = PagerDutyOptions

    def __init__(self, config: NotifierConfig, context: base.NotifierContext) -> None:
        super().__init__(config, context)
        self.options = base.own_options(config, PagerDutyOptions)
        self.source = self.options.source or context.instance
        self._progress: tuple[tuple[Any, ...], int, list[str]] | None = None
        """The notification being sent, how many of its requests PagerDuty accepted,
        and the reasons of those it rejected: where a retry carries on from."""

    @classmethod
    def is_disabled(cls, options: BaseModel) -> bool:
        return isinstance(options, PagerDutyOptions) and not options.routing_key

    async def send(self, notification: Notification) -> None:
        bodies = pagerduty_events(
            notification,
            self.options,
            self.context.external_url,
            self.source,
            self.context.page_url,
        )
        identity = (
            notification.notifier,
            notification.created,
            tuple((e.fingerprint, e.kind) for e in notification.events),
        )
        start = 0
        rejected: list[str] = []
        if self._progress is not None and self._progress[0] == identity:
            _, start, rejected = self._progress
        for index in range(start, len(bodies)):
            try:
                await self._post(bodies[index])
            except base.DeliveryError as exc:
                if exc.retryable:
                    self._progress = (identity, index, rejected)
                    raise
                rejected.append(exc.reason.removeprefix("pagerduty "))
            # Recorded before the next await: a timeout there keeps this one's success.
            self._progress = (identity, index + 1, rejected)
        self._progress = None
        if rejected:
            reasons = "; ".join(dict.fromkeys(rejected))
            counted = f"{len(rejected)} of {len(bodies)} events" if len(bodies) > 1 else "event"
            raise base.DeliveryError(
                self._redact(f"pagerduty rejected {counted}: {reasons}"), retryable=False
            )

    async def close(self) -> None:
        self._progress = None

    async def _post(self, body: dict[str, Any]) -> None:
        try:
            status, reason, answer = await posting.post(
                self.context.session, self.options.events_url, json_body=body
            )
        except base.DeliveryError as exc:
            raise self._error(exc.reason) from None
        if not 200 <= status < 300:
            error = posting.answer_error(
                status, posting.said_in(answer, "message", "errors", redact=self._redact) or reason
            )
            raise self._error(error.reason, retryable=error.retryable)

    def _error(self, reason: str, *, retryable: bool = True) -> base.DeliveryError:
        return base.DeliveryError(self._redact(f"pagerduty {reason}"), retryable=retryable)

    def _redact(self, message: str) -> str:
        # The key is a secret even when the file holds it literally, outside ${...}.
        if self.options.routing_key:
            message = message.replace(self.options.routing_key, "***")
        return self.context.redact(message)
