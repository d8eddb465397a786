"""How vigild spells what it shows: OS errors in their own words.

A leaf: probes, alerting and the daemon all import it, so it imports nothing of vigild.
"""

from __future__ import annotations

import os

__all__ = ["os_text"]


def os_text(error: OSError, *, errno_found: int | None = None) -> str:
    """The errno's own words ("connection reset by peer"), not asyncio's "Connect call
    failed" or a message that repeats the host and port.

    ``errno_found`` stands in for an error that carries no errno of its own but whose
    text names one (asyncio's "Multiple exceptions: [Errno 111] ...").
    """
    code = error.errno if error.errno is not None else errno_found
    if code is not None and code > 0:
        return os.strerror(code).lower()
    return error.strerror or str(error) or type(error).__name__
