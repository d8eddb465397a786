"""Backends found by name through entry points: probes, notifiers and actions alike.

A third party adds one by publishing a subclass under the entry-point group;
the config then accepts its ``type`` and validates its own keys with the
backend's ``Options`` model.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

__all__ = ["Options", "find", "names", "own_options", "rescan"]

_O = TypeVar("_O", bound=BaseModel)


class Options(BaseModel):
    """Base for a backend's own keys; unknown keys are errors like everywhere else."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@cache
def _installed() -> Any:
    """Every entry point of every installed distribution, read once: the scan costs
    ~10 ms, and ``--once`` looks up probes, notifiers and actions."""
    return entry_points()


@cache
def _registered(group: str) -> dict[str, EntryPoint]:
    """``group``'s entry points by name (a config of 10,000 targets looks its probe up
    10,000 times). The first registration of a name wins."""
    registered: dict[str, EntryPoint] = {}
    for entry in _installed().select(group=group):
        registered.setdefault(entry.name, entry)
    return registered


def rescan() -> None:
    """Forget what was read: each config load (a start, a SIGHUP) sees the plugins
    installed now."""
    _installed.cache_clear()
    _registered.cache_clear()
    find.cache_clear()


def names(group: str) -> list[str]:
    """The names registered in ``group``, sorted."""
    return sorted(_registered(group))


@cache
def find(group: str, kind: str, base: type, what: str) -> Any:
    """The ``base`` subclass registered as ``kind`` in ``group``; LookupError says what
    exists. (``Any``: the bases are abstract, which ``type[T]`` cannot carry.)"""
    entry = _registered(group).get(kind)
    if entry is None:
        raise LookupError(f"unknown {what} type {kind!r} (known: {', '.join(names(group))})")
    cls: Any = entry.load()
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
