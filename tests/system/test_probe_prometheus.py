"""The prometheus probe through the real command: ``--once`` twice, and ``check-config``
with and without ``--probe``."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from process import run
from prometheus_pages import SHOP, make_probe, scrape, serve, write_target
from targets import TargetServer, closed_port


# vigild --once from cron: the rate between two runs
async def test_once_twice_computes_the_error_rate_between_runs(
    tmp_path: Path, target_server: TargetServer
) -> None:
    config = tmp_path / "vigild.toml"
    config.write_text(
        "[daemon]\n"
        f'listen = "127.0.0.1:{closed_port()}"\n'
        f"state_path = {json.dumps(str(tmp_path / 'state.db'))}\n"
        "\n[[targets]]\n"
        'name = "shop"\n'
        'type = "prometheus"\n'
        f'url = "{target_server.url("/metrics")}"\n'
        f"requests = '{SHOP['requests']}'\n"
        f"errors = '{SHOP['errors']}'\n"
        f"latency_histogram = '{SHOP['latency_histogram']}'\n",
        encoding="utf-8",
    )
    serve(target_server, "exposition_scrape1.prom")
    first = await run("--once", "--format", "json", "--config", str(config))
    assert first.returncode == 0, first.stderr
    [shop] = first.json["targets"]
    assert shop["observation"]["up"] is True
    assert "error_rate_percent" not in shop["observation"]["metrics"]

    serve(target_server, "exposition_scrape2.prom")
    second = await run("--once", "--format", "json", "--config", str(config))
    [shop] = second.json["targets"]
    metrics = shop["observation"]["metrics"]
    assert metrics["error_rate_percent"] == pytest.approx(2.5)
    assert metrics["latency_p95_seconds"] == pytest.approx(0.7)
    assert metrics["latency_p99_seconds"] == 1.0
    # 2.5 % is over the default warning line (2 %): the run exits 1, WARNING.
    verdicts = {v["metric"]: v["severity"] for v in shop["verdicts"]}
    assert verdicts["error_rate_percent"] == "warning"
    assert second.returncode == 1, second.stderr
    assert target_server.hits == 2


async def test_milliseconds_are_scaled_and_noted_by_check_config(
    tmp_path: Path, session: aiohttp.ClientSession, target_server: TargetServer
) -> None:
    target_server.body = 'rpc_milliseconds{quantile="0.99"} 250\nrpc_milliseconds_count 9\n'
    probe = make_probe(
        session, target_server.url(), latency_histogram="rpc_milliseconds", quantiles=[0.99]
    )
    assert (await scrape(probe)).metrics["latency_p99_seconds"] == 0.25
    path = write_target(tmp_path, target_server.url(), latency_histogram='"rpc_milliseconds"')
    checked = await run("check-config", "--config", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "shop: rpc_milliseconds is in milliseconds" in checked.stdout


async def test_check_config_probe_says_what_each_metric_came_to(
    tmp_path: Path, target_server: TargetServer
) -> None:
    serve(target_server, "exposition_scrape1.prom")
    path = write_target(
        tmp_path,
        target_server.url("/metrics"),
        requests="'http_requests_total'",
        errors="'http_requests_total{status=~\"5..\"}'",
        gauges="{ queue = 'jobs_queued', typo = 'jobs_queud' }",
    )
    checked = await run("check-config", "--probe", "--config", str(path))
    assert checked.returncode == 1, checked.stderr  # a name nowhere on the page
    assert "    queue = 110" in checked.stdout
    assert "error_rate_percent: no data (warming up: a rate needs two scrapes)" in checked.stdout
    assert "typo: UNKNOWN (no metric jobs_queud on the page)" in checked.stdout
    # And the log says it at the first scrape, threshold or not.
    assert "selector finds nothing on the page" in checked.stderr
    assert not (tmp_path / "state.db").exists()
