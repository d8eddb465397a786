"""Reading a config file: where it is, its TOML, and ``[daemon]`` alone.

``silence``, ``actions history`` and ``healthcheck`` read only ``[daemon]``
(``load_daemon``): they work from any shell on the host, where a variable only
the daemon's own environment holds (a notifier's URL; ``api_token``, which the
cookie stands in for) is unset. ``vigild.assembly.load`` reads the whole file.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from vigild.config import NOT_SUPPORTED_YET_DAEMON_KEYS, ConfigError, DaemonConfig
from vigild.problems import Problems, known_keys, reason

__all__ = ["DEFAULT_PATHS", "DaemonSection", "find_config", "load_daemon", "read", "too_deep"]

DEFAULT_PATHS = (Path("thresholds.toml"), Path("/etc/vigild/thresholds.toml"))


def find_config(explicit: str | None) -> Path:
    """``--config``, then ``$VIGILD_CONFIG``, then ./thresholds.toml, then /etc/vigild."""
    chosen = explicit or os.environ.get("VIGILD_CONFIG")
    if chosen:
        return Path(chosen)
    for candidate in DEFAULT_PATHS:
        if candidate.exists():
            return candidate
    return DEFAULT_PATHS[0]


def too_deep(path: Path) -> str:
    # tomllib and the builders walk nesting by recursion: `a = [[[[...]]]]`
    # thousands deep ends in a RecursionError, which is a broken file like any other.
    return f"{path}: not valid TOML: arrays or tables nested too deeply"


def read(path: Path) -> dict[str, Any]:
    """The file's TOML, or a ``ConfigError`` saying why there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a config file"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (at byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        return tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or a limit such as a 5,000-digit integer
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([too_deep(path)]) from None


def daemon_config(problems: Problems, raw: dict[str, Any]) -> DaemonConfig | None:
    """``[daemon]`` (already interpolated) as its model; what is wrong goes to ``problems``."""
    for key in NOT_SUPPORTED_YET_DAEMON_KEYS & raw.keys():
        problems.problem(("daemon", key), "not supported yet")
    known = {k: v for k, v in raw.items() if k not in NOT_SUPPORTED_YET_DAEMON_KEYS}
    try:
        return DaemonConfig(**known)
    except SettingsError as exc:
        # A VIGILD_ variable of a table key is JSON; pydantic-settings names the key in
        # its message only.
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"VIGILD_{field[1].upper()}" if field else "a VIGILD_ variable"
        problems.problem((f"{name} (environment)",), f"not valid JSON: {exc.__cause__ or exc}")
        return None
    except ValidationError as exc:
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            where: tuple[str | int, ...] = ("daemon", *err["loc"])
            if key and key not in known and f"VIGILD_{key.upper()}" in problems.env:
                where = (f"VIGILD_{key.upper()} (environment)",)
            problems.problem(where, reason(err, known_keys(DaemonConfig, err["loc"][:-1])))
        return None


@dataclass(frozen=True)
class DaemonSection:
    """What the commands that read the state file or talk to the running daemon need."""

    daemon: DaemonConfig
    secrets: frozenset[str]
    """Every value of the file that came from the environment, to redact."""


def load_daemon(path: Path) -> DaemonSection:
    """``[daemon]`` alone: a missing variable elsewhere in the file, or in
    ``api_token``, is no problem; one that ``listen`` or ``state_path`` needs is."""
    raw = read(path)
    section = raw.get("daemon", {})
    if not isinstance(section, dict):
        raise ConfigError([f"{path}: daemon: must be a table"])
    problems = Problems(path, os.environ)
    try:
        problems.interpolate(raw, ())  # for the secrets it finds, wherever they stand
        problems.problems.clear()
        known = problems.interpolate(
            {k: v for k, v in section.items() if k != "api_token"}, ("daemon",)
        )
        found = len(problems.problems)
        token = problems.interpolate(section.get("api_token"), ("daemon", "api_token"))
    except RecursionError:
        raise ConfigError([too_deep(path)]) from None
    if len(problems.problems) == found and token is not None:
        known["api_token"] = token
    del problems.problems[found:]
    daemon = daemon_config(problems, known)
    if problems.problems or daemon is None:
        raise ConfigError(problems.problems)
    return DaemonSection(daemon, frozenset(problems.secrets))
