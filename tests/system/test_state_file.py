"""The state file under a real ``vigild run``: deleted during an outage, or reached by a
second daemon through a symlink."""

from __future__ import annotations

from pathlib import Path

import pytest
from process import Daemon, listen_address, until
from prometheus_client.parser import text_string_to_metric_families
from receivers import Receiver
from standard_daemon import ENV, sent, start_daemon
from state_files import RECREATED, remove_state
from targets import TargetServer

from vigild.storage.lock import StateLock, StateLocked


def metric(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} not on /metrics")


async def test_state_file_deleted_during_an_outage_does_not_page_again_after_a_restart(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    daemon = await start_daemon(tmp_path, target_server, receiver)
    target_server.status = 503
    await receiver.wait_for(2)  # paged once on each notifier

    remove_state(tmp_path / "state.db")
    await daemon.wait_log(RECREATED)
    with pytest.raises(StateLocked):
        StateLock(tmp_path / "state.db").acquire()  # held again, on the new lock file
    _, text = await daemon.get("/metrics")
    assert metric(text, "vigild_state_recreated_total") == 1
    assert metric(text, "vigild_state_recreate_failures_total") == 0
    assert await daemon.stop() == 0

    restarted = await Daemon(daemon.config, daemon.listen, ENV).start()
    await restarted.wait_ready()
    hits = target_server.hits
    await until(lambda: target_server.hits >= hits + 3, what="probes after restart")
    await receiver.wait_quiet(0.3)
    assert [h["status"] for h in sent(receiver, "/hook")] == ["firing"]
    assert len(sent(receiver, "/chat")) == 1
    assert await restarted.stop() == 0


async def test_a_second_daemon_on_a_symlink_to_the_state_file_refuses_to_start(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    first = await start_daemon(tmp_path, target_server, receiver)
    alias = tmp_path / "alias.db"
    alias.symlink_to(tmp_path / "state.db")
    config = tmp_path / "second.toml"
    config.write_text(
        first.config.read_text()
        .replace(str(tmp_path / "state.db"), str(alias))
        .replace(first.listen, second_listen := listen_address())
    )
    second = await Daemon(config, second_listen, ENV).start()
    assert await second.wait(timeout=10) == 2
    assert any("in use by another vigild" in line for line in second.log)
    assert await first.stop() == 0
