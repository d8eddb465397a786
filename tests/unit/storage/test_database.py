"""The Database holds the state lock while open, and gives it back however it ends."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from vigild.storage import Database, StateFileError, StateLock, StateLocked
from vigild.storage.migrations import SCHEMA_VERSION


async def test_open_holds_the_lock_until_close(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = await Database.open(path)
    with pytest.raises(StateLocked):
        StateLock(path).acquire()
    db.close()
    free = StateLock(path)
    free.acquire()  # free again
    free.release()


async def test_open_waits_for_a_lock_released_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    held = StateLock(path)
    held.acquire()
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, held.release)
    started = time.monotonic()
    db = await Database.open(path, lock_wait=5.0)
    assert 0.2 <= time.monotonic() - started < 5.0
    db.close()


async def test_open_gives_up_after_its_wait(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    held = StateLock(path)
    held.acquire()
    try:
        with pytest.raises(StateLocked, match=r"in use by another vigild .*waited 0.1s"):
            await Database.open(path, lock_wait=0.1)
    finally:
        held.release()


async def test_a_file_that_cannot_be_opened_gives_the_lock_back(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    newer = sqlite3.connect(path)
    newer.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    newer.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION + 1),))
    newer.commit()
    newer.close()
    with pytest.raises(StateFileError, match="newer vigild"):
        await Database.open(path)
    free = StateLock(path)
    free.acquire()  # not left held by the failed open
    free.release()
