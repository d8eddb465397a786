"""``type = "container"``: restart or stop a container through the Engine API.

The same Docker/Podman socket the container probe reads: for the common
"just restart it" remedy, without a script.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from pydantic import Field

from vigild import engine_api
from vigild.alerting.actions import base
from vigild.config import ActionConfig
from vigild.fields import MINUTE, EngineUrl, duration_between

__all__ = ["ContainerAction", "ContainerOptions"]


class ContainerOptions(base.Options):
    container: str = Field(min_length=1)
    """A container's name or id."""
    action: Literal["restart", "stop"] = "restart"
    engine: EngineUrl | None = None
    """As a container target's ``engine``; unset: ``$DOCKER_HOST``, then the usual sockets."""
    stop_wait: Annotated[float, duration_between(0, 10 * MINUTE)] | None = None
    """Seconds the engine gives the container to stop before it kills it."""


class ContainerAction(base.Action):
    Options = ContainerOptions

    def __init__(self, config: ActionConfig) -> None:
        super().__init__(config)
        self.options = base.own_options(config, ContainerOptions)

    def describe(self) -> str:
        return f"{self.options.action} container {self.options.container}"

    async def run(self, context: base.ActionContext) -> base.ActionResult:
        options = self.options
        verb = options.action
        try:
            async with (
                asyncio.timeout(context.timeout),
                engine_api.connect(options.engine, timeout=context.timeout) as client,
            ):
                call = client.restart if verb == "restart" else client.stop
                await call(options.container, wait=options.stop_wait, within=context.timeout)
        except TimeoutError:
            return base.ActionResult("timeout", f"no answer within {context.timeout:g}s")
        except engine_api.EngineError as exc:
            return base.ActionResult("failed", context.redact(str(exc)))
        done = "restarted" if verb == "restart" else "stopped"
        return base.ActionResult("succeeded", f"{done} container {options.container}")
