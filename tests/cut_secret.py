"""A secret long enough that a cut error message leaves a piece of it, and how to find
what leaked."""

from __future__ import annotations

from vigild.redaction import MIN_PIECE

CUT_SECRET = "tok_9fK2mQ7xLw4RzP8vN3sT6yH1bJ5cD0gEAq2Wn8Ut5Yr3IoZk"
"""52 characters: quoted in 40 after 20 others, a cut leaves 20 of them."""


def pieces(secret: str) -> set[str]:
    """Every run of MIN_PIECE characters of ``secret``: none may get out."""
    return {secret[i : i + MIN_PIECE] for i in range(len(secret) - MIN_PIECE + 1)}


def leaked(text: str, secret: str = CUT_SECRET) -> set[str]:
    return {piece for piece in pieces(secret) if piece in text}
