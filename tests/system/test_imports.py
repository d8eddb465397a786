"""What a run imports: the heavy packages a run may not need load only when it does.

``vigild --once`` from cron pays for every import on every run, and a daemon holds
each one in memory for good. Each case runs in a fresh interpreter and reads its
``sys.modules``, once after the work and, where it matters, once after the first
use that needs the package: a check that the module is named right, too.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from cli_config import toml_str, write_config
from process import environment
from receivers import Receiver
from targets import TargetServer, closed_port

HEAVY = (
    "apprise",  # a few hundred ms: only to send (or, for `run`, to check a URL)
    "jinja2",  # the status page's template
    "markupsafe",
    "vigild.daemon.page",
    "aiohttp.web",  # the daemon's own server
    "prometheus_client",  # /metrics
    "apscheduler",
    "psutil",  # host targets and process actions
)

ONCE = """
import json, sys
from vigild.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump(sorted(sys.modules), out)
raise SystemExit(code)
"""

RUN = """
import asyncio, json, sys
from pathlib import Path
import aiohttp
from vigild.assembly import load
from vigild.daemon.app import Daemon

async def main() -> None:
    daemon = Daemon(load(Path(sys.argv[1])))
    serving = asyncio.create_task(daemon.serve())
    for _ in range(600):
        if daemon.ready:
            break
        await asyncio.sleep(0.05)
    ready, started = daemon.ready, sorted(sys.modules)
    async with aiohttp.ClientSession() as session, session.get(sys.argv[2]) as page:
        page.raise_for_status()
    daemon.stop()
    await serving
    print(json.dumps({"ready": ready, "started": started, "paged": sorted(sys.modules)}))

asyncio.run(main())
"""


async def python(code: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def once_modules(tmp_path: Path, config: Path) -> tuple[int, list[str]]:
    listing = tmp_path / "modules.json"
    code, _, stderr = await python(ONCE, str(listing), "--once", "--config", str(config))
    assert listing.exists(), stderr
    loaded: list[str] = json.loads(listing.read_text())
    return code, loaded


def heavy(loaded: list[str]) -> list[str]:
    return [m for m in HEAVY if m in loaded]


def targets_and_notifiers(url: str, receiver: Receiver) -> str:
    return (
        f'[[targets]]\nname = "web"\ntype = "http"\nurl = {toml_str(url)}\n'
        f'[[notifiers]]\nname = "hook"\ntype = "webhook"\nurl = {toml_str(receiver.url("/hook"))}\n'
        f'[[notifiers]]\nname = "chat"\nurl = "json://127.0.0.1:{receiver.port}/chat"\n'
    )


async def test_once_with_nothing_to_send_imports_none_of_the_heavy_packages(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, targets_and_notifiers(target_server.url(), receiver))
    code, loaded = await once_modules(tmp_path, config)
    assert code == 0
    assert heavy(loaded) == []


async def test_once_imports_apprise_when_it_sends_through_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    down = f"http://127.0.0.1:{closed_port()}/"
    config = write_config(tmp_path, targets_and_notifiers(down, receiver))
    code, loaded = await once_modules(tmp_path, config)
    assert code == 2
    assert [r.path for r in receiver.requests].count("/chat") == 1
    assert "apprise" in loaded


async def test_a_daemon_loads_the_status_page_with_the_first_page_asked_for(
    tmp_path: Path, target_server: TargetServer
) -> None:
    listen = f"127.0.0.1:{closed_port()}"
    body = f'[[targets]]\nname = "web"\ntype = "http"\nurl = {toml_str(target_server.url())}\n'
    config = tmp_path / "vigild.toml"
    config.write_text(
        f'[daemon]\ninterval = "1s"\nlisten = "{listen}"\n'
        f"state_path = {toml_str(tmp_path / 'state.db')}\n{body}"
    )
    code, stdout, stderr = await python(RUN, str(config), f"http://{listen}/")
    assert code == 0, stderr
    found: dict[str, Any] = json.loads(stdout.splitlines()[-1])
    assert found["ready"]
    page = ["jinja2", "markupsafe", "vigild.daemon.page"]
    assert [m for m in [*page, "apprise", "psutil"] if m in found["started"]] == []
    assert [m for m in page if m in found["paged"]] == page
