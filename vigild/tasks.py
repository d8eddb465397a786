"""Background tasks whose failure is always heard.

asyncio reports the exception of a task nobody awaited only when the task is
garbage-collected, as "Task exception was never retrieved" outside vigild's
log, or never. Every task vigild starts and does not await at once goes
through ``spawn``, which logs its failure the moment it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

__all__ = ["spawn"]

log = structlog.get_logger("vigild")

T = TypeVar("T")


def spawn(coroutine: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    task = asyncio.get_running_loop().create_task(coroutine, name=name)
    task.add_done_callback(_report)
    return task


def _report(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("task failed", task=task.get_name(), error=repr(error), exc_info=error)
