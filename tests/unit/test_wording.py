"""One spelling for durations, OS errors and label values, wherever vigild shows them."""

from __future__ import annotations

import errno

import pytest

from vigild.alerting.notifiers import text
from vigild.wording import duration, label_value, os_text


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (45.9, "45s"),
        (720, "12m"),
        (779, "12m"),
        (3600, "1h"),
        (3900, "1h5m"),
        (86400 * 2 + 3 * 3600 + 59, "2d3h"),
        (86400, "1d"),
        (-5, "0s"),
    ],
)
def test_durations(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_notifier_plugins_keep_reaching_duration_through_text() -> None:
    assert text.duration is duration


def test_label_values_escape_backslash_quote_and_newline_only() -> None:
    assert label_value('a\\b"c\nd\te') == 'a\\\\b\\"c\\nd\te'


def test_os_errors_in_the_errnos_own_words() -> None:
    assert os_text(ConnectionResetError(errno.ECONNRESET, "ignored")) == "connection reset by peer"
    assert os_text(OSError("Multiple exceptions: ...")) == "Multiple exceptions: ..."
    found = os_text(OSError("Multiple exceptions: ..."), errno_found=errno.ECONNREFUSED)
    assert found == "connection refused"
    assert os_text(OSError()) == "OSError"
