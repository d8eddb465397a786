"""Keeping secrets (every value that came from ``${...}``) out of what leaves the process.

Redaction replaces values, never keys or metric names: a short secret such as
"80" must not break a JSON document or an exposition line, only hide itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "redact", "redact_exposition", "redact_values"]

MASK = "***"


def redact(text: str, secrets: Iterable[str]) -> str:
    # Longest first: a secret that contains a shorter one must vanish whole.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_values(value: Any, secrets: frozenset[str]) -> Any:
    """A copy of a JSON-like value with every string value (not key) redacted."""
    if not secrets:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: redact_values(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(v, secrets) for v in value]
    return value


def redact_exposition(text: str, secrets: frozenset[str]) -> str:
    """Prometheus text with secrets masked inside label values only."""
    if not any(secret in text for secret in secrets):
        return text

    def label_value(match: re.Match[str]) -> str:
        return f'="{redact(match.group(1), secrets)}"'

    lines = []
    for line in text.split("\n"):
        start, end = line.find("{"), line.rfind("}")
        if not line.startswith("#") and 0 < start < end:
            labels = _LABEL_VALUE.sub(label_value, line[start + 1 : end])
            lines.append(line[: start + 1] + labels + line[end:])
        else:
            lines.append(line)
    return "\n".join(lines)


_LABEL_VALUE = re.compile(r'="((?:[^"\\]|\\.)*)"')
