"""The shipped deployment files, read: the systemd unit has what operators expect, and the
Containerfile's environment names real daemon keys (systemd-analyze, hadolint and a
running daemon: tests/system/test_deploy.py)."""

from __future__ import annotations

import re
from pathlib import Path

from vigild.config import DaemonConfig

ROOT = Path(__file__).resolve().parents[2]


def test_service_unit_has_what_operators_expect() -> None:
    unit = (ROOT / "systemd" / "vigild.service").read_text()
    keys = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] not in "#;"
    )
    assert keys["Type"] == "notify"
    assert keys["Restart"] == "on-failure"
    assert keys["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert keys["WatchdogSec"]
    for key in ("DynamicUser", "ProtectHome", "NoNewPrivileges", "PrivateTmp"):
        assert keys[key] == "yes", key
    assert keys["ProtectSystem"] == "strict"
    assert keys["StateDirectory"] == "vigild"
    assert keys["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    assert "#SupplementaryGroups=docker" in unit


def test_containerfile_environment_names_real_daemon_keys() -> None:
    """A renamed [daemon] key must not leave the image configured by a dead variable."""
    text = (ROOT / "Containerfile").read_text()
    names = set(re.findall(r"\b(VIGILD_[A-Z_]+)=", text))
    keys = {f"VIGILD_{name.upper()}" for name in DaemonConfig.model_fields}
    assert names - {"VIGILD_CONFIG"} <= keys, names - keys
    assert "VIGILD_LISTEN=0.0.0.0:9469" in text
    assert re.search(r'HEALTHCHECK [^\n]*\\\n\s+CMD \["vigild", "healthcheck"\]', text)
    assert "EXPOSE 9469" in text and "STOPSIGNAL SIGTERM" in text
