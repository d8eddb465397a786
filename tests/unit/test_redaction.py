"""Secrets are masked in values only, so a short secret cannot break a document."""

from __future__ import annotations

import json

import pytest
from cut_secret import CUT_SECRET, leaked

from vigild.redaction import (
    MASK,
    one_line,
    redact,
    redact_exposition,
    redact_values,
    shorten,
)

SECRETS = frozenset({"t", "hunter2"})


def test_values_are_masked_keys_are_not() -> None:
    document = {"target": {"url": "http://x/?k=hunter2", "items": ["hunter2", 3, None]}}
    masked = redact_values(document, SECRETS)
    assert masked == {"target": {"url": "h******p://x/?k=***", "items": ["***", 3, None]}}
    assert json.loads(json.dumps(masked))  # still a document
    assert redact_values(document, frozenset()) is document


def test_exposition_masks_label_values_only() -> None:
    text = (
        "# HELP vigild_probe_success 1 if the last probe of the target succeeded.\n"
        "# TYPE vigild_probe_success gauge\n"
        'vigild_probe_success{target="hunter2-api",type="http"} 1.0\n'
        'vigild_probe_value{metric="latency_seconds",series="",target="a\\"t"} 0.25\n'
    )
    masked = redact_exposition(text, SECRETS)
    assert masked.splitlines()[:2] == text.splitlines()[:2]
    assert 'vigild_probe_success{target="***-api",type="h******p"} 1.0' in masked
    assert 'metric="la***ency_seconds"' in masked and masked.endswith(" 0.25\n")
    assert redact_exposition("up 1\n", SECRETS) == "up 1\n"


def test_plain_text() -> None:
    assert redact("Bearer hunter2 hunter2", {"hunter2"}) == "Bearer *** ***"


# ---------------------------------------------------------------------------
# A secret cut in two: what is left of it at the cut is masked too


@pytest.mark.parametrize(
    "text",
    [
        f"got '{CUT_SECRET[:40]}…'",  # cut and marked
        f"got {CUT_SECRET[:20]}",  # cut at the end, unmarked
        f"{CUT_SECRET[-12:]} and more",  # the start of the text is a cut too
        f"output: …{CUT_SECRET[-30:]}",
        f"input_value='{CUT_SECRET[:24]}...{CUT_SECRET[-24:]}'",  # pydantic's own cut
        f"{CUT_SECRET[:30]!r}",
    ],
)
def test_a_piece_at_a_cut_is_masked(text: str) -> None:
    masked = redact(text, {CUT_SECRET})
    assert leaked(masked) == set(), masked
    assert MASK in masked


def test_a_piece_after_bytes_cut_inside_a_character_is_masked() -> None:
    # The tail of a command's output, its bytes cut inside the secret's "ö".
    secret = "pässwörd-" + CUT_SECRET
    tail = secret.encode()[7:].decode("utf-8", "replace")
    assert tail.startswith("\ufffdrd-tok_")
    assert leaked(redact(tail, {secret}), secret[8:]) == set()


def test_pieces_too_short_or_not_at_a_cut_stay() -> None:
    url = "https://hooks.example.com/services/T000/B000/XXXXXXXXXXXX"
    # "https://hooks" starts the secret, but the text goes on: it was not cut there.
    assert redact("see https://hooks.example.org/x", {url}) == "see https://hooks.example.org/x"
    assert redact(f"got {CUT_SECRET[:7]}…", {CUT_SECRET}) == f"got {CUT_SECRET[:7]}…"
    assert redact("ab...cd", {"abcdefghijk"}) == "ab...cd"


def test_shorten_redacts_before_it_cuts() -> None:
    text = f"expected '+OK', got '{CUT_SECRET}' from the server"
    assert shorten(text, 40, {CUT_SECRET}) == "expected '+OK', got '***' from the serv…"
    assert shorten("short", 40, {CUT_SECRET}) == "short"
    assert one_line(f"first {CUT_SECRET}\nsecond", 200, {CUT_SECRET}) == "first ***"


def test_anywhere_masks_every_piece_inside_a_secret() -> None:
    url = "json://127.0.0.1:4000/hooks/" + CUT_SECRET
    line = "A Connection error occurred sending JSON notification to 127.0.0.1."
    masked = redact(line, {url}, anywhere=True)
    assert masked == "A Connection error occurred sending JSON notification to ***."
    assert redact(f"token {CUT_SECRET[10:30]} in the middle", {CUT_SECRET}, anywhere=True) == (
        "token *** in the middle"
    )
    assert redact("nothing here", {url}, anywhere=True) == "nothing here"
