"""The processes of a ``command`` run: who they are, whether they still run, how they stop.

A run is its process group (the command is started in a session of its own, so
the group id is the command's pid) plus every descendant, including those that
left the group with ``setsid``. vigild is a child subreaper for its lifetime
(Linux), so such a process, orphaned by its parent, is re-parented to vigild
rather than to init and is still found, by the ``VIGILD_RUN_ID`` it inherited.
vigild forks nothing but action commands, so being a subreaper adopts nothing
else; switching it on and off around runs would race between overlapping runs
and lose what a finished run left behind.

A run outlives a vigild killed with SIGKILL. The next vigild recognises it by
the group id and the leader's start time (psutil ``create_time``), never by the
pid alone, which the kernel reuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Iterable
from typing import Any

import psutil

__all__ = [
    "RUN_ID",
    "Identity",
    "become_subreaper",
    "identity",
    "reap",
    "running",
    "spawn",
    "stop",
    "waited",
]

RUN_ID = "VIGILD_RUN_ID"
"""Set in a command's environment: marks the run each descendant belongs to."""

SAME_START = 1.0
"""Start times within this are one process: psutil derives them from the boot time,
which /proc gives in whole seconds and which moves when the clock is set."""

KILL_WAIT = 5.0
"""After SIGKILL, how long to wait for the processes to be gone."""

_PR_SET_CHILD_SUBREAPER = 36
_POLL = 0.05

_commands: set[int] = set()
"""Commands started by ``spawn`` whose exit status asyncio has not collected yet."""
_spawning: set[object] = set()
"""One token per ``spawn`` under way: its command may have forked, its pid not known yet."""

Identity = tuple[int, float]
"""A run's process group id and its leader's start time (unix seconds)."""


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def identity(pid: int) -> Identity | None:
    """``pid``'s identity as a run's process group leader, None if it is gone already."""
    try:
        return pid, psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def running(group: int, started: float) -> bool:
    """Whether the leader of a run's group still runs (a zombie has ended)."""
    try:
        leader = psutil.Process(group)
        return (
            abs(leader.create_time() - started) < SAME_START
            and leader.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False


def _members(
    group: int, started: float, run_id: int | None, known: dict[int, psutil.Process]
) -> None:
    """Add to ``known`` every live process of the run: its group, their descendants,
    and the orphans re-parented to vigild that carry its ``VIGILD_RUN_ID``."""
    me = os.getpid()
    ours = _group_ours(group, started, known.values())
    seeds: list[psutil.Process] = []
    children: dict[int, list[psutil.Process]] = {}
    for process in psutil.process_iter(["ppid"]):
        children.setdefault(process.info["ppid"], []).append(process)
        if ours and process.pid != me and _pgid(process) == group:
            seeds.append(process)
    if run_id is not None:
        seeds += [p for p in children.get(me, []) if _marked(p, run_id)]
    seeds += known.values()
    seen = {me}
    while seeds:
        process = seeds.pop()
        # The start time check keeps a reused pid from bringing in a stranger's children.
        if process.pid not in seen and _alive(process):
            seen.add(process.pid)
            known.setdefault(process.pid, process)
            seeds += children.get(process.pid, [])


def _group_ours(group: int, started: float, known: Iterable[psutil.Process]) -> bool:
    """Whether ``group`` is still the run's: a group id is not reused while a member
    lives, but once the last one is gone a new session may take the number."""
    return running(group, started) or any(_alive(p) and _pgid(p) == group for p in known)


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def _marked(process: psutil.Process, run_id: int) -> bool:
    try:
        return process.environ().get(RUN_ID) == str(run_id)
    except psutil.Error:
        return False


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(group: int, started: float, known: dict[int, psutil.Process], signum: int) -> None:
    if _group_ours(group, started, known.values()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)
    for process in known.values():
        # psutil checks the start time first: a reused pid is not signalled.
        with contextlib.suppress(psutil.Error):
            process.send_signal(signum)


async def _gone_within(
    group: int, started: float, run_id: int | None, known: dict[int, psutil.Process], within: float
) -> bool:
    deadline = time.monotonic() + within
    while True:
        _members(group, started, run_id, known)
        if not any(_alive(p) for p in known.values()):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL)


async def stop(group: int, started: float, grace: float, run_id: int | None) -> None:
    """SIGTERM to the whole run, SIGKILL to what is left of it after ``grace``.

    Every member is collected before it is signalled and kept: a child whose
    parent dies first is still known by its pid (and start time) at the SIGKILL.
    ``run_id`` finds the orphans vigild adopted; ``reap`` collects them after.
    """
    known: dict[int, psutil.Process] = {}
    _members(group, started, run_id, known)
    _signal(group, started, known, signal.SIGTERM)
    if await _gone_within(group, started, run_id, known, grace):
        return
    _signal(group, started, known, signal.SIGKILL)
    await _gone_within(group, started, run_id, known, KILL_WAIT)


async def spawn(*argv: str, **options: Any) -> asyncio.subprocess.Process:
    """``asyncio.create_subprocess_exec``, with the command kept from ``reap``: asyncio
    collects its exit status itself, and would report 255 if ``reap`` took it."""
    token = object()
    _spawning.add(token)
    try:
        process = await asyncio.create_subprocess_exec(*argv, **options)
    finally:
        _spawning.discard(token)
    _commands.add(process.pid)
    return process


def waited(process: asyncio.subprocess.Process) -> None:
    """asyncio has collected the command's exit status: ``reap`` no longer spares it."""
    if process.returncode is not None:
        _commands.discard(process.pid)


def reap() -> int:
    """Collect the exit status of the ended orphans vigild adopted; how many there were.

    Only for a subreaper: any other child of vigild is a command asyncio waits for.
    """
    if _spawning:
        return 0  # a command forked, not yet known by its pid: the next call reaps
    reaped = 0
    for child in psutil.Process().children():
        if child.pid in _commands:
            continue
        with contextlib.suppress(ChildProcessError):
            pid, _ = os.waitpid(child.pid, os.WNOHANG)
            reaped += pid == child.pid
    return reaped
