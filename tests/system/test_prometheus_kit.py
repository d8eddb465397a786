"""The Prometheus and Grafana kit in docs/: checked by promtool, and held to vigild's real metrics.

promtool and prometheus come from Debian's ``prometheus`` package, which the
test script installs.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from process import environment, until
from prometheus_kit import (
    PROMETHEUS_DIR,
    RULE_TESTS,
    RULES,
    dashboard_expressions,
    metric_names,
    rule_expressions,
)
from prometheus_server import scraping
from receivers import Receiver
from standard_daemon import start_daemon
from targets import TargetServer

CONFIG = PROMETHEUS_DIR / "prometheus.yml"

FROM_PROMETHEUS = frozenset({"up"})
"""Series Prometheus itself writes for every scrape target, not vigild."""

ENV = environment(API_TOKEN="t")
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
    "$target": ".*",
}


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"an unknown Grafana variable in {expr}"
    return expr


def exposed_names(exposition: str) -> set[str]:
    """Every name a query can select on this /metrics, even of families with no sample yet."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            if kind == "counter":
                names.add(name if name.endswith("_total") else name + "_total")
            elif kind in {"histogram", "summary"}:
                names |= {name + "_sum", name + "_count"}
                if kind == "histogram":
                    names.add(name + "_bucket")
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


async def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> tuple[int, str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: scripts/test installs Debian's prometheus package"
    process = await asyncio.create_subprocess_exec(
        binary,
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


# -- promtool ------------------------------------------------------------------


async def test_rules_pass_promtool_check_rules() -> None:
    code, output = await promtool("check", "rules", str(RULES))
    assert code == 0, output
    assert f"SUCCESS: {len(rule_expressions())} rules found" in output


async def test_rules_unit_tests_pass() -> None:
    code, output = await promtool("test", "rules", str(RULE_TESTS))
    assert code == 0, output
    assert "SUCCESS" in output


async def test_a_broken_rule_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: the same tests against a loosened threshold do."""
    loosened = RULES.read_text().replace("> 0.5\n", ">= 0.5\n")
    assert loosened != RULES.read_text()
    (tmp_path / RULES.name).write_text(loosened)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    code, output = await promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert code != 0
    assert "VigildProbesFailingBroadly" in output and "host-c:9469" in output


async def test_scrape_config_passes_promtool_check_config() -> None:
    code, output = await promtool("check", "config", str(CONFIG))
    assert code == 0, output
    assert "1 rule files found" in output
    config = yaml.safe_load(CONFIG.read_text())
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert jobs == ["vigild"]  # the rules and the dashboard select job="vigild"
    assert config["rule_files"] == [RULES.name]


# -- the dashboard -------------------------------------------------------------


# -- held to a live vigild and a real Prometheus ---------------------------------


async def test_kit_uses_only_metrics_vigild_exposes(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    daemon = await start_daemon(tmp_path, target_server, receiver, ENV)
    await until(lambda: target_server.hits >= 1, what="a probe")
    _, exposition = await daemon.get("/metrics")
    await daemon.stop()
    exposed = exposed_names(exposition)
    assert {"vigild_probe_duration_seconds_bucket", "vigild_notifications_total"} <= exposed

    used: dict[str, set[str]] = {}
    for name, expr in rule_expressions().items():
        used[f"rule {name}"] = metric_names(expr)
    for expr in dashboard_expressions():
        used[f"dashboard {expr}"] = metric_names(expr)
    everything = set().union(*used.values())
    assert {"vigild_outbox_pending", "vigild_heartbeats_total", "up"} <= everything
    unknown = {
        where: sorted(n for n in names if n not in exposed and n not in FROM_PROMETHEUS)
        for where, names in used.items()
    }
    unknown = {where: names for where, names in unknown.items() if names}
    assert unknown == {}, "names vigild's /metrics does not carry"


async def test_prometheus_runs_the_rules_and_the_dashboard_queries(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    """A real Prometheus scrapes vigild with the kit's rules; every query of the kit is valid."""
    daemon = await start_daemon(tmp_path, target_server, receiver, ENV)
    try:
        async with scraping(tmp_path, daemon.listen, RULES) as api:
            recorded: list[Any] = []
            for _ in range(300):  # bounded: 30 s at most
                answer = await api("query", query="instance:vigild_probe_success:avg")
                recorded = answer.get("data", {}).get("result", [])
                if recorded:
                    break
                await asyncio.sleep(0.1)
            assert recorded, "the recording rule never produced a sample"
            assert recorded[0]["metric"]["instance"] == daemon.listen
            assert recorded[0]["value"][1] == "1"  # the one target is up

            # Each group is evaluated on its own clock, and one evaluated before the first
            # scrape saw vigild absent: wait until every rule has run on scraped data.
            rules: list[dict[str, Any]] = []

            def settled() -> bool:
                return bool(rules) and all(
                    r["health"] != "unknown" and r.get("state") not in {"pending", "firing"}
                    for r in rules
                )

            for _ in range(100):  # bounded: 10 s at most
                groups = (await api("rules")).get("data", {}).get("groups", [])
                rules = [rule for group in groups for rule in group["rules"]]
                if settled():
                    break
                await asyncio.sleep(0.1)
            assert len(rules) == len(rule_expressions())
            broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
            assert broken == {}
            firing = [r["name"] for r in rules if r.get("state") in {"pending", "firing"}]
            assert firing == []  # a healthy vigild raises none of its own alerts

            for expr in dashboard_expressions():
                answer = await api("query", query=grafana_to_promql(expr))
                assert answer.get("status") == "success", (expr, answer.get("error"))
    finally:
        await daemon.stop()
