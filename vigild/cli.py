"""The ``vigild`` command. Imports are lazy: ``--once`` from cron must start fast."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from vigild import control
from vigild.control import EXIT_INVALID_CONFIG, configure_logging, say

if TYPE_CHECKING:
    from pathlib import Path

    from vigild.assembly import Config

__all__ = ["main"]

EXIT_ONCE_UNUSABLE = 3


def _parser() -> argparse.ArgumentParser:
    # Options shared by the top level and every subcommand, so `--config` works before
    # or after the subcommand; SUPPRESS keeps a subcommand from erasing the top level's.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="config file (default: $VIGILD_CONFIG, ./thresholds.toml, "
        "/etc/vigild/thresholds.toml)",
    )
    common.add_argument("--log-format", choices=["json", "console"], default=argparse.SUPPRESS)
    common.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default=argparse.SUPPRESS
    )

    parser = argparse.ArgumentParser(
        prog="vigild",
        parents=[common],
        description="Watch the services of one host; alert when they break and when they recover.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--once",
        action="store_true",
        help="probe everything once, notify, print a report, exit with the "
        "worst severity (0 ok, 1 warning, 2 critical, 3 unknown)",
    )
    parser.add_argument(
        "--format", choices=["text", "json"], default="text", help="report format for --once"
    )
    no_actions = argparse.ArgumentParser(add_help=False)
    no_actions.add_argument(
        "--no-actions",
        action="store_true",
        default=argparse.SUPPRESS,
        help="run no [[actions]] (for --once: a read-only check)",
    )
    parser.add_argument("--no-actions", action="store_true", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", parents=[common, no_actions], help="run the daemon (the default)")
    actions = commands.add_parser("actions", parents=[common], help="what actions have done")
    action_verbs = actions.add_subparsers(dest="verb", metavar="VERB", required=True)
    history = action_verbs.add_parser(
        "history", parents=[common], help="list action runs, oldest first (from the state file)"
    )
    history.add_argument("--limit", type=int, default=50, help="the latest N runs (default 50)")
    check = commands.add_parser(
        "check-config", parents=[common], help="validate and summarise the config"
    )
    check.add_argument(
        "--probe",
        action="store_true",
        help="also probe every target once and say what each metric came to (no alerting)",
    )
    check.add_argument(
        "--discover",
        action="store_true",
        help="also list the labelled containers discovery sees now and what each would become",
    )
    notify = commands.add_parser(
        "test-notify", parents=[common], help="send a test message through each notifier"
    )
    notify.add_argument("--notifier", metavar="NAME", help="only this notifier")
    silence = commands.add_parser(
        "silence", parents=[common], help="mute notifications in the running daemon"
    )
    verbs = silence.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser(
        "add", parents=[common], help="add a silence (matchers are globs, default *)"
    )
    add.add_argument("--target", default="*", help="target glob, e.g. 'covabot*'")
    add.add_argument("--metric", default="*", help="metric glob, e.g. 'disk_percent:*'")
    add.add_argument("--severity", default="*", help="warning, critical, unknown or *")
    span = add.add_mutually_exclusive_group(required=True)
    span.add_argument("--duration", help='how long from now (or --starts), e.g. "2h"')
    span.add_argument("--ends", help="RFC 3339 end, e.g. 2026-11-24T04:00:00Z")
    add.add_argument("--starts", help="RFC 3339 start (default: now)")
    add.add_argument("--comment", default="", help="why, for whoever looks next")
    add.add_argument("--created-by", default="", help="who (default: $USER)")
    verbs.add_parser("list", parents=[common], help="list silences and whether they are active")
    commands.add_parser(
        "healthcheck",
        parents=[common],
        help="ask the running daemon's /healthz (0 healthy, 1 not): a container HEALTHCHECK",
    )
    backtest = commands.add_parser(
        "backtest",
        parents=[common],
        help="replay the stored history under the config: what it would have sent",
    )
    backtest.add_argument("--since", default="7d", help="how far back (default 7d)")
    backtest.add_argument("--target", help="list only this target's notifications (a glob)")
    backtest.add_argument("--format", choices=["text", "json"], default="text")
    expire = verbs.add_parser("expire", parents=[common], help="end a silence now")
    expire.add_argument("id", help="the silence's id, as `silence list` shows it")
    from vigild.jobs import add_commands

    add_commands(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    # After `--`, all is `vigild wrap`'s job: argparse would take its options as vigild's.
    split = given.index("--") if "--" in given else len(given)
    args = _parser().parse_args(given[:split])
    args.argv = given[split + 1 :]
    if args.version:
        from vigild import __version__

        say(f"vigild {__version__}")
        return 0
    command = args.command or "run"
    if args.once and command != "run":
        print("vigild: --once cannot be combined with a command", file=sys.stderr)
        return 2

    if getattr(args, "no_actions", False):
        # Through the environment, so a SIGHUP reload keeps actions off too.
        os.environ["VIGILD_ACTIONS_ENABLED"] = "false"

    if args.once:
        # What the imports and the config build lives to the end of the run: the collector
        # would walk it again and again as it grows. ``_once`` freezes it, then turns it on.
        gc.disable()
    from vigild import assembly
    from vigild.config import ConfigError
    from vigild.config_file import find_config

    path = find_config(getattr(args, "config", None))
    if command == "backtest":
        return _backtest(path, args)
    if command in {"silence", "actions", "healthcheck", "ping", "wrap"}:
        return control.run(path, command, args)
    # Parsing notifier URLs imports apprise (a few hundred ms): `--once` from cron and
    # the commands that send nothing skip it; what `check-config` accepts, `run` starts.
    sends = command in {"run", "check-config", "test-notify"} and not args.once
    try:
        config = assembly.load(path, check_notifier_urls=sends)
    except ConfigError as exc:
        gc.enable()
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        if command == "check-config":
            from vigild.wording import counted

            print(f"{path}: invalid ({counted(len(exc.problems), 'problem')})", file=sys.stderr)
        return EXIT_ONCE_UNUSABLE if args.once else EXIT_INVALID_CONFIG

    configure_logging(config.daemon, config.secrets, args)
    if command == "check-config":
        say(_summary(config))  # which notifiers are disabled is part of the summary
        seen = True
        if args.discover:
            from vigild.discovery.report import discovery_report

            seen, lines = asyncio.run(discovery_report(config))
            say("\n".join(lines))
        if not args.probe:
            return 0 if seen else 1
        from vigild.daemon.once import probe_report

        found, lines = asyncio.run(probe_report(config))
        say("\n".join(lines))
        return 0 if found and seen else 1
    import structlog

    for warning in config.warnings:  # from the commands that would notify
        structlog.get_logger("vigild").warning(warning)
    if command == "test-notify":
        from vigild.daemon.once import test_notify

        delivered, lines = asyncio.run(test_notify(config, args.notifier))
        say("\n".join(lines))
        return 0 if delivered else 1
    if args.once:
        return _once(config, args.format)
    return _run(config)


def _backtest(path: Path, args: argparse.Namespace) -> int:
    """``path`` replayed, beside the running config (found as without ``--config``)."""
    import time

    from vigild.backtest import Unusable, load_configs, report
    from vigild.config_file import find_config

    try:
        config, running = load_configs(path, find_config(None))
        # The engine logs each replayed transition as if it happened now: noise here.
        args.log_level = getattr(args, "log_level", None) or "error"
        configure_logging(config.daemon, config.secrets, args)
        found = report(
            config,
            running,
            since=args.since,
            target=args.target,
            output=args.format,
            now=time.time(),
        )
    except Unusable as exc:
        print(f"vigild: {exc}", file=sys.stderr)
        return exc.code
    say(found)
    return 0


def _once(config: Config, output: str) -> int:
    from vigild.daemon.once import run_once
    from vigild.storage.errors import StateFileError
    from vigild.storage.lock import StateLocked

    # Modules and the config are most of the heap and live to the end: out of the
    # collector's way, during the run and in the collections the interpreter makes at exit
    # (about a fifth of a 10-target run's wall time).
    gc.freeze()
    gc.enable()
    try:
        result = asyncio.run(run_once(config, output))
    except (StateLocked, StateFileError) as exc:
        print(f"vigild: {exc}", file=sys.stderr)
        return EXIT_ONCE_UNUSABLE
    say(result.report)
    gc.freeze()
    return result.exit_code


def _run(config: Config) -> int:
    from vigild.daemon.app import Daemon
    from vigild.storage.errors import StateFileError
    from vigild.storage.lock import StateLocked

    async def serve() -> None:
        await Daemon(config).serve()

    try:
        _event_loop_runner()(serve())
    except (StateLocked, StateFileError) as exc:
        print(f"vigild: {exc}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    except OSError as exc:  # the listen address is taken or not ours to bind
        print(
            f"vigild: cannot listen on {config.daemon.listen}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_INVALID_CONFIG
    return 0


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """``uvloop`` when installed (``vigild[fast]``), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run  # type: ignore[no-any-return]


def _summary(config: Config) -> str:
    by_type: dict[str, int] = {}
    for target in config.targets:
        by_type[target.type] = by_type.get(target.type, 0) + 1
    intervals: dict[float, int] = {}
    for target in config.targets:
        interval = target.effective_interval(config.daemon)
        intervals[interval] = intervals.get(interval, 0) + 1
    types = ", ".join(f"{k}: {v}" for k, v in sorted(by_type.items()))
    cycles = ", ".join(f"every {i:g}s: {n}" for i, n in sorted(intervals.items()))
    notifiers = ", ".join(f"{n.name} ({n.type}, {n.min_severity}+)" for n in config.notifiers)
    lines = [
        f"{config.path}: valid",
        f"  targets:   {len(config.targets)} ({types or 'none'})",
        f"  cycles:    {cycles or 'none'}",
        f"  notifiers: {notifiers or 'none'}",
    ]
    lines.extend(f"  disabled:  {name} (url or key empty)" for name in config.disabled_notifiers)
    for a in config.actions:
        mode = " dry run" if a.dry_run else ""
        off = "" if config.daemon.actions_enabled else ", actions_enabled = false"
        lines.append(
            f"  action:    {a.name} ({a.type}{mode}, {a.when.severity} for {a.when.for_:g}s{off})"
        )
    # What a target's type has to say about it: a host's mounts, a histogram's unit.
    lines.extend(f"  {label + ':':<11}{text}" for t in config.targets for label, text in t.notes())
    daemon = config.daemon
    labels = ", ".join(f"{k}={v}" for k, v in sorted(daemon.external_labels.items()))
    lines.append(f"  instance:  {daemon.instance}")
    lines.append(f"  labels:    {labels or 'none'}")
    lines.append(f"  replica:   {daemon.replica or 'none'}")
    lines.append(f"  state:     {config.daemon.state_path}")
    lines.append(f"  listen:    {config.daemon.listen}")
    return "\n".join(config.redact(line) for line in lines)
