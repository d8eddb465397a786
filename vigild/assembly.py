"""A config file turned into the validated whole: ``load`` and ``Config``.

Sits above config.py (the models of each section) and composes what config.py
must not know: each target through its probe's ``Options`` model (found in the
``vigild.probes`` entry points), each notifier and action through its backend's,
the threshold rules (vigild.thresholds), ``depends_on`` cycles. Every problem
becomes a line of one ``ConfigError`` naming the file, the key path and the
reason; values that came from the environment are remembered as secrets, so the
rest of vigild can redact them wherever text leaves the process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from vigild import plugins, thresholds
from vigild.config import (
    BUILTIN_THRESHOLDS,
    ActionConfig,
    AlertingConfig,
    ConfigError,
    DaemonConfig,
    NotifierConfig,
    SilenceConfig,
    TargetConfig,
    ThresholdSpec,
)
from vigild.config_file import daemon_config, read, too_deep
from vigild.config_sections import DiscoveryConfig, HistoryConfig
from vigild.fields import format_duration
from vigild.probes.base import GROUP as PROBES
from vigild.probes.base import backend as probe_backend
from vigild.problems import Problems
from vigild.redaction import redact

__all__ = ["Config", "dependency_cycles", "load"]

_Backed = TypeVar("_Backed", "NotifierConfig", "ActionConfig")


class _FileShape(BaseModel):
    """The top level of the file; each section is then validated on its own, so one
    run reports the problems of every section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    daemon: dict[str, Any] = {}
    alerting: dict[str, Any] = {}
    history: dict[str, Any] = {}
    thresholds: dict[str, dict[str, Any]] = {}
    targets: list[dict[str, Any]] = []
    notifiers: list[dict[str, Any]] = []
    silences: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    discovery: dict[str, Any] = {}


@dataclass(frozen=True)
class Config:
    path: Path
    daemon: DaemonConfig
    alerting: AlertingConfig
    targets: tuple[TargetConfig, ...]
    rules: Mapping[str, Mapping[str, thresholds.Rule]]
    """Per target name: metric → rule, defaults merged in."""
    notifiers: tuple[NotifierConfig, ...]
    """The enabled notifiers."""
    secrets: frozenset[str] = frozenset()
    warnings: tuple[str, ...] = ()
    disabled_notifiers: tuple[str, ...] = field(default=())
    silences: tuple[SilenceConfig, ...] = ()
    actions: tuple[ActionConfig, ...] = ()
    history: HistoryConfig = field(default_factory=HistoryConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    defaults: Mapping[str, ThresholdSpec] = field(default_factory=dict)
    """The threshold tables targets merge theirs over (built in, then ``[thresholds]``)."""
    sources: Mapping[str, str] = field(default_factory=dict)
    """Discovered targets: target name → the container it came from."""
    held: tuple[TargetConfig, ...] = ()
    """Discovered targets whose container is gone but not yet retired: in ``rules``, so
    their alerts stay as they are, and not in ``targets``, so nothing probes them."""

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    @cached_property
    def _expanding(self) -> frozenset[str]:
        return frozenset(t.name for t in self.targets if t.expands)

    def owner_of(self, observed: str) -> str | None:
        """The configured target an observed name belongs to: itself, or for a target
        that expands into several (``web/web-1``), the target it came from."""
        if observed in self.rules:
            return observed
        head = observed
        while "/" in head:
            head = head.rpartition("/")[0]
            if head in self._expanding:
                return head
        return None


# ---------------------------------------------------------------------------
# Loading


def load(path: Path, *, check_notifier_urls: bool = True) -> Config:
    """Read, interpolate and validate ``path``; every problem is in the ``ConfigError``.

    Args:
        check_notifier_urls: parse each notifier's URL with its backend's own parser
            (apprise's import alone takes a few hundred ms). ``vigild --once`` skips it
            to start fast; ``check-config``, ``run`` and a reload never do.
    """
    raw = read(path)
    plugins.rescan()
    try:
        return _Builder(path, os.environ, check_notifier_urls).build(raw)
    except RecursionError:
        raise ConfigError([too_deep(path)]) from None


class _Builder(Problems):
    def __init__(self, path: Path, env: Mapping[str, str], check_notifier_urls: bool) -> None:
        super().__init__(path, env)
        self.check_notifier_urls = check_notifier_urls

    def build(self, raw: dict[str, Any]) -> Config:
        self.name_entries(raw)
        raw = self.interpolate(raw, ())
        try:
            shape = _FileShape.model_validate(raw)
        except ValidationError as exc:
            self.pydantic_problems((), exc, _FileShape)
            raise ConfigError(self.problems) from None
        daemon = self.daemon(shape.daemon)
        alerting = self.validate(AlertingConfig, shape.alerting, ("alerting",))
        history = self.validate(HistoryConfig, shape.history, ("history",))
        overrides = {
            metric: spec
            for metric, raw_spec in shape.thresholds.items()
            if (spec := self.validate(ThresholdSpec, raw_spec, ("thresholds", metric))) is not None
        }
        defaults = thresholds.merged_defaults(BUILTIN_THRESHOLDS, overrides)
        found: list[thresholds.Problem] = []
        default_rules = thresholds.rules_of(
            ((("thresholds", m), m, spec) for m, spec in defaults.items()), found
        )
        self.extend((), found)
        targets, rules = self.targets(shape.targets, defaults, default_rules)
        notifiers, disabled = self.notifiers(shape.notifiers)
        silences = [
            silence
            for i, raw_silence in enumerate(shape.silences)
            if (silence := self.validate(SilenceConfig, raw_silence, ("silences", i))) is not None
        ]
        actions = self.actions(shape.actions)
        discovery = self.validate(DiscoveryConfig, shape.discovery, ("discovery",))
        self.references(daemon, targets)
        self.timeouts(daemon, targets)
        if (
            self.problems
            or daemon is None
            or alerting is None
            or history is None
            or discovery is None
        ):
            raise ConfigError(self.problems)
        warnings = tuple(
            f"notifier {name!r} is disabled: its url or key is empty" for name in disabled
        ) + tuple(warning for target in targets for warning in target.warnings(daemon))
        return Config(
            path=self.path,
            daemon=daemon,
            alerting=alerting,
            targets=tuple(targets),
            rules=rules,
            notifiers=tuple(notifiers),
            secrets=frozenset(self.secrets),
            warnings=warnings,
            disabled_notifiers=tuple(disabled),
            silences=tuple(silences),
            actions=tuple(actions),
            history=history,
            discovery=discovery,
            defaults=defaults,
        )

    def references(self, daemon: DaemonConfig | None, targets: list[TargetConfig]) -> None:
        """Names that must name a target (``depends_on``, ``connectivity_check``), and
        the dependency graph they make: a loop would hold back every alert in it."""
        by_name = {t.name: t for t in targets}
        for i, target in enumerate(targets):
            for dependency in target.depends_on:
                if dependency not in by_name:
                    self.problem(("targets", i, "depends_on"), f"no target named {dependency!r}")
        for cycle in dependency_cycles({t.name: t.depends_on for t in targets}):
            self.problem(("targets",), f"depends_on cycle {' -> '.join(cycle)}")
        check = daemon.connectivity_check if daemon is not None else None
        if check is None:
            return
        if check not in by_name:
            self.problem(("daemon", "connectivity_check"), f"no target named {check!r}")
        elif by_name[check].depends_on:
            # It decides whether every other alert is held back: nothing may hold it back.
            self.problem(
                ("daemon", "connectivity_check"),
                f"target {check!r} must depend on nothing "
                f"(it has depends_on = {by_name[check].depends_on})",
            )

    def timeouts(self, daemon: DaemonConfig | None, targets: list[TargetConfig]) -> None:
        """A probe that may outlast its interval would still run when the next is due."""
        if daemon is None:
            return
        for i, target in enumerate(targets):
            interval = target.effective_interval(daemon)
            if target.timeout is not None and target.timeout > interval:
                self.problem(
                    ("targets", i, "timeout"),
                    f"{format_duration(target.timeout)} is longer than the target's interval "
                    f"({format_duration(interval)}): a timeout must be at most the interval",
                )

    # -- sections ---------------------------------------------------------

    def daemon(self, raw: dict[str, Any]) -> DaemonConfig | None:
        return daemon_config(self, raw)

    def targets(
        self,
        raws: list[dict[str, Any]],
        defaults: dict[str, ThresholdSpec],
        default_rules: dict[str, thresholds.Rule],
    ) -> tuple[list[TargetConfig], dict[str, dict[str, thresholds.Rule]]]:
        targets: list[TargetConfig] = []
        rules: dict[str, dict[str, thresholds.Rule]] = {}
        seen: set[str] = set()
        for i, raw in enumerate(raws):
            loc: tuple[str | int, ...] = ("targets", i)
            kind = raw.get("type")
            known = plugins.names(PROBES)
            if kind not in known:
                reason = "required key missing" if kind is None else f"unknown type {kind!r}"
                self.problem((*loc, "type"), f"{reason} (expected one of: {', '.join(known)})")
                continue
            options = probe_backend(kind).Options
            try:
                target = options.model_validate(raw)
            except ValidationError as exc:
                self.pydantic_problems(loc, exc, options)
                continue
            self.unique((*loc, "name"), "target", target.name, seen)
            targets.append(target)
            found: list[thresholds.Problem] = []
            rules[target.name] = thresholds.target_rules(target, defaults, default_rules, found)
            self.extend(loc, found)
        return targets, rules

    def backed(
        self,
        loc: tuple[str | int, ...],
        raw: dict[str, Any],
        kind: str,
        backend_of: Callable[[str], Any],
        model: type[_Backed],
    ) -> tuple[_Backed, Any] | None:
        """One ``[[notifiers]]`` or ``[[actions]]`` table: the keys every one takes by
        ``model``, the rest by the backend's own ``Options``."""
        try:
            backend = backend_of(kind)
        except LookupError as exc:
            self.problem((*loc, "type"), str(exc))
            return None
        common = {k: v for k, v in raw.items() if k in model.COMMON_KEYS}
        own = {k: v for k, v in raw.items() if k not in model.COMMON_KEYS}
        try:
            options = backend.Options.model_validate(own)
        except ValidationError as exc:
            # The keys every one takes stand beside the backend's own: both are near misses.
            self.pydantic_problems(loc, exc, backend.Options, model.COMMON_KEYS)
            return None
        common_model = self.validate(model, {**common, "options": options}, loc)
        return None if common_model is None else (common_model, backend)

    def notifiers(self, raws: list[dict[str, Any]]) -> tuple[list[NotifierConfig], list[str]]:
        from vigild.alerting.notifiers.base import backend

        enabled: list[NotifierConfig] = []
        disabled: list[str] = []
        seen: set[str] = set()
        for i, raw in enumerate(raws):
            loc: tuple[str | int, ...] = ("notifiers", i)
            found = self.backed(loc, raw, raw.get("type", "apprise"), backend, NotifierConfig)
            if found is None:
                continue
            notifier, notifier_backend = found
            self.unique((*loc, "name"), "notifier", notifier.name, seen)
            if notifier_backend.is_disabled(notifier.options):
                disabled.append(notifier.name)
                continue
            enabled.append(notifier)
            if self.check_notifier_urls:
                reason = notifier_backend.unusable(notifier.options)
                if reason is not None:
                    self.problem((*loc, "url"), reason)
        return enabled, disabled

    def actions(self, raws: list[dict[str, Any]]) -> list[ActionConfig]:
        from vigild.alerting.actions.base import backend

        actions: list[ActionConfig] = []
        seen: set[str] = set()
        for i, raw in enumerate(raws):
            loc: tuple[str | int, ...] = ("actions", i)
            kind = raw.get("type")
            if kind is None:
                self.problem((*loc, "type"), "required key missing")
                continue
            found = self.backed(loc, raw, kind, backend, ActionConfig)
            if found is None:
                continue
            action, _backend = found
            self.unique((*loc, "name"), "action", action.name, seen)
            actions.append(action)
        return actions


def dependency_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each loop of ``graph`` once, as the path that closes it (``["x", "y", "x"]``),
    found by a depth-first walk in the graph's order; iterative, as a chain may be
    thousands of targets long."""
    done: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        pending = [iter(graph[start])]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif step in on_path:
                found.append([*path[path.index(step) :], step])
            elif step not in done and step in graph:
                path.append(step)
                on_path.add(step)
                pending.append(iter(graph[step]))
    return found
