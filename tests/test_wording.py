"""One spelling for OS errors, wherever vigild shows them."""

from __future__ import annotations

import errno

from vigild.wording import os_text


def test_os_errors_in_the_errnos_own_words() -> None:
    assert os_text(ConnectionResetError(errno.ECONNRESET, "ignored")) == "connection reset by peer"
    assert os_text(OSError("Multiple exceptions: ...")) == "Multiple exceptions: ..."
    found = os_text(OSError("Multiple exceptions: ..."), errno_found=errno.ECONNREFUSED)
    assert found == "connection refused"
    assert os_text(OSError()) == "OSError"
