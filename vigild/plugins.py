"""Backends found by name through entry points: notifiers and actions alike.

A third party adds one by publishing a subclass under the entry-point group;
the config then accepts its ``type`` and validates its own keys with the
backend's ``Options`` model.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

__all__ = ["Options", "find", "own_options"]

_O = TypeVar("_O", bound=BaseModel)


class Options(BaseModel):
    """Base for a backend's own keys; unknown keys are errors like everywhere else."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def find(group: str, kind: str, base: type, what: str) -> Any:
    """The ``base`` subclass registered as ``kind`` in ``group``; LookupError says what
    exists. (``Any``: the bases are abstract, which ``type[T]`` cannot carry.)"""
    found = entry_points(group=group, name=kind)
    if not found:
        known = sorted({ep.name for ep in entry_points(group=group)})
        raise LookupError(f"unknown {what} type {kind!r} (known: {', '.join(known)})")
    cls: Any = next(iter(found)).load()
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise LookupError(f"{what} type {kind!r} does not name a vigild {base.__name__} class")
    return cls


class _Configured(Protocol):
    @property
    def options(self) -> BaseModel: ...


def own_options(config: _Configured, model: type[_O]) -> _O:
    """A backend's own keys, typed as its ``Options`` model (the config validated them)."""
    options = config.options
    return options if isinstance(options, model) else model.model_validate(options.model_dump())
