"""The problems of one config file, each with its key path; and ``${VAR}``
interpolation, which adds problems (an unset variable) and secrets (what it read).

A key path reads as the file does: ``targets[2] "svc".intervall``, the index in the
TOML array counted from 0 as in every path syntax (jq, JSONPath, pydantic), and the
entry's ``name`` beside it, because nobody counts ``[[targets]]`` tables from zero.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from vigild.redaction import redact

__all__ = ["Problems", "dotted", "known_keys", "reason"]

_M = TypeVar("_M", bound=BaseModel)

Loc = tuple[str | int, ...]

NAMED_SECTIONS = ("targets", "notifiers", "actions")
"""The arrays of tables whose entries carry a ``name`` that key paths show."""


class Problems:
    """Collects the problems of one file, each as ``file: key.path: reason`` with the
    secrets read so far masked, and interpolates ``${VAR}`` (which adds both)."""

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.problems: list[str] = []
        self.secrets: set[str] = set()
        self.names: dict[tuple[str, int], str] = {}
        """``("targets", 2)`` → ``"svc"``: the name each key path shows beside the index."""
        self._unset: list[Loc] = []
        """Where a ``${VAR}`` was unset: that is the problem there, not what "" then fails."""

    def name_entries(self, raw: Mapping[str, Any]) -> None:
        """Remember each named entry's ``name`` as written (before interpolation, so
        a name from the environment is shown as ``${VAR}``, never as its value)."""
        for section in NAMED_SECTIONS:
            entries = raw.get(section)
            if not isinstance(entries, list):
                continue
            for i, entry in enumerate(entries):
                name = entry.get("name") if isinstance(entry, dict) else None
                if isinstance(name, str):
                    self.names[(section, i)] = name

    def problem(self, loc: Iterable[str | int], reason: str) -> None:
        where = tuple(loc)
        if any(_related(where, unset) for unset in self._unset):
            return  # a consequence of the unset variable already reported there
        self._add(where, reason)

    def _add(self, loc: Loc, reason: str) -> None:
        shown = dotted(loc, self.names)
        self.problems.append(f"{self.path}: {shown}: {redact(reason, self.secrets)}")

    def extend(
        self, prefix: tuple[str | int, ...], found: Iterable[tuple[tuple[str | int, ...], str]]
    ) -> None:
        """Problems found below ``prefix``, each with its key path relative to it."""
        for loc, why in found:
            self.problem((*prefix, *loc), why)

    def pydantic_problems(
        self,
        prefix: tuple[str | int, ...],
        exc: ValidationError,
        model: type[BaseModel] | None = None,
        also: Iterable[str] = (),
    ) -> None:
        """Each error of ``exc`` at its key path. Given the ``model`` that raised it (and
        the keys ``also`` taken beside it at its top), an unknown key gets the nearest
        known one as a suggestion."""
        for err in exc.errors():
            inner = tuple(err["loc"])
            known: list[str] = []
            if model is not None and err["type"] == "extra_forbidden":
                known = known_keys(model, inner[:-1])
                if not inner[:-1]:
                    known.extend(also)
            self.problem(prefix + inner, reason(err, known))

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
            self.pydantic_problems(loc, exc, model)
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
                self._add(
                    loc,
                    f"environment variable {name} is not set "
                    f"(write ${{{name}:-}} to make it optional)",
                )
                self._unset.append(loc)
                return ""
            return default
        if value:
            self.secrets.add(value)
        return value


def _related(loc: Loc, unset: Loc) -> bool:
    """One key path within the other, inside one entry (``targets[0].url`` and
    ``targets[0]``), never a whole section (``targets``: a loop of depends_on)."""
    shorter = min(len(loc), len(unset))
    return shorter >= 2 and loc[:shorter] == unset[:shorter]


def dotted(loc: Iterable[str | int], names: Mapping[tuple[str, int], str] | None = None) -> str:
    """``targets[2] "svc".url``: the key path, with a named entry's name after its index."""
    out = ""
    previous: str | int | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            name = names.get((previous, part)) if names and isinstance(previous, str) else None
            if name is not None:
                # JSON's quoting: a name with a quote or a control character stays one line.
                out += " " + json.dumps(name, ensure_ascii=False)
        else:
            out += ("." if out else "") + part
        previous = part
    return out or "(top level)"


def known_keys(model: type[BaseModel], path: Loc) -> list[str]:
    """The keys the table at ``path`` inside ``model`` takes, as written in the file
    (aliases: ``for``); none where ``path`` leads to no model."""
    node: Any = model
    for part in path:
        node = _inner(node, part)
        if node is None:
            return []
    for member in _members(node):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return [
                field.alias or key
                for key, field in member.model_fields.items()
                if not field.exclude
            ]
    return []


def _members(node: Any) -> list[Any]:
    """``X | None`` and ``Annotated[X, ...]`` as the types they may hold."""
    origin = get_origin(node)
    if origin is Annotated:
        return _members(get_args(node)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(node) for m in _members(arg)]
    return [node]


def _inner(node: Any, part: str | int) -> Any:
    """The type found one step into ``node`` at ``part``: a model's field, a list's
    item, a dict's value."""
    for member in _members(node):
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            for key, field in member.model_fields.items():
                if part in (key, field.alias):
                    return field.annotation
        origin, args = get_origin(member), get_args(member)
        if origin in (list, tuple) and isinstance(part, int) and args:
            return args[0]
        if origin is dict and isinstance(part, str) and len(args) == 2:
            return args[1]
    return None


def reason(err: Any, known: Iterable[str] = ()) -> str:
    """One pydantic error in the words ``check-config`` prints; an unknown key with the
    nearest of the ``known`` ones, if one is near."""
    kind = err["type"]
    if kind == "extra_forbidden":
        key = err["loc"][-1] if err["loc"] else None
        near = difflib.get_close_matches(key, list(known), n=1) if isinstance(key, str) else []
        return f'unknown key; did you mean "{near[0]}"?' if near else "unknown key"
    if kind == "missing":
        return "required key missing"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if kind not in {"value_error", "assertion_error"} and "input" in err:
        value = err["input"]
        if not isinstance(value, dict | list):
            msg += f" (got {value!r})"
    return msg
