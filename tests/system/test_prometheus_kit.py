"""The Prometheus and Grafana kit in docs/: checked by promtool, and held to vigild's real metrics.

promtool and prometheus come from Debian's ``prometheus`` package, which the
test script installs.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from process import environment, until
from prometheus_server import scraping
from receivers import Receiver
from standard_daemon import start_daemon
from targets import TargetServer

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "docs" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "vigild.rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "vigild.rules.test.yml"
DASHBOARD = ROOT / "docs" / "grafana" / "vigild.json"

FROM_PROMETHEUS = frozenset({"up"})
"""Series Prometheus itself writes for every scrape target, not vigild."""

ENV = environment(API_TOKEN="t")
DATASOURCE_UIDS = {"${datasource}", "$datasource"}
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
    "$target": ".*",
}

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"offset", "bool", "inf", "nan", "atan2"}
)
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\$\{?\w+\}?", "1m", text)  # Grafana variables
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text
    )  # label lists
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, rest = match.group(), text[match.end() :]
        before = text[: match.start()]
        if rest.lstrip().startswith("("):  # a function call or an aggregation
            continue
        if before and (before[-1].isalnum() or before[-1] in "._"):  # inside a number: 1e3, 0.5m
            continue
        if name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def rule_expressions() -> dict[str, str]:
    document = yaml.safe_load(RULES.read_text())
    found = {}
    for group in document["groups"]:
        for rule in group["rules"]:
            found[rule.get("alert") or rule["record"]] = rule["expr"]
    return found


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_expressions() -> list[str]:
    board = dashboard()
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            assert inner, f"variable {variable['name']}: not label_values(...): {query}"
            exprs.append(inner.group(1))
    return exprs


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


async def test_rule_unit_tests_cover_every_alert() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {name for name in rule_expressions() if ":" not in name}
    assert alerts >= {
        "VigildDown",
        "VigildCyclesLate",
        "VigildNotificationsLost",
        "VigildCyclesStartLate",
        "VigildProbesSkipped",
        "VigildReloadRejected",
        "VigildStateRecreated",
    }
    assert alerts - tested == set(), "alerts no unit test ever sees firing"


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


def test_dashboard_panels_use_the_datasource_variable() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert board["schemaVersion"] >= 39
    assert board["uid"] and board["title"]
    panels = board["panels"]
    assert len(panels) >= 10
    for panel in panels:
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert panel["targets"], where
        for query in panel["targets"]:
            assert query["datasource"]["uid"] in DATASOURCE_UIDS, where
            assert query["expr"].strip(), where
        ref_ids = [q["refId"] for q in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), where
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, where
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] in DATASOURCE_UIDS, variable["name"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        box = panel["gridPos"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_dashboard_shows_what_operators_look_for() -> None:
    exprs = " ".join(dashboard_expressions())
    for needed in (
        'up{job="vigild"',
        "vigild_alert_severity",
        "histogram_quantile(0.95, sum by (target, le) (rate(vigild_probe_duration_seconds_bucket",
        "vigild_notifications_total",
        "vigild_notification_latency_seconds_bucket",
        "vigild_outbox_pending",
        "time() - vigild_last_cycle_timestamp_seconds",
        "histogram_quantile(0.99, sum by (interval, le) (rate(vigild_cycle_lateness_seconds_bucket",
        "vigild_probes_skipped_total",
        "vigild_reloads_total",
        "vigild_state_recreated_total",
    ):
        assert needed in exprs, needed


# -- held to a live vigild and a real Prometheus ---------------------------------


def test_metric_name_extraction() -> None:
    """The name check below only means something if the names are really found."""
    expr = (
        'sum by (job, le) (rate(a_bucket{x="y{z}",le=~"0.5"}[5m] offset 1h)) / '
        "on (job) group_left (version) b_info or vector(1e3) unless c:rec > bool 0.5 "
        "and histogram_quantile(0.9, d_total[$__rate_interval])"
    )
    assert metric_names(expr) == {"a_bucket", "b_info", "c:rec", "d_total"}


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
