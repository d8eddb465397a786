"""structlog set-up: JSON off a TTY, a person's console on one, secrets always redacted.

On a terminal (``log_format = "auto"``) lines are structlog's console lines:
local time, level in colour, the event first. Off a terminal, or with
``log_format`` set, they stay machine lines: JSON, or key=value (``console``),
stamped in UTC.

Libraries that log through the standard library (APScheduler, aiohttp,
apprise) go through the same renderer, so a line in the journal has one shape.
Their lines are redacted harder than vigild's own: a library may quote any
part of a secret (apprise names the host of a URL that is a secret whole), so
every piece of a secret is masked there, wherever it stands.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog

from vigild.redaction import redact_values

__all__ = ["configure", "set_secrets"]


class _Redactor:
    """The processor before rendering: every value of every event, nested ones too."""

    def __init__(self, *, anywhere: bool = False) -> None:
        self.secrets: frozenset[str] = frozenset()
        self.anywhere = anywhere

    def __call__(self, _logger: Any, _method: str, event: Any) -> Any:
        if not self.secrets:
            return event
        return redact_values(event, self.secrets, anywhere=self.anywhere)


_redact = _Redactor()
_redact_foreign = _Redactor(anywhere=True)


def set_secrets(secrets: Iterable[str]) -> None:
    """Values from ``${...}`` that must never reach a log line (updated on reload)."""
    _redact.secrets = _redact_foreign.secrets = frozenset(secrets)


def configure(log_format: str = "auto", level: str = "info") -> None:
    human = log_format == "auto" and sys.stderr.isatty()
    renderer: Any
    if human:
        renderer = structlog.dev.ConsoleRenderer(colors=True)
    elif log_format == "console":
        renderer = structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True
        )
    else:
        renderer = structlog.processors.JSONRenderer()
    # A person at a terminal reads the clock on the wall; the journal and collectors
    # compare lines across hosts.
    stamp = structlog.processors.TimeStamper(
        fmt="%Y-%m-%d %H:%M:%S" if human else "iso", utc=not human
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        stamp,
    ]
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *shared,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                structlog.processors.format_exc_info,
                _redact_foreign,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _redact,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Third-party libraries are chatty at INFO; their warnings still matter.
    root.setLevel(max(numeric, logging.WARNING))
