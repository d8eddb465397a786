"""The status page in a real browser: ``vigild run`` as a process, headless Chromium over
the DevTools protocol. Checks the page's structure and colours, never its pixels."""

from __future__ import annotations

import asyncio
from pathlib import Path

from browser import browser, chromium, png_colours
from history_files import wait_recorded
from process import Daemon, environment
from targets import TargetServer, closed_port

WIDTH, HEIGHT = 1280, 720
CRITICAL = (198, 40, 40)  # --critical in the page's style
OK = (46, 125, 50)  # --ok


async def test_the_status_page_renders_in_a_browser(
    tmp_path: Path, target_server: TargetServer
) -> None:
    assert chromium() is not None, "needs Debian's chromium: scripts/test installs it"
    listen = f"127.0.0.1:{closed_port()}"
    config = tmp_path / "t.toml"
    config.write_text(
        f"""
[daemon]
interval = "1s"
listen = "{listen}"
state_path = "{tmp_path / "state.db"}"
instance = "nas"

[[targets]]
name = "healthy"
type = "http"
url = "{target_server.url()}"

[[targets]]
name = "failing"
type = "http"
url = "http://127.0.0.1:{closed_port()}/health?token=${{TOKEN}}"
"""
    )
    daemon = await Daemon(config, listen, environment(TOKEN="tok-51ab")).start()
    await daemon.wait_ready()

    for _ in range(100):  # both targets probed, so neither shows "not probed yet"
        if all(t["observation"] for t in (await daemon.status())["targets"]):
            break
        await asyncio.sleep(0.05)
    await wait_recorded(daemon, ["healthy", "failing"])  # the sparklines read the history

    async with browser(tmp_path / "profile") as page:
        await page.open(daemon.base + "/", WIDTH, HEIGHT)
        assert await page.evaluate("document.title") == "vigild on nas: CRITICAL"
        rows = await page.evaluate(
            "[...document.querySelectorAll('tr.target')].map(r => [r.dataset.target, "
            "getComputedStyle(r.querySelector('.badge')).backgroundColor, "
            "getComputedStyle(r).borderLeftColor])"
        )
        assert rows == [
            ["healthy", "rgb({}, {}, {})".format(*OK), "rgb({}, {}, {})".format(*OK)],
            ["failing", "rgb({}, {}, {})".format(*CRITICAL), "rgb({}, {}, {})".format(*CRITICAL)],
        ]
        sparklines = await page.evaluate(
            "[...document.querySelectorAll('tr.target svg.spark')].map(s => "
            "[s instanceof SVGSVGElement, s.getBoundingClientRect().width])"
        )
        assert sparklines == [[True, 288]] * 4
        assert await page.evaluate("document.querySelectorAll('svg.strip rect.down').length") == 1
        text = await page.evaluate("document.body.innerText")
        assert "tok-51ab" not in text and "token=***" in text
        assert "connection refused" in text
        shot = await page.screenshot()
        assert page.errors() == []

    # The 7-day view is of a listed target only; its name is never a path into the file.
    assert (await daemon.get("/history?target=nope"))[0] == 404
    status, week = await daemon.get("/history?target=failing")
    assert status == 200 and "failing</span>: last 7 days" in week
    assert "tok-51ab" not in week and "token=***" in week

    assert await daemon.stop() == 0
    width, height, colours = png_colours(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    _, count = colours.most_common(1)[0]
    assert len(colours) > 20 and count < 0.95 * width * height  # not blank
    assert colours[bytes(CRITICAL)] > 50 and colours[bytes(OK)] > 50  # the badges are drawn
