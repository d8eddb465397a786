"""The alertmanager notifier as the daemon builds it, and the alerts its tests send."""

from __future__ import annotations

import functools
from typing import Any

import aiohttp

from vigild.alerting.notifiers import base
from vigild.alerting.notifiers.alertmanager import (
    AlertmanagerNotifier,
    AlertmanagerOptions,
)
from vigild.config import NotifierConfig
from vigild.model import AlertEvent, Notification
from vigild.testing import alert_event

EXTERNAL = "http://127.0.0.1:9469"
T0 = 1_714_564_984.0  # 2024-05-01 12:03:04 UTC
NOW = T0 + 720
INTERVAL = 30.0
SECRET = "s3cr3t-pa55"

event = functools.partial(alert_event, metric="cpu_percent", value=91.5, threshold=80.0, since=T0)


def note(*events: AlertEvent, created: float = NOW) -> Notification:
    return Notification(notifier="am", created=created, events=events)


def notifier(
    session: aiohttp.ClientSession,
    urls: list[str],
    *,
    timeout: float = 5.0,
    interval: float = INTERVAL,
    **keys: Any,
) -> AlertmanagerNotifier:
    options = AlertmanagerOptions.model_validate({"urls": urls, **keys})
    config = NotifierConfig.model_validate(
        {"name": "am", "type": "alertmanager", "timeout": timeout, "options": options}
    )
    context = base.NotifierContext(
        session=session, external_url=EXTERNAL, redact=lambda s: s, interval=interval
    )
    return AlertmanagerNotifier(config, context)
