"""Secrets are masked in values only, so a short secret cannot break a document."""

from __future__ import annotations

import json

from vigild.redaction import redact, redact_exposition, redact_values

SECRETS = frozenset({"t", "hunter2"})


def test_values_are_masked_keys_are_not() -> None:
    document = {"target": {"url": "http://x/?k=hunter2", "items": ["hunter2", 3, None]}}
    masked = redact_values(document, SECRETS)
    assert masked == {"target": {"url": "h******p://x/?k=***", "items": ["***", 3, None]}}
    assert json.loads(json.dumps(masked))  # still a document
    assert redact_values(document, frozenset()) is document


def test_exposition_masks_label_values_only() -> None:
    text = (
        "# HELP vigild_probe_success 1 if the last probe of the target succeeded.\n"
        "# TYPE vigild_probe_success gauge\n"
        'vigild_probe_success{target="hunter2-api",type="http"} 1.0\n'
        'vigild_probe_value{metric="latency_seconds",series="",target="a\\"t"} 0.25\n'
    )
    masked = redact_exposition(text, SECRETS)
    assert masked.splitlines()[:2] == text.splitlines()[:2]
    assert 'vigild_probe_success{target="***-api",type="h******p"} 1.0' in masked
    assert 'metric="la***ency_seconds"' in masked and masked.endswith(" 0.25\n")
    assert redact_exposition("up 1\n", SECRETS) == "up 1\n"


def test_plain_text() -> None:
    assert redact("Bearer hunter2 hunter2", {"hunter2"}) == "Bearer *** ***"
