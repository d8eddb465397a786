"""The standing fault suite: ``vigild run`` under kill -9, signal storms, state-file
abuse, a full disk and hostile targets, each judged by exact counts at a real receiver.

Every test in this directory is marked ``faults``: ``pytest -m faults`` runs the
suite alone; the default run includes it.
"""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.faults)
