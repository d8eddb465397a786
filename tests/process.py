"""Running the real ``vigild`` command as a subprocess, from async tests.

Asyncio subprocesses keep the test's event loop free, so a receiver fixture
on that loop goes on serving what the subprocess sends it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

VIGILD = (sys.executable, "-m", "vigild")


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def environment(**extra: str) -> dict[str, str]:
    """The test's environment without anything that would change vigild's choices."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGILD_")}
    env.update(extra)
    return env


async def run(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 - a bound on a subprocess, not an API timeout
) -> Finished:
    process = await asyncio.create_subprocess_exec(
        *VIGILD,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env or environment(),
        cwd=cwd,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        # A command that should have ended but serves on (a `run` that accepted a
        # broken config) must not outlive the test.
        process.kill()
        await process.wait()
        raise AssertionError(f"vigild {' '.join(args)} did not end within {timeout:g}s") from None
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), stderr.decode())


def listen_address() -> str:
    """A free loopback address for a daemon's ``listen``."""
    # Imported here: the conftest imports this module before the `targets` plugin,
    # whose asserts pytest could then no longer rewrite.
    from targets import closed_port

    return f"127.0.0.1:{closed_port()}"


INSTANCE = "faults-1"
"""The ``[daemon] instance`` of ``write_config``'s configs, so fingerprints are known."""


def write_config(directory: Path, listen: str, body: str) -> Path:
    """A config with ``[daemon]`` filled in (state in ``directory``) and ``body`` after it."""
    path = directory / "vigild.toml"
    path.write_text(
        f'[daemon]\nlisten = "{listen}"\nstate_path = "{directory / "state.db"}"\n'
        f'instance = "{INSTANCE}"\n{body}'
    )
    return path


RUNNING: set[Daemon] = set()
"""Daemons started and not yet stopped: the conftest kills what a failed test left."""


class Daemon:
    """``vigild run`` in a subprocess, with its stderr (the log) collected as it comes."""

    def __init__(self, config: Path, listen: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.listen = listen
        self.base = f"http://{listen}"
        self.env = env or environment()
        self.log: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, *extra: str) -> Daemon:
        self._process = await asyncio.create_subprocess_exec(
            *VIGILD,
            "run",
            "--config",
            str(self.config),
            "--log-format",
            "json",
            *extra,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        self._reader = asyncio.create_task(self._read())
        RUNNING.add(self)
        return self

    async def _read(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        async for line in self._process.stderr:
            self.log.append(line.decode().rstrip("\n"))

    def events(self, name: str) -> list[dict[str, Any]]:
        """Log events called ``name`` (JSON lines; other lines are ignored)."""
        found = []
        for line in self.log:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                found.append(event)
        return found

    async def wait_log(self, name: str, count: int = 1, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await _until(lambda: len(self.events(name)) >= count, timeout, f"{count}x log {name!r}")

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.base + path) as response:
            return response.status, await response.text()

    async def wait_ready(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.returncode is not None:
                raise AssertionError("vigild exited early:\n" + "\n".join(self.log))
            try:
                status, _ = await self.get("/readyz")
            except aiohttp.ClientError:
                status = 0
            if status == 200:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("vigild did not become ready:\n" + "\n".join(self.log))

    async def status(self) -> dict[str, Any]:
        code, text = await self.get("/api/status")
        assert code == 200
        result: dict[str, Any] = json.loads(text)
        return result

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def signal(self, signum: int) -> None:
        assert self._process is not None
        self._process.send_signal(signum)

    async def wait(self, timeout: float = 15.0) -> int:  # noqa: ASYNC109
        assert self._process is not None
        code = await asyncio.wait_for(self._process.wait(), timeout)
        if self._reader is not None:
            await self._reader
        RUNNING.discard(self)
        return code

    async def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        RUNNING.discard(self)

    async def stop(self) -> int:
        """SIGTERM and the exit code; kills it if it does not stop within the bound."""
        if self._process is None or self._process.returncode is not None:
            return self._process.returncode if self._process else 0
        self.signal(signal.SIGTERM)
        try:
            return await self.wait()
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
            raise


async def start(config: Path, listen: str) -> Daemon:
    """``vigild run`` with this config, once it answers ready."""
    daemon = await Daemon(config, listen).start()
    await daemon.wait_ready()
    return daemon


async def _until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def until(check: Any, within: float = 10.0, what: str = "condition") -> None:
    """Poll ``check()`` in short steps until it is true; fail after ``within`` seconds."""
    await _until(check, within, what)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""A scrape of /metrics: (sample name, sorted labels) to value."""


async def scrape(daemon: Daemon) -> Samples:
    code, text = await daemon.get("/metrics")
    assert code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One series' value; 0 for a counter child that was never incremented."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def wait_metrics(
    daemon: Daemon,
    check: Any,
    within: float = 5.0,
    what: str = "metrics",
) -> Samples:
    """Scrape until ``check(samples)`` holds; the samples that satisfied it."""
    deadline = time.monotonic() + within
    while True:
        samples = await scrape(daemon)
        if check(samples):
            return samples
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
