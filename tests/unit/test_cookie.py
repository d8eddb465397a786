"""The cookie file: private from its first byte, new at every start, removed only if ours."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigild.cookie import cookie_path, read_cookie, remove_cookie, write_cookie


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that takes nothing away: the mode must come from how the file is made."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_the_cookie_sits_beside_the_state_file() -> None:
    assert cookie_path(Path("./vigild-state.db")) == Path("vigild-state.db.cookie")
    assert cookie_path(Path("/var/lib/vigild/state.db")) == Path("/var/lib/vigild/state.db.cookie")


def test_a_new_cookie_is_private_and_replaces_what_was_there(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "state.db.cookie"
    path.write_text("stale-token\n")
    path.chmod(0o644)  # left behind by a killed daemon, and loosened since
    token = write_cookie(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_cookie(path) == token != "stale-token"
    assert len(token) >= 40  # 32 random bytes
    assert write_cookie(path) != token  # every start, a new one
    assert [p.name for p in tmp_path.iterdir()] == ["state.db.cookie"]  # no temporary left


def test_a_symlink_in_the_cookies_place_is_replaced_not_followed(
    tmp_path: Path, open_umask: None
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not yours\n")
    path = tmp_path / "state.db.cookie"
    path.symlink_to(elsewhere)
    write_cookie(path)
    assert not path.is_symlink() and path.stat().st_mode & 0o777 == 0o600
    assert elsewhere.read_text() == "not yours\n"


def test_removal_leaves_a_cookie_someone_else_wrote(tmp_path: Path) -> None:
    path = tmp_path / "state.db.cookie"
    mine = write_cookie(path)
    theirs = write_cookie(path)
    remove_cookie(path, mine)
    assert read_cookie(path) == theirs
    remove_cookie(path, theirs)
    assert not path.exists()
    remove_cookie(path, theirs)  # already gone: nothing to do
    assert read_cookie(path) is None
