"""A job's side of push checks: ``vigild ping`` and ``vigild wrap``.

With a daemon running, a ping goes to its API (authorised by the cookie or
``api_token``, so the target's name is enough). With none (vigild from cron,
``--once``), it is written straight into the state file, under the state lock,
waiting for a ``--once`` run that holds it, and the next ``--once`` judges it.

Both need only ``[daemon]`` and the target's name: a cron job's shell lacks
the daemon's variables.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from vigild.config_file import DaemonSection

__all__ = [
    "PingFailed",
    "add_commands",
    "ping",
    "read_tail",
    "run_command",
    "run_unwatched",
    "wrap",
]

FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
"""What ``wrap`` passes on to the command: stopping vigild stops the job."""

NOT_FOUND = 127
"""A command that cannot be run exits as a shell says it (``command not found``)."""


class PingFailed(Exception):
    """The ping was not recorded; the message says why."""


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """``vigild ping`` and ``vigild wrap`` on the command line's subcommands."""
    ping = commands.add_parser(
        "ping", parents=[common], help="tell vigild a push target's job ran (or started)"
    )
    ping.add_argument("name", help="the push target")
    ping.add_argument(
        "what", nargs="?", default="", help="start, fail or an exit status (default: success)"
    )
    ping.add_argument(
        "--data-file", metavar="F", help="send the end of F (- for stdin) as the run's output"
    )
    wrap = commands.add_parser(
        "wrap",
        parents=[common],
        help="run a command as a push target's job: ping start, then its outcome and output",
        usage="vigild wrap [--config PATH] NAME -- command [args ...]",
    )
    wrap.add_argument("name", help="the push target")


def run_command(
    config: Path, section: DaemonSection, command: str, args: argparse.Namespace
) -> int:
    """``vigild ping`` or ``vigild wrap`` (``args.argv``: what followed ``--``)."""
    if command == "wrap":
        if not args.argv:
            print("vigild wrap: give the command after --", file=sys.stderr)
            return 2
        return wrap(config, section, args.name, args.argv)
    body = b""
    try:
        if args.data_file == "-":
            body = read_tail(sys.stdin.buffer)
        elif args.data_file is not None:
            with open(args.data_file, "rb") as data:
                body = read_tail(data)
    except OSError as exc:
        print(f"vigild: cannot read {args.data_file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        ping(config, section, args.name, args.what, body)
    except PingFailed as exc:
        print(f"vigild: ping not recorded: {exc}", file=sys.stderr)
        return 1
    return 0


@dataclass(frozen=True)
class _Job:
    config: Path
    section: DaemonSection
    name: str


def ping(config: Path, section: DaemonSection, name: str, what: str, body: bytes = b"") -> None:
    """Record one ping of the push target ``name``; ``PingFailed`` when it was not."""
    from vigild.probes.push import MAX_OUTPUT, parse_ping

    try:
        parse_ping(what)
    except ValueError as exc:
        raise PingFailed(str(exc)) from None
    asyncio.run(_ping(_Job(config, section, name), what, body[-MAX_OUTPUT:]))


async def _ping(job: _Job, what: str, body: bytes) -> None:
    from urllib.parse import quote

    from vigild.client import ApiError, Unreachable, call

    path = f"/ping/{quote(job.name, safe='')}" + (f"/{what}" if what else "")
    try:
        await call(job.section.daemon, "POST", path, data=body)
        return
    except Unreachable:
        pass  # no daemon: the state file is ours to write
    except ApiError as exc:
        raise PingFailed(str(exc)) from None
    await _record(job, what, body)


async def _record(job: _Job, what: str, body: bytes) -> None:
    from vigild.probes.push import keep_output, parse_ping
    from vigild.storage.database import Database
    from vigild.storage.errors import StateFileError
    from vigild.storage.lock import StateLocked, lock_wait
    from vigild.storage.pings import Ping

    if not _is_push_target(job.config, job.name):
        raise PingFailed(f"{job.config} has no push target named {job.name!r}")
    kind, status = parse_ping(what)
    try:
        db = await Database.open(job.section.daemon.state_path, lock_wait=lock_wait())
    except (StateLocked, StateFileError) as exc:
        raise PingFailed(str(exc)) from None
    try:
        db.push_runs.record(
            job.name, Ping(kind, time.time(), status, keep_output(body, job.section.secrets))
        )
    except StateFileError as exc:
        raise PingFailed(str(exc)) from None
    finally:
        db.close()


def _is_push_target(config: Path, name: str) -> bool:
    """Read from the file as written: the rest of it may need the daemon's variables."""
    from vigild.config_file import read

    targets = read(config).get("targets")
    return isinstance(targets, list) and any(
        isinstance(t, dict) and t.get("name") == name and t.get("type") == "push" for t in targets
    )


def read_tail(source: BinaryIO) -> bytes:
    """The end of a file or a pipe (``--data-file``) of any size (see ``Tail``)."""
    from vigild.probes.push import Tail

    kept = Tail()
    while chunk := source.read(65536):
        kept.add(chunk)
    return kept.value()


def wrap(config: Path, section: DaemonSection, name: str, command: Sequence[str]) -> int:
    """Ping start, run ``command`` (its output passed through and its end kept), ping its
    outcome; the command's exit status. A ping that fails is said on stderr and never
    stops the job: the backup matters more than its monitoring."""
    _try_ping(config, section, name, "start", b"")
    status, output = _run(command)
    _try_ping(config, section, name, str(min(status, 255)), output)
    return status


def run_unwatched(command: Sequence[str]) -> int:
    """The command alone, for a config that cannot be read: the job still runs."""
    return _run(command)[0]


def _try_ping(config: Path, section: DaemonSection, name: str, what: str, body: bytes) -> None:
    try:
        ping(config, section, name, what, body)
    except PingFailed as exc:
        print(f"vigild wrap: ping {what} of {name!r} not recorded: {exc}", file=sys.stderr)


def _run(command: Sequence[str]) -> tuple[int, bytes]:
    """Run ``command`` to its end; (exit status as a shell gives it, its output's end).

    The command gets its own process group, so a signal meant for the job reaches it
    once (forwarded by vigild), not twice from a terminal's Ctrl-C.
    """
    from vigild.probes.push import Tail

    try:
        child = subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0
        )
    except OSError as exc:
        message = f"vigild wrap: cannot run {command[0]!r}: {exc.strerror or exc}\n"
        sys.stderr.write(message)
        return NOT_FOUND, message.encode()

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    kept = Tail()
    passing: BinaryIO | None = sys.stdout.buffer
    try:
        assert child.stdout is not None
        while chunk := os.read(child.stdout.fileno(), 65536):
            kept.add(chunk)
            if passing is not None:
                try:
                    passing.write(chunk)
                    passing.flush()
                except BrokenPipeError:
                    passing = None  # nobody reads ours any more; the job's end is still kept
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # Killed by a signal: 128 + its number, as a shell reports it.
    return (128 - code if code < 0 else code), kept.value()
