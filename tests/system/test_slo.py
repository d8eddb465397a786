"""SLO burn rates and forecasts against a real Prometheus, and end to end through a daemon.

One loopback service exposes counters and gauges that are linear in a time the test
steps (served with that time as the samples' explicit timestamp), so Prometheus and
vigild's own prometheus probe read the very same (time, value) pairs. vigild's burn
rate over each window must equal ``(rate(errors[w]) / rate(requests[w])) / (1 -
objective)``, through a counter reset and until traffic stops (then: absent, where
PromQL gives NaN); its forecast must equal ``predict_linear``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from process import Daemon, Samples, listen_address, wait_metrics
from prometheus_pages import make_probe
from prometheus_server import Api, scraping
from receivers import Receiver
from targets import closed_port

from vigild.assembly import load
from vigild.derived import Derived
from vigild.forecast import Trend
from vigild.model import Observation, Severity
from vigild.thresholds import evaluate

REQUESTS_PER_S = 40.0
ERRORS_PER_S = 0.8
OBJECTIVE = 99.0
WINDOWS = ("5s", "10s", "20s")
PARTIAL = "slo windows longer than the history held are partial: computed over what exists"


class Service:
    """Counters and gauges linear in ``now``, the time the test last stepped to."""

    def __init__(self) -> None:
        self.start = self.now = math.floor(time.time())
        self.base = 1e6
        """The counters' value at ``start``: far from 0, so PromQL's extrapolation is
        never cut at a counter's zero and rates of both counters scale alike."""
        self.restarted: float | None = None
        self.errors_until = math.inf
        """Errors grow until then, and stay as they are after."""
        self.traffic = True
        self.frozen_at = 0.0
        self.port = closed_port()

    def elapsed(self) -> float:
        now = self.now if self.traffic else self.frozen_at
        if self.restarted is not None:
            return now - self.restarted
        return now - self.start

    def page(self) -> str:
        requests = (
            0 if self.restarted is not None else self.base
        ) + REQUESTS_PER_S * self.elapsed()
        erring = self.elapsed() - max(0.0, self.now - self.errors_until)
        errors = (0 if self.restarted is not None else self.base / 50) + ERRORS_PER_S * erring
        rising = 40 + 0.25 * (self.now - self.start)
        falling = 90 - 0.5 * (self.now - self.start)
        stamp = int(self.now * 1000)
        return (
            "# TYPE app_requests_total counter\n"
            f"app_requests_total {requests!r} {stamp}\n"
            "# TYPE app_errors_total counter\n"
            f"app_errors_total {errors!r} {stamp}\n"
            "# TYPE disk_used gauge\n"
            f"disk_used {rising!r} {stamp}\n"
            "# TYPE pool_free gauge\n"
            f"pool_free {falling!r} {stamp}\n"
        )

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(text=self.page(), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        try:
            yield f"127.0.0.1:{self.port}"
        finally:
            await runner.cleanup()


async def instant(api: Api, query: str, at: float) -> float | None:
    """The one value of ``query`` at ``at``; None for an empty answer."""
    answer = await api("query", query=query, time=f"{at:.3f}")
    assert answer.get("status") == "success", answer
    result = answer["data"]["result"]
    if not result:
        return None
    return float(result[0]["value"][1])


async def until_scraped(api: Api, at: float) -> None:
    """Until Prometheus holds a sample stamped ``at`` (bounded)."""
    for _ in range(100):
        value = await instant(api, "timestamp(app_requests_total)", at)
        if value is not None and value >= at:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"Prometheus has no sample at {at}")


def slo_target(url: str) -> str:
    alerts = ", ".join(
        [
            '{ severity = "critical", long = "20s", short = "5s", factor = 1 }',
            '{ severity = "warning", long = "10s", short = "5s", factor = 1 }',
        ]
    )
    return (
        f'name = "app"\ntype = "prometheus"\nurl = "{url}"\n'
        'requests = "app_requests_total"\nerrors = "app_errors_total"\n'
        'gauges = { disk = "disk_used", pool = "pool_free" }\n'
        # The error rate's own alert stays out of the way: the SLO's is under test.
        "thresholds.error_rate_percent = { warning = 50, critical = 60 }\n"
        f'slo = {{ objective = {OBJECTIVE}, period = "1m", alerts = [{alerts}] }}\n'
        'forecast = { metric = "disk", window = "10s", horizon = "1d", limit = 90, '
        "warning = 12, critical = 4 }\n"
    )


async def test_burn_rates_and_forecasts_equal_prometheus(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    service = Service()
    url = f"http://127.0.0.1:{service.port}/metrics"
    path = tmp_path / "vigild.toml"
    path.write_text(
        f'[daemon]\nlisten = "{listen_address()}"\nstate_path = "{tmp_path / "state.db"}"\n'
        f"[[targets]]\n{slo_target(url)}",
        encoding="utf-8",
    )
    config = load(path)
    target = config.targets[0]
    rules = config.rules["app"]
    derived = Derived.of(target, rules)
    assert derived is not None
    probe = make_probe(
        session, url, **target.model_dump(include={"requests", "errors", "gauges", "slo"})
    )
    rising, falling = Trend(10.0), Trend(10.0)
    seen: list[Observation] = []

    async def step(seconds: float) -> Observation:
        """Service time moves on by ``seconds``, in half-second steps, vigild probing each."""
        observation = seen[-1] if seen else None
        for _ in range(int(seconds * 2)):
            service.now += 0.5
            await asyncio.sleep(0.5)
            (observation,) = await probe.probe(service.now)
            derived(observation)
            rising.add(observation.time, observation.metrics["disk"])
            falling.add(observation.time, observation.metrics["pool"])
            seen.append(observation)
        assert observation is not None
        return observation

    async with service.serving() as address, scraping(tmp_path, address) as api:
        await step(12)
        service.restarted = service.now  # counters back to 0, and on from there
        last = await step(8)
        at = last.time
        await until_scraped(api, at)
        for window in WINDOWS:
            expected = await instant(
                api,
                f"(rate(app_errors_total[{window}]) / rate(app_requests_total[{window}]))"
                f" / (1 - {OBJECTIVE / 100})",
                at,
            )
            assert expected is not None and expected == pytest.approx(2.0, rel=1e-6)
            assert last.metrics[f"slo_burn_rate:{window}"] == pytest.approx(expected, rel=1e-6)
        verdicts = {v.metric: v.severity for v in evaluate(last, rules)}
        assert verdicts["slo_burn"] is Severity.CRITICAL

        for ahead in (0, 60, 3600, 86400):
            for trend, gauge in ((rising, "disk_used"), (falling, "pool_free")):
                expected = await instant(api, f"predict_linear({gauge}[10s], {ahead})", at)
                assert expected is not None
                assert trend.predict(at, ahead) == pytest.approx(expected, rel=1e-6)
        hours = await instant(
            api, "(90 - predict_linear(disk_used[10s], 0)) / deriv(disk_used[10s]) / 3600", at
        )
        assert last.metrics["forecast_hours:disk"] == pytest.approx(hours, rel=1e-6)

        # No traffic for longer than the short window: PromQL's 0/0 is NaN, vigild's
        # burn rate is absent there, and the alert metric is judged, never UNKNOWN.
        service.traffic = False
        service.frozen_at = service.now
        quiet = await step(6)
        await until_scraped(api, quiet.time)
        stopped = await instant(
            api, "rate(app_errors_total[5s]) / rate(app_requests_total[5s])", quiet.time
        )
        assert stopped is not None and math.isnan(stopped)
        assert "slo_burn_rate:5s" not in quiet.metrics
        assert "slo_burn_rate:5s" in quiet.no_data
        judged = {v.metric: v.severity for v in evaluate(quiet, rules)}
        assert judged["slo_burn"] is not Severity.UNKNOWN
        assert Severity.UNKNOWN not in judged.values()


async def test_daemon_pages_on_slo_burn_and_keeps_its_windows_across_a_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    service = Service()
    listen = listen_address()
    path = tmp_path / "vigild.toml"
    url = f"http://127.0.0.1:{service.port}/metrics"
    path.write_text(
        f'[daemon]\ninterval = "1s"\nlisten = "{listen}"\n'
        f'state_path = "{tmp_path / "state.db"}"\n[alerting]\ngroup_wait = "0s"\n'
        f"[[targets]]\n{slo_target(url)}"
        f'[[notifiers]]\nname = "hook"\ntype = "webhook"\nurl = "{receiver.url("/hook")}"\n',
        encoding="utf-8",
    )

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.25)
            service.now = time.time()

    async with service.serving():
        clock = asyncio.create_task(tick())
        daemon = await Daemon(path, listen).start()
        try:
            await daemon.wait_ready()
            # No history yet: every window starts partial, said once for all targets.
            await daemon.wait_log(PARTIAL)
            (said,) = daemon.events(PARTIAL)
            assert said["targets"] == 1
            assert said["example"].startswith("app: slo_burn_rate:5s, slo_burn_rate:10s")
            # 2 % errors against a 1 % budget: both window pairs burn at 2.
            requests = await receiver.wait_for(1, timeout=30)
            alert = requests[0].json["alerts"][0]
            assert alert["labels"]["alertname"] == "slo_burn"
            assert alert["status"] == "firing"

            def burn(samples: Samples, metric: str, series: str = "") -> float | None:
                labels = (("metric", metric), ("series", series), ("target", "app"))
                return samples.get(("vigild_probe_value", labels))

            await wait_metrics(
                daemon,
                lambda samples: (burn(samples, "slo_burn_rate", "10s") or 0) > 1.5,
                within=10,
                what="the 10s burn rate",
            )
            assert await daemon.stop() == 0

            # Restarted with errors gone: the windows come back from the history, so the
            # period's budget still shows what was spent before the restart (a cold
            # window would say 100 % left: no error since the restart).
            service.errors_until = service.now
            daemon = await Daemon(path, listen).start()
            await daemon.wait_ready()
            await wait_metrics(
                daemon,
                lambda samples: (burn(samples, "slo_error_budget_remaining_percent") or 100) < 99,
                within=10,
                what="the budget spent before",
            )
            # And the alert resolves once the short windows have seen only good requests.
            resolved = await receiver.wait_for(2, timeout=30)
            assert resolved[-1].json["alerts"][0]["status"] == "resolved"
        finally:
            clock.cancel()
            await daemon.stop()
