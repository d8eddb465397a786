"""The cookie file: how the CLI on the daemon's own host proves it may write.

The bitcoind convention: at start the daemon writes a fresh random token to
``<state_path>.cookie``, readable by its own user only, and removes it at a
clean stop. Whoever can read that file may write through the API; nobody has
to copy a secret into a shell. A new start writes a new token, so a cookie
left behind by a killed daemon is worth nothing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

__all__ = ["cookie_path", "read_cookie", "remove_cookie", "write_cookie"]


def cookie_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".cookie")


def write_cookie(path: Path) -> str:
    """A new token in ``path``, mode 0600 from the moment the file exists.

    Written to a fresh file (``mkstemp``: 0600, never through a symlink someone
    left there) and renamed over whatever was at ``path``: a reader sees the old
    token or the new one, never half of one, and an old file's permissions do
    not carry over.
    """
    token = secrets.token_urlsafe(32)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(token + "\n")
        os.replace(temporary, path)
    finally:  # gone after the rename; left over only when writing failed
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return token


def read_cookie(path: Path) -> str | None:
    """The token, or None when there is none this user may read (no daemon, another user's)."""
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def remove_cookie(path: Path, token: str) -> None:
    """Remove ``path`` if it still holds ``token``: a file someone replaced stays theirs."""
    if read_cookie(path) == token:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
