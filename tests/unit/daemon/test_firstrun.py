"""The first-cycle line: the words a person reads after starting vigild."""

from __future__ import annotations

from pathlib import Path

from vigild.daemon.firstrun import first_cycle_line
from vigild.model import Severity


def test_the_line_counts_targets_by_how_they_are_and_says_where_to_look() -> None:
    severities = [Severity.OK, Severity.CRITICAL, Severity.OK]
    assert first_cycle_line(3, severities, "127.0.0.1:9469", Path("./vigild-state.db")) == (
        "watching 3 targets (2 ok, 1 critical) · status page http://127.0.0.1:9469/ · "
        "state ./vigild-state.db"
    )


def test_targets_not_probed_yet_are_counted_as_such() -> None:
    line = first_cycle_line(3, [Severity.WARNING], "[::1]:9469", Path("/var/lib/vigild/state.db"))
    assert line == (
        "watching 3 targets (1 warning, 2 not probed yet) · status page http://[::1]:9469/ · "
        "state /var/lib/vigild/state.db"
    )


def test_every_interface_is_shown_as_the_loopback_a_browser_here_reaches() -> None:
    line = first_cycle_line(1, [Severity.OK], "0.0.0.0:9469", Path("state.db"))
    assert line == (
        "watching 1 target (1 ok) · status page http://127.0.0.1:9469/ · state ./state.db"
    )


def test_a_unix_socket_listener_is_named_as_such() -> None:
    line = first_cycle_line(0, [], "unix:/run/vigild/api.sock", Path("../state.db"))
    assert line == "watching 0 targets · API on unix:/run/vigild/api.sock · state ../state.db"
