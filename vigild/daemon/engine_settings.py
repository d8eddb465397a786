"""What the alerting engine is built with for a config: routes, labels, addresses,
silences, dependencies and identity; the same for the daemon, ``--once`` and
``vigild backtest``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vigild.alerting.notifiers.base import backend
from vigild.alerting.silences import Silence, Silences
from vigild.alerting.stages.route import Route
from vigild.assembly import Config
from vigild.model import Identity

if TYPE_CHECKING:
    from vigild.daemon.parts import Parts

__all__ = ["configured_silences", "engine_settings"]


def configured_silences(config: Config, now: float) -> tuple[Silence, ...]:
    """The config's ``[[silences]]``; a ``duration`` without ``starts`` counts from ``now``."""
    return tuple(
        Silence.from_config(s, f"config-{i}", now, "config") for i, s in enumerate(config.silences)
    )


def engine_settings(
    config: Config, silences: Silences, previous: Parts | None = None
) -> dict[str, Any]:
    """The engine's arguments for ``config``, the same for a first engine and a successor."""
    # A target the swap drops resolves with the labels and address it fired with.
    dropped = (*previous.config.targets, *previous.config.held) if previous else ()
    described = (*dropped, *config.held, *config.targets)
    labels = {t.name: tuple(sorted(t.labels.items())) for t in described}

    def labels_of(observed: str) -> tuple[tuple[str, str], ...]:
        """The alert labels of a target, or of the target a container came from."""
        found = labels.get(observed)
        if found is None:
            owner = config.owner_of(observed)
            found = labels.get(owner, ()) if owner is not None else ()
        return found

    known = {t.name: t.address() for t in described}

    def address(observed: str) -> str | None:
        """Where a target is, redacted, for the messages that name it."""
        owner = config.owner_of(observed) or (observed if observed in known else None)
        if owner is None:
            return None
        if owner != observed:  # a container a target selected by its labels
            return f"container {observed.rpartition('/')[2]}"
        found = known.get(owner)
        return config.redact(found) if found else None

    return {
        "routes": _routes(config),
        "flap_limit": config.alerting.flap_limit,
        "labels": labels_of,
        "redact": config.redact,
        "silences": silences,
        "dependencies": {t.name: tuple(t.depends_on) for t in config.targets if t.depends_on},
        "connectivity": config.daemon.connectivity_check,
        "max_per_message": config.alerting.max_alerts_per_message,
        "identity": Identity.of(config.daemon.instance, config.daemon.external_labels),
        "addresses": address,
    }


def _routes(config: Config) -> list[Route]:
    return [
        Route(
            name=n.name,
            min_rank=n.min_rank,
            send_resolved=n.send_resolved,
            repeat_interval=config.daemon.interval
            if backend(n.type).keepalive
            else n.repeat_interval or config.alerting.repeat_interval,
            keepalive=backend(n.type).keepalive,
        )
        for n in config.notifiers
    ]
