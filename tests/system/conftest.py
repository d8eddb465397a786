"""Tests that start ``vigild`` (run, --once, the CLI) or a real binary (promtool,
prometheus, alertmanager, chromium, systemd-analyze, hadolint) as a subprocess.

Every test in this directory is marked ``system``: ``pytest -m "not system"`` is the
fast in-process tier (tests/unit), ``pytest -m system`` the rest.
"""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


# First, so that ``-m`` deselects by the marker added here.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.system)
