"""Derived metrics added to observations before thresholds: a prometheus target's SLO
from a real page served on loopback, an http target's from its probe results, and a
forecast; then judged by the rules the config makes, as the cycle does."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from prometheus_pages import make_probe, scrape
from targets import TargetServer, closed_port

from vigild.assembly import Config, load
from vigild.derived import Derived
from vigild.model import Observation, Severity
from vigild.thresholds import evaluate

T0 = 1_700_000_000.0
FAST = '[{ severity = "critical", long = "60s", short = "10s", factor = 10 }]'


def config(tmp_path: Path, target: str) -> Config:
    path = tmp_path / "vigild.toml"
    path.write_text(
        f'[daemon]\nlisten = "127.0.0.1:{closed_port()}"\n'
        f'state_path = "{tmp_path / "state.db"}"\n[[targets]]\n{target}',
        encoding="utf-8",
    )
    return load(path)


def derived_of(cfg: Config) -> Derived:
    target = cfg.targets[0]
    derived = Derived.of(target, cfg.rules[target.name])
    assert derived is not None
    return derived


def severities(cfg: Config, observation: Observation) -> dict[str, tuple[Severity, float | None]]:
    rules = cfg.rules[cfg.targets[0].name]
    return {v.metric: (v.severity, v.value) for v in evaluate(observation, rules)}


def counters(requests: float, errors: float) -> str:
    return (
        "# TYPE http_requests_total counter\n"
        f'http_requests_total{{code="200"}} {requests - errors}\n'
        f'http_requests_total{{code="500"}} {errors}\n'
    )


async def test_prometheus_slo_from_counter_increases_with_a_reset(
    tmp_path: Path, session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    keys = {
        "requests": "http_requests_total",
        "errors": 'http_requests_total{code=~"5.."}',
        "slo": {
            "objective": 99.0,
            "period": "10m",
            "alerts": [{"severity": "critical", "long": "60s", "short": "10s", "factor": 10}],
        },
    }
    url = target_server.url("/metrics")
    cfg = config(
        tmp_path,
        f'name = "shop"\ntype = "prometheus"\nurl = "{url}"\n'
        f'requests = "http_requests_total"\nerrors = \'http_requests_total{{code=~"5.."}}\'\n'
        f'slo = {{ objective = 99.0, period = "10m", alerts = {FAST} }}\n',
    )
    derived = derived_of(cfg)
    probe = make_probe(session, url, **keys)
    seen = []
    # 1000 requests, 5 errors, then 1000 and 200 errors; then the service restarts
    # (counters back near 0: the new values are the increase, as PromQL's increase).
    for at, (requests, errors) in enumerate([(5000, 10), (6000, 15), (7000, 215), (400, 80)]):
        target_server.body = counters(requests, errors)
        observation = await scrape(probe, T0 + at * 5)
        derived(observation)
        seen.append(observation)
    first, _, third, last = seen
    assert "slo_burn_rate:10s" not in first.metrics and "slo_burn" in first.no_data
    assert severities(cfg, first)["slo_burn"] == (Severity.OK, None)  # absent, not UNKNOWN
    assert third.metrics["requests_increase"] == 1000 and third.metrics["errors_increase"] == 200
    assert third.metrics["slo_burn_rate:1m"] == pytest.approx((205 / 2000) / 0.01)
    assert last.metrics["requests_increase"] == 400 and last.metrics["errors_increase"] == 80
    assert last.metrics["slo_burn_rate:1m"] == pytest.approx((285 / 2400) / 0.01)
    assert last.metrics["slo_burn_rate:10s"] == pytest.approx((280 / 1400) / 0.01)
    assert severities(cfg, last)["slo_burn"] == (Severity.CRITICAL, 2.0)
    assert last.metrics["slo_error_budget_remaining_percent"] == pytest.approx(
        100 * (1 - (285 / 2400) / 0.01)
    )


def test_http_slo_counts_failed_probes_as_bad(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        'name = "web"\ntype = "http"\nurl = "http://127.0.0.1:1/"\n'
        f'slo = {{ objective = 90, period = "1h", alerts = {FAST} }}\n',
    )
    derived = derived_of(cfg)
    for t in range(50):
        derived(Observation("web", T0 + t, True))
    quiet = Observation("web", T0 + 50, True)
    derived(quiet)
    assert quiet.metrics["slo_burn_rate:1m"] == 0.0
    assert quiet.metrics["slo_error_budget_remaining_percent"] == 100.0
    assert severities(cfg, quiet)["slo_burn"] == (Severity.OK, 0.0)
    for t in range(51, 61):
        down = Observation("web", T0 + t, False, "connection refused")
        derived(down)
    # The 1m window is its 30 two-second buckets up to now's: T0+2 to T0+60, 10 failed
    # of 59; the 10s one holds only the 10 failed.
    assert down.metrics["slo_burn_rate:1m"] == pytest.approx((10 / 59) / 0.1)
    assert down.metrics["slo_burn_rate:10s"] == pytest.approx(10.0)
    # A failed probe is `up` critical; its other alerts are held back, as always.
    assert severities(cfg, down) == {"up": (Severity.CRITICAL, 0.0)}


def test_forecast_hours_until_the_critical_line_judged_below(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        'name = "q"\ntype = "prometheus"\nurl = "http://127.0.0.1:1/metrics"\n'
        'gauges = { queue_depth = "jobs_queued" }\n'
        "thresholds.queue_depth = { warning = 500, critical = 1000 }\n"
        'forecast = { metric = "queue_depth", window = "10m", horizon = "1d", '
        "warning = 12, critical = 4 }\n",
    )
    derived = derived_of(cfg)
    for t in range(0, 601, 30):
        observation = Observation("q", T0 + t, True, metrics={"queue_depth": 100 + t / 36})
        derived(observation)
    # 100 an hour, at 116.7 now: 1000 in 8.83 hours: a warning (fewer than 12).
    hours = observation.metrics["forecast_hours:queue_depth"]
    assert hours == pytest.approx((1000 - (100 + 600 / 36)) / 100)
    assert severities(cfg, observation)["forecast_hours:queue_depth"] == (Severity.WARNING, hours)
    for t in range(630, 1300, 30):
        observation = Observation("q", T0 + t, True, metrics={"queue_depth": 150.0})
        derived(observation)
    assert "forecast_hours:queue_depth" in observation.no_data
    assert severities(cfg, observation)["forecast_hours:queue_depth"] == (Severity.OK, None)


def test_targets_without_slo_or_forecast_cost_nothing(tmp_path: Path) -> None:
    cfg = config(tmp_path, 'name = "web"\ntype = "http"\nurl = "http://127.0.0.1:1/"\n')
    assert Derived.of(cfg.targets[0], cfg.rules["web"]) is None


def histogram(fast: float, slow: float) -> str:
    """``fast`` requests under 0.3 s (half of them under 0.1 s), ``slow`` over 1 s, in ms."""
    return (
        "# TYPE req_duration_milliseconds histogram\n"
        f'req_duration_milliseconds_bucket{{le="100"}} {fast / 2}\n'
        f'req_duration_milliseconds_bucket{{le="300"}} {fast}\n'
        f'req_duration_milliseconds_bucket{{le="1000"}} {fast}\n'
        f'req_duration_milliseconds_bucket{{le="+Inf"}} {fast + slow}\n'
        f"req_duration_milliseconds_count {fast + slow}\n"
        f"req_duration_milliseconds_sum 0\n"
    )


async def test_latency_slo_counts_requests_slower_than_le_as_bad(
    tmp_path: Path, session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    url = target_server.url("/metrics")
    latency_slo = {
        "objective": 99.0,
        "le": 0.3,
        "period": "10m",
        "alerts": [{"severity": "critical", "long": "60s", "short": "10s", "factor": 10}],
    }
    cfg = config(
        tmp_path,
        f'name = "shop"\ntype = "prometheus"\nurl = "{url}"\n'
        'latency_histogram = "req_duration_milliseconds"\n'
        f'latency_slo = {{ objective = 99.0, le = 0.3, period = "10m", alerts = {FAST} }}\n',
    )
    derived = derived_of(cfg)
    probe = make_probe(
        session, url, latency_histogram="req_duration_milliseconds", latency_slo=latency_slo
    )
    target_server.body = histogram(1000, 0)
    derived(await scrape(probe, T0))
    target_server.body = histogram(1990, 10)  # 1000 more, 10 of them slow: 1 % bad
    observation = await scrape(probe, T0 + 5)
    derived(observation)
    assert observation.metrics["latency_total_increase"] == 1000
    assert observation.metrics["latency_good_increase"] == 990
    assert observation.metrics["latency_slo_burn_rate:10s"] == pytest.approx(1.0)
    assert "slo_burn" not in observation.metrics  # the availability SLO is not configured
    assert severities(cfg, observation)["latency_slo_burn"] == (Severity.OK, 0.0)
    target_server.body = histogram(2490, 510)  # 1000 more, half slow
    observation = await scrape(probe, T0 + 10)
    derived(observation)
    assert observation.metrics["latency_slo_burn_rate:1m"] == pytest.approx((510 / 2000) / 0.01)
    assert severities(cfg, observation)["latency_slo_burn"] == (Severity.CRITICAL, 2.0)
    assert observation.metrics["latency_slo_error_budget_remaining_percent"] < 0


async def test_latency_slo_on_a_bound_the_histogram_lacks_is_no_value(
    tmp_path: Path, session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    url = target_server.url("/metrics")
    probe = make_probe(
        session,
        url,
        latency_histogram="req_duration_milliseconds",
        latency_slo={"objective": 99.0, "le": 0.25},
    )
    target_server.body = histogram(1000, 0)
    await scrape(probe, T0)
    target_server.body = histogram(2000, 0)
    observation = await scrape(probe, T0 + 5)
    assert "latency_total_increase" not in observation.metrics
