"""The prometheus probe as the tests build it, and the pages of tests/data it scrapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from targets import TargetServer, closed_port

from vigild.model import Observation
from vigild.probes.base import ProbeContext, build_probe
from vigild.probes.prometheus import PrometheusProbe, PrometheusTarget

DATA = Path(__file__).resolve().parent / "data"
TEXT = "text/plain; version=0.0.4; charset=utf-8"

# The selectors of the realistic page: /health is left out of everything.
SHOP = {
    "requests": 'http_requests_total{route!="/health"}',
    "errors": 'http_requests_total{route!="/health",status=~"5.."}',
    "latency_histogram": 'http_request_duration_seconds{route!="/health"}',
    "gauges": {"queue_depth": 'jobs_queued{queue=~"high|default"}'},
}


def page(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def make_probe(
    session: aiohttp.ClientSession, url: str, probe_timeout: float = 5.0, **keys: Any
) -> PrometheusProbe:
    target = PrometheusTarget.model_validate(
        {"name": "shop", "type": "prometheus", "url": url, **keys}
    )
    probe = build_probe(target, ProbeContext(session), probe_timeout)
    assert isinstance(probe, PrometheusProbe)
    return probe


async def scrape(probe: PrometheusProbe, now: float = 1000.0) -> Observation:
    # probe(), not observe(): an exception must fail the test, not become an observation.
    (observation,) = await probe.probe(now)
    return observation


def serve(server: TargetServer, name: str, content_type: str = TEXT) -> None:
    server.body = page(name)
    server.content_type = content_type


def write_target(tmp_path: Path, url: str, **keys: str) -> Path:
    path = tmp_path / "vigild.toml"
    lines = "".join(f"{key} = {value}\n" for key, value in keys.items())
    path.write_text(
        f'[daemon]\nlisten = "127.0.0.1:{closed_port()}"\n'
        f"state_path = {json.dumps(str(tmp_path / 'state.db'))}\n"
        f'[[targets]]\nname = "shop"\ntype = "prometheus"\nurl = "{url}"\n{lines}',
        encoding="utf-8",
    )
    return path
