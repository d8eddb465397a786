"""Configs for the ``vigild`` command's tests: TOML strings and a ``[daemon]`` with a free
``listen`` and its state in the test's directory."""

from __future__ import annotations

import json
from pathlib import Path

from targets import closed_port


def numbered_targets(count: int, fields: str) -> str:
    """``count`` ``[[targets]]`` named t0, t1, …, each with ``fields`` (TOML lines, in which
    ``{i}`` is the target's number)."""
    return "".join(f'[[targets]]\nname = "t{i}"\n{fields.format(i=i)}\n' for i in range(count))


def toml_str(value: object) -> str:
    """A TOML basic string (JSON's escaping is valid TOML for these values)."""
    return json.dumps(str(value))


def write_config(tmp_path: Path, body: str, *, name: str = "vigild.toml", daemon: str = "") -> Path:
    """``[daemon]`` with a free ``listen`` and a state file in ``tmp_path``, then ``body``."""
    path = tmp_path / name
    path.write_text(
        "[daemon]\n"
        f"listen = {toml_str(f'127.0.0.1:{closed_port()}')}\n"
        f"state_path = {toml_str(tmp_path / 'state.db')}\n"
        f"{daemon}\n"
        f"{body}\n",
        encoding="utf-8",
    )
    return path
