"""The host probe against the machine the tests run on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from vigild.config import HostTarget
from vigild.probes.base import build_probe
from vigild.probes.host import HostProbe


def make_probe(probe_timeout: float = 5.0, **keys: Any) -> HostProbe:
    target = HostTarget.model_validate({"name": "host", "type": "host", **keys})
    return HostProbe(target, probe_timeout)


async def test_reports_cpu_memory_and_root_disk() -> None:
    obs = (await make_probe().probe(now=42.0))[0]
    assert obs.up is True
    assert obs.error is None
    assert obs.target == "host"
    assert obs.time == 42.0
    assert obs.missing == frozenset()
    assert set(obs.metrics) == {"up", "cpu_percent", "memory_percent", "disk_percent:/"}
    assert 0.0 <= obs.metrics["cpu_percent"] <= 100.0
    assert 0.0 < obs.metrics["memory_percent"] <= 100.0
    assert obs.metrics["memory_percent"] == pytest.approx(psutil.virtual_memory().percent, abs=5)
    assert obs.metrics["disk_percent:/"] == pytest.approx(psutil.disk_usage("/").percent, abs=1)


async def test_each_mount_is_its_own_qualified_metric(tmp_path: Path) -> None:
    mounts = ["/", str(tmp_path)]
    obs = (await make_probe(disks=mounts).probe(now=1.0))[0]
    for mount in mounts:
        assert obs.metrics[f"disk_percent:{mount}"] == pytest.approx(
            psutil.disk_usage(mount).percent, abs=1
        )
    assert "disk_percent" not in obs.metrics


async def test_unreadable_mount_is_absent_and_the_host_stays_up() -> None:
    obs = (await make_probe(disks=["/", "/no/such/mount"]).probe(now=1.0))[0]
    assert obs.up is True
    assert "disk_percent:/" in obs.metrics
    assert "disk_percent:/no/such/mount" not in obs.metrics
    assert obs.missing == frozenset()


async def test_no_readable_mount_makes_disk_percent_missing() -> None:
    obs = (await make_probe(disks=["/no/such/mount", "/nor/this"]).probe(now=1.0))[0]
    assert obs.up is True
    assert not any(name.startswith("disk_percent") for name in obs.metrics)
    assert obs.missing == frozenset({"disk_percent"})


async def test_no_configured_disk_reports_none_and_misses_none() -> None:
    obs = (await make_probe(disks=[]).probe(now=1.0))[0]
    assert set(obs.metrics) == {"up", "cpu_percent", "memory_percent"}
    assert obs.missing == frozenset()


async def test_first_cycle_has_a_real_cpu_value() -> None:
    probe = make_probe()
    # Burn CPU on this thread between construction and the first probe: a probe
    # without its own first sample would report 0.0 here.
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:
        pass
    obs = (await probe.probe(now=1.0))[0]
    assert obs.metrics["cpu_percent"] > 0.0


async def test_cpu_is_measured_since_the_probe_s_own_last_sample() -> None:
    busy, idle = make_probe(), make_probe()
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:
        pass
    (await idle.probe(now=1.0))[0]  # another probe's sample must not reset this one's window
    obs = (await busy.probe(now=1.0))[0]
    assert obs.metrics["cpu_percent"] > 0.0


async def test_runs_well_inside_its_timeout() -> None:
    obs = (await make_probe(probe_timeout=2.0).observe(now=1.0))[0]
    assert obs.up is True
    assert obs.duration < 2.0


class _StuckHostProbe(HostProbe):
    """A host whose reads hang, as ``statvfs`` on a dead NFS mount does."""

    def _read(self) -> dict[str, float]:
        time.sleep(0.5)
        return super()._read()


async def test_hanging_reads_time_out() -> None:
    target = HostTarget.model_validate({"name": "host", "type": "host"})
    started = time.perf_counter()
    obs = (await _StuckHostProbe(target, 0.05).probe(now=1.0))[0]
    assert time.perf_counter() - started < 0.4
    assert obs.up is False
    assert obs.error == "timeout after 0.05s"
    assert obs.metrics == {"up": 0.0}


async def test_build_probe_makes_a_host_probe() -> None:
    target = HostTarget.model_validate({"name": "box", "type": "host", "disks": ["/"]})
    probe = build_probe(target, None, 3.0)  # type: ignore[arg-type]  # a host probe needs no context
    assert isinstance(probe, HostProbe)
    (obs,) = await probe.observe(now=7.0)
    assert obs.target == "box"
    assert obs.up is True
    assert "disk_percent:/" in obs.metrics
