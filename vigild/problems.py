"""The problems of one config file, each with its key path; and ``${VAR}``
interpolation, which adds problems (an unset variable) and secrets (what it read)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vigild.redaction import redact

__all__ = ["Problems", "dotted", "reason"]

_M = TypeVar("_M", bound=BaseModel)


class Problems:
    """Collects the problems of one file, each as ``file: key.path: reason`` with the
    secrets read so far masked, and interpolates ``${VAR}`` (which adds both)."""

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.problems: list[str] = []
        self.secrets: set[str] = set()

    def problem(self, loc: Iterable[str | int], reason: str) -> None:
        self.problems.append(f"{self.path}: {dotted(loc)}: {redact(reason, self.secrets)}")

    def extend(
        self, prefix: tuple[str | int, ...], found: Iterable[tuple[tuple[str | int, ...], str]]
    ) -> None:
        """Problems found below ``prefix``, each with its key path relative to it."""
        for loc, why in found:
            self.problem((*prefix, *loc), why)

    def pydantic_problems(self, prefix: tuple[str | int, ...], exc: ValidationError) -> None:
        for err in exc.errors():
            loc = prefix + tuple(err["loc"])
            self.problem(loc, reason(err))

    def unique(self, loc: tuple[str | int, ...], kind: str, name: str, seen: set[str]) -> None:
        if name in seen:
            self.problem(loc, f"duplicate {kind} name {name!r}")
        seen.add(name)

    def validate(
        self, model: type[_M], raw: dict[str, Any], loc: tuple[str | int, ...]
    ) -> _M | None:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            self.pydantic_problems(loc, exc)
            return None

    # -- ${VAR} -----------------------------------------------------------

    _VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

    def interpolate(self, node: Any, loc: tuple[str | int, ...]) -> Any:
        if isinstance(node, dict):
            return {k: self.interpolate(v, (*loc, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [self.interpolate(v, (*loc, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            return self._VAR.sub(lambda m: self._substitute(m, loc), node)
        return node

    def _substitute(self, match: re.Match[str], loc: tuple[str | int, ...]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = self.env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                self.problem(
                    loc,
                    f"environment variable {name} is not set "
                    f"(write ${{{name}:-}} to make it optional)",
                )
                return ""
            return default
        if value:
            self.secrets.add(value)
        return value


def dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def reason(err: Any) -> str:
    """One pydantic error in the words ``check-config`` prints."""
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key missing"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if kind not in {"value_error", "assertion_error"} and "input" in err:
        value = err["input"]
        if not isinstance(value, dict | list):
            msg += f" (got {value!r})"
    return msg
