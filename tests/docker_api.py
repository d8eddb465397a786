"""A Docker-Engine-API-shaped server on a unix socket, for the container probe.

It answers the calls vigild makes the way Docker 24 (API 1.43, cgroup v2) and
Podman 4's compat API answer them: the same keys, the same nesting, the same
empty ``precpu_stats`` of a one-shot sample, the same error bodies. The test
controls the containers as plain attributes and the server reads them on
every request::

    async def test_x(docker_engine):
        web = docker_engine.add("web", cpu_total=10**9, system_cpu=10**12)
        web.status, web.exit_code = "exited", 137
        docker_engine.url                    # unix:///tmp/.../engine.sock
        docker_engine.requests[-1].path      # /containers/<id>/json

Discovery's view of the engine: ``GET /events`` streams the events of the
lifecycle the test drives (``create``, ``start_container``, ``kill``,
``destroy``, ``rename``, ``set_health``), filtered as both engines filter them;
``stop()`` then ``start()`` is the engine restarting, which cuts every stream.

The server runs on the test's event loop: a probe on the same loop, or a
``vigild`` subprocess started with asyncio, talks to it while the test awaits.
``python tests/docker_api.py --socket PATH --containers 50`` runs one on its
own (for bench/containers.py), with counters that advance like a busy host's.

Fixtures: ``docker_engine``, ``podman_engine``, ``engine_factory``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp import web

__all__ = ["SERVICE", "EngineFactory", "FakeContainer", "FakeEngine", "GiB", "MiB", "SeenCall"]

Flavour = Literal["docker", "podman"]

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Go's zero time.Time, which both engines write for a time they do not have."""
_BARRIER_WAIT = 5.0

MiB = 2**20
GiB = 2**30
SERVICE = "com.docker.compose.service"
"""The label Compose gives each container of a service."""


@dataclass
class FakeContainer:
    """One container. Stats numbers are cgroup counters: CPU in nanoseconds, memory in bytes."""

    name: str
    id: str = field(default_factory=lambda: secrets.token_hex(32))
    labels: dict[str, str] = field(default_factory=dict)
    image: str = "registry.example/app:1.4.2"
    status: str = "running"
    """Docker's State.Status: created, running, paused, restarting, removing, exited, dead."""
    exit_code: int = 0
    oom_killed: bool = False
    health: str | None = None
    """None: no healthcheck configured (no ``Health`` at all); else starting/healthy/unhealthy."""
    health_output: str = ""
    restart_count: int = 0
    cpu_total: int = 1_000_000_000
    system_cpu: int = 1_000_000_000_000
    online_cpus: int | None = 4
    """None: left out, as engines before API 1.27 did."""
    percpu: list[int] | None = None
    """Per-CPU counters: cgroup v1 Docker and old engines give them, cgroup v2 none."""
    pre_cpu_total: int | None = None
    pre_system_cpu: int | None = None
    """A filled ``precpu_stats`` (an engine that ignores one-shot): both set, else empty."""
    mem_usage: int = 0
    mem_limit: int = 0
    inactive_file: int = 0
    """cgroup v2's ``inactive_file``; on cgroup v1 it is ``total_inactive_file``."""
    cgroup: int = 2
    stats_body: bytes | None = None
    """Sent as the stats answer instead of the real one (broken payloads)."""
    ip: str = "172.17.0.2"
    """Its address on its (only) network."""
    ports: dict[int, int] = field(default_factory=lambda: {7080: 7080})
    """Container port → published host port."""

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True)
class SeenCall:
    method: str
    path: str
    query: dict[str, str]


class FakeEngine:
    """A running fake engine; ``containers`` by name, in creation order."""

    def __init__(self, socket_path: Path, flavour: Flavour = "docker") -> None:
        self.socket_path = socket_path
        self.flavour: Flavour = flavour
        self.containers: dict[str, FakeContainer] = {}
        self.requests: list[SeenCall] = []
        self.stats_delay = 0.0
        self.stats_barrier = 0
        """When > 1, a stats request waits until this many are in flight (or 5 s)."""
        self.in_flight = 0
        self.max_in_flight = 0
        self._gate = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._streams: list[tuple[dict[str, Any], asyncio.Queue[dict[str, Any]]]] = []
        self.streams_opened = 0
        self._stream_opened = asyncio.Event()

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def add(self, name: str, **settings: Any) -> FakeContainer:
        container = FakeContainer(name, **settings)
        self.containers[name] = container
        return container

    def remove(self, name: str) -> None:
        del self.containers[name]

    # -- the lifecycle, with its events -------------------------------------

    def create(self, name: str, **settings: Any) -> FakeContainer:
        container = self.add(name, status="created", **settings)
        self._emit("create", container)
        return container

    def start_container(self, name: str) -> FakeContainer:
        container = self.containers[name]
        container.status = "running"
        self._emit("start", container)
        return container

    def run(self, name: str, **settings: Any) -> FakeContainer:
        """``docker run``: create, then start."""
        self.create(name, **settings)
        return self.start_container(name)

    def kill(self, name: str, exit_code: int = 137) -> None:
        container = self.containers[name]
        container.status, container.exit_code = "exited", exit_code
        self._emit("die", container, exitCode=str(exit_code))

    def destroy(self, name: str) -> None:
        if self.containers[name].status == "running":
            self.kill(name)  # `docker rm -f`: it dies first
        self._emit("destroy", self.containers.pop(name))

    def rename(self, name: str, new: str) -> None:
        container = self.containers.pop(name)
        container.name = new
        self.containers[new] = container
        self._emit("rename", container, oldName=f"/{name}")

    def set_health(self, name: str, health: str) -> None:
        container = self.containers[name]
        container.health = health
        action = f"health_status: {health}" if self.flavour == "docker" else "health_status"
        self._emit(action, container, health_status=health)

    async def streaming(self, count: int = 1, within: float = 5.0) -> None:
        """Until ``count`` event streams have been opened in all."""
        async with asyncio.timeout(within):
            while self.streams_opened < count:
                self._stream_opened.clear()
                await self._stream_opened.wait()

    def _emit(self, action: str, c: FakeContainer, **attributes: str) -> None:
        now = time.time()
        event = {
            "status": action,
            "id": c.id,
            "from": c.image,
            "Type": "container",
            "Action": action,
            "Actor": {
                "ID": c.id,
                "Attributes": {"image": c.image, "name": c.name, **c.labels, **attributes},
            },
            "scope": "local",
            "time": int(now),
            "timeNano": int(now * 1e9),
        }
        if self.flavour == "podman":
            event["Actor"]["Attributes"]["podId"] = ""
        for filters, queue in self._streams:
            if _event_matches(filters, event, c.labels):
                queue.put_nowait(event)

    def calls(self, method: str, suffix: str) -> list[SeenCall]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def find(self, reference: str) -> FakeContainer | None:
        """By name, id or unique id prefix, as both engines look containers up."""
        for container in self.containers.values():
            if reference in (container.name, container.id):
                return container
        matches = [c for c in self.containers.values() if c.id.startswith(reference)]
        return matches[0] if len(matches) == 1 else None

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> FakeEngine:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=0.2,
        )
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self.socket_path)).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- HTTP -------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        parts = path.strip("/").split("/")
        if parts and parts[0].startswith("v1."):  # a versioned path is the same call
            parts = parts[1:]
        self.requests.append(SeenCall(request.method, "/" + "/".join(parts), dict(request.query)))
        route: tuple[str, ...] = (request.method, *parts)
        if route in {("GET", "_ping"), ("HEAD", "_ping")}:
            return self._ping()
        if route == ("GET", "containers", "json"):
            return self._list(request)
        if route == ("GET", "events"):
            return await self._events(request)
        if len(parts) == 3 and parts[0] == "containers":
            container = self.find(parts[1])
            if container is None:
                return self._not_found(parts[1])
            action = (request.method, parts[2])
            if action == ("GET", "json"):
                return _json(self._inspect(container))
            if action == ("GET", "stats"):
                return await self._stats(request, container)
            if action == ("POST", "restart"):
                container.status, container.exit_code = "running", 0
                return web.Response(status=204)
            if action == ("POST", "stop"):
                if container.status != "running":
                    return web.Response(status=304)
                container.status, container.exit_code = "exited", 0
                return web.Response(status=204)
        return self._error(404, "page not found", "page not found")

    def _ping(self) -> web.Response:
        if self.flavour == "docker":
            headers = {
                "Api-Version": "1.43",
                "Builder-Version": "2",
                "Docker-Experimental": "false",
                "Ostype": "linux",
                "Cache-Control": "no-cache, no-store, must-revalidate",
                "Pragma": "no-cache",
            }
        else:
            headers = {
                "Api-Version": "1.41",
                "Libpod-Api-Version": "4.9.3",
                "Libpod-Buildah-Version": "1.33.7",
                "Builder-Version": "",
                "Docker-Experimental": "true",
                "Cache-Control": "no-cache",
                "Pragma": "no-cache",
            }
        return web.Response(text="OK", content_type="text/plain", headers=headers)

    def _not_found(self, reference: str) -> web.Response:
        if self.flavour == "docker":
            return self._error(404, f"No such container: {reference}", "")
        return self._error(
            404, f'no container with name or ID "{reference}" found: no such container', ""
        )

    def _error(self, status: int, message: str, cause: str) -> web.Response:
        if self.flavour == "docker":
            return _json({"message": message}, status)
        return _json({"cause": cause or message, "message": message, "response": status}, status)

    def _list(self, request: web.Request) -> web.Response:
        wanted = _label_filter(request.query.get("filters", ""))
        show_all = request.query.get("all") in {"1", "true", "True"}
        listed = [
            self._listed(c)
            for c in self.containers.values()
            if (show_all or c.status == "running") and _labels_match(c.labels, wanted)
        ]
        return _json(listed)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("filters", "")
        filters = json.loads(raw) if raw else {}
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        entry = (filters, queue)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self._streams.append(entry)
        self.streams_opened += 1
        self._stream_opened.set()
        try:
            while True:
                event = await queue.get()
                # Both engines flush each event as one compact JSON line.
                await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
        finally:
            self._streams.remove(entry)

    # -- payloads ---------------------------------------------------------

    def _listed(self, c: FakeContainer) -> dict[str, Any]:
        item: dict[str, Any] = {
            "Id": c.id,
            "Names": [f"/{c.name}"],
            "Image": c.image,
            "ImageID": "sha256:" + "ab" * 32,
            "Command": "/usr/local/bin/app serve",
            "Created": 1_714_550_400,
            "Ports": [
                {"IP": "0.0.0.0", "PrivatePort": inside, "PublicPort": outside, "Type": "tcp"}
                for inside, outside in c.ports.items()
            ],
            "Labels": c.labels,
            "State": c.status,
            "Status": _status_text(c),
            "HostConfig": {"NetworkMode": "bridge"},
            "NetworkSettings": {
                "Networks": {
                    "bridge": {
                        "IPAMConfig": None,
                        "Links": None,
                        "Aliases": None,
                        "NetworkID": "f" * 64,
                        "EndpointID": "e" * 64,
                        "Gateway": "172.17.0.1",
                        "IPAddress": c.ip,
                        "IPPrefixLen": 16,
                        "IPv6Gateway": "",
                        "GlobalIPv6Address": "",
                        "GlobalIPv6PrefixLen": 0,
                        "MacAddress": "02:42:ac:11:00:02",
                        "DriverOpts": None,
                    }
                }
            },
            "Mounts": [],
        }
        if self.flavour == "podman":
            # Podman 4's compat list embeds an empty create config next to Docker's fields.
            item.update(
                SizeRw=0,
                SizeRootFs=0,
                Name="",
                Config=None,
                NetworkingConfig=None,
                Platform=None,
                AdjustCPUShares=False,
            )
        return item

    def _inspect(self, c: FakeContainer) -> dict[str, Any]:
        running = c.status in {"running", "paused", "restarting"}
        state: dict[str, Any] = {
            "Status": c.status,
            "Running": running,
            "Paused": c.status == "paused",
            "Restarting": c.status == "restarting",
            "OOMKilled": c.oom_killed,
            "Dead": c.status == "dead",
            "Pid": 4242 if running else 0,
            "ExitCode": c.exit_code,
            "Error": "",
            "StartedAt": "2024-05-01T08:00:00.123456789Z",
            "FinishedAt": ZERO_TIME if running else "2024-05-01T09:00:00.987654321Z",
        }
        if c.health is not None and not (self.flavour == "podman" and c.status == "created"):
            state["Health"] = {
                "Status": c.health,
                "FailingStreak": 3 if c.health == "unhealthy" else 0,
                "Log": [
                    {
                        "Start": "2024-05-01T08:59:30.000000001Z",
                        "End": "2024-05-01T08:59:30.100000001Z",
                        "ExitCode": 1 if c.health == "unhealthy" else 0,
                        "Output": c.health_output,
                    }
                ],
            }
        config: dict[str, Any] = {
            "Hostname": c.short_id,
            "Domainname": "",
            "User": "",
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "ExposedPorts": {"7080/tcp": {}},
            "Tty": False,
            "OpenStdin": False,
            "StdinOnce": False,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["serve"],
            "Image": c.image,
            "Volumes": None,
            "WorkingDir": "/app",
            "Entrypoint": ["/usr/local/bin/app"],
            "OnBuild": None,
            "Labels": c.labels,
        }
        if c.health is not None:
            config["Healthcheck"] = {
                "Test": ["CMD-SHELL", "curl -fsS http://127.0.0.1:7080/health || exit 1"],
                "Interval": 30_000_000_000,
                "Timeout": 5_000_000_000,
                "Retries": 3,
            }
        info: dict[str, Any] = {
            "Id": c.id,
            "Created": "2024-05-01T07:59:59.5Z",
            "Path": "/usr/local/bin/app",
            "Args": ["serve"],
            "State": state,
            "Image": "sha256:" + "ab" * 32,
            "ResolvConfPath": f"/var/lib/docker/containers/{c.id}/resolv.conf",
            "HostnamePath": f"/var/lib/docker/containers/{c.id}/hostname",
            "HostsPath": f"/var/lib/docker/containers/{c.id}/hosts",
            "LogPath": f"/var/lib/docker/containers/{c.id}/{c.id}-json.log",
            "Name": f"/{c.name}",
            "RestartCount": c.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "docker-default",
            "ExecIDs": None,
            "HostConfig": {
                "NetworkMode": "bridge",
                "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
                "Memory": c.mem_limit,
                "NanoCpus": 0,
            },
            "GraphDriver": {"Data": None, "Name": "overlay2"},
            "Mounts": [],
            "Config": config,
            "NetworkSettings": {
                "Bridge": "",
                "SandboxID": "5" * 64,
                "Ports": {"7080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "7080"}]},
                "Networks": {},
            },
        }
        if self.flavour == "podman":
            info["Driver"] = "overlay"
            info["AppArmorProfile"] = ""
            info["ResolvConfPath"] = (
                f"/run/containers/storage/overlay-containers/{c.id}/resolv.conf"
            )
            info["GraphDriver"] = {"Data": {"LowerDir": "/var/lib/containers/l"}, "Name": "overlay"}
        return info

    async def _stats(self, request: web.Request, c: FakeContainer) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.stats_barrier > 1:
                # Answers only once enough requests wait together: proof they were concurrent.
                if self.in_flight >= self.stats_barrier:
                    self._gate.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._gate.wait(), _BARRIER_WAIT)
            if self.stats_delay:
                await asyncio.sleep(self.stats_delay)
            if self.flavour == "podman" and c.status != "running":
                return self._error(
                    409, f"container {c.id} is not running: container state improper", ""
                )
            body = c.stats_body
            if body is None:
                payload = self._docker_stats(c) if self.flavour == "docker" else _podman_stats(c)
                # Both engines write the sample with Go's json.Encoder: compact, then "\n".
                body = json.dumps(payload, separators=(",", ":")).encode() + b"\n"
            # Podman sets its Content-Type after writing the header: none arrives.
            content_type = "application/json" if self.flavour == "docker" else None
            response = web.StreamResponse(
                status=200, headers={"Content-Type": content_type} if content_type else None
            )
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(body)
            await response.write_eof()
            return response
        finally:
            self.in_flight -= 1

    def _docker_stats(self, c: FakeContainer) -> dict[str, Any]:
        if c.status != "running":
            # What Docker answers for a container that is not running: zeros, no memory.
            return {
                "read": ZERO_TIME,
                "preread": ZERO_TIME,
                "pids_stats": {},
                "blkio_stats": _empty_blkio(),
                "num_procs": 0,
                "storage_stats": {},
                "cpu_stats": {"cpu_usage": _cpu_usage(0, None), "throttling_data": _throttling()},
                "precpu_stats": {
                    "cpu_usage": _cpu_usage(0, None),
                    "throttling_data": _throttling(),
                },
                "memory_stats": {},
                "name": f"/{c.name}",
                "id": c.id,
            }
        return {
            "read": _now(),
            "preread": ZERO_TIME if c.pre_system_cpu is None else _now(-1.0),
            "pids_stats": {"current": 11, "limit": 18446744073709551615},
            "blkio_stats": {
                **_empty_blkio(),
                "io_service_bytes_recursive": [
                    {"major": 259, "minor": 0, "op": "read", "value": 14_987_264},
                    {"major": 259, "minor": 0, "op": "write", "value": 4096},
                ],
            },
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": _cpu_stats(c.cpu_total, c.system_cpu, c.online_cpus, c.percpu),
            "precpu_stats": (
                {"cpu_usage": _cpu_usage(0, None), "throttling_data": _throttling()}
                if c.pre_system_cpu is None or c.pre_cpu_total is None
                else _cpu_stats(c.pre_cpu_total, c.pre_system_cpu, c.online_cpus, c.percpu)
            ),
            "memory_stats": _docker_memory(c),
            "name": f"/{c.name}",
            "id": c.id,
            "networks": {
                "eth0": {
                    "rx_bytes": 9_718_023,
                    "rx_packets": 31_422,
                    "rx_errors": 0,
                    "rx_dropped": 0,
                    "tx_bytes": 7_230_441,
                    "tx_packets": 28_110,
                    "tx_errors": 0,
                    "tx_dropped": 0,
                }
            },
        }


def _now(offset: float = 0.0) -> str:
    moment = datetime.fromtimestamp(time.time() + offset, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}123Z"


def _throttling() -> dict[str, int]:
    return {"periods": 0, "throttled_periods": 0, "throttled_time": 0}


def _empty_blkio() -> dict[str, Any]:
    return {
        "io_service_bytes_recursive": None,
        "io_serviced_recursive": None,
        "io_queue_recursive": None,
        "io_service_time_recursive": None,
        "io_wait_time_recursive": None,
        "io_merged_recursive": None,
        "io_time_recursive": None,
        "sectors_recursive": None,
    }


def _cpu_usage(total: int, percpu: list[int] | None) -> dict[str, Any]:
    kernel = total // 5
    usage: dict[str, Any] = {"total_usage": total}
    if percpu is not None:
        usage["percpu_usage"] = percpu
    usage.update(usage_in_kernelmode=kernel, usage_in_usermode=total - kernel)
    return usage


def _cpu_stats(
    total: int, system: int, online: int | None, percpu: list[int] | None
) -> dict[str, Any]:
    stats: dict[str, Any] = {"cpu_usage": _cpu_usage(total, percpu), "system_cpu_usage": system}
    if online is not None:
        stats["online_cpus"] = online
    stats["throttling_data"] = _throttling()
    return stats


def _docker_memory(c: FakeContainer) -> dict[str, Any]:
    if c.cgroup == 1:
        inactive = c.inactive_file
        cache = inactive + 4096 * 300
        return {
            "usage": c.mem_usage,
            "max_usage": c.mem_usage + 10 * 2**20,
            "stats": {
                "active_anon": 0,
                "active_file": 4096 * 300,
                "cache": cache,
                "dirty": 0,
                "hierarchical_memory_limit": c.mem_limit,
                "hierarchical_memsw_limit": 9223372036854771712,
                "inactive_anon": 0,
                # The container's own cgroup only; the hierarchy's total is bigger.
                "inactive_file": inactive // 3,
                "mapped_file": 4096 * 10,
                "pgfault": 120_000,
                "pgmajfault": 12,
                "pgpgin": 90_000,
                "pgpgout": 60_000,
                "rss": c.mem_usage - cache if c.mem_usage > cache else 0,
                "rss_huge": 0,
                "total_active_anon": 0,
                "total_active_file": 4096 * 300,
                "total_cache": cache,
                "total_dirty": 0,
                "total_inactive_anon": 0,
                "total_inactive_file": inactive,
                "total_mapped_file": 4096 * 10,
                "total_pgfault": 120_000,
                "total_pgmajfault": 12,
                "total_pgpgin": 90_000,
                "total_pgpgout": 60_000,
                "total_rss": c.mem_usage - cache if c.mem_usage > cache else 0,
                "total_rss_huge": 0,
                "total_unevictable": 0,
                "total_writeback": 0,
                "unevictable": 0,
                "writeback": 0,
            },
            "limit": c.mem_limit,
        }
    anon = max(0, c.mem_usage - c.inactive_file - 4096 * 500)
    return {
        "usage": c.mem_usage,
        "stats": {
            "active_anon": anon,
            "active_file": 4096 * 500,
            "anon": anon,
            "anon_thp": 0,
            "file": c.inactive_file + 4096 * 500,
            "file_dirty": 0,
            "file_mapped": 4096 * 64,
            "file_writeback": 0,
            "inactive_anon": 0,
            "inactive_file": c.inactive_file,
            "kernel_stack": 16384 * 11,
            "pgactivate": 310,
            "pgdeactivate": 0,
            "pgfault": 48_211,
            "pglazyfree": 0,
            "pglazyfreed": 0,
            "pgmajfault": 9,
            "pgrefill": 0,
            "pgscan": 0,
            "pgsteal": 0,
            "shmem": 0,
            "slab": 262_144,
            "slab_reclaimable": 131_072,
            "slab_unreclaimable": 131_072,
            "sock": 0,
            "thp_collapse_alloc": 0,
            "thp_fault_alloc": 0,
            "unevictable": 0,
            "workingset_activate": 0,
            "workingset_nodereclaim": 0,
            "workingset_refault": 0,
        },
        "limit": c.mem_limit,
    }


def _podman_stats(c: FakeContainer) -> dict[str, Any]:
    """Podman 4's compat stats: ``cpu`` next to Docker's keys, zero-valued ``precpu_stats``
    without streaming, and ``memory_stats`` without ``stats``."""
    memory: dict[str, Any] = {"usage": c.mem_usage}
    if c.cgroup == 1:
        memory["max_usage"] = c.mem_usage + 10 * 2**20  # cgroup v2 has no max: omitted
    memory["limit"] = c.mem_limit
    cpu_stats: dict[str, Any] = {"cpu_usage": _cpu_usage(c.cpu_total, c.percpu)}
    cpu_stats["system_cpu_usage"] = c.system_cpu
    if c.online_cpus:
        cpu_stats["online_cpus"] = c.online_cpus
    cpu_stats["cpu"] = 2.5  # Podman's own figure since the container started: not ours
    cpu_stats["throttling_data"] = _throttling()
    return {
        "read": _now(),
        "preread": ZERO_TIME,
        "pids_stats": {"current": 3},
        "blkio_stats": {
            **_empty_blkio(),
            "io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": 0},
                {"major": 0, "minor": 0, "op": "write", "value": 0},
            ],
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats,
        "precpu_stats": {
            "cpu_usage": _cpu_usage(0, None),
            "cpu": 0,
            "throttling_data": _throttling(),
        },
        "memory_stats": memory,
        "name": c.name,
        "id": c.id,
        "networks": {
            "network": {
                "rx_bytes": 2_048,
                "rx_packets": 0,
                "rx_errors": 0,
                "rx_dropped": 0,
                "tx_bytes": 1_024,
                "tx_packets": 0,
                "tx_errors": 0,
                "tx_dropped": 0,
            }
        },
    }


def _status_text(c: FakeContainer) -> str:
    if c.status == "running":
        health = {
            "healthy": " (healthy)",
            "unhealthy": " (unhealthy)",
            "starting": " (health: starting)",
        }
        return "Up 2 hours" + health.get(c.health or "", "")
    if c.status == "exited":
        return f"Exited ({c.exit_code}) 5 minutes ago"
    return c.status.capitalize()


def _event_matches(filters: dict[str, Any], event: dict[str, Any], labels: dict[str, str]) -> bool:
    """Docker's and Podman's filters: each key must match one of its values."""
    for key, wanted in filters.items():
        values = list(wanted) if isinstance(wanted, list | dict) else [wanted]
        if key == "type" and event["Type"] not in values:
            return False
        if key == "event" and not any(event["Action"].startswith(v) for v in values):
            return False
        if key == "label" and not _labels_match(labels, values):
            return False
    return True


def _label_filter(raw: str) -> list[str]:
    """``{"label": ["k=v"]}`` (both engines) or ``{"label": {"k=v": true}}`` (Docker)."""
    if not raw:
        return []
    filters = json.loads(raw)
    labels = filters.get("label", [])
    return list(labels) if isinstance(labels, list | dict) else []


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _json(payload: Any, status: int = 200) -> web.Response:
    body = json.dumps(payload, separators=(",", ":")) + "\n"
    return web.Response(status=status, text=body, content_type="application/json")


# ---------------------------------------------------------------------------
# Fixtures

EngineFactory = Callable[..., Awaitable[FakeEngine]]


@pytest.fixture
async def engine_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[EngineFactory]:
    """``await engine_factory("podman")``: as many engines as a test needs, on its loop."""
    engines: list[FakeEngine] = []

    async def make(flavour: Flavour = "docker") -> FakeEngine:
        # A short directory: a unix socket's path must fit in 108 bytes.
        directory = tmp_path_factory.mktemp("engine", numbered=True)
        engine = await FakeEngine(directory / "engine.sock", flavour).start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()


@pytest.fixture
async def docker_engine(engine_factory: EngineFactory) -> FakeEngine:
    return await engine_factory("docker")


@pytest.fixture
async def podman_engine(engine_factory: EngineFactory) -> FakeEngine:
    return await engine_factory("podman")


# ---------------------------------------------------------------------------
# On its own, for the benchmark


async def _serve(socket_path: Path, count: int, flavour: Flavour, seconds: float) -> None:
    engine = FakeEngine(socket_path, flavour)
    for i in range(count):
        engine.add(
            f"app-{i}",
            labels={"com.docker.compose.project": "bench", "com.docker.compose.service": "app"},
            health="healthy",
            mem_usage=(100 + i) * 2**20,
            mem_limit=2 * 2**30,
            inactive_file=10 * 2**20,
        )
    await engine.start()
    started = time.monotonic()
    print(f"ready {engine.url}", flush=True)
    while time.monotonic() - started < seconds:
        await asyncio.sleep(1.0)
        # One second of a 4-CPU host: each container busy for 5 % of one CPU.
        for c in engine.containers.values():
            c.system_cpu += 4 * 10**9
            c.cpu_total += 5 * 10**7
    await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--flavour", choices=["docker", "podman"], default="docker")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    asyncio.run(_serve(args.socket, args.containers, args.flavour, args.max_seconds))


if __name__ == "__main__":
    main()
