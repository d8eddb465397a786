"""Keeping secrets (every value that came from ``${...}``), and control characters, out
of what leaves the process.

Redaction replaces values, never keys or metric names: a short secret such as
"80" must not break a JSON document or an exposition line, only hide itself.

Text is often shortened (an error quotes 40 characters of an answer, a log
line keeps 200), and a secret cut in two no longer matches itself. So text is
redacted before it is cut (``shorten``), and ``redact`` also masks what is left
of a secret where someone else cut it: a run of ``MIN_PIECE`` or more
characters that starts the secret and ends at a cut, or ends the secret and
starts at one. A cut is the start or end of the text (bytes cut inside a
character left aside), or an ellipsis ("…" or "..."), a quote allowed in
between. Text made by code that slices secrets in ways vigild cannot know (a
library's log lines) is redacted ``anywhere``: every run of ``MIN_PIECE`` or
more characters found inside a secret is masked.

Control characters in a name or an answer would move a terminal's cursor or
split a line; ``printable`` writes them as escapes where text is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

__all__ = [
    "MASK",
    "MIN_PIECE",
    "one_line",
    "printable",
    "redact",
    "redact_exposition",
    "redact_values",
    "shorten",
]

MASK = "***"

MIN_PIECE = 8
"""The shortest piece of a secret masked at a cut: shorter ones are too common to mean it."""

ELLIPSIS = "…"


def redact(text: str, secrets: Iterable[str], *, anywhere: bool = False) -> str:
    known = secrets if isinstance(secrets, frozenset) else frozenset(secrets)
    ordered = _ordered(known)
    for secret, _head, _tail in ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    if anywhere:
        return _mask_inside(text, known)
    return _mask_pieces(text, ordered)


def shorten(text: str, limit: int, secrets: Iterable[str] = ()) -> str:
    """``text`` redacted, then cut to at most ``limit`` characters ending in "…"."""
    text = redact(text, secrets)
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def one_line(text: str, limit: int, secrets: Iterable[str] = ()) -> str:
    """The first line of ``text``, redacted, then cut to ``limit`` characters."""
    return shorten(text.splitlines()[0] if text else text, limit, secrets)


def printable(text: str) -> str:
    """``text`` with every character that is not printable as its escape (``\\x1b``,
    ``\\n``, ``\\u200b``); printable text, any script's, is left as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def redact_values(value: Any, secrets: frozenset[str], *, anywhere: bool = False) -> Any:
    """A copy of a JSON-like value with every string value (not key) redacted."""
    if not secrets:
        return value
    if isinstance(value, str):
        return redact(value, secrets, anywhere=anywhere)
    if isinstance(value, dict):
        return {k: redact_values(v, secrets, anywhere=anywhere) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(v, secrets, anywhere=anywhere) for v in value]
    return value


def redact_exposition(text: str, secrets: frozenset[str]) -> str:
    """Prometheus text with secrets masked inside label values only."""
    if not any(_may_hold(text, secret) for secret in secrets):
        return text

    def label_value(match: re.Match[str]) -> str:
        return f'="{redact(match.group(1), secrets)}"'

    lines = []
    for line in text.split("\n"):
        start, end = line.find("{"), line.rfind("}")
        if not line.startswith("#") and 0 < start < end:
            labels = _LABEL_VALUE.sub(label_value, line[start + 1 : end])
            lines.append(line[: start + 1] + labels + line[end:])
        else:
            lines.append(line)
    return "\n".join(lines)


_LABEL_VALUE = re.compile(r'="((?:[^"\\]|\\.)*)"')

# Where a piece may end (its position is the match's start) or start (the match's end).
# Bytes cut inside a character decode to U+FFFD at the edge of the text.
_CUT_AFTER = re.compile(r"['\"]?(?:…|\.\.\.|\ufffd*\Z)")
_CUT_BEFORE = re.compile(r"(?:\A\ufffd*|…|\.\.\.)['\"]?")


@lru_cache(maxsize=8)
def _ordered(secrets: frozenset[str]) -> tuple[tuple[str, str, str], ...]:
    """(secret, its first and last MIN_PIECE characters), longest first: a secret that
    contains a shorter one must vanish whole. Once per config, not per text."""
    ordered = sorted(secrets, key=len, reverse=True)
    return tuple((s, s[:MIN_PIECE], s[-MIN_PIECE:]) for s in ordered)


def _may_hold(text: str, secret: str) -> bool:
    return secret in text or secret[:MIN_PIECE] in text or secret[-MIN_PIECE:] in text


def _mask_pieces(text: str, secrets: tuple[tuple[str, str, str], ...]) -> str:
    """``text`` with every piece of a secret left at a cut masked (no secret is whole in it)."""
    # A piece is shorter than its secret: a secret of MIN_PIECE characters has none.
    cut = [s for s, head, tail in secrets if len(s) > MIN_PIECE and (head in text or tail in text)]
    if not cut:
        return text
    ends = {m.start() for m in _CUT_AFTER.finditer(text)}
    starts = {m.end() for m in _CUT_BEFORE.finditer(text)}
    spans = sorted(span for secret in cut for span in _pieces(text, secret, ends, starts))
    if not spans:
        return text
    kept: list[str] = []
    done = 0
    for start, end in spans:  # by start: one mask for pieces that overlap
        if start >= done:
            kept += (text[done:start], MASK)
        done = max(done, end)
    kept.append(text[done:])
    return "".join(kept)


def _pieces(text: str, secret: str, ends: set[int], starts: set[int]) -> Iterator[tuple[int, int]]:
    """(start, end) of each run that begins ``secret`` and ends at a cut, and of each
    run that ends ``secret`` and begins at one; the longest such run at each place."""
    head, tail = secret[:MIN_PIECE], secret[-MIN_PIECE:]
    at = text.find(head)
    while at >= 0:
        length = MIN_PIECE
        while at + length < len(text) and text[at + length] == secret[length]:
            length += 1
            if length == len(secret):
                break
        cut = next((p for p in range(at + length, at + MIN_PIECE - 1, -1) if p in ends), None)
        if cut is not None:
            yield at, cut
        at = text.find(head, at + 1)
    at = text.find(tail)
    while at >= 0:
        end = at + MIN_PIECE
        begin = at
        while (
            begin > 0 and end - begin < len(secret) and text[begin - 1] == secret[begin - end - 1]
        ):
            begin -= 1
        cut = next((p for p in range(begin, at + 1) if p in starts), None)
        if cut is not None:
            yield cut, end
        at = text.find(tail, at + 1)


def _mask_inside(text: str, secrets: frozenset[str]) -> str:
    """``text`` with every run masked whose every ``MIN_PIECE`` characters are found in a
    secret (a little more than the runs found whole in one: safe, and one pass)."""
    grams = _grams(secrets)
    if not grams:
        return text
    spans: list[list[int]] = []
    for at in range(len(text) - MIN_PIECE + 1):
        if text[at : at + MIN_PIECE] in grams:
            if spans and at <= spans[-1][1]:
                spans[-1][1] = at + MIN_PIECE
            else:
                spans.append([at, at + MIN_PIECE])
    if not spans:
        return text
    kept: list[str] = []
    done = 0
    for start, end in spans:
        kept += (text[done:start], MASK)
        done = end
    kept.append(text[done:])
    return "".join(kept)


@lru_cache(maxsize=4)
def _grams(secrets: frozenset[str]) -> frozenset[str]:
    """Every run of ``MIN_PIECE`` characters in the secrets (one set per config)."""
    return frozenset(
        secret[at : at + MIN_PIECE]
        for secret in secrets
        for at in range(len(secret) - MIN_PIECE + 1)
    )
