"""``type = "webhook"``: an Alertmanager-compatible webhook POST.

The payload has exactly the fields Alertmanager's webhook receiver sends
(version "4"), so any receiver written for Alertmanager works unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, field_validator

from vigild.alerting.notifiers import base, posting, text
from vigild.fields import http_url
from vigild.model import rfc3339
from vigild.thresholds import base_metric

if TYPE_CHECKING:
    from vigild.config import NotifierConfig
    from vigild.model import AlertEvent, Notification

__all__ = ["ZERO_TIME", "WebhookNotifier", "alert_json", "alertmanager_payload"]

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Go's zero ``time.Time``: what Alertmanager sends as ``endsAt`` while an alert fires."""


def alertmanager_payload(
    notification: Notification, receiver: str, external_url: str, page_url: str | None = None
) -> dict[str, Any]:
    """The webhook body for ``notification``, as Alertmanager would send it to ``receiver``."""
    alerts = [
        alert_json(event, notification.created, external_url, page_url=page_url)
        for event in notification.events
    ]
    return {
        "version": "4",
        # No group_by: one group per receiver, keyed as Alertmanager keys a route without labels.
        "groupKey": f"{{}}/{{receiver={json.dumps(receiver)}}}:{{}}",
        "truncatedAlerts": 0,
        "status": notification.status,
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": _common(a["labels"] for a in alerts),
        "commonAnnotations": _common(a["annotations"] for a in alerts),
        "externalURL": external_url,
        "alerts": alerts,
    }


def alert_json(
    event: AlertEvent, now: float, external_url: str, *, page_url: str | None = None
) -> dict[str, Any]:
    # The target's labels first: the host's (instance, external labels) and then vigild's
    # own must not be overridden by them, or two hosts' alerts could merge into one.
    labels = dict(event.labels)
    labels.update(event.origin)
    labels.update(
        alertname=base_metric(event.metric),
        target=event.target,
        metric=event.metric,
        severity=event.severity.label,
    )
    # Absent values are left out rather than sent as "": Go templates read both the same,
    # and a receiver that parses numbers never meets an empty string.
    # summary: the message's title; description: why, and its body as plain text.
    annotations = {"summary": text.summary(event, now)}
    if event.value is not None:
        annotations["value"] = text.number(event.value)
    if event.threshold is not None:
        annotations["threshold"] = text.number(event.threshold)
    if event.runbook:
        annotations["runbook_url"] = event.runbook
    # The reason first, as this annotation carried it alone before (an action's note is
    # in the summary and the details already).
    why = [event.note.partition("\n")[0]] if event.note and event.kind != "action" else []
    details = text.details(event, now, page_url=page_url, ages=False)
    annotations["description"] = "\n".join(why + details)
    if event.status == "resolved":
        ends_at = rfc3339(event.ended if event.ended is not None else now)
    else:
        ends_at = ZERO_TIME
    return {
        "status": event.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(event.since),
        "endsAt": ends_at,
        "generatorURL": external_url.rstrip("/") + "/api/status",
        "fingerprint": event.fingerprint,
    }


def _common(maps: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The pairs every map holds with the same value (Alertmanager's common labels)."""
    iterator = iter(maps)
    first = next(iterator, None)
    if first is None:
        return {}
    common = dict(first)
    for other in iterator:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


class WebhookNotifier(base.Notifier):
    """POSTs ``alertmanager_payload`` as JSON to ``url`` through the shared session."""

    class Options(base.Options):
        url: str
        headers: dict[str, str] = {}

        @field_validator("url")
        @classmethod
        def _http_url(cls, value: str) -> str:
            return http_url(value.strip()) if value.strip() else ""

    def __init__(self, config: NotifierConfig, context: base.NotifierContext) -> None:
        super().__init__(config, context)
        self.options = base.own_options(config, self.Options)

    @classmethod
    def is_disabled(cls, options: BaseModel) -> bool:
        return isinstance(options, cls.Options) and not options.url

    async def send(self, notification: Notification) -> None:
        payload = alertmanager_payload(
            notification, self.name, self.context.external_url, self.context.page_url
        )
        try:
            status, reason, _answer = await posting.post(
                self.context.session,
                self.options.url,
                json_body=payload,
                headers=self.options.headers,
            )
        except base.DeliveryError as exc:
            raise self._error(exc.reason) from None
        if not 200 <= status < 300:
            error = posting.answer_error(status, reason)
            raise self._error(f"receiver {error.reason}", retryable=error.retryable)

    def _error(self, reason: str, *, retryable: bool = True) -> base.DeliveryError:
        return base.DeliveryError(self.context.redact(f"webhook {reason}"), retryable=retryable)
