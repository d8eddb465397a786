"""Loading thresholds.toml: every error names the file, the key path and the reason."""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from vigild.assembly import load
from vigild.config import ConfigError
from vigild.config_file import find_config, load_daemon
from vigild.fields import parse_duration
from vigild.probes.http import HttpTarget

ROOT = Path(__file__).resolve().parents[2]

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
        f'{tmp_path}/thresholds.toml: targets[0] "api".thresholds.latency_seconds:'
    )
    assert "warning (3) is above critical (1)" in found[0]


def test_unknown_keys_are_errors_with_their_path(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MINIMAL
        + "thresholds.latency_seconds = { warnign = 3 }\n"
        + '[daemon]\nintervall = "10s"\n[alerting]\nrepeat = "1h"\n',
    )
    assert any(
        'targets[0] "api".thresholds.latency_seconds.warnign: unknown key' in p for p in found
    )
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
    assert 'targets[0] "api".url: url must start with http:// or https://' in text
    assert "targets[0] \"api\".interval: invalid duration 'soon'" in text
    assert (
        'targets[0] "api".thresholds.latency_seconds.warning: Input should be a valid number'
        in text
    )
    assert "Traceback" not in text


def test_threshold_on_a_metric_the_type_does_not_report(tmp_path: Path) -> None:
    found = problems(tmp_path, MINIMAL + "thresholds.cpu_percent = { warning = 1 }\n")
    assert (
        "targets[0] \"api\".thresholds.cpu_percent: http targets do not report 'cpu_percent'"
        in found[0]
    )


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


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "1h 30", "-5s", "1e3s", "٣s"])
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
    assert any(
        'targets[0] "api".url: environment variable NO_SUCH_VAR is not set' in p for p in found
    )


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
    assert 'notifiers[0] "hook".headerz: unknown key; did you mean "headers"?' in text
    assert "notifiers[1] \"x\".type: unknown notifier type 'carrier-pigeon'" in text


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


def test_external_labels_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = '[daemon]\nexternal_labels = { site = "attic", env = "test" }\n' + MINIMAL
    monkeypatch.setenv("VIGILD_EXTERNAL_LABELS", '{"env": "prod"}')  # JSON, over the file's
    assert load(write(tmp_path, text)).daemon.external_labels == {"site": "attic", "env": "prod"}
    monkeypatch.setenv("VIGILD_EXTERNAL_LABELS", "env=prod")  # a problem, not a traceback
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'thresholds.toml'}: VIGILD_EXTERNAL_LABELS (environment): "
        "not valid JSON: Expecting value: line 1 column 1 (char 0)"
    ]


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
    assert any(p.endswith("targets[0] \"api\".depends_on: no target named 'db'") for p in found)
    assert any(p.endswith("targets: depends_on cycle api -> api") for p in found)


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
    assert "targets[1] \"api\".name: duplicate target name 'api'" in text
    expected = "container, host, http, prometheus, push, tcp, tls"
    assert f"targets[2] \"z\".type: unknown type 'smtp' (expected one of: {expected})" in text


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


# ---------------------------------------------------------------------------
# Bounds: whatever loads, runs


def http_target(name: str, extra: str = "") -> str:
    return f'[[targets]]\nname = "{name}"\ntype = "http"\nurl = "http://127.0.0.1:1/"\n{extra}\n'


@pytest.mark.parametrize(
    ("interval", "timeout"), [("1s", 0.8), ("5s", 4.0), ("12.5s", 10.0), ("1d", 10.0)]
)
def test_default_timeout_is_the_smaller_of_10s_and_most_of_the_interval(
    tmp_path: Path, interval: str, timeout: float
) -> None:
    config = load(write(tmp_path, http_target("api", f'interval = "{interval}"')))
    assert config.targets[0].effective_timeout(config.daemon) == timeout


def test_a_timeout_longer_than_the_interval_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = problems(
        tmp_path,
        http_target("slow", 'interval = "10s"\ntimeout = "20s"')
        + http_target("inherits", 'timeout = "45s"')
        + http_target("equal", 'interval = "10s"\ntimeout = "10s"'),
    )
    assert [p.split(": ", 1)[1] for p in found] == [
        'targets[0] "slow".timeout: 20s is longer than the target\'s interval (10s): '
        "a timeout must be at most the interval",
        'targets[1] "inherits".timeout: 45s is longer than the target\'s interval (30s): '
        "a timeout must be at most the interval",
    ]
    # The [daemon] interval may come from the environment: checked against that one.
    monkeypatch.setenv("VIGILD_INTERVAL", "5s")
    found = problems(tmp_path, http_target("api", 'timeout = "6s"'))
    assert any(
        'targets[0] "api".timeout: 6s is longer than the target\'s interval (5s)' in p
        for p in found
    )


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"x": ["y"], "y": ["x"]}, "x -> y -> x"),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "a -> b -> c -> a"),
        ({"solo": ["solo"]}, "solo -> solo"),
        ({"w": ["x"], "x": ["y"], "y": ["z"], "z": ["x"]}, "x -> y -> z -> x"),
    ],
)
def test_a_depends_on_cycle_is_an_error_naming_it(
    tmp_path: Path, edges: dict[str, list[str]], cycle: str
) -> None:
    text = "".join(http_target(name, f"depends_on = {deps!r}") for name, deps in edges.items())
    found = problems(tmp_path, text.replace("'", '"'))
    assert found == [f"{tmp_path}/thresholds.toml: targets: depends_on cycle {cycle}"]


def test_a_long_dependency_chain_is_fine_and_a_long_loop_is_found(tmp_path: Path) -> None:
    count = sys.getrecursionlimit() + 100  # deeper than that: the walk must not recurse
    last = count - 1
    chain = "".join(
        http_target(f"t{i}", f'depends_on = ["t{i - 1}"]' if i else "") for i in range(count)
    )
    assert len(load(write(tmp_path, chain)).targets) == count
    looped = chain.replace('name = "t0"', f'name = "t0"\ndepends_on = ["t{last}"]')
    found = problems(tmp_path, looped)
    assert len(found) == 1
    assert f"targets: depends_on cycle t0 -> t{last} -> t{last - 1} -> " in found[0]
    assert found[0].endswith(" -> t2 -> t1 -> t0")


def test_connectivity_check_must_depend_on_nothing(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        '[daemon]\nconnectivity_check = "router"\n'
        + http_target("router", 'depends_on = ["modem"]')
        + http_target("modem"),
    )
    assert found == [
        f"{tmp_path}/thresholds.toml: daemon.connectivity_check: target 'router' must depend "
        "on nothing (it has depends_on = ['modem'])"
    ]


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("[daemon]\ninterval = 1e300", "daemon.interval", "must be between 1s and 1d"),
        ('[daemon]\ninterval = "999999999999999999999d"', "daemon.interval", "between 1s and 1d"),
        (http_target("api", 'interval = "1ms"'), 'targets[0] "api".interval', "between 1s and 1d"),
        ('[daemon]\ninterval = "0.999s"', "daemon.interval", "between 1s and 1d"),
        ('[daemon]\ninterval = "1d1ms"', "daemon.interval", "between 1s and 1d"),
        ("[daemon]\ninterval = 1" + "0" * 400, "daemon.interval", "a finite number of seconds"),
        ("[daemon]\ninterval = nan", "daemon.interval", "a finite number of seconds"),
        ("[daemon]\ninterval = -inf", "daemon.interval", "a finite number of seconds"),
        ("[daemon]\ninterval = true", "daemon.interval", "expected a duration"),
        (
            http_target("api", 'timeout = "50ms"'),
            'targets[0] "api".timeout',
            "between 100ms and 1d",
        ),
        (
            http_target("api", 'max_body = "2GiB"'),
            'targets[0] "api".max_body',
            "between 256B and 1GiB",
        ),
        (http_target("api", "max_body = 10"), 'targets[0] "api".max_body', "between 256B and 1GiB"),
        (
            http_target("api", 'max_body = "' + "9" * 30 + '"'),
            'targets[0] "api".max_body',
            "invalid",
        ),
        ('[alerting]\nrepeat_interval = "1s"', "alerting.repeat_interval", "between 1m and 30d"),
        ('[alerting]\ngroup_wait = "1h"', "alerting.group_wait", "between 0s and 5m"),
        ('[thresholds]\nup = { recover_for = "8d" }', "thresholds.up.recover_for", "0s and 7d"),
        (
            '[[notifiers]]\nname = "h"\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\ntimeout = 0',
            'notifiers[0] "h".timeout',
            "between 100ms and 5m",
        ),
        (
            '[[notifiers]]\nname = "h"\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\n'
            'repeat_interval = "10s"',
            'notifiers[0] "h".repeat_interval',
            "between 1m and 30d",
        ),
        (
            '[[targets]]\nname = "c"\ntype = "container"\ncontainer = "c"\nrestart_window = "1s"',
            'targets[0] "c".restart_window',
            "between 1m and 30d",
        ),
        ('[[silences]]\nduration = "0s"', "silences[0].duration", "between 1s and 366d"),
        (
            '[[actions]]\nname = "a"\ntype = "command"\ncommand = ["true"]\ncooldown = "60d"',
            'actions[0] "a".cooldown',
            "between 0s and 30d",
        ),
        (
            '[[actions]]\nname = "a"\ntype = "command"\ncommand = ["true"]\ntimeout = "2d"',
            'actions[0] "a".timeout',
            "between 1s and 1d",
        ),
        (
            '[[actions]]\nname = "a"\ntype = "command"\ncommand = ["true"]\nverify_after = "2d"',
            'actions[0] "a".verify_after',
            "between 0s and 1d",
        ),
        (
            '[[actions]]\nname = "a"\ntype = "container"\ncontainer = "c"\nstop_wait = "1h"',
            'actions[0] "a".stop_wait',
            "between 0s and 10m",
        ),
    ],
)
def test_every_duration_and_size_is_bounded(
    tmp_path: Path, text: str, where: str, reason: str
) -> None:
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path}/thresholds.toml: {where}: ") and reason in found[0]


def test_the_edges_of_each_range_are_accepted(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            '[daemon]\ninterval = "1d"\n[alerting]\ngroup_wait = 0\nrepeat_interval = "30d"\n'
            + http_target("fast", 'interval = "1s"\ntimeout = "1s"\nmax_body = 256')
            + http_target("big", 'timeout = "100ms"\nmax_body = "1GiB"'),
        )
    )
    fast, big = config.targets
    assert (
        fast.effective_interval(config.daemon) == 1
        and big.effective_interval(config.daemon) == 86400
    )
    assert (fast.max_body, big.max_body) == (256, 2**30)


def test_the_documented_bounds_are_the_enforced_ones() -> None:
    """docs/configuration.md has one table of bounds; each row is what the code checks."""
    from vigild import config as config_module
    from vigild import plugins
    from vigild.alerting.actions.command import CommandOptions
    from vigild.alerting.actions.container import ContainerOptions
    from vigild.config_sections import ContainerDiscoveryConfig, HistoryConfig
    from vigild.config_slo import ForecastSpec, SloAlert, SloSpec
    from vigild.fields import Bounds
    from vigild.probes.base import GROUP as PROBES
    from vigild.probes.base import backend as probe_backend

    models: list[type[BaseModel]] = [
        config_module.DaemonConfig,
        config_module.AlertingConfig,
        HistoryConfig,
        ContainerDiscoveryConfig,
        config_module.ThresholdSpec,
        config_module.SilenceConfig,
        config_module.NotifierConfig,
        config_module.ActionWhen,
        config_module.ActionConfig,
        CommandOptions,
        ContainerOptions,
        SloSpec,
        SloAlert,
        ForecastSpec,
        *(probe_backend(kind).Options for kind in plugins.names(PROBES)),
    ]
    enforced = set()
    for model in models:
        for name, info in model.model_fields.items():
            annotation = info.annotation
            metadata = [*info.metadata, *_nested_metadata(annotation)]
            for bounds in metadata:
                if isinstance(bounds, Bounds):
                    key = info.alias or name
                    enforced.add((key, bounds.show(bounds.low), bounds.show(bounds.high)))
    docs = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = docs.split("## Bounds", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`"):
            low, high = cells[1].strip("`"), cells[2].strip("`")
            for key in re.findall(r"`([a-z_.]+)`", cells[0]):
                documented.add((key.rpartition(".")[2], low, high))
    assert enforced == documented


def _nested_metadata(annotation: object) -> list[object]:
    """The metadata of ``Annotated[...]`` inside ``X | None``."""
    found: list[object] = []
    for arg in getattr(annotation, "__args__", ()):
        found.extend(getattr(arg, "__metadata__", ()))
    return found


def test_names_must_be_printable(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        http_target("api\\u001b[2J")
        + http_target("line\\nbreak")
        + '[[notifiers]]\nname = "bell\\u0007"\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\n'
        + '[[actions]]\nname = "tab\\there"\ntype = "command"\ncommand = ["true"]\n',
    )
    text = "\n".join(found)
    reason = "a name may hold only printable characters, not"
    # The name beside the index is quoted as JSON: its control character stays escaped.
    assert f"targets[0] \"api\\u001b[2J\".name: {reason} '\\x1b' (at 3)" in text
    assert f"targets[1] \"line\\nbreak\".name: {reason} '\\n' (at 4)" in text
    assert f"notifiers[0] \"bell\\u0007\".name: {reason} '\\x07' (at 4)" in text
    assert f"actions[0] \"tab\\there\".name: {reason} '\\t' (at 3)" in text
    config = load(write(tmp_path, http_target("café ☕ 東京 web-1")))
    assert config.targets[0].name == "café ☕ 東京 web-1"


# ---------------------------------------------------------------------------
# Notifier URLs


def notifier(kind: str, body: str) -> str:
    return f'[[notifiers]]\nname = "n"\ntype = "{kind}"\n{body}\n'


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        (
            notifier("webhook", 'url = "http://127.0.0.1:99999/hook"'),
            'notifiers[0] "n".url',
            "url must have a port between 1 and 65535",
        ),
        (
            notifier("alertmanager", 'urls = ["http://am:9093", "https://am:0"]'),
            'notifiers[0] "n".urls',
            "every url must have a port between 1 and 65535",
        ),
        (
            notifier("pagerduty", 'routing_key = "k"\nevents_url = "https://[::1:443/v2"'),
            'notifiers[0] "n".events_url',
            "events_url is not a valid URL",
        ),
        (
            notifier("apprise", 'url = "jsxn://secret-token@host"'),
            'notifiers[0] "n".url',
            "apprise cannot use this url (scheme jsxn://): unknown scheme or malformed url",
        ),
        (
            http_target("api").replace("127.0.0.1:1", "127.0.0.1:65536"),
            'targets[0] "api".url',
            "url must have a port between 1 and 65535",
        ),
    ],
)
def test_notifier_urls_are_parsed_at_load(
    tmp_path: Path, text: str, where: str, reason: str
) -> None:
    found = problems(tmp_path, text)
    assert found == [f"{tmp_path}/thresholds.toml: {where}: {reason}"]


def test_once_may_skip_parsing_apprise_urls_and_only_those(tmp_path: Path) -> None:
    path = write(tmp_path, notifier("apprise", 'url = "jsxn://host"'))
    config = load(path, check_notifier_urls=False)
    assert [n.name for n in config.notifiers] == ["n"]
    path.write_text(notifier("webhook", 'url = "http://127.0.0.1:99999/"'))
    with pytest.raises(ConfigError, match="port between 1 and 65535"):
        load(path, check_notifier_urls=False)


# ---------------------------------------------------------------------------
# Files that cannot be loaded: one line each


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            "a = " + "[" * 10_000 + "]" * 10_000,
            "not valid TOML: arrays or tables nested too deeply",
        ),
        (
            "a = " + "{b=" * 10_000 + "1" + "}" * 10_000,
            "not valid TOML: arrays or tables nested too deeply",
        ),
        ("[daemon]\nconcurrency = 1" + "0" * 5000, "not valid TOML: Exceeds the limit"),
        ("[[targets]\n", "not valid TOML: "),
    ],
)
def test_a_file_that_cannot_be_parsed_is_one_line(
    tmp_path: Path, content: str, reason: str
) -> None:
    found = problems(tmp_path, content)
    assert len(found) == 1 and found[0].startswith(f"{tmp_path}/thresholds.toml: {reason}")


def test_unreadable_files_are_one_line(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[[targets]]\nname = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load(latin1)
    assert info.value.problems == [f"{latin1}: not UTF-8 text (at byte 23)"]
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert info.value.problems == [f"{tmp_path}: is a directory, not a config file"]


def test_external_url_is_an_http_url_and_optional(tmp_path: Path) -> None:
    assert load(write(tmp_path, MINIMAL)).daemon.external_url is None
    shown = '[daemon]\nexternal_url = "https://vigil.example.net/vigild/"\n' + MINIMAL
    assert load(write(tmp_path, shown)).daemon.external_url == "https://vigil.example.net/vigild/"
    assert (
        load(write(tmp_path, '[daemon]\nexternal_url = ""\n' + MINIMAL)).daemon.external_url is None
    )
    [problem] = problems(tmp_path, '[daemon]\nexternal_url = "vigil.example.net"\n' + MINIMAL)
    assert "external_url must start with http:// or https://" in problem


def test_the_daemon_section_alone_needs_only_its_own_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``silence``, ``actions history`` and ``healthcheck`` read: a variable only
    the daemon's environment holds is no problem, one its listener needs is."""
    text = """
[daemon]
listen = "${LISTEN_HOST}:9469"
api_token = "${API_TOKEN}"

[[targets]]
name = "api"
type = "http"
url = "${TARGET_URL}"

[[notifiers]]
name = "hook"
type = "webhook"
url = "https://hooks.example/${HOOK_KEY}"
"""
    path = write(tmp_path, text)
    monkeypatch.setenv("LISTEN_HOST", "127.0.0.1")
    monkeypatch.setenv("HOOK_KEY", "k3y-9d2")
    section = load_daemon(path)
    assert section.daemon.listen == "127.0.0.1:9469"
    assert section.daemon.api_token is None  # the cookie stands in for it
    assert "k3y-9d2" in section.secrets  # set anywhere: redacted everywhere

    monkeypatch.setenv("API_TOKEN", "tok$$en")
    assert load_daemon(path).daemon.api_token == "tok$$en"  # interpolated once, not twice

    monkeypatch.delenv("LISTEN_HOST")
    with pytest.raises(ConfigError) as info:
        load_daemon(path)
    [problem] = info.value.problems
    assert "daemon.listen" in problem and "LISTEN_HOST is not set" in problem


# ---------------------------------------------------------------------------
# How problems read


def test_a_key_path_names_the_entry_beside_its_index(tmp_path: Path) -> None:
    found = problems(
        tmp_path, http_target("api") + http_target("db") + http_target("svc", 'intervall = "5s"')
    )
    assert found == [
        f'{tmp_path}/thresholds.toml: targets[2] "svc".intervall: unknown key; '
        'did you mean "interval"?'
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[deamon]\ninterval = "5s"\n', 'deamon: unknown key; did you mean "daemon"?'),
        ('[daemon]\nintervall = "5s"\n', 'daemon.intervall: unknown key; did you mean "interval"?'),
        (
            '[alerting]\nrepeat_intervall = "1h"\n',
            'alerting.repeat_intervall: unknown key; did you mean "repeat_interval"?',
        ),
        (
            "[thresholds]\ncpu_percent = { warnign = 3 }\n",
            'thresholds.cpu_percent.warnign: unknown key; did you mean "warning"?',
        ),
        (
            "[thresholds]\ncpu_percent = { fro = '1m' }\n",
            'thresholds.cpu_percent.fro: unknown key; did you mean "for"?',
        ),
        (
            http_target("api", "thresholds.latency_seconds = { critcal = 3 }"),
            'targets[0] "api".thresholds.latency_seconds.critcal: unknown key; '
            'did you mean "critical"?',
        ),
        (
            '[[targets]]\nname = "box"\ntype = "host"\ndisk = ["/"]\n',
            'targets[0] "box".disk: unknown key; did you mean "disks"?',
        ),
        (
            '[[notifiers]]\nname = "hook"\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\n'
            'min_severty = "critical"\n',
            'notifiers[0] "hook".min_severty: unknown key; did you mean "min_severity"?',
        ),
        (
            '[[notifiers]]\nname = "hook"\ntype = "webhook"\nurl = "http://127.0.0.1:9/"\n'
            "headerz = {}\n",
            'notifiers[0] "hook".headerz: unknown key; did you mean "headers"?',
        ),
        (
            '[[actions]]\nname = "rb"\ntype = "command"\ncommand = ["true"]\ncooldwn = "1m"\n',
            'actions[0] "rb".cooldwn: unknown key; did you mean "cooldown"?',
        ),
        (
            '[[actions]]\nname = "rb"\ntype = "command"\ncommand = ["true"]\n'
            'when = { severty = "critical" }\n',
            'actions[0] "rb".when.severty: unknown key; did you mean "severity"?',
        ),
        (
            '[[silences]]\nmatchers = { targt = "api" }\nduration = "1h"\n',
            'silences[0].matchers.targt: unknown key; did you mean "target"?',
        ),
    ],
)
def test_an_unknown_key_gets_the_nearest_known_one_in_every_section(
    tmp_path: Path, text: str, line: str
) -> None:
    assert problems(tmp_path, text) == [f"{tmp_path}/thresholds.toml: {line}"]


def test_an_unknown_key_near_no_known_one_gets_no_guess(tmp_path: Path) -> None:
    found = problems(tmp_path, http_target("api", 'colour = "blue"'))
    assert found == [f'{tmp_path}/thresholds.toml: targets[0] "api".colour: unknown key']


def test_an_unset_variable_is_the_only_problem_of_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_URL", raising=False)
    text = MINIMAL.replace("http://127.0.0.1:1/health", "${NO_SUCH_URL}")
    assert problems(tmp_path, text) == [
        f'{tmp_path}/thresholds.toml: targets[0] "api".url: environment variable NO_SUCH_URL '
        "is not set (write ${NO_SUCH_URL:-} to make it optional)"
    ]
    # The entry's other keys are still checked.
    found = problems(tmp_path, text + 'interval = "soon"\n')
    assert len(found) == 2
    assert "targets[0] \"api\".interval: invalid duration 'soon'" in found[1]


def test_a_name_from_the_environment_is_shown_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SVC_NAME", "secret-service-name")
    found = problems(tmp_path, http_target("${SVC_NAME}", 'intervall = "5s"'))
    assert found[0].startswith(f'{tmp_path}/thresholds.toml: targets[0] "${{SVC_NAME}}".intervall')
    assert "secret-service-name" not in "\n".join(found)


def test_discovery_of_containers_takes_its_defaults(tmp_path: Path) -> None:
    assert load(write(tmp_path, MINIMAL)).discovery.containers is None
    config = load(write(tmp_path, MINIMAL + "[discovery.containers]\n"))
    found = config.discovery.containers
    assert found is not None
    assert (found.engine, found.enable_label, found.retire_after) == (None, "vigild.enable", 300.0)


def test_discovery_keys_are_checked_with_their_path(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        MINIMAL + '[discovery.containers]\nengine = "ssh://host"\nretire_after = "2d"\n'
        'enabel_label = "x"\n[discovery.services]\n',
    )
    assert [p.split(": ")[1] for p in found] == [
        "discovery.containers.engine",
        "discovery.containers.retire_after",
        "discovery.containers.enabel_label",
        "discovery.services",
    ]
