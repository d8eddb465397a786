"""The per-target series of /metrics: fed by ProbeResult events, rendered from a copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vigild.config import ThresholdSpec
from vigild.daemon import metrics as metrics_module
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
    severity = line(b"".join(metrics.exposition()), "vigild_alert_severity{")
    assert severity == 'vigild_alert_severity{metric="cpu_percent",series="",target="api"} 2'


def test_a_scrape_shows_each_target_as_it_stands_when_its_piece_is_written(
    metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page is written a piece at a time on the loop: a result that lands in
    between shows in the pieces still to come; the ones written stay as they were."""
    monkeypatch.setattr(metrics_module, "TARGETS_A_PIECE", 1)
    metrics.probe_result(result(50.0, Severity.OK, name="a"))
    metrics.probe_result(result(50.0, Severity.OK, name="b"))
    pieces = metrics.exposition()
    written = [next(pieces), next(pieces)]  # the registry's, then target a's success
    metrics.probe_result(result(90.0, Severity.CRITICAL, up=False, name="a"))
    metrics.probe_result(result(90.0, Severity.CRITICAL, up=False, name="b"))
    page = b"".join([*written, *pieces])
    assert line(page, 'vigild_probe_success{target="a"').endswith(" 1")
    assert line(page, 'vigild_probe_success{target="b"').endswith(" 0")
    assert line(page, 'vigild_probe_duration_seconds_count{target="a"').endswith(" 2")
    assert line(page, 'vigild_alert_severity{metric="cpu_percent",series="",target="a"').endswith(
        " 2"
    )


def test_targets_whose_alerts_stand_alike_share_one_severity_table(metrics: Metrics) -> None:
    # A table per target is 184 bytes, 1.8 MB at 10,000 targets that are all ok.
    for name in ("a", "b", "c"):
        metrics.probe_result(result(50.0, Severity.OK, name=name))
    metrics.probe_result(result(90.0, Severity.CRITICAL, name="b"))
    assert len({id(series.severities) for series in metrics._targets.values()}) == 2
    page = b"".join(metrics.exposition()).decode()
    shown = [x for x in page.splitlines() if "_severity{" in x]
    assert [x.rsplit(",", 1)[1] for x in shown] == [
        'target="a"} 0',
        'target="b"} 2',
        'target="c"} 0',
    ]


@pytest.mark.parametrize("per_piece", [1, 2, 256])
def test_the_page_in_pieces_is_one_page_each_family_whole(
    metrics: Metrics, per_piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written a piece at a time (so 10,000 targets' 17 MB is never built whole), the
    page still has each family once, with every target's series under it."""
    monkeypatch.setattr(metrics_module, "TARGETS_A_PIECE", per_piece)
    names = [f"t{n}" for n in range(5)]
    for name in names:
        metrics.probe_result(result(50.0, Severity.OK, name=name))
    pieces = list(metrics.exposition())
    page = b"".join(pieces).decode()
    families = {f.name: f for f in text_string_to_metric_families(page)}
    for family in ("vigild_probe_success", "vigild_probe_value", "vigild_alert_severity"):
        assert page.count(f"# TYPE {family} ") == 1
        assert sorted({s.labels["target"] for s in families[family].samples}) == names
    durations = families["vigild_probe_duration_seconds"].samples
    assert sum(s.name.endswith("_count") for s in durations) == len(names)
    assert len(pieces) == 1 + 4 * -(-len(names) // per_piece)  # the registry's, then each family's


def test_with_no_targets_yet_each_family_is_declared(metrics: Metrics) -> None:
    page = b"".join(metrics.exposition()).decode()
    for family in ("vigild_probe_success", "vigild_probe_duration_seconds"):
        assert f"# TYPE {family} " in page
