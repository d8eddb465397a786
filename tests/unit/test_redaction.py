"""Secrets are masked in values only, so a short secret cannot break a document."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from process import Daemon, environment, run
from targets import StreamServer, closed_port

from vigild.redaction import (
    MASK,
    MIN_PIECE,
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

CUT_SECRET = "tok_9fK2mQ7xLw4RzP8vN3sT6yH1bJ5cD0gEAq2Wn8Ut5Yr3IoZk"
"""52 characters: quoted in 40 after 20 others, a cut leaves 20 of them."""


def pieces(secret: str) -> set[str]:
    """Every run of MIN_PIECE characters of ``secret``: none may get out."""
    return {secret[i : i + MIN_PIECE] for i in range(len(secret) - MIN_PIECE + 1)}


def leaked(text: str, secret: str = CUT_SECRET) -> set[str]:
    return {piece for piece in pieces(secret) if piece in text}


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


# ---------------------------------------------------------------------------
# End to end: a tcp target answers a secret that the error cuts


def tcp_config(tmp_path: Path, port: int, *, listen: str, notifier: str = "") -> Path:
    """A tcp target that sends the secret (from ${TCP_TOKEN}) and gets it quoted back,
    and a webhook notifier on a closed port, so the firing stays in the outbox."""
    path = tmp_path / "vigild.toml"
    path.write_text(
        f"""
[daemon]
interval = "1s"
listen = "{listen}"
state_path = "{tmp_path / "state.db"}"

[alerting]
group_wait = "0s"

[[targets]]
name = "auth"
type = "tcp"
host = "127.0.0.1"
port = {port}
send = "AUTH ${{TCP_TOKEN}}\\r\\n"
expect = "+OK"
timeout = "300ms"

[[notifiers]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{closed_port()}/hook"
{notifier}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def echoing(stream_server: StreamServer) -> StreamServer:
    """A server that answers 20 characters, then the secret, whole, and waits: quoted
    in 40 characters, 20 of the secret would be left."""
    stream_server.banner = b"-ERR wrong password " + CUT_SECRET.encode() + b"\r\n"
    return stream_server


def state_text(path: Path) -> str:
    """Every value of the alerts and outbox tables, as one text."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT * FROM alerts").fetchall()
        rows += db.execute("SELECT * FROM outbox").fetchall()
    assert rows, "no alert or outbox entry was written"
    return "\n".join(str(value) for row in rows for value in row)


async def test_a_cut_secret_stays_out_of_once_reports_logs_and_the_state_file(
    tmp_path: Path, echoing: StreamServer
) -> None:
    config = tcp_config(tmp_path, echoing.port, listen=f"127.0.0.1:{closed_port()}")
    env = environment(TCP_TOKEN=CUT_SECRET)
    text = await run("--once", "--config", str(config), env=env)
    assert text.returncode == 2, text.stderr
    assert "auth  DOWN  expected '+OK', got '-ERR wrong password ***" in text.stdout
    as_json = await run("--once", "--config", str(config), "--format", "json", env=env)
    assert as_json.returncode == 2, as_json.stderr
    [target] = as_json.json["targets"]
    assert target["observation"]["error"].startswith("expected '+OK', got '-ERR wrong pass")
    for output in (text.stdout, text.stderr, as_json.stdout, as_json.stderr):
        assert leaked(output) == set(), output
    assert leaked(state_text(tmp_path / "state.db")) == set()


async def test_a_cut_secret_stays_out_of_the_api_the_page_and_the_daemon_log(
    tmp_path: Path, echoing: StreamServer
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    config = tcp_config(tmp_path, echoing.port, listen=listen)
    daemon = await Daemon(config, listen, environment(TCP_TOKEN=CUT_SECRET)).start()
    await daemon.wait_ready()

    status: dict[str, Any] = {}
    for _ in range(100):
        status = await daemon.status()
        if status["alerts"]:
            break
        await asyncio.sleep(0.05)
    assert status["alerts"], status
    _, page = await daemon.get("/")
    assert "-ERR wrong password ***" in page
    await daemon.wait_log("notification retry")
    assert await daemon.stop() == 0
    for output in (json.dumps(status), page, "\n".join(daemon.log)):
        assert leaked(output) == set(), output
    assert leaked(state_text(tmp_path / "state.db")) == set()


async def test_apprise_log_lines_carry_no_piece_of_a_secret_url(tmp_path: Path) -> None:
    """apprise names the host of a URL that is a secret as a whole; vigild names its
    scheme and host: both are pieces of the secret."""
    url = f"json://127.0.0.1:{closed_port()}/hooks/{CUT_SECRET}"
    config = tcp_config(
        tmp_path,
        closed_port(),
        listen=f"127.0.0.1:{closed_port()}",
        notifier='[[notifiers]]\nname = "chat"\nurl = "${APPRISE_URL}"\n',
    )
    result = await run(
        "--once", "--config", str(config), env=environment(TCP_TOKEN="x", APPRISE_URL=url)
    )
    assert result.returncode == 2, result.stderr
    [apprise_line] = [line for line in result.stderr.splitlines() if '"apprise"' in line]
    assert "A Connection error occurred" in apprise_line
    assert leaked(result.stderr, url) == set(), result.stderr
