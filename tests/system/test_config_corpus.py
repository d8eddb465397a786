"""Every broken config under tests/data/broken is refused alike by ``check-config``,
``run`` and ``--once``; every edge config under tests/data/valid is accepted by all.

Each broken file says on its first line what is wrong and on its second
(``# expect: ...``) the problem ``check-config`` must report: exactly one problem,
one line, never a traceback. The real command runs in subprocesses, a few at once,
so the whole corpus stays within seconds on two cores.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from process import Daemon, Finished, environment, run
from targets import closed_port

DATA = Path(__file__).resolve().parents[1] / "data"
BROKEN = sorted((DATA / "broken").glob("*.toml"))
VALID = sorted((DATA / "valid").glob("*.toml"))

PARALLEL = 4
"""Subprocesses at once: each spends most of its ~0.3 s importing, so two cores
stay busy without queueing behind each other."""

ONCE_SKIPS_NOTIFIER_URLS = {"apprise-unknown-scheme.toml"}
"""``--once`` does not parse notifier URLs (apprise's import would double its start);
these files are broken only there, so ``--once`` runs them."""


async def bounded(limit: asyncio.Semaphore, *args: str, env: dict[str, str]) -> Finished:
    """``vigild *args`` once a slot is free; a broken config that ``run`` accepted
    would serve on, so it is killed after 20 s."""
    async with limit:
        return await run(*args, env=env, timeout=20)


def expected_problem(path: Path) -> str:
    what, expect = path.read_bytes().split(b"\n")[:2]
    assert what.startswith(b"# ") and len(what) > 10, f"{path.name}: say what is wrong"
    assert expect.startswith(b"# expect: "), f"{path.name}: second line is # expect: ..."
    return expect.decode().removeprefix("# expect: ")


def problems(path: Path, result: Finished) -> list[str]:
    """The problem lines; anything else on stderr (a traceback, a log line) fails."""
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert all(line.startswith(f"{path}: ") for line in lines), result.stderr
    return [line for line in lines if not line.startswith(f"{path}: invalid (")]


def test_the_corpus_is_large_and_each_file_is_one_case() -> None:
    assert len(BROKEN) >= 40
    for path in BROKEN:
        expected_problem(path)


async def test_check_config_run_and_once_refuse_every_broken_file(tmp_path: Path) -> None:
    limit = asyncio.Semaphore(PARALLEL)
    commands = (("check-config",), ("run",), ("--once",))

    def env(i: int) -> dict[str, str]:
        # A state file (and its lock) per command: nothing reaches /var/lib, and a
        # command that wrongly accepted a file cannot make another wait for the lock.
        return environment(VIGILD_STATE_PATH=str(tmp_path / f"state-{i}.db"))

    results = await asyncio.gather(
        *(
            bounded(limit, *command, "--config", str(path), env=env(i))
            for i, (path, command) in enumerate(
                (path, command) for path in BROKEN for command in commands
            )
        ),
        return_exceptions=True,  # a command that did not end is one failure among the rest
    )
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    for i, path in enumerate(BROKEN):
        check, run, once = results[i * 3 : i * 3 + 3]
        if not (
            isinstance(check, Finished) and isinstance(run, Finished) and isinstance(once, Finished)
        ):
            continue
        expect = expected_problem(path)
        found = problems(path, check)
        if check.returncode != 2 or len(found) != 1 or expect not in found[0]:
            failures.append(f"check-config {path.name}: {check.returncode} {check.stderr!r}")
        if f"{path}: invalid (1 problem)" not in check.stderr.splitlines():
            failures.append(f"check-config {path.name}: no closing count {check.stderr!r}")
        if run.returncode != 2 or problems(path, run) != found:
            failures.append(f"run {path.name}: {run.returncode} {run.stderr!r}")
        assert "Traceback" not in once.stderr + once.stdout, once.stderr
        if path.name in ONCE_SKIPS_NOTIFIER_URLS:
            continue
        if once.returncode != 3 or problems(path, once) != found:
            failures.append(f"--once {path.name}: {once.returncode} {once.stderr!r}")
    assert failures == []


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
async def test_check_config_accepts_once_runs_and_run_starts_every_edge_file(
    tmp_path: Path, path: Path
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    env = environment(VIGILD_STATE_PATH=str(tmp_path / "state.db"), VIGILD_LISTEN=listen)
    limit = asyncio.Semaphore(PARALLEL)
    check = await bounded(limit, "check-config", "--config", str(path), env=env)
    assert check.returncode == 0, check.stderr
    once = await bounded(limit, "--once", "--config", str(path), env=env)
    assert once.returncode in (0, 1, 2), once.stderr  # a verdict, not "unusable"
    assert "Traceback" not in once.stderr
    daemon = await Daemon(path, listen, env).start()
    try:
        await daemon.wait_ready()
    finally:
        assert await daemon.stop() == 0
    assert "Traceback" not in "\n".join(daemon.log)
