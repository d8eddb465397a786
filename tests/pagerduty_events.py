"""PagerDuty's Events API v2 as its spec has it, and what a receiver standing in for it got."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from receivers import Receiver

from vigild.alerting.notifiers.pagerduty import SUMMARY_MAX

KEY = "R0UT1NGKEY0123456789abcdef012345"  # 32 characters, like a real integration key
SOURCE = "box-1.example"

# ---------------------------------------------------------------------------
# PagerDuty's Events API v2 (OpenAPI spec of PagerDuty/api-schema,
# reference/events-v2/openapiv3.json): the request body of POST /v2/enqueue.

EVENT_PROPERTIES = {
    "payload",
    "routing_key",
    "event_action",
    "dedup_key",
    "client",
    "client_url",
    "links",
    "images",
}
EVENT_REQUIRED = {"routing_key", "event_action"}
EVENT_ACTIONS = {"trigger", "acknowledge", "resolve"}
PAYLOAD_PROPERTIES = {
    "summary",
    "timestamp",
    "severity",
    "source",
    "component",
    "group",
    "class",
    "custom_details",
}
PAYLOAD_REQUIRED = {"summary", "severity", "source"}
PAYLOAD_SEVERITIES = {"critical", "warning", "error", "info"}
LINK_PROPERTIES = {"href", "text"}
LINK_REQUIRED = {"href"}
STRING_FIELDS = ("routing_key", "dedup_key", "client", "client_url")
PAYLOAD_STRING_FIELDS = ("summary", "timestamp", "source", "component", "group", "class")


def assert_events_v2(body: Any) -> None:
    """``body`` is a valid Events API v2 event, as the spec describes it."""
    assert isinstance(body, dict)
    assert EVENT_REQUIRED <= body.keys() <= EVENT_PROPERTIES, sorted(body)
    assert body["event_action"] in EVENT_ACTIONS
    for name in STRING_FIELDS:
        assert name not in body or isinstance(body[name], str), name
    if body["event_action"] == "trigger":
        # The spec's prose: a trigger carries the payload; other events name their alert.
        payload = body["payload"]
        assert isinstance(payload, dict)
        assert PAYLOAD_REQUIRED <= payload.keys() <= PAYLOAD_PROPERTIES, sorted(payload)
        assert payload["severity"] in PAYLOAD_SEVERITIES
        for name in PAYLOAD_STRING_FIELDS:
            assert name not in payload or isinstance(payload[name], str), name
        assert payload["summary"] and len(payload["summary"]) <= SUMMARY_MAX
        if "timestamp" in payload:  # format: date-time
            assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
        assert isinstance(payload.get("custom_details", {}), dict)
    else:
        assert isinstance(body["dedup_key"], str) and body["dedup_key"]
    links = body.get("links", [])
    assert isinstance(links, list)
    for link in links:
        assert LINK_REQUIRED <= link.keys() <= LINK_PROPERTIES
        assert re.match(r"^https?://\S+$", link["href"])  # format: url
    # What goes on the wire must be strict JSON: NaN would be refused.
    json.dumps(body, allow_nan=False)


def sent(receiver: Receiver) -> list[tuple[str, str]]:
    return [(b["event_action"], b["dedup_key"]) for b in receiver.bodies]
