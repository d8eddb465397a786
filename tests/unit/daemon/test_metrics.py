"""The per-target series of /metrics: fed by ProbeResult events, rendered from a copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vigild.config import ThresholdSpec
from vigild.daemon.metrics import Metrics
from vigild.events import ProbeResult
from vigild.model import Observation, Severity
from vigild.storage import Database
from vigild.thresholds import Rule, Verdict

CPU = Rule.from_spec("cpu_percent", ThresholdSpec(warning=75, critical=80))


@pytest.fixture
def metrics(tmp_path: Path) -> Iterator[Metrics]:
    db = Database(tmp_path / "state.db")
    yield Metrics(frozenset, state_file=db.file)
    db.close()


def result(cpu: float, severity: Severity, *, up: bool = True, name: str = "api") -> ProbeResult:
    observation = Observation(name, 1_800_000_000.0, up, None, {"cpu_percent": cpu}, duration=0.1)
    verdict = CPU.judge("cpu_percent", cpu)
    return ProbeResult(name, "http", observation, [verdict], [severity])


def line(exposition: bytes, prefix: str) -> str:
    [found] = [x for x in exposition.decode().splitlines() if x.startswith(prefix)]
    return found


def test_the_alert_severity_shown_is_the_one_the_event_carries(metrics: Metrics) -> None:
    """A reading back under the critical line leaves the alert critical until
    ``recover_for`` passes: /metrics shows the alert's severity, not the reading's."""
    event = result(77.0, Severity.CRITICAL)
    assert isinstance(event.verdicts[0], Verdict)
    assert event.verdicts[0].severity is Severity.WARNING
    metrics.probe_result(event)
    severity = line(metrics.exposition()(), "vigild_alert_severity{")
    assert severity == 'vigild_alert_severity{metric="cpu_percent",series="",target="api"} 2'


def test_a_scrape_renders_what_was_there_when_it_was_taken(metrics: Metrics) -> None:
    """The copy is taken on the loop; results that land while a thread renders it
    change the next scrape, not this one."""
    metrics.probe_result(result(50.0, Severity.OK))
    render = metrics.exposition()
    metrics.probe_result(result(90.0, Severity.CRITICAL, up=False))

    taken = render()
    assert line(taken, "vigild_probe_success{").endswith(" 1")
    assert line(taken, 'vigild_probe_value{metric="cpu_percent"').endswith(" 50.0")
    assert line(taken, "vigild_alert_severity{").endswith(" 0")
    assert line(taken, "vigild_probe_duration_seconds_count{").endswith(" 1")

    now = metrics.exposition()()
    assert line(now, "vigild_probe_success{").endswith(" 0")
    assert line(now, "vigild_alert_severity{").endswith(" 2")
    assert line(now, "vigild_probe_duration_seconds_count{").endswith(" 2")


def test_targets_whose_alerts_stand_alike_share_one_severity_table(metrics: Metrics) -> None:
    # A table per target is 184 bytes, 1.8 MB at 10,000 targets that are all ok.
    for name in ("a", "b", "c"):
        metrics.probe_result(result(50.0, Severity.OK, name=name))
    metrics.probe_result(result(90.0, Severity.CRITICAL, name="b"))
    assert len({id(series.severities) for series in metrics._targets.values()}) == 2
    shown = [x for x in metrics.exposition()().decode().splitlines() if "_severity{" in x]
    assert [x.rsplit(",", 1)[1] for x in shown] == [
        'target="a"} 0',
        'target="b"} 2',
        'target="c"} 0',
    ]
