"""The container probe and the engine client, against a Docker-API-shaped server.

The server (tests/docker_api.py) listens on a unix socket and answers with
payloads shaped as Docker 24 (cgroup v2) and Podman 4 send them. Expected
percentages are worked out by hand in each test, the way ``docker stats``
computes them: CPU = Δtotal_usage / Δsystem_cpu_usage x CPUs x 100; memory =
(usage - inactive file cache) / limit x 100.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from docker_api import SERVICE, EngineFactory, FakeEngine, GiB, MiB

from vigild.engine_api import EngineError, connect
from vigild.model import Observation
from vigild.probes.base import ProbeContext, build_probe
from vigild.probes.container import RETIRE_AFTER, ContainerProbe, ContainerTarget


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    session = aiohttp.ClientSession()
    probe_context = ProbeContext(session)
    yield probe_context
    await probe_context.close()
    await session.close()


def make_probe(context: ProbeContext, timeout: float = 5.0, **keys: Any) -> ContainerProbe:
    target = ContainerTarget.model_validate({"name": "app", "type": "container", **keys})
    probe = build_probe(target, context, timeout)
    assert isinstance(probe, ContainerProbe)
    return probe


async def one(probe: ContainerProbe, now: float) -> Observation:
    observations = await probe.probe(now)
    assert len(observations) == 1, observations
    return observations[0]


def by_name(observations: Any) -> dict[str, Observation]:
    return {o.target: o for o in observations}


# ---------------------------------------------------------------------------
# docker stats's figures, Docker 24 and Podman 4


async def test_docker24_cgroup_v2_cpu_from_own_previous_sample_and_memory(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    web = docker_engine.add(
        "covabot",
        cpu_total=1_000_000_000,
        system_cpu=1_000_000_000_000,
        online_cpus=4,
        mem_usage=600 * MiB,
        inactive_file=88 * MiB,
        mem_limit=2 * GiB,
        health="healthy",
    )
    probe = make_probe(context, container="covabot", engine=docker_engine.url)

    first = await one(probe, 100.0)
    # Memory: (600 MiB - 88 MiB inactive_file) / 2048 MiB = 512 / 2048 = 25 %.
    assert first.target == "app"
    assert first.up is True and first.error is None
    assert first.metrics["memory_percent"] == 25.0
    assert first.metrics["running"] == 1.0
    assert first.metrics["container_health"] == 0.0
    assert first.metrics["restarts"] == 0.0
    # One-shot stats leave precpu_stats empty: no CPU figure until a second sample.
    assert "cpu_percent" not in first.metrics
    assert "cpu_percent" in first.no_data
    assert "cpu_percent" not in first.missing

    web.cpu_total += 600_000_000
    web.system_cpu += 4_000_000_000
    second = await one(probe, 130.0)
    # CPU: 0.6e9 ns / 4e9 ns x 4 CPUs x 100 = 60 %.
    assert second.metrics["cpu_percent"] == 60.0
    assert second.no_data == frozenset()
    stats_calls = docker_engine.calls("GET", "/stats")
    assert len(stats_calls) == 2
    assert stats_calls[0].query == {"stream": "false", "one-shot": "true"}
    assert stats_calls[0].path == f"/containers/{web.id}/stats"


async def test_podman4_zero_precpu_and_no_memory_stats(
    podman_engine: FakeEngine, context: ProbeContext
) -> None:
    pod = podman_engine.add(
        "covabot",
        cpu_total=5_000_000_000,
        system_cpu=2_000_000_000_000,
        online_cpus=2,
        mem_usage=384 * MiB,
        inactive_file=50 * MiB,  # Podman does not send it: raw usage counts
        mem_limit=1 * GiB,
    )
    probe = make_probe(context, container="covabot", engine=podman_engine.url)

    first = await one(probe, 100.0)
    # Memory: 384 MiB / 1024 MiB = 37.5 % (subtracting the cache would give 32.62 %).
    assert first.metrics["memory_percent"] == 37.5
    # Podman's precpu_stats is all zeros without streaming: no CPU figure yet.
    assert "cpu_percent" in first.no_data
    # No healthcheck: Podman sends no Health, and container_health is absent, not UNKNOWN.
    assert "container_health" not in first.metrics
    assert "container_health" in first.no_data

    pod.cpu_total += 500_000_000
    pod.system_cpu += 2_000_000_000
    second = await one(probe, 130.0)
    # CPU: 0.5e9 / 2e9 x 2 CPUs x 100 = 50 % (Podman's own "cpu": 2.5 is ignored).
    assert second.metrics["cpu_percent"] == 50.0
    assert second.up is True


async def test_cgroup_v1_memory_subtracts_total_inactive_file(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add(
        "legacy",
        cgroup=1,
        cpu_total=10**9,
        system_cpu=10**12,
        mem_usage=1000 * MiB,
        inactive_file=200 * MiB,  # total_inactive_file; the own-cgroup inactive_file is 66.7 MiB
        mem_limit=4000 * MiB,
    )
    obs = await one(make_probe(context, container="legacy", engine=docker_engine.url), 1.0)
    # (1000 - 200) / 4000 = 20 %; inactive_file instead would give 23.33 %.
    assert obs.metrics["memory_percent"] == 20.0


async def test_filled_precpu_is_used_and_per_cpu_counters_count_cpus(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    # An engine that ignores one-shot (or predates it) fills precpu_stats; an engine
    # before API 1.27 gives no online_cpus, only one counter per CPU.
    docker_engine.add(
        "old",
        cgroup=1,
        online_cpus=None,
        percpu=[1] * 8,
        pre_cpu_total=2_000_000_000,
        pre_system_cpu=10_000_000_000_000,
        cpu_total=2_200_000_000,
        system_cpu=10_008_000_000_000,
        mem_usage=100 * MiB,
        mem_limit=1000 * MiB,
    )
    obs = await one(make_probe(context, container="old", engine=docker_engine.url), 1.0)
    # 0.2e9 / 8e9 x 8 CPUs x 100 = 20 %, on the very first probe.
    assert obs.metrics["cpu_percent"] == 20.0


async def test_zero_system_delta_and_zero_limit_are_absent_not_wrong(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    web = docker_engine.add("web", cpu_total=10**9, system_cpu=10**12, mem_usage=MiB, mem_limit=0)
    probe = make_probe(context, container="web", engine=docker_engine.url)
    await probe.probe(1.0)
    web.cpu_total += 10**8  # the container used CPU, but the system counter did not move
    obs = await one(probe, 2.0)
    assert obs.up is True
    assert "cpu_percent" not in obs.metrics and "cpu_percent" in obs.no_data
    assert "memory_percent" not in obs.metrics and "memory_percent" in obs.no_data
    assert obs.missing == frozenset()


async def test_counter_reset_after_a_restart_is_absent_once(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    web = docker_engine.add("web", cpu_total=9 * 10**9, system_cpu=10**12, mem_limit=GiB)
    probe = make_probe(context, container="web", engine=docker_engine.url)
    await probe.probe(1.0)
    web.cpu_total, web.system_cpu = 10**8, web.system_cpu + 4 * 10**9  # a new cgroup
    reset = await one(probe, 2.0)
    assert "cpu_percent" in reset.no_data
    web.cpu_total, web.system_cpu = 3 * 10**8, web.system_cpu + 4 * 10**9
    after = await one(probe, 3.0)
    # 0.2e9 / 4e9 x 4 CPUs x 100 = 20 %: measured from the sample after the reset.
    assert after.metrics["cpu_percent"] == 20.0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "stats: invalid JSON from container engine"),
        (b"[1, 2]", "stats: unexpected answer from container engine: stats is not an object"),
    ],
)
async def test_garbage_stats_make_cpu_and_memory_unknown_with_a_reason(
    docker_engine: FakeEngine, context: ProbeContext, body: bytes, error: str
) -> None:
    docker_engine.add("web", stats_body=body)
    obs = await one(make_probe(context, container="web", engine=docker_engine.url), 1.0)
    assert obs.up is True  # the container runs; only its numbers are unreadable
    assert obs.error is not None and obs.error.startswith(error)
    assert {"cpu_percent", "memory_percent"} <= obs.missing
    assert "cpu_percent" not in obs.metrics and "memory_percent" not in obs.metrics


async def test_stats_without_the_needed_fields_are_unknown(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add("web", stats_body=b'{"read":"2024-05-01T00:00:00Z","cpu_stats":{}}\n')
    obs = await one(make_probe(context, container="web", engine=docker_engine.url), 1.0)
    assert obs.up is True and obs.error is None
    assert obs.missing == frozenset({"cpu_percent", "memory_percent"})


# ---------------------------------------------------------------------------
# State, health, restarts


async def test_exited_container_is_down_with_its_exit_code_and_no_stats_call(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add("job", status="exited", exit_code=137, restart_count=4, health="healthy")
    obs = await one(make_probe(context, container="job", engine=docker_engine.url), 1.0)
    assert obs.up is False
    assert obs.error == "container is exited (code 137)"
    assert obs.metrics["running"] == 0.0
    assert obs.metrics["restarts"] == 4.0
    assert "container_health" not in obs.metrics
    assert docker_engine.calls("GET", "/stats") == []


async def test_oom_killed_and_paused_say_so(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add("oom", status="exited", exit_code=137, oom_killed=True)
    docker_engine.add("frozen", status="paused")
    oom = await one(make_probe(context, container="oom", engine=docker_engine.url), 1.0)
    frozen = await one(make_probe(context, container="frozen", engine=docker_engine.url), 1.0)
    assert oom.error == "container is exited (code 137, out of memory)"
    assert frozen.up is False and frozen.error == "container is paused"
    assert frozen.metrics["running"] == 0.0


async def test_unhealthy_is_down_and_still_reports_its_numbers(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add(
        "api",
        health="unhealthy",
        health_output="curl: (7) Failed to connect to 127.0.0.1 port 7080\n",
        mem_usage=256 * MiB,
        mem_limit=1 * GiB,
    )
    obs = await one(make_probe(context, container="api", engine=docker_engine.url), 1.0)
    assert obs.up is False
    assert obs.error == "container is unhealthy: curl: (7) Failed to connect to 127.0.0.1 port 7080"
    assert obs.metrics["container_health"] == 2.0
    assert obs.metrics["running"] == 1.0
    assert obs.metrics["memory_percent"] == 25.0  # 256 / 1024


@pytest.mark.parametrize("flavour", ["docker", "podman"])
async def test_starting_is_up_with_health_1(
    engine_factory: EngineFactory, context: ProbeContext, flavour: str
) -> None:
    engine = await engine_factory(flavour)
    engine.add("api", health="starting", mem_limit=GiB)
    obs = await one(make_probe(context, container="api", engine=engine.url), 1.0)
    assert obs.up is True and obs.error is None
    assert obs.metrics["container_health"] == 1.0


async def test_recent_restarts_counts_increases_within_the_window(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    web = docker_engine.add("web", restart_count=7, mem_limit=GiB)
    probe = make_probe(context, container="web", engine=docker_engine.url, restart_window="5m")

    first = await one(probe, 1000.0)
    # Restarts before the probe first looked are not "recent": absent, not 7 and not 0.
    assert first.metrics["restarts"] == 7.0
    assert "recent_restarts" in first.no_data and "recent_restarts" not in first.metrics
    assert (await one(probe, 1030.0)).metrics["recent_restarts"] == 0.0

    web.restart_count = 9
    assert (await one(probe, 1060.0)).metrics["recent_restarts"] == 2.0
    web.restart_count = 10
    at_1090 = await one(probe, 1090.0)
    assert at_1090.metrics["recent_restarts"] == 3.0
    assert at_1090.metrics["restarts"] == 10.0
    # 1060 + 300 s: the two restarts seen at 1060 leave the window, the one at 1090 stays.
    assert (await one(probe, 1360.0)).metrics["recent_restarts"] == 1.0
    assert (await one(probe, 1390.0)).metrics["recent_restarts"] == 0.0


async def test_a_recreated_container_is_a_new_baseline_not_a_restart(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add("web", restart_count=5, mem_limit=GiB)
    probe = make_probe(context, container="web", engine=docker_engine.url)
    await probe.probe(0.0)
    docker_engine.remove("web")
    docker_engine.add("web", restart_count=1, mem_limit=GiB)  # compose up: a new id
    obs = await one(probe, 30.0)
    assert obs.metrics["restarts"] == 1.0
    assert obs.metrics["recent_restarts"] == 0.0


# ---------------------------------------------------------------------------
# Selection: by name or id, by labels


async def test_select_by_id_prefix(docker_engine: FakeEngine, context: ProbeContext) -> None:
    web = docker_engine.add("web", mem_limit=GiB)
    obs = await one(make_probe(context, container=web.short_id, engine=docker_engine.url), 1.0)
    assert obs.target == "app" and obs.up is True
    assert docker_engine.calls("GET", "/json")[0].path == f"/containers/{web.short_id}/json"


async def test_labels_select_one_observation_per_container(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    for name in ("shop-backend-1", "shop-backend-2"):
        docker_engine.add(name, labels={SERVICE: "backend"}, mem_usage=MiB, mem_limit=4 * MiB)
    docker_engine.add("shop-db-1", labels={SERVICE: "db"})
    probe = make_probe(
        context, name="backend", container_labels={SERVICE: "backend"}, engine=docker_engine.url
    )
    observations = by_name(await probe.probe(1.0))
    assert set(observations) == {"backend/shop-backend-1", "backend/shop-backend-2"}
    assert all(o.up and o.metrics["memory_percent"] == 25.0 for o in observations.values())
    listing = docker_engine.calls("GET", "/containers/json")[0]
    assert listing.query["all"] == "true"
    assert json.loads(listing.query["filters"]) == {"label": [f"{SERVICE}=backend"]}


async def test_stats_of_several_containers_are_fetched_concurrently(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    for i in range(3):
        docker_engine.add(f"w{i}", labels={"tier": "web"}, mem_usage=MiB, mem_limit=2 * MiB)
    docker_engine.stats_barrier = 3  # no stats answer until all three requests are waiting
    probe = make_probe(
        context, name="web", container_labels={"tier": "web"}, engine=docker_engine.url
    )
    observations = await probe.probe(1.0)
    assert docker_engine.max_in_flight == 3
    assert [o.metrics["memory_percent"] for o in observations] == [50.0, 50.0, 50.0]


async def test_a_vanished_container_is_down_not_a_crash(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add("web", mem_limit=GiB)
    probe = make_probe(context, container="web", engine=docker_engine.url)
    assert (await one(probe, 1.0)).up is True
    docker_engine.remove("web")
    gone = await one(probe, 2.0)
    assert gone.target == "app"
    assert gone.up is False and gone.error == "no such container"


async def test_a_label_selected_container_that_vanishes_stays_reported_down(
    podman_engine: FakeEngine, context: ProbeContext
) -> None:
    for name in ("b1", "b2"):
        podman_engine.add(name, labels={SERVICE: "backend"}, mem_limit=GiB)
    probe = make_probe(
        context, name="backend", container_labels={SERVICE: "backend"}, engine=podman_engine.url
    )
    await probe.probe(1.0)
    podman_engine.remove("b2")
    after = by_name(await probe.probe(2.0))
    assert after["backend/b1"].up is True
    assert after["backend/b2"].up is False
    assert after["backend/b2"].error == "no such container"
    # Persisted: a cron run later still knows b2 was there.
    restored = make_probe(
        context, name="backend", container_labels={SERVICE: "backend"}, engine=podman_engine.url
    )
    restored.restore_state(json.loads(json.dumps(probe.saved_state())))
    assert by_name(await restored.probe(3.0))["backend/b2"].error == "no such container"


async def test_a_label_selected_container_gone_for_retire_after_is_retired_once(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    for name in ("b1", "b2"):
        docker_engine.add(name, labels={SERVICE: "backend"}, mem_limit=GiB)
    probe = make_probe(
        context, name="backend", container_labels={SERVICE: "backend"}, engine=docker_engine.url
    )
    await probe.probe(0.0)
    docker_engine.remove("b2")
    assert by_name(await probe.probe(10.0))["backend/b2"].retired is None
    assert by_name(await probe.probe(10.0 + RETIRE_AFTER - 1))["backend/b2"].retired is None
    old = probe
    # Persisted: a cron run later still knows since when b2 is gone.
    probe = make_probe(
        context, name="backend", container_labels={SERVICE: "backend"}, engine=docker_engine.url
    )
    probe.restore_state(json.loads(json.dumps(old.saved_state())))
    retired = by_name(await probe.probe(10.0 + RETIRE_AFTER))["backend/b2"]
    assert (retired.up, retired.retired) == (False, "container removed")
    assert sorted(by_name(await probe.probe(20.0 + RETIRE_AFTER))) == ["backend/b1"]


async def test_a_label_selected_container_back_in_time_is_not_retired(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add("b1", labels={SERVICE: "backend"}, mem_limit=GiB)
    probe = make_probe(
        context, name="backend", container_labels={SERVICE: "backend"}, engine=docker_engine.url
    )
    await probe.probe(0.0)
    docker_engine.remove("b1")
    await probe.probe(10.0)
    docker_engine.add("b1", labels={SERVICE: "backend"}, mem_limit=GiB)
    await probe.probe(20.0)
    docker_engine.remove("b1")
    later = by_name(await probe.probe(10.0 + RETIRE_AFTER))["backend/b1"]
    assert later.retired is None  # gone since 10 + RETIRE_AFTER, not since 10


async def test_no_match_is_the_target_down_until_something_matches(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    probe = make_probe(
        context, name="backend", container_labels={SERVICE: "backend"}, engine=docker_engine.url
    )
    nothing = await one(probe, 1.0)
    assert nothing.target == "backend" and nothing.up is False
    assert nothing.error == f'no container matches container_labels {{{SERVICE}="backend"}}'

    docker_engine.add("b1", labels={SERVICE: "backend"}, mem_limit=GiB)
    found = by_name(await probe.probe(2.0))
    # The target's own name comes back up once, so the alert it raised resolves.
    assert set(found) == {"backend/b1", "backend"}
    assert found["backend"].up is True
    assert {o.target for o in await probe.probe(3.0)} == {"backend/b1"}


# ---------------------------------------------------------------------------
# The engine: missing, unreachable, slow, oversized


async def test_engine_socket_missing_is_a_clear_error(
    tmp_path: Path, context: ProbeContext
) -> None:
    url = f"unix://{tmp_path}/docker.sock"
    obs = await one(make_probe(context, container="web", engine=url), 1.0)
    assert obs.up is False
    assert obs.error == f"cannot reach container engine at {url}: no such file or directory"


async def test_engine_gone_reports_every_known_container_down(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    for name in ("b1", "b2"):
        docker_engine.add(name, labels={SERVICE: "backend"}, mem_limit=GiB)
    probe = make_probe(
        context, name="backend", container_labels={SERVICE: "backend"}, engine=docker_engine.url
    )
    await probe.probe(1.0)
    await docker_engine.stop()
    observations = await probe.probe(2.0)
    assert [o.target for o in observations] == ["backend/b1", "backend/b2"]
    for obs in observations:
        assert obs.up is False
        assert obs.error is not None
        assert obs.error.startswith(f"cannot reach container engine at {docker_engine.url}: ")


async def test_no_engine_found_names_what_was_tried(tmp_path: Path) -> None:
    absent = f"unix://{tmp_path}/docker.sock"
    candidates = (absent, "unix://${XDG_RUNTIME_DIR}/podman/podman.sock")
    async with connect(None, candidates=candidates, environ={}) as client:
        with pytest.raises(EngineError) as caught:
            await client.ping()
    assert str(caught.value) == (
        f"no container engine found: tried DOCKER_HOST (not set), {absent}, "
        "unix://${XDG_RUNTIME_DIR}/podman/podman.sock (XDG_RUNTIME_DIR is not set)"
    )


async def test_rootless_podman_socket_is_found_under_xdg_runtime_dir(
    engine_factory: EngineFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    runtime_dir = tmp_path_factory.mktemp("xdg")
    (runtime_dir / "podman").mkdir()
    engine = await engine_factory("podman")
    (runtime_dir / "podman" / "podman.sock").symlink_to(engine.socket_path)
    candidates = ("unix:///nonexistent/docker.sock", "unix://${XDG_RUNTIME_DIR}/podman/podman.sock")
    async with connect(
        None, candidates=candidates, environ={"XDG_RUNTIME_DIR": str(runtime_dir)}
    ) as client:
        assert await client.ping() == "OK"
        assert client.url == f"unix://{runtime_dir}/podman/podman.sock"


async def test_docker_host_wins_over_the_default_sockets(docker_engine: FakeEngine) -> None:
    async with connect(
        None, candidates=("unix:///nonexistent.sock",), environ={"DOCKER_HOST": docker_engine.url}
    ) as client:
        assert await client.ping() == "OK"
    assert docker_engine.requests[-1].path == "/_ping"


async def test_slow_stats_end_within_the_probe_s_timeout(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add("web", mem_limit=GiB)
    docker_engine.stats_delay = 5.0
    probe = make_probe(context, timeout=0.5, container="web", engine=docker_engine.url)
    started = time.monotonic()
    obs = await one(probe, 1.0)
    assert time.monotonic() - started < 1.0
    assert obs.up is True  # inspect answered: the container runs
    assert obs.error is not None and obs.error.startswith("stats: container engine at ")
    assert "did not answer within" in obs.error
    assert {"cpu_percent", "memory_percent"} <= obs.missing


async def test_an_answer_over_the_body_cap_is_refused(docker_engine: FakeEngine) -> None:
    docker_engine.add("web")
    async with connect(docker_engine.url, max_body=1000) as client:
        with pytest.raises(EngineError, match="larger than 1000 bytes"):
            await client.inspect("web")


async def test_engine_refusals_are_one_line(docker_engine: FakeEngine) -> None:
    async with connect(docker_engine.url) as client:
        with pytest.raises(EngineError) as caught:
            await client.inspect("nope")
        assert str(caught.value) == "no such container" and caught.value.not_found
        with pytest.raises(
            EngineError, match=r"^container engine answered HTTP 404: page not found$"
        ):
            await client._json("GET", "/nothing/here", None, None)


async def test_unsupported_engine_url_is_refused_at_call_time() -> None:
    async with connect("ssh://admin@host") as client:
        with pytest.raises(EngineError, match="unsupported container engine URL ssh://"):
            await client.ping()


# ---------------------------------------------------------------------------
# State across runs


async def test_state_restored_into_a_new_probe_gives_cpu_on_its_first_probe(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    web = docker_engine.add(
        "web", cpu_total=3 * 10**9, system_cpu=5 * 10**12, online_cpus=2, restart_count=1
    )
    web.mem_limit = GiB
    first = make_probe(context, container="web", engine=docker_engine.url)
    await first.probe(100.0)
    saved = json.loads(json.dumps(first.saved_state()))  # through the state file's JSON

    web.cpu_total += 300_000_000
    web.system_cpu += 2_000_000_000
    web.restart_count = 2
    second = make_probe(context, container="web", engine=docker_engine.url)
    second.restore_state(saved)
    obs = await one(second, 130.0)
    # 0.3e9 / 2e9 x 2 CPUs x 100 = 30 %; one restart since the last run.
    assert obs.metrics["cpu_percent"] == 30.0
    assert obs.metrics["recent_restarts"] == 1.0


async def test_a_state_that_does_not_fit_is_ignored(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add("web", mem_limit=GiB)
    probe = make_probe(context, container="web", engine=docker_engine.url)
    selector = probe.saved_state()["selector"]
    probe.restore_state({"containers": [1, 2], "selector": selector})
    probe.restore_state({"containers": {"web": "junk"}, "selector": selector, "target_down": 1})
    entry = {"id": "abc", "restarts": -1, "cpu": ["a", None], "events": [[1, "x"], 7]}
    probe.restore_state({"containers": {"web": entry, "x": {"id": 3}}, "selector": selector})
    obs = await one(probe, 1.0)
    assert obs.up is True
    assert "cpu_percent" in obs.no_data
    # The broken entry was taken as a container seen before (with another id): a new
    # baseline, and nothing from it leaks into the figures.
    assert obs.metrics["recent_restarts"] == 0.0


async def test_state_of_another_selection_is_not_restored(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add("b1", labels={SERVICE: "backend"}, mem_limit=GiB)
    docker_engine.add("f1", labels={SERVICE: "frontend"}, mem_limit=GiB)
    url = docker_engine.url
    old = make_probe(context, name="svc", container_labels={SERVICE: "backend"}, engine=url)
    await old.probe(1.0)
    new = make_probe(context, name="svc", container_labels={SERVICE: "frontend"}, engine=url)
    new.restore_state(json.loads(json.dumps(old.saved_state())))
    # b1 still runs: it must not be reported gone just because the labels changed.
    assert [o.target for o in await new.probe(2.0)] == ["svc/f1"]


# ---------------------------------------------------------------------------
# The client's container actions


@pytest.mark.parametrize("flavour", ["docker", "podman"])
async def test_restart_and_stop_post_to_the_engine(
    engine_factory: EngineFactory, flavour: str
) -> None:
    engine = await engine_factory(flavour)
    web = engine.add("web", status="exited", exit_code=1)
    async with connect(engine.url) as client:
        await client.restart("web", wait=5)
        assert web.status == "running"
        await client.stop(web.id)
        await client.stop(web.id)  # already stopped: 304, not an error
        with pytest.raises(EngineError, match=r"^no such container$"):
            await client.restart("nope")
    posts = [(r.path, r.query) for r in engine.requests if r.method == "POST"]
    assert posts == [
        ("/containers/web/restart", {"t": "5"}),
        (f"/containers/{web.id}/stop", {}),
        (f"/containers/{web.id}/stop", {}),
        ("/containers/nope/restart", {}),
    ]
    assert web.status == "exited"


# ---------------------------------------------------------------------------
# End to end: the real command


async def test_concurrent_probes_share_one_engine_client(
    docker_engine: FakeEngine, context: ProbeContext
) -> None:
    docker_engine.add("a", mem_limit=GiB)
    docker_engine.add("b", mem_limit=GiB)
    a = make_probe(context, container="a", engine=docker_engine.url)
    b = make_probe(context, name="b", container="b", engine=docker_engine.url)
    assert a.engine is b.engine
    results = await asyncio.gather(a.probe(1.0), b.probe(1.0))
    assert [r[0].up for r in results] == [True, True]
