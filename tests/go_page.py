"""A Go client library's page, where a label set appears with its first use, and a config
whose prometheus target selects from it."""

from __future__ import annotations

import json
from pathlib import Path

from receivers import Receiver
from targets import closed_port

SELECTED = {
    "requests": 'app_requests_total{handler="/api"}',
    "errors": 'app_requests_total{handler="/api",code=~"5.."}',
    "latency_histogram": 'app_request_seconds{handler="/api"}',
}


BOUNDS = ("0.1", "0.5", "1", "+Inf")


def go_page(served: dict[str, tuple[int, int, list[int]]]) -> str:
    """A Go client's page: handler → (2xx count, 5xx count, cumulative buckets). /metrics
    has served itself since the start; other handlers appear once used."""
    served = {"/metrics": (3, 0, [3, 3, 3, 3]), **served}
    lines = [
        "# HELP app_requests_total Requests by handler and code.",
        "# TYPE app_requests_total counter",
    ]
    for handler, (ok, failed, _) in served.items():
        lines.append(f'app_requests_total{{code="200",handler="{handler}"}} {ok}')
        if failed:
            lines.append(f'app_requests_total{{code="500",handler="{handler}"}} {failed}')
    lines += ["# HELP app_request_seconds Latency.", "# TYPE app_request_seconds histogram"]
    for handler, (_, _, buckets) in served.items():
        for bound, count in zip(BOUNDS, buckets, strict=True):
            lines.append(f'app_request_seconds_bucket{{handler="{handler}",le="{bound}"}} {count}')
        lines.append(f'app_request_seconds_sum{{handler="{handler}"}} 1')
        lines.append(f'app_request_seconds_count{{handler="{handler}"}} {buckets[-1]}')
    return "\n".join(lines) + "\n"


def write_config(tmp_path: Path, url: str, receiver: Receiver, **keys: str) -> Path:
    target = {**SELECTED, **keys}
    selectors = "".join(f"{key} = {json.dumps(value)}\n" for key, value in target.items())
    path = tmp_path / "vigild.toml"
    path.write_text(
        f"""
[daemon]
interval = "1s"
listen = "127.0.0.1:{closed_port()}"
state_path = {json.dumps(str(tmp_path / "state.db"))}

[alerting]
group_wait = "0s"

[thresholds]
up = {{ for = "30s" }}
error_rate_percent = {{ warning = 2, critical = 5 }}
latency_p95_seconds = {{ warning = 0.5, critical = 2, recover_for = "30s" }}

[[targets]]
name = "app"
type = "prometheus"
url = "{url}"
{selectors}
[[notifiers]]
name = "hook"
type = "webhook"
url = "{receiver.url("/hook")}"
""",
        encoding="utf-8",
    )
    return path
