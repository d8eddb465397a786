"""The ``vigild`` command end to end: the real process, real targets, a real receiver.

Every test runs ``python -m vigild`` as a subprocess (tests/process.py) against
a config written to ``tmp_path``; targets are ``target_server`` (a real HTTP
server in a thread) and notifications go to ``receiver`` (a real recording
webhook receiver on the test's loop). Nothing is mocked; all traffic stays on
127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from cli_config import toml_str, write_config
from process import VIGILD, Daemon, Finished, environment, run
from receivers import Receiver
from targets import TargetServer, closed_port

from vigild import __version__
from vigild.storage import StateLock

REPO = Path(__file__).resolve().parents[2]
SECRET = "sekrit-value"


# ---------------------------------------------------------------------------
# Helpers


def http_target(name: str, url: str, extra: str = "") -> str:
    return f'[[targets]]\nname = {toml_str(name)}\ntype = "http"\nurl = {toml_str(url)}\n{extra}\n'


def webhook_notifier(name: str, url: str, extra: str = "") -> str:
    return (
        f'[[notifiers]]\nname = {toml_str(name)}\ntype = "webhook"\n'
        f"url = {toml_str(url)}\n{extra}\n"
    )


def apprise_notifier(name: str, url: str) -> str:
    return f"[[notifiers]]\nname = {toml_str(name)}\nurl = {toml_str(url)}\n"


def log_events(stderr: str, name: str) -> list[dict[str, Any]]:
    """The JSON log lines (vigild logs JSON when stderr is not a terminal) called ``name``."""
    found = []
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == name:
            found.append(event)
    return found


def hook_bodies(receiver: Receiver, path: str = "/hook") -> list[Any]:
    return [r.json for r in receiver.requests if r.path == path]


async def once(config: Path, *extra: str, env: dict[str, str] | None = None) -> Finished:
    return await run("--once", "--config", str(config), *extra, env=env)


def no_traceback(result: Finished) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


# ---------------------------------------------------------------------------
# --version


async def test_version_prints_the_package_version() -> None:
    result = await run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"vigild {__version__}"


# ---------------------------------------------------------------------------
# check-config


async def test_check_config_valid_prints_a_summary(
    tmp_path: Path, target_server: TargetServer
) -> None:
    config = write_config(
        tmp_path,
        http_target("web", target_server.url(), 'interval = "15s"')
        + webhook_notifier("hook", "http://127.0.0.1:9/hook", 'min_severity = "critical"'),
    )
    result = await run("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{config}: valid"
    assert "targets:   1 (http: 1)" in result.stdout
    assert "every 15s: 1" in result.stdout
    assert "hook (webhook, critical+)" in result.stdout
    assert str(tmp_path / "state.db") in result.stdout
    # Validating never probes.
    assert target_server.hits == 0


async def test_check_config_prints_the_identity_alerts_will_carry(
    tmp_path: Path, target_server: TargetServer
) -> None:
    config = write_config(
        tmp_path,
        http_target("db", target_server.url()),
        daemon='external_labels = { site = "eu-1", env = "prod" }\nreplica = "a"',
    )
    env = environment(VIGILD_INSTANCE="unraid")
    result = await run("check-config", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "  instance:  unraid\n  labels:    env=prod, site=eu-1\n  replica:   a\n" in result.stdout
    )
    default = await run("check-config", "--config", str(write_config(tmp_path, "", name="d.toml")))
    assert f"  instance:  {socket.gethostname()}\n" in default.stdout
    assert "  labels:    none\n  replica:   none\n" in default.stdout


async def test_once_json_and_text_name_the_instance(
    tmp_path: Path, target_server: TargetServer
) -> None:
    config = write_config(
        tmp_path,
        http_target("db", target_server.url()),
        daemon='instance = "nas"\nexternal_labels = { env = "prod" }',
    )
    document = (await once(config, "--format", "json")).json
    assert (document["instance"], document["external_labels"]) == ("nas", {"env": "prod"})
    assert document["replica"] is None
    text = await once(config)
    assert text.stdout.startswith(f"vigild {__version__} on nas: 1 target, worst OK")


INVALID = """
[daemon]
intervall = "30s"

[[targets]]
name = "web"
type = "http"
url = "http://127.0.0.1:1/health"
interval = "5 minutes"

[[targets]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/health"
thresholds.latency_seconds = { warning = 3, critical = 1, direction = "above" }
"""


async def test_check_config_invalid_names_file_key_and_reason(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(INVALID, encoding="utf-8")
    result = await run("check-config", "--config", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    no_traceback(result)
    problems = [line for line in result.stderr.splitlines() if line.startswith(f"{config}: ")]
    expected = [
        ("daemon.intervall", "unknown key"),
        ('targets[0] "web".interval', "invalid duration '5 minutes'"),
        ('targets[1] "api".thresholds.latency_seconds', "warning (3) is above critical (1)"),
    ]
    for key, reason in expected:
        matching = [p for p in problems if p.startswith(f"{config}: {key}: ") and reason in p]
        assert len(matching) == 1, (key, reason, result.stderr)
    # One line per problem, plus the closing count.
    assert len([p for p in problems if not p.endswith("problems)")]) == len(expected), result.stderr
    assert f"{config}: invalid (3 problems)" in result.stderr


async def test_run_with_an_invalid_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(INVALID, encoding="utf-8")
    result = await run("run", "--config", str(config), timeout=10)
    assert result.returncode == 2
    assert "daemon.intervall: unknown key" in result.stderr
    no_traceback(result)


@pytest.mark.parametrize("where", ["before", "after"])
async def test_config_option_before_or_after_the_subcommand(tmp_path: Path, where: str) -> None:
    config = write_config(tmp_path, http_target("web", "http://127.0.0.1:1/health"))
    args = (
        ("--config", str(config), "check-config")
        if where == "before"
        else ("check-config", "--config", str(config))
    )
    # cwd has no thresholds.toml: only the option can name the file.
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    result = await run(*args, cwd=empty)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{config}: valid")


async def test_vigild_config_env_is_used_without_option(tmp_path: Path) -> None:
    config = write_config(tmp_path, http_target("from-env", "http://127.0.0.1:1/health"))
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    result = await run("check-config", env=environment(VIGILD_CONFIG=str(config)), cwd=empty)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{config}: valid")
    assert "targets:   1 (http: 1)" in result.stdout


async def test_option_wins_over_vigild_config_env(tmp_path: Path) -> None:
    good = write_config(tmp_path, http_target("web", "http://127.0.0.1:1/health"))
    bad = tmp_path / "bad.toml"
    bad.write_text(INVALID, encoding="utf-8")
    env = environment(VIGILD_CONFIG=str(bad))
    result = await run("check-config", "--config", str(good), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{good}: valid")


async def test_vigild_daemon_env_overrides_and_other_vigild_vars_are_ignored(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, http_target("web", "http://127.0.0.1:1/health"))
    elsewhere = tmp_path / "other-state.db"
    env = environment(VIGILD_STATE_PATH=str(elsewhere), VIGILD_NOT_A_DAEMON_KEY="whatever")
    result = await run("check-config", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert f"state:     {elsewhere}" in result.stdout


async def test_check_config_errors_do_not_show_secrets(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, http_target("web", "http://127.0.0.1:1/health", 'interval = "${TEST_TOKEN}"')
    )
    result = await run("check-config", "--config", str(config), env=environment(TEST_TOKEN=SECRET))
    assert result.returncode == 2
    assert 'targets[0] "web".interval: invalid duration' in result.stderr
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ("interval = 1e300", "daemon.interval: must be between 1s and 1d (got 1e+300)"),
        (
            'interval = "999999999999999999999d"',
            "daemon.interval: must be between 1s and 1d (got '999999999999999999999d')",
        ),
        ('interval = "1ms"', "daemon.interval: must be between 1s and 1d (got '1ms')"),
    ],
)
async def test_run_refuses_what_check_config_refuses(
    tmp_path: Path, setting: str, reason: str
) -> None:
    # Once "valid", then an OverflowError traceback at start (a restart loop under
    # systemd), or a thousand probes a second.
    config = write_config(tmp_path, http_target("web", "http://127.0.0.1:1/"), daemon=setting)
    check = await run("check-config", "--config", str(config))
    started = await run("run", "--config", str(config), timeout=10)
    once_run = await once(config)
    for result in (check, started, once_run):
        no_traceback(result)
        assert f"{config}: {reason}" in result.stderr.splitlines()
    assert (check.returncode, started.returncode, once_run.returncode) == (2, 2, 3)


async def test_an_unusable_apprise_url_is_refused_except_by_once(tmp_path: Path) -> None:
    config = write_config(tmp_path, apprise_notifier("chat", "jsxn://host/sekrit-value"))
    reason = (
        f'{config}: notifiers[0] "chat".url: apprise cannot use this url (scheme jsxn://): '
        "unknown scheme or malformed url"
    )
    for command in ("check-config", "run"):
        result = await run(command, "--config", str(config), timeout=10)
        assert result.returncode == 2 and reason in result.stderr.splitlines(), result.stderr
        assert "sekrit-value" not in result.stderr
    # --once does not import apprise to check: nothing to probe, nothing to send.
    result = await once(config)
    assert result.returncode == 0, result.stderr


async def test_a_reload_refuses_what_check_config_refuses(
    tmp_path: Path, target_server: TargetServer
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    body = http_target("web", target_server.url())
    config = write_config(tmp_path, body)
    config.write_text(config.read_text().replace("listen = ", f'listen = "{listen}"\n# '))
    good = config.read_text()
    daemon = await Daemon(config, listen).start()
    await daemon.wait_ready()
    config.write_text(
        good.replace("[daemon]\n", "[daemon]\ninterval = 1e300\n")
        + apprise_notifier("chat", "jsxn://host")
    )
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log("reload rejected, keeping the running config")
    [rejected] = daemon.events("reload rejected, keeping the running config")
    assert [p.removeprefix(f"{config}: ") for p in rejected["problems"]] == [
        "daemon.interval: must be between 1s and 1d (got 1e+300)",
        'notifiers[0] "chat".url: apprise cannot use this url (scheme jsxn://): '
        "unknown scheme or malformed url",
    ]
    hits = target_server.hits
    await daemon.wait_ready()
    assert await daemon.stop() == 0
    assert target_server.hits >= hits


async def closed_stdout(*args: str) -> tuple[int, str]:
    """``vigild *args`` writing to a pipe whose reader is already gone, as in
    ``vigild check-config | head -1`` once head has read its line."""
    read, write = os.pipe()
    os.close(read)
    try:
        process = await asyncio.create_subprocess_exec(
            *VIGILD, *args, stdout=write, stderr=asyncio.subprocess.PIPE, env=environment()
        )
    finally:
        os.close(write)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (("--version",), 0),
        (("check-config",), 0),
        (("--once",), 2),
        (("--once", "--format", "json"), 2),
        (("actions", "history"), 0),
        (("test-notify",), 0),
    ],
)
async def test_a_reader_that_went_away_is_no_error(
    tmp_path: Path, receiver: Receiver, command: tuple[str, ...], code: int
) -> None:
    config = write_config(
        tmp_path,
        http_target("web", "http://127.0.0.1:1/") + webhook_notifier("hook", receiver.url()),
    )
    returncode, stderr = await closed_stdout(*command, "--config", str(config))
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert returncode == code, stderr


async def test_shipped_config_is_valid() -> None:
    env = environment()
    env.pop("DISCORD_WEBHOOK_URL", None)
    result = await run("check-config", "--config", "thresholds.toml", env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "thresholds.toml: valid" in result.stdout
    assert "host: 1" in result.stdout
    assert "disabled:  discord" in result.stdout


# ---------------------------------------------------------------------------
# --once exit codes and report


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (200, {"status": "ok"}, 0),
        (200, {"status": "degraded"}, 1),
        (503, {"status": "ok"}, 2),
    ],
)
async def test_once_exit_code_is_the_worst_verdict(
    tmp_path: Path, target_server: TargetServer, status: int, body: dict[str, str], code: int
) -> None:
    target_server.status = status
    target_server.body = body
    config = write_config(tmp_path, http_target("web", target_server.url()))
    result = await once(config)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert target_server.hits == 1
    no_traceback(result)


async def test_once_missing_health_status_is_unknown(
    tmp_path: Path, target_server: TargetServer
) -> None:
    target_server.body = {"service": "web", "version": "1.2"}
    config = write_config(
        tmp_path,
        http_target(
            "web", target_server.url(), "thresholds.health_status = { warning = 0, critical = 1 }"
        ),
    )
    result = await once(config)
    assert result.returncode == 3, (result.stdout, result.stderr)
    # Why, in words, on the target's line and on its alert's.
    assert "health UNKNOWN (the JSON body has no status field)" in result.stdout
    assert "web health is UNKNOWN: the JSON body has no status field" in result.stdout
    assert "worst UNKNOWN" in result.stdout


async def test_once_critical_outranks_unknown(tmp_path: Path, target_server: TargetServer) -> None:
    target_server.route("/nostatus", body={"service": "web"})
    target_server.route("/down", status=503)
    explicit = "thresholds.health_status = { warning = 0, critical = 1 }"
    config = write_config(
        tmp_path,
        http_target("unknown-one", target_server.url("/nostatus"), explicit)
        + http_target("critical-one", target_server.url("/down")),
    )
    result = await once(config, "--format", "json")
    assert result.returncode == 2, (result.stdout, result.stderr)
    document = result.json
    assert document["worst"] == "critical"
    assert document["exit_code"] == 2
    verdicts = {
        t["name"]: {v["metric"]: v["severity"] for v in t["verdicts"]} for t in document["targets"]
    }
    assert verdicts["unknown-one"]["health_status"] == "unknown"
    assert verdicts["critical-one"]["up"] == "critical"


async def test_once_unknown_outranks_warning(tmp_path: Path, target_server: TargetServer) -> None:
    target_server.route("/nostatus", body={"service": "web"})
    target_server.route("/degraded", body={"status": "degraded"})
    explicit = "thresholds.health_status = { warning = 0, critical = 1 }"
    config = write_config(
        tmp_path,
        http_target("warning-one", target_server.url("/degraded"))
        + http_target("unknown-one", target_server.url("/nostatus"), explicit),
    )
    result = await once(config)
    assert result.returncode == 3, (result.stdout, result.stderr)


async def test_once_unusable_config_exits_3(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(INVALID, encoding="utf-8")
    result = await once(config)
    assert result.returncode == 3
    assert f"{config}: daemon.intervall: unknown key" in result.stderr
    assert result.stdout == ""
    no_traceback(result)


async def test_once_missing_config_file_exits_3(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = await once(missing)
    assert result.returncode == 3
    assert f"{missing}: file not found" in result.stderr
    no_traceback(result)


async def test_once_unusable_state_path_exits_3(
    tmp_path: Path, target_server: TargetServer
) -> None:
    # The state file's directory cannot be created: a regular file is in the way.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    config = tmp_path / "vigild.toml"
    config.write_text(
        "[daemon]\n"
        f"listen = {toml_str(f'127.0.0.1:{closed_port()}')}\n"
        f"state_path = {toml_str(blocker / 'state.db')}\n"
        + http_target("web", target_server.url()),
        encoding="utf-8",
    )
    result = await once(config)
    assert result.returncode == 3, result.stderr
    assert str(blocker) in result.stderr
    no_traceback(result)


async def test_once_text_report_names_targets_and_errors(
    tmp_path: Path, target_server: TargetServer
) -> None:
    target_server.route("/down", status=503)
    refused = f"http://127.0.0.1:{closed_port()}/health"
    config = write_config(
        tmp_path,
        http_target("healthy-web", target_server.url("/health"))
        + http_target("broken-web", target_server.url("/down"))
        + http_target("gone-web", refused),
    )
    result = await once(config)
    assert result.returncode == 2, result.stderr
    lines = result.stdout.splitlines()
    assert "3 targets, worst CRITICAL" in lines[0]
    by_name = {line.split()[0]: line for line in lines[1:4]}
    assert "UP" in by_name["healthy-web"].split()
    assert "DOWN" in by_name["broken-web"].split()
    assert "HTTP 503" in by_name["broken-web"]
    assert "connection refused" in by_name["gone-web"]
    assert "open alerts:" in lines
    assert any("CRITICAL" in line and "broken-web is DOWN: HTTP 503" in line for line in lines)
    assert any(
        "CRITICAL" in line and "gone-web is DOWN: connection refused" in line for line in lines
    )


async def test_once_json_report(tmp_path: Path, target_server: TargetServer) -> None:
    target_server.route("/down", status=503)
    config = write_config(
        tmp_path,
        http_target("good", target_server.url("/health"))
        + http_target("bad", target_server.url("/down")),
    )
    result = await once(config, "--format", "json")
    assert result.returncode == 2, result.stderr
    document = result.json
    assert document["exit_code"] == 2
    assert document["worst"] == "critical"
    assert document["version"] == __version__
    targets = {t["name"]: t for t in document["targets"]}
    assert list(targets) == ["good", "bad"]
    assert targets["good"]["observation"]["up"] is True
    assert targets["bad"]["observation"]["up"] is False
    assert targets["bad"]["observation"]["error"] == "HTTP 503 (expected 2xx)"
    [alert] = document["alerts"]
    assert (alert["target"], alert["metric"], alert["severity"], alert["state"]) == (
        "bad",
        "up",
        "critical",
        "firing",
    )


async def test_once_json_report_when_all_ok(tmp_path: Path, target_server: TargetServer) -> None:
    config = write_config(tmp_path, http_target("good", target_server.url()))
    result = await once(config, "--format", "json")
    assert result.returncode == 0, result.stderr
    document = result.json
    assert document["exit_code"] == 0
    assert document["worst"] == "ok"
    assert document["alerts"] == []
    assert document["targets"][0]["observation"]["metrics"]["health_status"] == 0


# ---------------------------------------------------------------------------
# State across cron runs: each notification once


async def test_once_notifies_firing_once_and_resolved_once(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    target_server.status = 503
    config = write_config(
        tmp_path,
        http_target("web", target_server.url())
        + webhook_notifier("hook", receiver.url("/hook"))
        + apprise_notifier("chat", f"json://127.0.0.1:{receiver.port}/apprise"),
    )

    # 1: down → one firing message per notifier.
    first = await once(config)
    assert first.returncode == 2, first.stderr
    await receiver.wait_quiet(0.1)
    [payload] = hook_bodies(receiver, "/hook")
    assert payload["status"] == "firing"
    assert payload["receiver"] == "hook"
    [alert] = payload["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"]["alertname"] == "up"
    assert alert["labels"]["target"] == "web"
    assert alert["labels"]["severity"] == "critical"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    [chat] = hook_bodies(receiver, "/apprise")
    assert chat["type"] == "failure"
    assert "web" in chat["title"]

    # 2: still down → nothing new.
    second = await once(config)
    assert second.returncode == 2, second.stderr
    assert len(await receiver.wait_quiet(0.2)) == 2

    # 3: healthy again → one resolved message per notifier.
    target_server.status = 200
    third = await once(config)
    assert third.returncode == 0, third.stderr
    await receiver.wait_quiet(0.1)
    hooks = hook_bodies(receiver, "/hook")
    assert len(hooks) == 2
    assert hooks[1]["status"] == "resolved"
    [resolved] = hooks[1]["alerts"]
    assert resolved["status"] == "resolved"
    assert resolved["fingerprint"] == alert["fingerprint"]
    assert resolved["labels"]["severity"] == "critical"
    chats = hook_bodies(receiver, "/apprise")
    assert len(chats) == 2
    assert chats[1]["type"] == "success"

    # 4: still healthy → nothing.
    fourth = await once(config)
    assert fourth.returncode == 0, fourth.stderr
    assert len(await receiver.wait_quiet(0.2)) == 4


async def test_an_alert_of_a_target_removed_while_stopped_resolves_at_the_next_run(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    target_server.status = 503
    hook = webhook_notifier("hook", receiver.url("/hook"))
    config = write_config(tmp_path, http_target("web", target_server.url()) + hook)
    assert (await once(config)).returncode == 2
    [firing] = await receiver.wait_for(1)
    # The target leaves the config between two runs: its page must not stay open for
    # ever (a reload resolves it the same way).
    config = write_config(tmp_path, http_target("api", target_server.url()) + hook)
    target_server.status = 200
    done = await once(config)
    assert done.returncode == 0, done.stderr
    [_, resolved] = await receiver.wait_for(2)
    assert resolved.json["status"] == "resolved"
    assert resolved.json["alerts"][0]["fingerprint"] == firing.json["alerts"][0]["fingerprint"]
    assert "open alerts" not in done.stdout


async def test_once_exit_code_ignores_for_but_notifications_follow_it(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    target_server.status = 503
    config = write_config(
        tmp_path,
        '[thresholds]\nup = { for = "1h" }\n'
        + http_target("web", target_server.url())
        + webhook_notifier("hook", receiver.url("/hook")),
    )
    for _ in range(2):
        result = await once(config, "--format", "json")
        assert result.returncode == 2, result.stderr
        [alert] = result.json["alerts"]
        assert (alert["state"], alert["severity"]) == ("pending", "critical")
    assert await receiver.wait_quiet(0.2) == []
    assert target_server.hits == 2


# ---------------------------------------------------------------------------
# Undelivered notifications stay in the outbox for the next run


async def test_undelivered_notification_is_sent_by_a_later_run(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    target_server.status = 503
    receiver.status = 503
    config = write_config(
        tmp_path,
        http_target("web", target_server.url()) + webhook_notifier("hook", receiver.url("/hook")),
    )

    first = await once(config)
    assert first.returncode == 2, first.stderr
    assert len(receiver.requests) == 1  # tried once, refused
    [retry] = log_events(first.stderr, "notification retry")
    assert retry["notifier"] == "hook"
    assert "503" in retry["error"]

    # The receiver is back; the target is still down, so only the outbox can send.
    # The retry is due ~1 s (backoff with jitter) after the failure: re-run until it goes.
    receiver.clear()
    receiver.status = 200
    deadline = time.monotonic() + 10.0
    runs = 0
    while not receiver.requests:
        assert time.monotonic() < deadline, "the queued notification was never delivered"
        result = await once(config)
        runs += 1
        assert result.returncode == 2, result.stderr
        if not receiver.requests:
            await asyncio.sleep(0.2)
    assert runs <= 4
    [payload] = hook_bodies(receiver, "/hook")
    assert payload["status"] == "firing"
    assert payload["alerts"][0]["labels"]["alertname"] == "up"
    assert payload["alerts"][0]["labels"]["target"] == "web"

    # Delivered means gone from the outbox: another run sends nothing more.
    again = await once(config)
    assert again.returncode == 2, again.stderr
    assert len(await receiver.wait_quiet(0.2)) == 1


# ---------------------------------------------------------------------------
# test-notify


async def test_test_notify_delivers(tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(tmp_path, webhook_notifier("hook", receiver.url("/hook")))
    result = await run("test-notify", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "hook: delivered" in result.stdout.splitlines()
    [payload] = hook_bodies(receiver, "/hook")
    assert payload["version"] == "4"
    assert payload["receiver"] == "hook"
    assert payload["alerts"][0]["labels"]["alertname"] == "test"


async def test_test_notify_failure_exits_1(tmp_path: Path, receiver: Receiver) -> None:
    receiver.status = 503
    config = write_config(tmp_path, webhook_notifier("hook", receiver.url("/hook")))
    result = await run("test-notify", "--config", str(config))
    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if line.startswith("hook:")]
    assert line.startswith("hook: failed")
    assert "503" in line
    assert len(receiver.requests) == 1


async def test_test_notify_unknown_notifier(tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(tmp_path, webhook_notifier("hook", receiver.url("/hook")))
    result = await run("test-notify", "--notifier", "nope", "--config", str(config))
    assert result.returncode == 1
    assert "no notifier named 'nope'" in result.stdout + result.stderr
    assert "hook" in result.stdout + result.stderr  # says what is configured
    assert await receiver.wait_quiet(0.05) == []


async def test_test_notify_only_the_named_notifier(tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(
        tmp_path,
        webhook_notifier("one", receiver.url("/one"))
        + webhook_notifier("two", receiver.url("/two")),
    )
    result = await run("test-notify", "--config", str(config), "--notifier", "two")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["two: delivered"]
    assert [r.path for r in receiver.requests] == ["/two"]


async def test_test_notify_disabled_notifier_named_explicitly(tmp_path: Path) -> None:
    config = write_config(tmp_path, webhook_notifier("off", "${UNSET_VAR_X:-}"))
    env = environment()
    env.pop("UNSET_VAR_X", None)
    result = await run("test-notify", "--config", str(config), "--notifier", "off", env=env)
    assert result.returncode == 1
    assert "off: disabled" in result.stdout
    no_traceback(result)


# ---------------------------------------------------------------------------
# The state file lock


async def test_once_waits_for_a_briefly_held_lock(
    tmp_path: Path, target_server: TargetServer
) -> None:
    target_server.status = 503
    config = write_config(tmp_path, http_target("web", target_server.url()))
    lock = StateLock(tmp_path / "state.db")
    lock.acquire()
    started = time.monotonic()
    try:
        task = asyncio.create_task(once(config))
        await asyncio.sleep(0.5)
        assert not task.done()
        assert target_server.hits == 0  # nothing probed while the lock is held
    finally:
        lock.release()
    result = await task
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert target_server.hits == 1
    assert elapsed >= 0.5
    assert "in use" not in result.stderr
    # The run took the lock after us: the lock file names its pid, not ours.
    holder = int(lock.path.read_text(encoding="utf-8"))
    assert holder != os.getpid()


async def test_once_gives_up_on_a_held_lock_after_its_wait(
    tmp_path: Path, target_server: TargetServer
) -> None:
    # 10 s in production (LOCK_WAIT); shortened here, the one thing the variable is for.
    config = write_config(tmp_path, http_target("web", target_server.url()))
    lock = StateLock(tmp_path / "state.db")
    lock.acquire()
    started = time.monotonic()
    try:
        result = await once(config, env=environment(VIGILD_TEST_LOCK_WAIT="1"))
    finally:
        lock.release()
    elapsed = time.monotonic() - started
    assert result.returncode == 3
    assert "in use" in result.stderr and "waited 1s" in result.stderr
    assert str(tmp_path / "state.db") in result.stderr
    assert 1.0 <= elapsed < 10
    assert target_server.hits == 0
    assert result.stdout == ""
    no_traceback(result)


# ---------------------------------------------------------------------------
# Secrets


async def test_once_never_shows_secrets(tmp_path: Path, target_server: TargetServer) -> None:
    target_server.status = 500
    target_server.body = {"status": "error"}
    config = write_config(
        tmp_path,
        http_target(
            "web",
            target_server.url("/health") + "?token=${TEST_TOKEN}",
            'headers = { Authorization = "Bearer ${TEST_TOKEN}" }',
        ),
    )
    env = environment(TEST_TOKEN=SECRET)
    text = await once(config, env=env)
    as_json = await once(config, "--format", "json", env=env)

    # The secret was really used ...
    assert target_server.last_request.headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET in target_server.last_request.query_string
    # ... and the target really failed with an error ...
    assert text.returncode == 2 and as_json.returncode == 2
    assert "HTTP 500" in text.stdout
    assert as_json.json["targets"][0]["observation"]["error"] == "HTTP 500 (expected 2xx)"
    assert as_json.json["targets"][0]["url"].endswith("?token=***")
    # ... yet it appears nowhere.
    for result in (text, as_json):
        assert SECRET not in result.stdout
        assert SECRET not in result.stderr
