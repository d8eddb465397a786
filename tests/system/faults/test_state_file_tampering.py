"""The state file deleted, replaced or made read-only under a running daemon, in
the middle of an outage: it goes on alerting, and a restart pages nothing twice.

Deleted or replaced, the file at the path is no longer the one the daemon
writes: it must notice, log an error, write its state to a new file at the path
and count it in ``vigild_state_recreated_total``. Read-only, the open file
still takes writes. As root a mode of 0444 binds nobody, so the file is made
immutable (``chattr +i``) too where the file system allows it (printed).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultkit import accepted, errors, restart_and_recover, told, watch
from process import listen_address, sample, scrape, start, until, wait_metrics
from receivers import Receiver
from targets import TargetServerFactory

RECREATED = "vigild_state_recreated_total"


def delete(state: Path) -> None:
    for path in state.parent.glob(state.name + "*"):
        if path.name != state.name + ".lock":  # the lock is another story (issue: symlinks)
            path.unlink()


def replace_with_sqlite(state: Path) -> None:
    other = state.with_name("other.db")
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE notes (note TEXT)")
    db.execute("INSERT INTO notes VALUES ('not vigild''s')")
    db.commit()
    db.close()
    os.replace(other, state)


def replace_with_garbage(state: Path) -> None:
    garbage = state.with_name("garbage")
    garbage.write_bytes(os.urandom(64 * 1024))
    os.replace(garbage, state)


@contextlib.contextmanager
def read_only(state: Path) -> Iterator[None]:
    state.chmod(0o444)
    # Not every file system takes the flag (overlayfs does not): then the mode alone.
    chattr = ["chattr", "+i", str(state)]
    immutable = os.geteuid() == 0 and subprocess.run(chattr, check=False).returncode == 0
    print(f"read-only: mode 0444{' and immutable' if immutable else ''}")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(state)], check=True)
        state.chmod(0o644)


def made_read_only(stack: contextlib.ExitStack) -> Callable[[Path], None]:
    return lambda state: stack.enter_context(read_only(state))


@pytest.mark.parametrize(
    "abuse", ["deleted", "replaced by sqlite", "replaced by garbage", "read-only"]
)
async def test_an_abused_state_file_neither_stops_alerts_nor_repeats_them_after_a_restart(
    tmp_path: Path, target_server_factory: TargetServerFactory, receiver: Receiver, abuse: str
) -> None:
    api, db = target_server_factory(), target_server_factory()
    listen = listen_address()
    config = watch(tmp_path, listen, receiver, {"api": api.url(), "db": db.url()})
    state = tmp_path / "state.db"
    with contextlib.ExitStack() as stack:
        harm = {
            "deleted": delete,
            "replaced by sqlite": replace_with_sqlite,
            "replaced by garbage": replace_with_garbage,
            "read-only": made_read_only(stack),
        }[abuse]
        daemon = await start(config, listen)
        api.status = 503
        await until(lambda: told(accepted(receiver)) == {("api", "firing"): 1}, what="api firing")

        logged = len(daemon.log)
        harm(state)
        db.status = 503  # while the file is gone, foreign or read-only: still told
        await until(lambda: ("db", "firing") in told(accepted(receiver)), what="db firing")
        if abuse != "read-only":
            await until(lambda: errors(daemon.log[logged:]), what="an error logged")
            await wait_metrics(daemon, lambda s: sample(s, RECREATED) >= 1, 10, RECREATED)
        hits = db.hits
        await until(lambda: db.hits >= hits + 2, what="two more cycles")
        if abuse != "read-only":
            assert sample(await scrape(daemon), RECREATED) == 1  # once, not at every flush
        assert await daemon.stop() == 0
    assert told(accepted(receiver)) == {("api", "firing"): 1, ("db", "firing"): 1}

    await restart_and_recover(config, listen, receiver, api, db)
