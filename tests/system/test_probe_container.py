"""The container probe through ``vigild --once``, against the Docker-API-shaped server of
tests/docker_api.py on a unix socket."""

from __future__ import annotations

import json
from pathlib import Path

from cli_config import toml_str, write_config
from docker_api import SERVICE, FakeEngine, GiB, MiB
from process import environment, run


async def test_once_reports_container_cpu_and_memory_and_each_selected_container(
    docker_engine: FakeEngine, tmp_path: Path
) -> None:
    web = docker_engine.add(
        "covabot",
        cpu_total=10**9,
        system_cpu=10**12,
        online_cpus=4,
        mem_usage=600 * MiB,
        inactive_file=88 * MiB,
        mem_limit=2 * GiB,
    )
    for name in ("shop-backend-1", "shop-backend-2"):
        docker_engine.add(name, labels={SERVICE: "backend"}, mem_usage=MiB, mem_limit=4 * MiB)
    config = write_config(
        tmp_path,
        f'[[targets]]\nname = "covabot"\ntype = "container"\ncontainer = "covabot"\n'
        f"engine = {toml_str(docker_engine.url)}\n\n"
        f'[[targets]]\nname = "backend"\ntype = "container"\n'
        f'container_labels = {{ {json.dumps(SERVICE)} = "backend" }}\n'
        f"engine = {toml_str(docker_engine.url)}\n",
    )
    env = environment(DOCKER_HOST="unix:///nonexistent/docker.sock")

    first = await run("--once", "--format", "json", "--config", str(config), env=env)
    assert first.returncode == 0, first.stderr
    targets = {t["name"]: t for t in first.json["targets"]}
    assert set(targets) == {"covabot", "backend/shop-backend-1", "backend/shop-backend-2"}
    covabot = targets["covabot"]["observation"]["metrics"]
    assert covabot["memory_percent"] == 25.0  # (600 - 88) / 2048
    assert "cpu_percent" not in covabot  # the first sample of a rate
    assert targets["backend/shop-backend-2"]["observation"]["metrics"]["memory_percent"] == 25.0

    web.cpu_total += 600_000_000
    web.system_cpu += 4_000_000_000
    second = await run("--once", "--format", "json", "--config", str(config), env=env)
    assert second.returncode == 0, second.stderr
    targets = {t["name"]: t for t in second.json["targets"]}
    # The first run's sample came back from the state file: 0.6e9 / 4e9 x 4 x 100 = 60 %.
    assert targets["covabot"]["observation"]["metrics"]["cpu_percent"] == 60.0
    verdicts = {v["metric"]: v["severity"] for v in targets["covabot"]["verdicts"]}
    assert verdicts["cpu_percent"] == "ok" and verdicts["recent_restarts"] == "ok"
