"""``vigild --once`` and ``vigild test-notify``: one pass, then exit.

``--once`` carries alert state between runs in ``state_path``, so cron runs
follow ``for``, never repeat a notification and retry what a previous run
could not deliver. Its exit code is the worst *current* verdict (the Nagios
plugin convention), whatever ``for`` says.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from vigild.assembly import Config
from vigild.daemon.runtime import Runtime, build_notifiers, make_session
from vigild.model import AlertEvent, Identity, Notification, Severity
from vigild.redaction import redact_values
from vigild.status import text_report
from vigild.storage.lock import lock_wait

__all__ = ["OnceResult", "run_once", "test_notify"]


@dataclass(frozen=True)
class OnceResult:
    exit_code: int
    report: str


async def run_once(config: Config, output: str = "text") -> OnceResult:
    answered = True
    if (discovery := config.discovery.containers) is not None:
        from vigild.daemon.discovered import discovered_once

        config, answered = await discovered_once(config, discovery)
    runtime = await Runtime(config).open(lock_wait=lock_wait(), undiscovered=not answered)
    try:
        await runtime.run_cycle()
        parts = runtime.parts
        # A started run is waited for (its timeout bounds it), so its report goes out now.
        await parts.actions.wait_idle()
        within = max((n.timeout for n in config.notifiers), default=0.0) + 1.0
        await asyncio.gather(parts.delivery.deliver_due(within), parts.heartbeat.settle())
        document = runtime.board.document(config, parts.engine)
        exit_code = int(runtime.board.worst())
    finally:
        await runtime.close(drain=0.0)
    document = redact_values(document, config.secrets)
    if output == "json":
        document["exit_code"] = exit_code
        report = json.dumps(document, indent=2)
    else:
        report = text_report(document)
    return OnceResult(exit_code, report)


def _test_message(notifier: str, identity: Identity) -> Notification:
    now = time.time()
    event = AlertEvent(
        fingerprint="0" * 16,
        target="vigild",
        metric="test",
        kind="test",
        severity=Severity.WARNING,
        previous=None,
        value=None,
        threshold=None,
        since=now,
        origin=identity.labels,
    )
    return Notification(notifier, now, (event,))


async def test_notify(config: Config, only: str | None = None) -> tuple[bool, list[str]]:
    """Send a marked test message through each notifier; (all delivered, one line each)."""
    from vigild.alerting.notifiers.base import DeliveryError

    names = [n.name for n in config.notifiers] + list(config.disabled_notifiers)
    if only is not None and only not in names:
        return False, [f"no notifier named {only!r} (configured: {', '.join(names) or 'none'})"]
    if only is None and not config.notifiers:
        return False, ["no notifier is enabled: nothing to test"]
    lines: list[str] = []
    delivered = True
    identity = Identity.of(config.daemon.instance, config.daemon.external_labels)
    async with make_session(4) as session:
        notifiers = build_notifiers(config, session)
        for name in names:
            if only is not None and name != only:
                continue
            if name not in notifiers:
                lines.append(f"{name}: disabled (its url or key is empty)")
                delivered = delivered and only is None
                continue
            notifier = notifiers[name]
            try:
                await asyncio.wait_for(
                    notifier.send(_test_message(name, identity)), notifier.config.timeout
                )
            except DeliveryError as exc:
                lines.append(f"{name}: failed: {config.redact(exc.reason)}")
                delivered = False
            except TimeoutError:
                lines.append(f"{name}: failed: timeout after {notifier.config.timeout:g}s")
                delivered = False
            else:
                lines.append(f"{name}: delivered")
            finally:
                await notifier.close()
    return delivered, lines


async def probe_report(config: Config) -> tuple[bool, list[str]]:
    """``check-config --probe``: every target probed once, what each metric came to.

    Nothing is alerted, and the state file is not opened. Returns (whether every
    target was up and every metric found or absent for a reason, the lines to print).
    """
    from vigild.probes.base import ProbeContext, build_probe

    async with make_session(config.daemon.concurrency) as session:
        context = ProbeContext(session)
        try:
            probes = [
                build_probe(t, context, t.effective_timeout(config.daemon)) for t in config.targets
            ]
            results = await asyncio.gather(*(p.observe(time.time()) for p in probes))
        finally:
            await context.close()
    clean = True
    lines = ["probe:"]
    for observations in results:
        for observation in observations:
            if not observation.up:
                lines.append(f"  {observation.target}: DOWN: {observation.error}")
                clean = False
                continue
            lines.append(f"  {observation.target}: up")
            for metric, value in sorted(observation.metrics.items()):
                if metric != "up":
                    lines.append(f"    {metric} = {value:.6g}")
            for metric in sorted(observation.no_data):
                why = observation.reasons.get(metric, "no data")
                lines.append(f"    {metric}: no data ({why})")
            for metric in sorted(observation.missing):
                why = observation.reasons.get(metric, "not found")
                lines.append(f"    {metric}: UNKNOWN ({why})")
                clean = False
    return clean, [config.redact(line) for line in lines]
