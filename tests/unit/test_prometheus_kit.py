"""The Prometheus and Grafana kit in docs/, read as files: every alert has a rule test, and
the dashboard's panels are laid out and queried as operators need (promtool and a real
Prometheus: tests/system/test_prometheus_kit.py)."""

from __future__ import annotations

import yaml
from prometheus_kit import (
    RULE_TESTS,
    dashboard,
    dashboard_expressions,
    metric_names,
    rule_expressions,
)

DATASOURCE_UIDS = {"${datasource}", "$datasource"}


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


def test_metric_name_extraction() -> None:
    """The name check below only means something if the names are really found."""
    expr = (
        'sum by (job, le) (rate(a_bucket{x="y{z}",le=~"0.5"}[5m] offset 1h)) / '
        "on (job) group_left (version) b_info or vector(1e3) unless c:rec > bool 0.5 "
        "and histogram_quantile(0.9, d_total[$__rate_interval])"
    )
    assert metric_names(expr) == {"a_bucket", "b_info", "c:rec", "d_total"}
