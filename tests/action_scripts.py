"""A script for the action tests that records, one line per run, what vigild told it."""

from __future__ import annotations

from pathlib import Path

import psutil

FIELDS = ("target", "metric", "severity", "value", "threshold", "since", "alert_id", "dry_run")


def recording_script(tmp_path: Path, sleep: float = 0.0) -> Path:
    """A script that appends one line per run with what vigild told it, then sleeps."""
    script = tmp_path / "rollback.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo "$VIGILD_TARGET|$VIGILD_METRIC|$VIGILD_SEVERITY|$VIGILD_VALUE|'
        '$VIGILD_THRESHOLD|$VIGILD_SINCE|$VIGILD_ALERT_ID|$VIGILD_DRY_RUN" >> runs.txt\n'
        "echo rolled back to the previous release\n"
        f"sleep {sleep}\n"
    )
    script.chmod(0o755)
    return script


def runs_seen(tmp_path: Path) -> list[dict[str, str]]:
    path = tmp_path / "runs.txt"
    if not path.exists():
        return []
    return [dict(zip(FIELDS, line.split("|"), strict=True)) for line in path.read_text().split()]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
