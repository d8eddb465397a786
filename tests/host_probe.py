"""The host probe as the tests build it: from keys, or from a config file's one host target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vigild.assembly import Config, load
from vigild.probes.host import HostProbe, HostTarget


def make_probe(probe_timeout: float = 5.0, **keys: Any) -> HostProbe:
    target = HostTarget.model_validate({"name": "host", "type": "host", **keys})
    return HostProbe(target, probe_timeout)


def load_config(tmp_path: Path, *host_lines: str) -> Config:
    path = tmp_path / "thresholds.toml"
    path.write_text(
        '[[targets]]\nname = "host"\ntype = "host"\ndisks = []\n' + "\n".join(host_lines) + "\n"
    )
    return load(path)


def make_probe_from(config: Config) -> HostProbe:
    (target,) = config.targets
    assert isinstance(target, HostTarget)
    return HostProbe(target, 5.0)
