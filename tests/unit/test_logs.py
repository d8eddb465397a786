"""Log lines: a person's console on a terminal, machine lines everywhere else."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TextIO

import pytest
import structlog

from vigild import logs


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """``configure`` sets process-wide state: the next test must not log to a closed pty."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def terminal() -> Iterator[tuple[int, TextIO]]:
    """A real pseudo-terminal: the end it reads, and a stream to write on it."""
    reader, writer = os.openpty()
    stream = os.fdopen(writer, "w", buffering=1)
    try:
        yield reader, stream
    finally:
        stream.close()
        os.close(reader)


def on(terminal: tuple[int, TextIO], monkeypatch: pytest.MonkeyPatch) -> int:
    """stderr on the terminal, set in the test itself: pytest's capture replaces
    sys.stderr again between fixture set-up and the test."""
    reader, stream = terminal
    monkeypatch.setattr(sys, "stderr", stream)
    return reader


@pytest.fixture
def far_timezone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A zone five and a half hours from UTC, so local time and UTC cannot pass for each other."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_on_a_terminal_lines_are_in_local_time_and_colour(
    terminal: tuple[int, TextIO], far_timezone: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = on(terminal, monkeypatch)
    logs.configure("auto")
    structlog.get_logger("vigild").info("watching 2 targets", listen="127.0.0.1:9469")
    line = os.read(reader, 4096).decode()
    assert "\x1b[" in line  # colour
    plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
    stamp, rest = plain[:19], plain[19:]
    shown = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
    assert abs((shown - datetime.now()).total_seconds()) < 60  # the wall clock, not UTC
    assert "info" in rest and "watching 2 targets" in rest and "listen=127.0.0.1:9469" in rest


def test_log_format_keeps_machine_lines_on_a_terminal(
    terminal: tuple[int, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = on(terminal, monkeypatch)
    logs.configure("json")
    structlog.get_logger("vigild").info("vigild started", targets=2)
    event = json.loads(os.read(reader, 4096).decode())
    assert event["event"] == "vigild started" and event["timestamp"].endswith("Z")
    logs.configure("console")
    structlog.get_logger("vigild").info("vigild started", targets=2)
    line = os.read(reader, 4096).decode()
    assert line.startswith("timestamp=") and "event='vigild started'" in line
    assert "\x1b[" not in line


def test_off_a_terminal_lines_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("auto")
    structlog.get_logger("vigild").info("vigild started", targets=2)
    assert json.loads(capsys.readouterr().err)["event"] == "vigild started"
