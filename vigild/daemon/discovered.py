"""What the daemon needs of discovery: one started for the config, and the targets
a change brought (probed at once, not at their next cycle)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from vigild.assembly import Config
from vigild.config_sections import ContainerDiscoveryConfig
from vigild.daemon.parts import Watched
from vigild.discovery import ContainerDiscovery
from vigild.engine_api import connect
from vigild.probes.container import RETIRED

__all__ = ["discovered_once", "fresh", "removed", "start_discovery"]


async def _nothing() -> None:
    """``vigild --once`` looks once and follows nothing: no change to apply."""


async def discovered_once(
    config: Config, settings: ContainerDiscoveryConfig
) -> tuple[Config, bool]:
    """``config`` with the targets the containers ``settings`` label give now (``vigild
    --once``), and whether the engine answered (when not, ``config`` as it is)."""
    discovery = ContainerDiscovery(
        settings, connect(settings.engine, secrets=lambda: config.secrets), _nothing
    )
    try:
        if await discovery.look():
            return discovery.merged(config), True
        return config, False
    finally:
        await discovery.client.close()


def start_discovery(
    config: Config, changed: Callable[[], Awaitable[None]]
) -> ContainerDiscovery | None:
    """Discovery of ``[discovery.containers]``, started; None without that section."""
    settings = config.discovery.containers
    if settings is None:
        return None
    engine = connect(settings.engine, secrets=lambda: config.secrets)
    discovery = ContainerDiscovery(settings, engine, changed)
    discovery.start()
    return discovery


def fresh(old: Config, cycles: Mapping[float, Sequence[Watched]]) -> list[Watched]:
    """The targets of ``cycles`` that ``old`` did not probe, but for those of the shortest
    interval: installing the jobs starts that cycle at once (a second probe of them
    would be skipped as still in flight)."""
    known = {t.name for t in old.targets}
    shortest = min(cycles, default=0.0)
    return [
        w
        for interval, watched in cycles.items()
        if interval != shortest
        for w in watched
        if w.target.name not in known
    ]


def removed(old: Config, new: Config) -> dict[str, str]:
    """Why the alerts of the discovered targets ``new`` no longer has resolve."""
    return dict.fromkeys(old.sources.keys() - new.sources.keys(), RETIRED)
