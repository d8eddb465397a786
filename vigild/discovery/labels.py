"""One container's labels turned into targets, Traefik style.

``vigild.enable=true`` makes a container a ``container`` target; ``vigild.http.*``
adds ``<name>/http``, which depends on it, so a stopped container pages once.
Every other ``vigild.*`` label sets a key of those targets as the file would
(``vigild.interval``, ``vigild.thresholds.memory_percent.critical``). A label
that cannot be used is a ``LabelError`` naming it: the container is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from vigild import thresholds
from vigild.config import TargetConfig, ThresholdSpec
from vigild.config_sections import ContainerDiscoveryConfig
from vigild.probes.base import backend
from vigild.problems import reason

__all__ = ["COMPOSE_SERVICE", "PREFIX", "Container", "LabelError", "Target", "targets_of"]

PREFIX = "vigild."
COMPOSE_SERVICE = "com.docker.compose.service"
_PORT = re.compile(r"\{port:(\d{1,5})\}")
_SIMPLE = {"name", "interval", "timeout", "depends_on", "http.url", "http.path", "http.port"}


class LabelError(Exception):
    """A label that cannot be used; ``label`` names it."""

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(f"{label}: {reason}")
        self.label = label
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Container:
    """What discovery reads of one container in the engine's list."""

    id: str
    name: str
    labels: Mapping[str, str]
    ip: str | None = None
    """Its address on its first network."""
    ports: Mapping[int, int] | None = None
    """Container port → published host port (TCP)."""
    first_port: int | None = None
    """Its first TCP port, published or not (``vigild.http.path`` alone uses it)."""

    @classmethod
    def from_listing(cls, item: Mapping[str, Any]) -> Container:
        """An entry of ``GET /containers/json``, as Docker and Podman write it."""
        names = item.get("Names") or []
        name = str(names[0]).lstrip("/") if names else str(item.get("Id", ""))[:12]
        labels = item.get("Labels") or {}
        networks = (item.get("NetworkSettings") or {}).get("Networks") or {}
        ip = next((n.get("IPAddress") for n in networks.values() if isinstance(n, dict)), None)
        ports: dict[int, int] = {}
        first = None
        for port in item.get("Ports") or ():
            if not isinstance(port, dict) or port.get("Type", "tcp") != "tcp":
                continue
            private = port.get("PrivatePort")
            if isinstance(private, int):
                first = private if first is None else first
                if isinstance(port.get("PublicPort"), int):
                    ports.setdefault(private, port["PublicPort"])
        return cls(
            id=str(item.get("Id", "")),
            name=name,
            labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
            ip=ip or None,
            ports=ports,
            first_port=first,
        )


@dataclass(frozen=True, slots=True)
class Target:
    config: TargetConfig
    rules: Mapping[str, thresholds.Rule]


def targets_of(
    container: Container,
    settings: ContainerDiscoveryConfig,
    defaults: Mapping[str, ThresholdSpec],
) -> tuple[Target, ...]:
    """The container's target, then its http target if it has one."""
    own = {
        k.removeprefix(PREFIX): v
        for k, v in container.labels.items()
        if k.startswith(PREFIX) and k != settings.enable_label
    }
    for key in own:
        if key not in _SIMPLE and not key.startswith(("thresholds.", "labels.")):
            raise LabelError(PREFIX + key, "not a label vigild knows")
    name = own.get("name") or container.labels.get(COMPOSE_SERVICE) or container.name
    common: dict[str, Any] = {k: own[k] for k in ("interval", "timeout") if k in own}
    alert_labels = {k.removeprefix("labels."): v for k, v in own.items() if k.startswith("labels.")}
    if alert_labels:
        common["labels"] = alert_labels
    box: dict[str, Any] = {
        **common,
        "type": "container",
        "name": name,
        "container": container.name,
        "engine": settings.engine,
    }
    if "depends_on" in own:
        box["depends_on"] = [d.strip() for d in own["depends_on"].split(",") if d.strip()]
    url = _http_url(container, own)
    web = None if url is None else {**common, "type": "http", "name": f"{name}/http", "url": url}
    box_type = backend("container").Options
    web_type = backend("http").Options
    for key, value in own.items():
        if not key.startswith("thresholds."):
            continue
        metric, dot, level = key.removeprefix("thresholds.").rpartition(".")
        if not dot or not metric:
            raise LabelError(PREFIX + key, "expected vigild.thresholds.<metric>.<level>")
        base = thresholds.base_metric(metric)
        if base in box_type.REPORTED:
            owner = box
        elif web is not None and base in web_type.REPORTED:
            owner = web
        else:
            raise LabelError(PREFIX + key, f"neither target of the container reports {metric!r}")
        owner.setdefault("thresholds", {}).setdefault(metric, {})[level] = value
    found = [_target(box, defaults)]
    if web is not None:
        web["depends_on"] = [name]
        found.append(_target(web, defaults))
    return tuple(found)


def _target(raw: dict[str, Any], defaults: Mapping[str, ThresholdSpec]) -> Target:
    try:
        config = backend(raw["type"]).Options.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise LabelError(_label(tuple(error["loc"])), reason(error)) from None
    default_rules = thresholds.rules_of(
        ((("thresholds", m), m, s) for m, s in defaults.items()), []
    )
    problems: list[thresholds.Problem] = []
    rules = thresholds.target_rules(config, defaults, default_rules, problems)
    if problems:
        loc, why = problems[0]
        raise LabelError(_label(loc), why)
    return Target(config, rules)


def _label(loc: tuple[str | int, ...]) -> str:
    """The label a key path of a target's table came from."""
    head = str(loc[0]) if loc else "name"
    if head in ("thresholds", "labels") and len(loc) > 1:
        return PREFIX + ".".join(str(p) for p in loc[:3])
    if head == "url":
        return PREFIX + "http.url"
    return PREFIX + head


def _http_url(container: Container, own: Mapping[str, str]) -> str | None:
    """``vigild.http.url`` with its placeholders filled, or the url the shorthand makes."""
    template = own.get("http.url")
    label = PREFIX + "http.url"
    if template is None:
        if "http.port" not in own and "http.path" not in own:
            return None
        label = PREFIX + ("http.port" if "http.port" in own else "http.path")
        port = own.get("http.port") or (
            str(container.first_port) if container.first_port is not None else None
        )
        if port is None:
            raise LabelError(
                PREFIX + "http.path", "the container has no port: add vigild.http.port"
            )
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise LabelError(PREFIX + "http.port", f"{port!r} is not a port number")
        path = own.get("http.path", "/")
        if not path.startswith("/"):
            raise LabelError(PREFIX + "http.path", "must start with /")
        template = f"http://{{ip}}:{port}{path}"
    if "{ip}" in template:
        if container.ip is None:
            raise LabelError(label, "the container has no address on a network")
        shown = f"[{container.ip}]" if ":" in container.ip else container.ip
        template = template.replace("{ip}", shown)

    def published(match: re.Match[str]) -> str:
        port = int(match.group(1))
        host_port = (container.ports or {}).get(port)
        if host_port is None:
            raise LabelError(label, f"container port {port} is not published")
        return str(host_port)

    return _PORT.sub(published, template)
