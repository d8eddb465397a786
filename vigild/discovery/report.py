"""``vigild check-config --discover``: what discovery sees now, and what each
container would become."""

from __future__ import annotations

from vigild.assembly import Config
from vigild.discovery.labels import Container, LabelError, targets_of
from vigild.engine_api import EngineError, connect

__all__ = ["discovery_report"]


async def discovery_report(config: Config) -> tuple[bool, list[str]]:
    """(whether the engine answered, the lines to print)."""
    settings = config.discovery.containers
    if settings is None:
        return False, ["discovery: not configured (no [discovery.containers] section)"]
    async with connect(settings.engine, secrets=lambda: config.secrets) as engine:
        try:
            listed = await engine.list_containers({settings.enable_label: "true"})
        except EngineError as exc:
            return False, [f"discovery: {config.redact(str(exc))}"]
        found = sorted((Container.from_listing(c) for c in listed), key=lambda c: c.name)
        lines = [
            f"discovery: {len(found)} container(s) with {settings.enable_label}=true "
            f"at {engine.url}"
        ]
    taken = {t.name for t in config.targets}
    for container in found:
        try:
            targets = targets_of(container, settings, config.defaults)
        except LabelError as exc:
            lines.append(f"  {container.name}: skipped, label {exc.label}: {exc.reason}")
            continue
        clash = [t.config.name for t in targets if t.config.name in taken]
        if clash:
            lines.append(f"  {container.name}: skipped, target {clash[0]!r} is taken")
            continue
        taken.update(t.config.name for t in targets)
        shown = ", ".join(
            f"{t.config.name} ({t.config.type}"
            + (f" {config.redact(url)}" if (url := t.config.shown_url()) else "")
            + ")"
            for t in targets
        )
        lines.append(f"  {container.name} → {shown}")
    return True, lines
