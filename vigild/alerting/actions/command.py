"""``type = "command"``: run an argv list in a session of its own.

Never through a shell (a user who wants one writes ``["sh", "-c", ...]``). At
the timeout the whole run is stopped (see ``processes``): its process group and
every descendant, those that left the group with ``setsid`` too; a rollback
script that started ``docker compose`` or a ``sleep`` must not leave them
running behind it. SIGTERM first, so a script can clean up, SIGKILL after
``kill_grace``. The run ends with the kill: output still held open by a
process that escaped is not waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Annotated

from pydantic import Field

from vigild.alerting.actions import base, processes
from vigild.config import ActionConfig
from vigild.fields import MINUTE, duration_between

__all__ = ["KILL_GRACE", "CommandAction", "CommandOptions", "action_environment"]

OUTPUT_DRAIN = 1.0
"""After the command exits, how long to wait for a child still holding its output open."""
KILLED_DRAIN = 0.2
"""After a kill, how long to read what is left in the pipe."""
KILL_GRACE = 10.0


class CommandOptions(base.Options):
    command: list[str] = Field(min_length=1)
    cwd: Path | None = None
    env: dict[str, str] = {}
    kill_grace: Annotated[float, duration_between(0, 10 * MINUTE)] = KILL_GRACE
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
    env[processes.RUN_ID] = str(context.run_id)
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
        # A pipe of our own, not asyncio's: asyncio's wait() would last as long as
        # any process holding the pipe open, which a kill may not reach.
        read_end, write_end = os.pipe()
        try:
            process = await processes.spawn(
                *self.options.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_end,
                stderr=write_end,
                cwd=self.options.cwd,
                env=action_environment(context, self.options.env),
                start_new_session=True,  # its own process group: pgid == pid
            )
        except OSError as exc:
            os.close(read_end)
            return base.ActionResult("failed", f"cannot start: {exc.strerror or exc}")
        finally:
            os.close(write_end)
        leader = processes.identity(process.pid) or (process.pid, 0.0)
        context.on_process(*leader)
        tail = bytearray()
        transport, stream = await _open_reader(read_end)
        reader = asyncio.create_task(_read_tail(stream, tail))
        try:
            try:
                await asyncio.wait_for(process.wait(), context.timeout)
            except TimeoutError:
                await self._stop(process, leader, context)
                await _drain(reader, KILLED_DRAIN)
                return base.ActionResult(
                    "timeout",
                    f"killed after {context.timeout:g}s",
                    exit_code=process.returncode,
                    output=base.output_tail(tail, context.redact),
                )
            except asyncio.CancelledError:
                await self._stop(process, leader, context)
                reader.cancel()
                raise
            await _drain(reader, OUTPUT_DRAIN)
        finally:
            processes.waited(process)
            transport.close()  # stops a reader still waiting for the end of the output
        code = process.returncode
        assert code is not None
        took = time.monotonic() - started
        return base.ActionResult(
            "succeeded" if code == 0 else "failed",
            f"exit code {code} after {took:.1f}s",
            exit_code=code,
            output=base.output_tail(tail, context.redact),
        )

    async def _stop(
        self,
        process: asyncio.subprocess.Process,
        leader: processes.Identity,
        context: base.ActionContext,
    ) -> None:
        await processes.stop(*leader, self.options.kill_grace, context.run_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), processes.KILL_WAIT)


async def _open_reader(fd: int) -> tuple[asyncio.ReadTransport, asyncio.StreamReader]:
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(fd, "rb", buffering=0)
    )
    return transport, stream


async def _read_tail(stream: asyncio.StreamReader, tail: bytearray) -> None:
    while chunk := await stream.read(65536):
        tail += chunk
        if len(tail) > base.READ_LIMIT:
            del tail[: len(tail) - base.READ_LIMIT]


async def _drain(reader: asyncio.Task[None], within: float) -> None:
    """Let the reader reach the end of the output, unless a leftover child holds it open."""
    # On a timeout wait_for cancels the reader: what was read so far is the output.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, within)
