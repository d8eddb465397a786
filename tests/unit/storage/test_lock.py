"""The state lock: one vigild per state file, whatever path leads to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigild.storage import LOCK_WAIT, StateLock, StateLocked, lock_wait


def test_the_lock_wait_is_10s_unless_a_test_shortens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGILD_TEST_LOCK_WAIT", raising=False)
    assert lock_wait() == LOCK_WAIT == 10.0
    monkeypatch.setenv("VIGILD_TEST_LOCK_WAIT", "0.5")
    assert lock_wait() == 0.5


def test_the_lock_names_its_holder_and_is_free_once_released(tmp_path: Path) -> None:
    held = StateLock(tmp_path / "state.db")
    held.acquire()
    assert held.path == tmp_path / "state.db.lock"
    assert held.path.read_text(encoding="utf-8").strip().isdigit()
    with pytest.raises(StateLocked, match="waited 0s"):
        StateLock(tmp_path / "state.db").acquire()
    held.release()
    again = StateLock(tmp_path / "state.db")
    again.acquire()
    again.release()


def test_a_deleted_lock_file_is_taken_again(tmp_path: Path) -> None:
    held = StateLock(tmp_path / "state.db")
    held.acquire()
    held.path.unlink()
    held.keep()
    with pytest.raises(StateLocked):
        StateLock(tmp_path / "state.db").acquire()
    held.release()
