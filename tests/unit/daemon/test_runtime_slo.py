"""A reload keeps an unchanged target's SLO windows; a changed one starts afresh."""

from __future__ import annotations

from pathlib import Path

from targets import closed_port

from vigild.assembly import Config, load
from vigild.daemon.runtime import Runtime


def config(tmp_path: Path, objective: float, port: int) -> Config:
    path = tmp_path / "vigild.toml"
    path.write_text(
        f'[daemon]\nstate_path = "{tmp_path / "state.db"}"\n'
        f'[[targets]]\nname = "api"\ntype = "http"\nurl = "http://127.0.0.1:{port}/"\n'
        f"slo = {{ objective = {objective} }}\n"
        f'[[targets]]\nname = "plain"\ntype = "http"\nurl = "http://127.0.0.1:{port}/"\n'
    )
    return load(path)


async def test_reload_keeps_the_windows_of_an_unchanged_target(tmp_path: Path) -> None:
    port = closed_port()
    runtime = await Runtime(config(tmp_path, 99.0, port)).open()
    try:
        await runtime.run_cycle()  # refused: a bad event
        api, plain = runtime.parts.watched
        assert plain.derived is None
        assert api.derived is not None
        [objective] = api.derived.objectives
        assert objective.budget.windows[3600.0].sums(runtime.clock()) == (1.0, 1.0)

        same = runtime.prepare(config(tmp_path, 99.0, port))
        assert same.watched[0].derived is api.derived
        changed = runtime.prepare(config(tmp_path, 99.5, port))
        assert changed.watched[0].derived is not api.derived
        assert changed.watched[0].derived is not None
        await runtime.discard(same)
        await runtime.discard(changed)
    finally:
        await runtime.close(drain=0.0)
