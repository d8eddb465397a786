"""A probe from outside vigild, registered through the ``vigild.probes`` entry points,
is configured, validated and run like a built-in one; and loading the config loads
no probe, alerting or threshold module."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from process import environment, run

PLUGIN = """
from __future__ import annotations

from typing import Literal

from vigild.config import TargetConfig
from vigild.model import Observation
from vigild.probes.base import Probe


class DiceTarget(TargetConfig):
    REPORTED = frozenset({"up", "pips"})

    type: Literal["dice"] = "dice"
    pips: int = 6


class DiceProbe(Probe):
    Options = DiceTarget
    target: DiceTarget

    async def probe(self, now: float) -> tuple[Observation]:
        return (Observation(self.target.name, now, True, None, {"pips": float(self.target.pips)}),)
"""


def install_plugin(site: Path) -> dict[str, str]:
    """A distribution on ``site`` registering ``dice``, as pip would leave it."""
    (site / "dice_probe.py").write_text(PLUGIN, encoding="utf-8")
    info = site / "dice_probe-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dice-probe\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[vigild.probes]\ndice = dice_probe:DiceProbe\n")
    return environment(PYTHONPATH=str(site))


def write(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


async def test_a_third_party_probe_runs_and_its_thresholds_are_checked(tmp_path: Path) -> None:
    env = install_plugin(tmp_path)
    config = write(
        tmp_path / "vigild.toml",
        f"""\
        [daemon]
        state_path = "{tmp_path / "state.db"}"

        [[targets]]
        name = "roll"
        type = "dice"
        pips = 5
        thresholds.pips = {{ warning = 3, critical = 4 }}
        """,
    )
    once = await run("--once", "--config", str(config), "--format", "json", env=env)
    assert once.returncode == 2, once.stderr
    (target,) = once.json["targets"]
    assert target["observation"]["metrics"] == {"up": 1.0, "pips": 5.0}
    assert {v["metric"]: v["severity"] for v in target["verdicts"]}["pips"] == "critical"

    broken = write(
        tmp_path / "broken.toml",
        """\
        [[targets]]
        name = "roll"
        type = "dice"
        thresholds.cpu_percent = { warning = 1, critical = 2 }

        [[targets]]
        name = "again"
        type = "dice"
        sides = 6

        [[targets]]
        name = "toss"
        type = "coin"
        """,
    )
    checked = await run("check-config", "--config", str(broken), env=env)
    assert checked.returncode == 2
    assert checked.stderr.splitlines() == [
        f'{broken}: targets[0] "roll".thresholds.cpu_percent: dice targets do not report '
        "'cpu_percent' (they report: pips, up)",
        f'{broken}: targets[1] "again".sides: unknown key',  # nothing near it to suggest
        f"{broken}: targets[2] \"toss\".type: unknown type 'coin' (expected one of: "
        "container, dice, host, http, prometheus, push, tcp, tls)",
        f"{broken}: invalid (3 problems)",
    ]


def loaded_after(statement: str) -> list[str]:
    """The vigild modules a fresh interpreter holds after ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    return [m for m in json.loads(done.stdout) if m.startswith("vigild")]


def test_importing_the_config_loads_no_probe_alerting_or_threshold_module() -> None:
    loaded = loaded_after("import vigild.config")
    assert loaded == [
        "vigild",
        "vigild.config",
        "vigild.config_slo",
        "vigild.fields",
        "vigild.model",
    ]


def test_importing_a_probe_loads_no_threshold_or_alerting_module() -> None:
    for probe in ("http", "host", "prometheus", "container", "tls", "tcp"):
        loaded = loaded_after(f"import vigild.probes.{probe}")
        assert "vigild.thresholds" not in loaded, probe
        assert not [m for m in loaded if m.startswith("vigild.alerting")], probe
