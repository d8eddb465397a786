"""The host probe against the machine the tests run on."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import psutil
import pytest
from host_probe import load_config, make_probe, make_probe_from

from vigild.assembly import load
from vigild.model import Observation, Severity
from vigild.probes import host
from vigild.probes.base import build_probe
from vigild.probes.host import HostProbe, HostTarget, real_mounts
from vigild.thresholds import evaluate

HAS_SWAP = psutil.swap_memory().total > 0


@pytest.fixture(autouse=True)
def short_first_cpu_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new probe's first CPU figure waits for CPU_MIN_WINDOW (0.25 s) since its
    construction. The tests that check that figure burn CPU for longer than that before
    probing; the rest need not wait for a figure they do not read."""
    monkeypatch.setattr(host, "CPU_MIN_WINDOW", 0.01)


BASE_METRICS = {"up", "cpu_percent", "memory_percent", "load1"} | (
    {"swap_percent"} if HAS_SWAP else set()
)


async def test_reports_cpu_memory_load_and_root_disk() -> None:
    obs = (await make_probe(disks=["/"]).probe(now=42.0))[0]
    assert obs.up is True
    assert obs.error is None
    assert obs.target == "host"
    assert obs.time == 42.0
    assert obs.missing == frozenset()
    assert set(obs.metrics) == BASE_METRICS | {"disk_percent:/", "inode_percent:/"}
    assert 0.0 <= obs.metrics["cpu_percent"] <= 100.0
    assert 0.0 < obs.metrics["memory_percent"] <= 100.0
    assert obs.metrics["disk_percent:/"] == pytest.approx(psutil.disk_usage("/").percent, abs=1)


async def test_memory_is_used_as_free_counts_it() -> None:
    obs = (await make_probe().probe(now=1.0))[0]
    memory = psutil.virtual_memory()
    # What `free` shows: what the kernel could not hand out. Page cache is not "used".
    expected = (memory.total - memory.available) / memory.total * 100
    assert obs.metrics["memory_percent"] == pytest.approx(expected, abs=1.0)
    cache_as_used = (memory.total - memory.free) / memory.total * 100
    if cache_as_used - expected > 3:  # where the page cache is big enough to tell them apart
        assert obs.metrics["memory_percent"] < cache_as_used - 1


async def test_swap_is_reported_only_where_there_is_swap() -> None:
    obs = (await make_probe().probe(now=1.0))[0]
    swap = psutil.swap_memory()
    if swap.total == 0:
        assert "swap_percent" not in obs.metrics
        assert obs.no_data == frozenset({"swap_percent"})
    else:
        expected = (swap.total - swap.free) / swap.total * 100
        assert obs.metrics["swap_percent"] == pytest.approx(expected, abs=1.0)
        assert obs.no_data == frozenset()


async def test_no_swap_is_not_unknown_even_with_a_threshold(tmp_path: Path) -> None:
    config = load_config(tmp_path, "thresholds.swap_percent = { warning = 50, critical = 80 }")
    obs = (await make_probe_from(config).probe(now=1.0))[0]
    verdicts = {v.metric: v for v in evaluate(obs, config.rules["host"])}
    # Without swap: absent, no data (which resolves an open swap alert), never UNKNOWN.
    assert verdicts["swap_percent"].absent is not HAS_SWAP
    assert Severity.UNKNOWN not in {v.severity for v in verdicts.values()}


async def test_load1_is_the_load_average_per_core() -> None:
    obs = (await make_probe().probe(now=1.0))[0]
    cores = os.cpu_count() or 1
    assert obs.metrics["load1"] == pytest.approx(os.getloadavg()[0] / cores, abs=0.5 / cores)
    assert obs.metrics["load1"] >= 0.0


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


async def test_without_disks_every_real_filesystem_is_watched() -> None:
    mounts = real_mounts()
    assert mounts  # the machine the tests run on has a disk
    obs = (await make_probe().probe(now=1.0))[0]
    disks = {m.partition(":")[2] for m in obs.metrics if m.startswith("disk_percent:")}
    assert disks == set(mounts)
    assert obs.missing == frozenset()


def test_memory_and_kernel_filesystems_are_not_watched() -> None:
    mounts = real_mounts()
    every = psutil.disk_partitions(all=True)
    pseudo = {p.mountpoint for p in every if p.fstype in {"tmpfs", "proc", "sysfs", "devtmpfs"}}
    assert pseudo  # /proc and /sys at least
    assert not pseudo & set(mounts)
    assert not [m for m in mounts if m == "/proc" or m.startswith(("/sys/", "/dev/"))]
    devices = [p.device for p in psutil.disk_partitions(all=False) if p.mountpoint in mounts]
    assert len(devices) == len(set(devices)), "one mount point per device"


async def test_inode_use_is_reported_per_mount_as_df_i_shows_it(tmp_path: Path) -> None:
    obs = (await make_probe(disks=["/", str(tmp_path)]).probe(now=1.0))[0]
    for mount in ("/", str(tmp_path)):
        fs = os.statvfs(mount)
        if fs.f_files == 0:  # no inode table (btrfs): nothing to report
            assert f"inode_percent:{mount}" not in obs.metrics
            continue
        used = (fs.f_files - fs.f_ffree) / fs.f_files * 100
        assert obs.metrics[f"inode_percent:{mount}"] == pytest.approx(used, abs=0.5)


async def test_no_configured_disk_reports_none_and_misses_none() -> None:
    obs = (await make_probe(disks=[]).probe(now=1.0))[0]
    assert set(obs.metrics) == BASE_METRICS
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

    def _read(self) -> tuple[dict[str, float], bool]:
        time.sleep(0.3)
        return super()._read()


async def test_hanging_reads_time_out() -> None:
    target = HostTarget.model_validate({"name": "host", "type": "host"})
    started = time.perf_counter()
    obs = (await _StuckHostProbe(target, 0.05).probe(now=1.0))[0]
    assert time.perf_counter() - started < 0.25  # not the read's 0.3 s
    assert obs.up is False
    assert obs.error == "timeout after 0.05s"
    assert obs.metrics == {"up": 0.0}


async def test_a_read_still_hanging_is_not_joined_by_another() -> None:
    target = HostTarget.model_validate({"name": "host", "type": "host"})
    probe = _StuckHostProbe(target, 0.05)
    assert (await probe.probe(now=1.0))[0].error == "timeout after 0.05s"
    started = time.perf_counter()
    (obs,) = await probe.probe(now=2.0)
    assert time.perf_counter() - started < 0.04  # answered at once, no second thread waited on
    assert obs.up is False
    assert obs.error == "the previous reading has not finished (a mount that does not answer?)"
    await asyncio.sleep(0.5)  # the stuck read ends: the next probe reads again
    assert (await probe.probe(now=3.0))[0].error == "timeout after 0.05s"


async def test_build_probe_makes_a_host_probe() -> None:
    target = HostTarget.model_validate({"name": "box", "type": "host", "disks": ["/"]})
    probe = build_probe(target, None, 3.0)  # type: ignore[arg-type]  # a host probe needs no context
    assert isinstance(probe, HostProbe)
    (obs,) = await probe.observe(now=7.0)
    assert obs.target == "box"
    assert obs.up is True
    assert "disk_percent:/" in obs.metrics


# --- process checks ---------------------------------------------------------------


async def test_every_checked_name_is_reported_even_when_none_run() -> None:
    probe = make_probe(processes=[{"name": "vigild-no-such-process"}])
    (obs,) = await probe.probe(now=1.0)
    assert obs.metrics["processes:vigild-no-such-process"] == 0.0


async def test_no_process_checks_report_no_process_metrics() -> None:
    (obs,) = await make_probe().probe(now=1.0)
    assert not any(metric.startswith("processes") for metric in obs.metrics)


# --- built-in disk and inode thresholds ----------------------------------------------


def test_disks_and_inodes_alert_by_default(tmp_path: Path) -> None:
    rules = load_config(tmp_path).rules["host"]
    assert (rules["disk_percent"].warning, rules["disk_percent"].critical) == (85, 95)
    assert (rules["inode_percent"].warning, rules["inode_percent"].critical) == (90, 95)
    obs = Observation("host", 1.0, True, None, {"disk_percent:/": 96.0, "inode_percent:/": 91.0})
    verdicts = {v.metric: v.severity for v in evaluate(obs, rules)}
    assert verdicts["disk_percent:/"] is Severity.CRITICAL
    assert verdicts["inode_percent:/"] is Severity.WARNING


def test_file_and_target_thresholds_override_the_disk_defaults(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.toml"
    path.write_text(
        "[thresholds]\n"
        "disk_percent = { warning = 70 }\n"
        '[[targets]]\nname = "host"\ntype = "host"\n'
        "thresholds.inode_percent = { critical = 99 }\n"
    )
    rules = load(path).rules["host"]
    assert (rules["disk_percent"].warning, rules["disk_percent"].critical) == (70, 95)
    assert (rules["inode_percent"].warning, rules["inode_percent"].critical) == (90, 99)


async def test_a_disk_no_longer_mounted_has_no_data_and_its_alert_resolves(
    tmp_path: Path,
) -> None:
    mount = tmp_path / "usb"
    mount.mkdir()
    config = load_config(tmp_path, "thresholds.disk_percent = { warning = 0 }")
    rules = config.rules["host"]
    probe = make_probe(disks=["/", str(mount)])
    (before,) = await probe.probe(now=1.0)
    verdicts = {v.metric: v for v in evaluate(before, rules)}
    assert verdicts[f"disk_percent:{mount}"].severity is Severity.WARNING
    mount.rmdir()  # unmounted: its mount point is gone
    (after,) = await probe.probe(now=2.0)
    assert f"disk_percent:{mount}" not in after.metrics
    assert {f"disk_percent:{mount}", f"inode_percent:{mount}"} <= after.no_data
    assert after.reasons[f"disk_percent:{mount}"] == "no longer mounted or readable"
    verdicts = {v.metric: v for v in evaluate(after, rules)}
    assert verdicts[f"disk_percent:{mount}"].absent  # resolves the open alert
    assert verdicts["disk_percent:/"].severity is Severity.WARNING
