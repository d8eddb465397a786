"""``type = "command"``: run an argv list in a process group of its own.

Never through a shell (a user who wants one writes ``["sh", "-c", ...]``). The
whole group is what gets stopped at the timeout: a rollback script that
started ``docker compose`` or a ``sleep`` must not leave them running behind
it. SIGTERM first, so a script can clean up, SIGKILL after ``kill_grace``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Annotated

from pydantic import Field

from vigild.alerting.actions import base
from vigild.config import MINUTE, ActionConfig, duration_between

__all__ = ["CommandAction", "CommandOptions", "action_environment"]

OUTPUT_DRAIN = 1.0
"""After the command exits, how long to wait for a child still holding its output open."""
_POLL = 0.05


class CommandOptions(base.Options):
    command: list[str] = Field(min_length=1)
    cwd: Path | None = None
    env: dict[str, str] = {}
    kill_grace: Annotated[float, duration_between(0, 10 * MINUTE)] = 10.0
    """Between SIGTERM and SIGKILL at the timeout."""


def action_environment(context: base.ActionContext, extra: dict[str, str]) -> dict[str, str]:
    """vigild's environment, the configured ``env``, then what the alert says."""
    env = {**os.environ, **extra}
    env.update(
        VIGILD_TARGET=context.target,
        VIGILD_METRIC=context.metric,
        VIGILD_SEVERITY=context.severity.label,
        VIGILD_VALUE=_number(context.value),
        VIGILD_THRESHOLD=_number(context.threshold),
        VIGILD_SINCE=str(int(context.since)),
        VIGILD_ALERT_ID=context.fingerprint,
        VIGILD_DRY_RUN="1" if context.dry_run else "0",
    )
    return env


def _number(value: float | None) -> str:
    from vigild.alerting.notifiers.text import number

    return "" if value is None else number(value)


class CommandAction(base.Action):
    Options = CommandOptions

    def __init__(self, config: ActionConfig) -> None:
        super().__init__(config)
        self.options = base.own_options(config, CommandOptions)

    def describe(self) -> str:
        return " ".join(self.options.command)

    async def run(self, context: base.ActionContext) -> base.ActionResult:
        started = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                *self.options.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.options.cwd,
                env=action_environment(context, self.options.env),
                start_new_session=True,  # its own process group: pgid == pid
            )
        except OSError as exc:
            return base.ActionResult("failed", f"cannot start: {exc.strerror or exc}")
        tail = bytearray()
        reader = asyncio.create_task(_read_tail(process, tail))
        try:
            await asyncio.wait_for(process.wait(), context.timeout)
        except TimeoutError:
            await self._stop_group(process)
            await _drain(reader)
            return base.ActionResult(
                "timeout",
                f"killed after {context.timeout:g}s",
                exit_code=process.returncode,
                output=_text(tail, context),
            )
        except asyncio.CancelledError:
            await self._stop_group(process)
            reader.cancel()
            raise
        await _drain(reader)
        code = process.returncode
        assert code is not None
        took = time.monotonic() - started
        return base.ActionResult(
            "succeeded" if code == 0 else "failed",
            f"exit code {code} after {took:.1f}s",
            exit_code=code,
            output=_text(tail, context),
        )

    async def _stop_group(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM to the group, SIGKILL to whatever of it is left after the grace."""
        group = process.pid
        _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + self.options.kill_grace
        while time.monotonic() < deadline:
            if process.returncode is not None and not _group_alive(group):
                return
            await asyncio.sleep(_POLL)
        _signal_group(group, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 5.0)


async def _read_tail(process: asyncio.subprocess.Process, tail: bytearray) -> None:
    assert process.stdout is not None
    while chunk := await process.stdout.read(65536):
        tail += chunk
        if len(tail) > base.OUTPUT_LIMIT:
            del tail[: len(tail) - base.OUTPUT_LIMIT]


async def _drain(reader: asyncio.Task[None]) -> None:
    """Let the reader reach the end of the output, unless a leftover child holds it open."""
    # On a timeout wait_for cancels the reader: what was read so far is the output.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, OUTPUT_DRAIN)


def _text(tail: bytearray, context: base.ActionContext) -> str:
    return context.redact(bytes(tail).decode("utf-8", errors="replace"))


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
