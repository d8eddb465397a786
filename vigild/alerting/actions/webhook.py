"""``type = "webhook"``: POST the alert as JSON to a URL, success on 2xx.

For a CI/CD pipeline trigger or a Portainer/Unraid webhook. Headers come from
the config (secrets via ``${VAR}``); failures are worded by ``posting`` so
they never carry the URL, which often holds a token.
"""

from __future__ import annotations

import asyncio

from vigild.alerting.actions import base
from vigild.alerting.notifiers import posting
from vigild.alerting.notifiers.base import DeliveryError
from vigild.config import ActionConfig
from vigild.fields import HttpUrlText

__all__ = ["WebhookAction", "WebhookOptions"]


class WebhookOptions(base.Options):
    url: HttpUrlText
    headers: dict[str, str] = {}


class WebhookAction(base.Action):
    Options = WebhookOptions

    def __init__(self, config: ActionConfig) -> None:
        super().__init__(config)
        self.options = base.own_options(config, WebhookOptions)

    def describe(self) -> str:
        return "POST the alert to a webhook"

    async def run(self, context: base.ActionContext) -> base.ActionResult:
        body = {"action": context.action, "dry_run": context.dry_run, "alert": context.alert_json()}
        try:
            async with asyncio.timeout(context.timeout):
                status, reason, answer = await posting.post(
                    context.session, self.options.url, json_body=body, headers=self.options.headers
                )
        except TimeoutError:
            return base.ActionResult("timeout", f"no answer within {context.timeout:g}s")
        except DeliveryError as exc:
            return base.ActionResult("failed", context.redact(exc.reason))
        output = base.output_tail(answer, context.redact)
        said = f"answered {status} {reason}".rstrip()
        if 200 <= status < 300:
            return base.ActionResult("succeeded", said, output=output)
        return base.ActionResult("failed", said, output=output)
