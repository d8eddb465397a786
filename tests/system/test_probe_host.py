"""The host probe's process counts, against copies of ``sleep`` started for the test."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from cli_config import toml_str, write_config
from host_probe import load_config, make_probe, make_probe_from
from process import run

from vigild.model import Severity
from vigild.probes.host import HostProbe, real_mounts
from vigild.thresholds import evaluate


@pytest.fixture
def program(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Starts copies of ``sleep`` under a name of the test's choosing; all end at teardown.
    Each test picks a name of its own: the tests run side by side, and the host probe
    counts every process of the machine."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        path = tmp_path / name
        if not path.exists():
            shutil.copy(shutil.which("sleep") or "/bin/sleep", path)
        process = subprocess.Popen([str(path), "60"])
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


async def count(probe: HostProbe, name: str) -> float:
    (obs,) = await probe.probe(now=1.0)
    return obs.metrics[f"processes:{name}"]


async def test_processes_are_counted_by_name(
    tmp_path: Path, program: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    config = load_config(tmp_path, 'processes = [{ name = "vigildcounted", min = 1 }]')
    probe, rules = make_probe_from(config), config.rules["host"]

    first = program("vigildcounted")
    assert await count(probe, "vigildcounted") == 1.0
    second = program("vigildcounted")
    assert await count(probe, "vigildcounted") == 2.0
    for process in (first, second):
        process.kill()
        process.wait()
    (obs,) = await probe.probe(now=1.0)
    assert obs.metrics["processes:vigildcounted"] == 0.0

    # config.process_rules: fewer than `min` running is critical.
    verdict = next(v for v in evaluate(obs, rules) if v.metric == "processes:vigildcounted")
    assert verdict.severity is Severity.CRITICAL
    assert verdict.threshold == 1


async def test_enough_processes_are_ok(
    tmp_path: Path, program: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    config = load_config(tmp_path, 'processes = [{ name = "vigildenough", min = 2 }]')
    probe = make_probe_from(config)
    program("vigildenough")
    (obs,) = await probe.probe(now=1.0)
    severity = {v.metric: v.severity for v in evaluate(obs, config.rules["host"])}
    assert severity["processes:vigildenough"] is Severity.CRITICAL
    program("vigildenough")
    (obs,) = await probe.probe(now=1.0)
    severity = {v.metric: v.severity for v in evaluate(obs, config.rules["host"])}
    assert severity["processes:vigildenough"] is Severity.OK


async def test_a_zombie_does_not_count(
    tmp_path: Path, program: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    probe = make_probe(processes=[{"name": "vigildzombie"}])
    process = program("vigildzombie")
    assert await count(probe, "vigildzombie") == 1.0
    process.kill()  # not reaped: a zombie until the fixture waits for it
    deadline = time.monotonic() + 5.0
    while psutil.Process(process.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the killed process never became a zombie"
        await asyncio.sleep(0.005)
    assert await count(probe, "vigildzombie") == 0.0


async def test_a_name_longer_than_the_kernel_keeps_is_matched_whole(
    program: Callable[[str], subprocess.Popen[bytes]],
) -> None:
    # The kernel keeps 15 characters ("vigildtestproce"); argv[0] has the rest.
    name = "vigildtestprocess-long"
    probe = make_probe(processes=[{"name": name}, {"name": name[:15]}])
    program(name)
    (obs,) = await probe.probe(now=1.0)
    assert obs.metrics[f"processes:{name}"] == 1.0
    assert obs.metrics[f"processes:{name[:15]}"] == 0.0


async def test_check_config_lists_the_mounts_each_host_target_watches(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[[targets]]\nname = "box"\ntype = "host"\n'
        f'[[targets]]\nname = "some"\ntype = "host"\ndisks = ["/", {toml_str(tmp_path)}]\n',
    )
    result = await run("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"  disks:     box: {', '.join(real_mounts())} (every real filesystem)" in result.stdout
    assert f"  disks:     some: /, {tmp_path} (from disks)" in result.stdout
