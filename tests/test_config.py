"""Loading thresholds.toml: every error names the file, the key path and the reason."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from vigild.config import ConfigError, HttpTarget, find_config, load, parse_duration

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """
[[targets]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/health"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text))
    return info.value.problems


def test_shipped_config_is_valid_and_carries_the_usual_numbers() -> None:
    config = load(ROOT / "thresholds.toml")
    host = config.rules["host"]
    assert (host["cpu_percent"].warning, host["cpu_percent"].critical) == (75, 80)
    assert (host["memory_percent"].warning, host["memory_percent"].critical) == (75, 85)
    assert host["cpu_percent"].for_ == 60
    assert [t.type for t in config.targets] == ["host"]
    assert str(config.daemon.state_path) == "vigild-state.db"


def test_builtin_defaults_apply_to_what_a_target_reports(tmp_path: Path) -> None:
    config = load(write(tmp_path, MINIMAL))
    rules = config.rules["api"]
    assert set(rules) == {"up", "latency_seconds", "health_status"}
    assert (rules["latency_seconds"].warning, rules["latency_seconds"].critical) == (5, 10)
    assert config.daemon.interval == 30 and config.alerting.repeat_interval == 4 * 3600
    target = config.targets[0]
    assert isinstance(target, HttpTarget)
    assert target.effective_timeout(config.daemon) == 10
    assert target.max_body == 2**20


def test_thresholds_merge_key_by_key(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            """
[thresholds]
latency_seconds = { warning = 2 }
[[targets]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
thresholds.latency_seconds = { for = "2m", runbook = "https://wiki/x" }
""",
        )
    )
    rule = config.rules["api"]["latency_seconds"]
    assert (rule.warning, rule.critical, rule.for_, rule.runbook) == (2, 10, 120, "https://wiki/x")
    assert rule.explicit


def test_direction_is_inferred_and_checked(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            MINIMAL + "thresholds.latency_seconds = { warning = 3, critical = 1 }\n",
        )
    )
    assert config.rules["api"]["latency_seconds"].direction == "below"
    found = problems(
        tmp_path,
        MINIMAL
        + 'thresholds.latency_seconds = { warning = 3, critical = 1, direction = "above" }\n',
    )
    assert len(found) == 1
    assert found[0].startswith(
        f"{tmp_path}/thresholds.toml: targets[0].thresholds.latency_seconds:"
    )
    assert "warning (3) is above critical (1)" in found[0]


def test_unknown_keys_are_errors_with_their_path(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MINIMAL
        + "thresholds.latency_seconds = { warnign = 3 }\n"
        + '[daemon]\nintervall = "10s"\n[alerting]\nrepeat = "1h"\n',
    )
    assert any("targets[0].thresholds.latency_seconds.warnign: unknown key" in p for p in found)
    assert any("daemon.intervall: unknown key" in p for p in found)
    assert any("alerting.repeat: unknown key" in p for p in found)


def test_bad_values_name_the_key(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
[[targets]]
name = "api"
type = "http"
url = "ftp://example"
interval = "soon"
thresholds.latency_seconds = { warning = "fast" }
""",
    )
    text = "\n".join(found)
    assert "targets[0].url: url must start with http:// or https://" in text
    assert "targets[0].interval: invalid duration 'soon'" in text
    assert "targets[0].thresholds.latency_seconds.warning: Input should be a valid number" in text
    assert "Traceback" not in text


def test_threshold_on_a_metric_the_type_does_not_report(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + "thresholds.cpu_percent = { warning = 1 }\n")
    assert "targets[0].thresholds.cpu_percent: http targets do not report 'cpu_percent'" in found[0]


def test_up_takes_only_timing(tmp_path: Path) -> None:
    config = load(write(tmp_path, '[thresholds]\nup = { for = "1m" }\n' + MINIMAL))
    assert config.rules["api"]["up"].for_ == 60
    found = problems(tmp_path, "[thresholds]\nup = { critical = 1 }\n" + MINIMAL)
    assert "thresholds.up: `up` takes only for, recover_for and runbook" in found[0]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("2d", 172800), (15, 15)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "1h 30", "-5s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_interpolation_defaults_and_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cr3t-token")
    monkeypatch.delenv("MISSING_PORT", raising=False)
    config = load(
        write(
            tmp_path,
            """
[[targets]]
name = "api"
type = "http"
url = "http://127.0.0.1:${MISSING_PORT:-8080}/health"
headers = { Authorization = "Bearer ${HOOK_TOKEN}", Price = "$$5" }
""",
        )
    )
    target = config.targets[0]
    assert isinstance(target, HttpTarget)
    assert target.url == "http://127.0.0.1:8080/health"
    assert target.headers == {"Authorization": "Bearer s3cr3t-token", "Price": "$5"}
    assert config.secrets == {"s3cr3t-token"}
    assert config.redact("Bearer s3cr3t-token") == "Bearer ***"


def test_unset_variable_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    found = problems(tmp_path, MINIMAL.replace("127.0.0.1:1", "${NO_SUCH_VAR}"))
    assert any("targets[0].url: environment variable NO_SUCH_VAR is not set" in p for p in found)


def test_secrets_never_appear_in_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAD_URL", "ftp://hunter2@example")
    found = problems(tmp_path, MINIMAL.replace("http://127.0.0.1:1/health", "${BAD_URL}"))
    assert found and not any("hunter2" in p for p in found)


def test_empty_notifier_url_disables_it_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISCORD_WEBHOOK_URL", raising=False)
    config = load(
        write(
            tmp_path,
            MINIMAL + '[[notifiers]]\nname = "discord"\nurl = "${DISCORD_WEBHOOK_URL:-}"\n',
        )
    )
    assert config.notifiers == ()
    assert config.disabled_notifiers == ("discord",)
    assert config.warnings == ("notifier 'discord' is disabled: its url or key is empty",)


def test_notifier_backend_keys_are_validated(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MINIMAL
        + '[[notifiers]]\nname = "hook"\ntype = "webhook"\n'
        + 'url = "http://127.0.0.1:1/"\nheaderz = {}\n'
        + '[[notifiers]]\nname = "x"\ntype = "carrier-pigeon"\n',
    )
    text = "\n".join(found)
    assert "notifiers[0].headerz: unknown key" in text
    assert "notifiers[1].type: unknown notifier type 'carrier-pigeon'" in text


def test_daemon_keys_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGILD_LISTEN", "127.0.0.1:9999")
    monkeypatch.setenv("VIGILD_INTERVAL", "15s")
    monkeypatch.setenv("VIGILD_CONFIG", "/elsewhere.toml")  # not a [daemon] key: ignored here
    monkeypatch.setenv("VIGILD_SOMETHING_ELSE", "x")
    config = load(write(tmp_path, '[daemon]\nlisten = "127.0.0.1:1"\n' + MINIMAL))
    assert config.daemon.listen == "127.0.0.1:9999"
    assert config.daemon.interval == 15
    monkeypatch.setenv("VIGILD_INTERVAL", "often")
    found = problems(tmp_path, MINIMAL)
    assert any("VIGILD_INTERVAL (environment): invalid duration 'often'" in p for p in found)


def test_fleet_identity_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = load(write(tmp_path, MINIMAL)).daemon
    assert (daemon.instance, daemon.external_labels, daemon.replica) == (
        socket.gethostname(),
        {},
        None,
    )
    text = '[daemon]\ninstance = "unraid"\nexternal_labels = { env = "prod" }\nreplica = "b"\n'
    daemon = load(write(tmp_path, text + MINIMAL)).daemon
    assert (daemon.instance, daemon.external_labels, daemon.replica) == (
        "unraid",
        {"env": "prod"},
        "b",
    )
    monkeypatch.setenv("VIGILD_INSTANCE", "nas-2")
    assert load(write(tmp_path, text + MINIMAL)).daemon.instance == "nas-2"


@pytest.mark.parametrize(
    ("daemon", "reason"),
    [
        ('instance = " "', "daemon.instance: instance must not be empty"),
        ('external_labels = { "site-name" = "x" }', "'site-name' is not a Prometheus label name"),
        ('external_labels = { __meta = "x" }', "'__meta' is not a Prometheus label name"),
        ('external_labels = { "1st" = "x" }', "'1st' is not a Prometheus label name"),
        ('external_labels = { instance = "x" }', "'instance' is a label vigild sets"),
        ('external_labels = { severity = "x" }', "'severity' is a label vigild sets"),
        ('external_labels = { env = "" }', "external label 'env' is empty"),
        ("external_labels = { env = 1 }", "daemon.external_labels.env"),
    ],
)
def test_bad_fleet_identity(tmp_path: Path, daemon: str, reason: str) -> None:
    found = problems(tmp_path, f"[daemon]\n{daemon}\n" + MINIMAL)
    assert any(reason in p for p in found), found


def test_features_not_built_yet_fail_loudly(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
[daemon]
shard = 1
retention = "7d"
[[targets]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
""",
    )
    text = "\n".join(found)
    for where in ("daemon.shard", "daemon.retention"):
        assert (
            f"{where}: " in text
            and "not supported yet" in text.split(f"{where}: ")[1].split("\n")[0]
        )


def test_references_must_name_targets(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
[daemon]
connectivity_check = "router"
[[targets]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
depends_on = ["db", "api"]
""",
    )
    assert any(p.endswith("daemon.connectivity_check: no target named 'router'") for p in found)
    assert any(p.endswith("targets[0].depends_on: no target named 'db'") for p in found)
    assert any(p.endswith("targets[0].depends_on: a target cannot depend on itself") for p in found)


def test_silences_need_a_span_and_a_valid_schedule(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MINIMAL
        + """
[[silences]]
matchers = { target = "api" }
[[silences]]
schedule = "Sun 02:00-04:00"
timezone = "Mars/Olympus"
[[silences]]
schedule = "Someday 02:00-04:00"
[[silences]]
schedule = "Sat,Sun 23:00-01:00"
timezone = "Europe/Berlin"
comment = "weekly maintenance"
""",
    )
    text = "\n".join(found)
    assert "silences[0]: a silence needs ends, duration or schedule" in text
    assert "silences[1]: unknown time zone 'Mars/Olympus'" in text
    assert "silences[2]: 'someday' is not a day" in text
    assert "silences[3]" not in text


def test_duplicate_names_and_unknown_types(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + MINIMAL + '[[targets]]\nname = "z"\ntype = "smtp"\n')
    text = "\n".join(found)
    assert "targets[1].name: duplicate target name 'api'" in text
    expected = "container, host, http, prometheus, tcp, tls"
    assert f"targets[2].type: unknown type 'smtp' (expected one of: {expected})" in text


def test_broken_toml_is_one_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "[[targets]\nname=")
    assert len(found) == 1 and found[0].startswith(f"{tmp_path}/thresholds.toml: not valid TOML")


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VIGILD_CONFIG", raising=False)
    assert find_config("/given.toml") == Path("/given.toml")
    monkeypatch.setenv("VIGILD_CONFIG", "/from-env.toml")
    assert find_config(None) == Path("/from-env.toml")
    monkeypatch.delenv("VIGILD_CONFIG")
    write(tmp_path, MINIMAL)
    assert find_config(None) == Path("thresholds.toml")
