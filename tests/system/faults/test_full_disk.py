"""The state file's file system fills up in the middle of an outage: vigild keeps
running, logs the failure and still pages; once space is back, it writes its
state again, and a restart repeats nothing.

Which full disk: a 4 MiB tmpfs mounted for the test (the tests run as root in
CI); where it cannot be mounted, a loop-mounted ext2 image of the same size;
where neither can (no privilege), the daemon's own file-size limit
(``RLIMIT_FSIZE`` lowered to what its files hold, so every write that grows one
fails with EFBIG rather than ENOSPC). The kind used is printed; ``FAULT_DISK``
(tmpfs, loop or limit) forces one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultkit import accepted, errors, restart_and_recover, told, watch
from process import Daemon, listen_address, sample, scrape, start, until
from receivers import Receiver
from targets import TargetServerFactory

SIZE = 4 * 2**20


class Disk:
    """A directory on a small file system whose free space a test takes away and gives back."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self._filler = path / "filler"

    def fill(self, daemon: Daemon) -> None:
        if self.kind == "limit":
            largest = max(p.stat().st_size for p in self.path.glob("state.db*"))
            _, hard = resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE)
            resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (largest, hard))
            return
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for chunk in (2**16, 2**12, 1):  # down to the last byte
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * chunk)
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)
        with pytest.raises(OSError) as full:
            (self.path / "probe").write_bytes(b"\0" * 4096)
        assert full.value.errno == errno.ENOSPC

    def free(self, daemon: Daemon) -> None:
        if self.kind == "limit":
            _, hard = resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE)
            resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE, (hard, hard))
            return
        self._filler.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.path / "probe").unlink()


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], check=False, capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Disk]:
    path = tmp_path / "disk"
    path.mkdir()
    wanted = os.environ.get("FAULT_DISK")
    kind = "limit"
    tmpfs = ("-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(path))
    if wanted in (None, "tmpfs") and _mount(*tmpfs):
        kind = "tmpfs"
    elif wanted in (None, "loop"):
        image = tmp_path / "disk.img"
        with image.open("wb") as file:
            file.truncate(SIZE)
        mkfs = ["mkfs.ext2", "-q", "-F", "-m", "0", str(image)]
        made = subprocess.run(mkfs, check=False, capture_output=True)
        if made.returncode == 0 and _mount("-o", "loop", str(image), str(path)):
            kind = "loop"
    print(f"full disk: {kind}")
    try:
        yield Disk(path, kind)
    finally:
        if kind != "limit":
            subprocess.run(["umount", "--lazy", str(path)], check=True)


def alert_targets(state: Path) -> set[str]:
    """Targets with an open alert in the state file, read as another process would."""
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
    try:
        return {str(target) for (target,) in db.execute("SELECT target FROM alerts")}
    finally:
        db.close()


def outbox_size(state: Path) -> int:
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    finally:
        db.close()


async def test_a_full_disk_stops_neither_the_daemon_nor_its_pages(
    small_disk: Disk, target_server_factory: TargetServerFactory, receiver: Receiver
) -> None:
    api, db = target_server_factory(), target_server_factory()
    listen = listen_address()
    config = watch(small_disk.path, listen, receiver, {"api": api.url(), "db": db.url()})
    state = small_disk.path / "state.db"
    daemon = await start(config, listen)
    api.status = 503
    await until(lambda: told(accepted(receiver)) == {("api", "firing"): 1}, what="api firing")

    logged = len(daemon.log)
    small_disk.fill(daemon)
    db.status = 503
    await until(lambda: ("db", "firing") in told(accepted(receiver)), 15, "db paged, disk full")
    # SQLite reuses its write-ahead log in place, so a write may still fit on a full
    # disk; every one that did not is counted, and each streak of them logged once.
    hits = db.hits
    await until(lambda: db.hits >= hits + 2, what="more writes on the full disk")
    failed = sample(await scrape(daemon), "vigild_state_write_failures_total")
    print(f"writes that failed on the full disk: {failed:.0f}")
    logged_failures = [
        e for e in errors(daemon.log[logged:]) if e["event"].startswith("cannot write the state")
    ]
    assert (1 <= len(logged_failures) <= failed) if failed else not logged_failures
    hits = db.hits
    await until(lambda: db.hits >= hits + 2, what="probing goes on")
    code, _ = await daemon.get("/readyz")
    assert code == 200

    small_disk.free(daemon)
    await until(
        lambda: alert_targets(state) == {"api", "db"} and outbox_size(state) == 0,
        15,
        "the state written again",
    )
    assert await daemon.stop() == 0
    assert told(accepted(receiver)) == {("api", "firing"): 1, ("db", "firing"): 1}

    await restart_and_recover(config, listen, receiver, api, db)
