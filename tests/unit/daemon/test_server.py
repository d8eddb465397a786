"""The daemon's HTTP endpoints in this process, at a few thousand targets: what they
show is built off the event loop, once for the requests that come together."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cli_config import numbered_targets
from process import listen_address

from vigild.alerting.engine import Engine
from vigild.assembly import load
from vigild.config import TargetConfig
from vigild.daemon import metrics as metrics_module
from vigild.daemon import server
from vigild.daemon.app import Daemon as InProcessDaemon
from vigild.daemon.paging import ROWS
from vigild.daemon.server import _json_text, _status_body, open_site
from vigild.events import ProbeResult
from vigild.model import Observation
from vigild.status import Board
from vigild.thresholds import evaluate

START = 1_800_000_000.0
TARGETS = 2000
REQUESTS = 5


class Watched(tuple[TargetConfig, ...]):
    """The config's targets, noting which thread reads them through. In a worker thread,
    a read waits until the server has taken in ``expected`` requests (and the loop has
    gone round once more, so each reached its handler): none of them came too late to
    share the build."""

    readers: list[int]
    server: web.Server | None
    loop: asyncio.AbstractEventLoop
    loop_thread: int
    expected: int

    def __iter__(self) -> Iterator[TargetConfig]:
        self.readers.append(threading.get_ident())
        if self.server is not None and threading.get_ident() != self.loop_thread:
            deadline = time.monotonic() + 10
            while self.server.requests_count < self.expected and time.monotonic() < deadline:
                time.sleep(0.005)
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self.loop).result(timeout=10)
        return super().__iter__()


@pytest.mark.parametrize("path", ["/", "/?page=3", "/api/status", "/history?target=t7"])
async def test_what_a_page_shows_is_built_off_the_loop_once_for_requests_that_come_together(
    tmp_path: Path, path: str
) -> None:
    config_file = tmp_path / "vigild.toml"
    listen = listen_address()
    config_file.write_text(
        f'[daemon]\nlisten = "{listen}"\nstate_path = "{tmp_path / "state.db"}"\n\n'
        + numbered_targets(TARGETS, 'type = "http"\nurl = "http://127.0.0.1:1/{i}"\n')
    )
    config = load(config_file)
    targets = Watched(config.targets)
    targets.readers, targets.server = [], None
    daemon = InProcessDaemon(replace(config, targets=targets))
    await daemon.setup()  # no cycles: only the requests read the targets from here on
    await open_site(daemon.runner, daemon.config.daemon)
    try:
        now = time.time()
        for i in range(TARGETS):
            observation = Observation(f"t{i}", now, i % 50 != 0, None, {"latency_seconds": 0.01})
            daemon.runtime.board.record(
                f"t{i}", observation, evaluate(observation, config.rules[f"t{i}"])
            )
        assert daemon.runner.server is not None
        targets.server, targets.loop = daemon.runner.server, asyncio.get_running_loop()
        targets.loop_thread = loop_thread = threading.get_ident()
        targets.expected = daemon.runner.server.requests_count + REQUESTS
        targets.readers.clear()  # the daemon's set-up read them
        async with aiohttp.ClientSession(f"http://{listen}") as session:

            async def get() -> tuple[int, bytes]:
                async with session.get(path) as response:
                    return response.status, await response.read()

            answers = await asyncio.gather(*(get() for _ in range(REQUESTS)))
    finally:
        await daemon.shutdown()
    assert {status for status, _ in answers} == {200}
    assert len({body for _, body in answers}) == 1
    assert len(targets.readers) == 1, "one build for all the requests"
    assert loop_thread not in targets.readers, "the targets are read off the event loop"
    if path == "/?page=3":  # 40 targets down, listed first
        html = answers[0][1].decode()
        assert html.count('<tr class="target ') == ROWS
        shown = f"{2 * ROWS + 1}\u2013{3 * ROWS} of {TARGETS}, the 40 with problems first"
        assert f"{shown} · page 3 of {TARGETS // ROWS}" in html
        assert '<a href="?page=2" rel="prev">' in html and '<a href="?page=4" rel="next">' in html


def test_the_status_written_one_target_at_a_time_is_the_whole_document_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = tmp_path / "vigild.toml"
    config_file.write_text(
        '[daemon]\nstate_path = "state.db"\nexternal_labels = { targets = "[]" }\n'
        '[[targets]]\nname = "web"\ntype = "http"\nurl = "http://127.0.0.1:1/?key=${KEY}"\n'
        '[[targets]]\nname = "box"\ntype = "container"\ncontainer_labels = { app = "x" }\n'
        '[[targets]]\nname = "found"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 1\n'
        '[[targets]]\nname = "later"\ntype = "host"\n'
    )
    monkeypatch.setenv("KEY", "s3cr3t")
    config = replace(load(config_file), sources={"found": "shop-db-1"})
    board = Board()
    engine = Engine((), (), flap_limit=4, redact=config.redact)
    for target, observation in [
        ("web", Observation("web", START, False, 'refused "\n\t\x1b', {})),
        ("box", Observation("box/a", START, True, None, {"cpu_percent": 5.0})),
        ("box", Observation("box/b", START, True, None, {"cpu_percent": 7.5})),
        ("found", Observation("found", START, True, None, {"latency_seconds": 0.01})),
    ]:
        verdicts = evaluate(observation, config.rules[target])
        board.record(target, observation, verdicts)
        engine.observe(observation.target, verdicts, START)
    moment = board.moment(config, engine, START + 5)
    whole = _json_text(moment.document(), config.secrets)
    assert "s3cr3t" not in whole and '"discovered"' in whole and '"box/b"' in whole
    for per_piece in (256, 2, 1):
        monkeypatch.setattr(server, "ENTRIES_A_PIECE", per_piece)
        pieces = _status_body(moment, config.secrets)
        assert b"".join(pieces) == whole.encode()
        assert len(pieces) == 2 + -(-len(moment.listed()) // per_piece)  # head, entries, tail
    nothing = replace(config, targets=())
    empty = Board().moment(nothing, engine, START)
    assert b"".join(_status_body(empty, nothing.secrets)) == (
        _json_text(empty.document(), nothing.secrets).encode()
    )


async def test_a_scraper_that_leaves_mid_page_is_no_error_and_the_next_scrape_is_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/metrics is written a piece at a time; a Prometheus whose scrape times out
    closes the connection while pieces remain, which is not an error of vigild's."""
    monkeypatch.setattr(metrics_module, "TARGETS_A_PIECE", 1)  # thousands of pieces
    listen = listen_address()
    config_file = tmp_path / "vigild.toml"
    config_file.write_text(
        f'[daemon]\nlisten = "{listen}"\nstate_path = "{tmp_path / "state.db"}"\n\n'
        + numbered_targets(TARGETS, 'type = "tcp"\nhost = "127.0.0.1"\nport = 1\n')
    )
    daemon = InProcessDaemon(load(config_file))
    await daemon.setup()
    await open_site(daemon.runner, daemon.config.daemon)
    try:
        for i in range(TARGETS):
            observation = Observation(f"t{i}", START, True, None, {"latency_seconds": 0.01})
            verdicts = evaluate(observation, daemon.config.rules[f"t{i}"])
            severities = [v.severity for v in verdicts]
            daemon.metrics.probe_result(
                ProbeResult(f"t{i}", "tcp", observation, verdicts, severities)
            )
        host, port = listen.rsplit(":", 1)
        for _ in range(3):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: vigild\r\n\r\n")
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            writer.transport.abort()  # unread pieces: the kernel answers the next with a reset
        async with (
            aiohttp.ClientSession(f"http://{listen}") as session,
            session.get("/metrics") as response,
        ):
            page = await response.text()
    finally:
        await daemon.shutdown()
    assert page.count("\nvigild_probe_success{") == TARGETS
    assert page.endswith("\n")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
