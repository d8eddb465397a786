"""Push targets' runs as their pings tell them, on a real state file."""

from __future__ import annotations

from pathlib import Path

from vigild.storage import Database, Ping, PushRun

T = 1_780_000_000.0


def test_start_then_success_times_the_run_and_keeps_its_output(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    try:
        db.push_runs.record("backup", Ping("start", T))
        assert db.push_runs.get("backup") == PushRun(started=T)
        assert db.push_runs.get("backup").running  # type: ignore[union-attr]
        db.push_runs.record("backup", Ping("success", T + 90, output="copied 3 files"))
        run = db.push_runs.get("backup")
        assert run == PushRun(
            started=T,
            ended=T + 90,
            succeeded=T + 90,
            exit_status=0,
            duration=90.0,
            output="copied 3 files",
        )
        assert run is not None and not run.running
    finally:
        db.close()


def test_a_failure_keeps_the_last_success_and_says_its_exit_status(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    try:
        db.push_runs.record("backup", Ping("success", T))
        db.push_runs.record("backup", Ping("start", T + 100))
        run = db.push_runs.record("backup", Ping("fail", T + 130, exit_status=3, output="no space"))
        assert (run.succeeded, run.failed, run.exit_status, run.duration) == (T, True, 3, 30.0)
        assert db.push_runs.get("backup") == run
        # A plain /fail gives no exit status: none is made up.
        assert db.push_runs.record("backup", Ping("fail", T + 200)).exit_status is None
    finally:
        db.close()


def test_an_end_without_a_start_of_its_own_has_no_duration(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    try:
        db.push_runs.record("backup", Ping("start", T))
        db.push_runs.record("backup", Ping("success", T + 10))
        run = db.push_runs.record("backup", Ping("success", T + 3600))
        assert run.duration is None
        assert run.succeeded == T + 3600
    finally:
        db.close()


def test_runs_survive_a_reopen_one_row_per_target(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = Database(path)
    try:
        for i in range(50):
            db.push_runs.record("backup", Ping("success", T + i))
        db.push_runs.record("certs", Ping("fail", T, exit_status=1))
    finally:
        db.close()
    db = Database(path)
    try:
        rows = db.file.db.execute("SELECT count(*) FROM push_runs").fetchone()[0]
        assert rows == 2
        backup = db.push_runs.get("backup")
        assert backup is not None and backup.succeeded == T + 49
        certs = db.push_runs.get("certs")
        assert certs is not None and certs.failed and certs.exit_status == 1
    finally:
        db.close()
