"""The commands that need only ``[daemon]``: ``silence``, ``actions history``,
``healthcheck``, ``ping`` and ``wrap``. They read the state file or ask the running
daemon, so they work in a shell without the daemon's own variables (a notifier's
URL; ``api_token``, for which the cookie stands in)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigild.config import DaemonConfig
    from vigild.config_file import DaemonSection

__all__ = ["EXIT_INVALID_CONFIG", "configure_logging", "run", "say"]

EXIT_INVALID_CONFIG = 2


def run(path: Path, command: str, args: argparse.Namespace) -> int:
    """The commands that read the state file or ask the running daemon: they need
    ``[daemon]`` only, so they work in a shell without the daemon's variables."""
    from vigild import jobs
    from vigild.config import ConfigError
    from vigild.config_file import load_daemon

    try:
        section = load_daemon(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        if command == "wrap" and args.argv:  # a broken config must not cost the backup its run
            return jobs.run_unwatched(args.argv)
        # Docker reserves 2 for HEALTHCHECK; any failure is "unhealthy".
        return 1 if command == "healthcheck" else EXIT_INVALID_CONFIG
    if command == "healthcheck":
        return _healthcheck(section.daemon)
    configure_logging(section.daemon, section.secrets, args)
    if command in {"ping", "wrap"}:
        return jobs.run_command(path, section, command, args)
    if command == "silence":
        return _silence(section.daemon, args)
    return _action_history(section, args.limit)


def _silence(daemon: DaemonConfig, args: argparse.Namespace) -> int:
    import getpass

    from vigild.client import ApiError, call

    try:
        if args.verb == "add":
            body = {
                "matchers": {
                    "target": args.target,
                    "metric": args.metric,
                    "severity": args.severity,
                },
                "comment": args.comment,
                "created_by": args.created_by or getpass.getuser(),
            }
            for key in ("duration", "starts", "ends"):
                if getattr(args, key):
                    body[key] = getattr(args, key)
            answer = asyncio.run(call(daemon, "POST", "/api/silences", body))
            say(answer["id"])
        elif args.verb == "list":
            listing = asyncio.run(call(daemon, "GET", "/api/silences"))
            say(_silence_table(listing))
        else:
            asyncio.run(call(daemon, "DELETE", f"/api/silences/{args.id}"))
            say(f"expired {args.id}")
    except ApiError as exc:
        print(f"vigild: {exc}", file=sys.stderr)
        return 1
    return 0


def _healthcheck(daemon: DaemonConfig) -> int:
    from vigild.client import ApiError, call

    try:
        answer = asyncio.run(call(daemon, "GET", "/healthz"))
    except ApiError as exc:
        print(f"vigild: unhealthy: {exc}", file=sys.stderr)
        return 1
    say(f"vigild at {daemon.listen}: {answer.get('status', answer)}")
    return 0


def _action_history(section: DaemonSection, limit: int) -> int:
    from vigild.alerting.notifiers.text import timestamp
    from vigild.redaction import redact
    from vigild.storage.actions import read_action_history
    from vigild.storage.errors import StateFileError

    path = section.daemon.state_path
    if not path.exists():
        say(f"no state file at {path}: no action has run")
        return 0
    try:
        runs = read_action_history(path, limit)
    except StateFileError as exc:
        print(f"vigild: {exc}", file=sys.stderr)
        return 1
    if not runs:
        say("no action has run")
    for run in runs:
        took = f"{run.finished - run.started:.1f}s" if run.finished is not None else "-"
        code = f"exit {run.exit_code}" if run.exit_code is not None else ""
        verified = f" [{run.verified}]" if run.verified else ""
        say(
            redact(
                f"{timestamp(run.started)}  {run.action}  {run.target} {run.metric}  "
                f"{run.outcome}{verified}  {code}  {took}  {run.detail}",
                section.secrets,
            )
        )
    return 0


def _silence_table(listing: list[dict[str, Any]]) -> str:
    if not listing:
        return "no silences"
    lines = []
    for s in listing:
        m = s["matchers"]
        when = s["schedule"] or f"{s['starts'] or 'now'} .. {s['ends']}"
        state = "active" if s["active"] else "inactive"
        comment = f"  # {s['comment']}" if s["comment"] else ""
        lines.append(
            f"{s['id']}  {state:<8} target={m['target']} metric={m['metric']} "
            f"severity={m['severity']}  {when}  ({s['source']}){comment}"
        )
    return "\n".join(lines)


def say(text: str) -> None:
    """Print to stdout. A reader that went away (`vigild check-config | head -1`) is
    no error: the rest goes nowhere, quietly, and the command's exit code stands."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python ignores SIGPIPE, so the write failed instead of ending the process
        # as it ends other tools; the buffered rest must not fail again at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def configure_logging(
    daemon: DaemonConfig, secrets: frozenset[str], args: argparse.Namespace
) -> None:
    import structlog

    from vigild import logs

    logs.configure(
        getattr(args, "log_format", None) or daemon.log_format,
        getattr(args, "log_level", None) or daemon.log_level,
    )
    logs.set_secrets(secrets)
    if daemon.replica is not None:
        # On every line: the two vigilds of an HA pair otherwise log alike.
        structlog.contextvars.bind_contextvars(replica=daemon.replica)
