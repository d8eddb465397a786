"""structlog set-up: JSON off a TTY, key=value on one, secrets always redacted.

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
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True
        )
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
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
