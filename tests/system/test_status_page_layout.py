"""The status page on a laptop and on a phone: ``vigild run`` as a process, headless
Chromium at 1280 and 390 px. Checks what a person sees: no sideways scrolling, a
one-minute outage as red pixels, values in their units, local times with the zone.
The screenshots stay in the test's tmp directory, as artifacts."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from pathlib import Path

import pytest
from browser import Page, browser, chromium, png_colours, png_rows
from history_files import seed, wait_recorded
from process import Daemon, environment
from targets import TargetServer, closed_port

from vigild.daemon.history import BUCKET, SLOTS
from vigild.model import Observation

CRITICAL = (198, 40, 40)  # --critical in the page's style
LAPTOP = (1280, 720)
PHONE = (390, 844)
NARROW = (240, 600)
"""Narrower than a sparkline's full width: the strip is drawn scaled down."""
OUTAGE_AGO = 3 * 3600


def _seed_history(path: Path, now: float) -> None:
    """Yesterday's probes of "healthy", every 30 s and all up but two 30 s apart three
    hours ago: a one-minute outage, as the daemon would have written it."""
    first = now - now % BUCKET - (SLOTS - 1) * BUCKET
    outage = now - OUTAGE_AGO
    seed(
        path,
        (
            Observation(
                "healthy", at, not outage <= at < outage + 60, metrics={"latency_seconds": 0.004}
            )
            for at in range(int(first), int(now - now % BUCKET), 30)
        ),
        now,
    )


async def _red_columns(page: Page, selector: str) -> tuple[int, int]:
    """How many pixels of the element are the page's critical red, and in how many
    columns: a screenshot of just that element, at one pixel per CSS pixel."""
    box = await page.evaluate(
        f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
        " return [r.x, r.y, r.width, r.height]; })()"
    )
    x, y, width, height = box
    reply = await page.send(
        "Page.captureScreenshot",
        format="png",
        clip={"x": x, "y": y, "width": width, "height": height, "scale": 1},
    )
    shot = base64.b64decode(reply["data"])
    _, _, rows = png_rows(shot)
    critical = bytes(CRITICAL)
    # Counted, not divided out of the pixels by the box's height: a box of 5.5 px
    # is captured 6 rows high, and two red columns of 5 rows then read as one.
    red = sum(row.count(critical) for row in rows)
    columns = {x for row in rows for x, pixel in enumerate(row) if pixel == critical}
    return red, len(columns)


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE, NARROW], ids=["1280px", "390px", "240px"])
async def test_the_status_page_reads_at_a_glance_on_a_laptop_and_a_phone(
    tmp_path: Path, target_server: TargetServer, local_zone: str, viewport: tuple[int, int]
) -> None:
    assert chromium() is not None, "needs Debian's chromium: scripts/test installs it"
    width, height = viewport
    listen = f"127.0.0.1:{closed_port()}"
    state = tmp_path / "state.db"
    _seed_history(tmp_path / "state-history.db", time.time())
    config = tmp_path / "t.toml"
    config.write_text(
        f"""
[daemon]
interval = "1s"
listen = "{listen}"
state_path = "{state}"
instance = "nas"

[[targets]]
name = "healthy"
type = "http"
url = "{target_server.url("/api/v1/health/with/a/rather/long/path?verbose=true")}"
thresholds.latency_seconds = {{ warning = 1, critical = 3 }}

[[targets]]
name = "failing"
type = "http"
url = "http://127.0.0.1:{closed_port()}/health"
"""
    )
    daemon = await Daemon(config, listen, environment()).start()  # with local_zone's TZ
    await daemon.wait_ready()
    for _ in range(100):  # both targets probed, so neither shows "not probed yet"
        if all(t["observation"] for t in (await daemon.status())["targets"]):
            break
        await asyncio.sleep(0.05)
    await wait_recorded(daemon, ["healthy", "failing"])

    async with browser(tmp_path / "profile") as page:
        await page.open(daemon.base + "/", width, height)
        shot = await page.screenshot()
        (tmp_path / f"status-{width}px.png").write_bytes(shot)

        # Nothing wider than the screen: no sideways scrolling, nothing cut off.
        scroll_width = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width
        cards = await page.evaluate("getComputedStyle(document.querySelector('tr.target')).display")
        assert cards == ("block" if width < 960 else "table-row")

        # The one-minute outage of three hours ago is red: the bucket and 2 px more at
        # full size, at least the 2 px however much the strip is scaled down.
        red, columns = await _red_columns(page, "tr[data-target='healthy'] svg.strip")
        assert red > 0 and columns >= (2 if viewport == NARROW else 3), (red, columns)

        text = await page.evaluate("document.body.innerText")
        healthy = await page.evaluate(
            "document.querySelector(\"tr[data-target='healthy']\").innerText"
        )
        # Words a person reads: ms, thresholds beside the value, uptime, local time.
        assert re.search(r"latency_seconds \d+(\.\d+)? ms warn > 1 s · crit > 3 s", healthy)
        assert "99.93 % up" in healthy
        # Central European time, summer or winter, as the local_zone fixture sets it.
        assert re.search(r"updated \d\d:\d\d CES?T", text)
        assert re.search(r"times in (CET \(UTC\+01:00\)|CEST \(UTC\+02:00\))", text)
        assert "connection refused" in text
        # Each value and its thresholds on one line: all their boxes overlap vertically.
        # (Narrower than a phone, the thresholds may go under their value, whole.)
        one_line = await page.evaluate(
            "[...document.querySelectorAll('.value')].map(v => {"
            " const boxes = [...v.querySelectorAll('.reading, .levels')]"
            ".flatMap(e => [...e.getClientRects()]);"
            " return Math.max(...boxes.map(b => b.top)) < Math.min(...boxes.map(b => b.bottom));"
            " })"
        )
        assert one_line == [True, True] or (viewport == NARROW and len(one_line) == 2)
        assert page.errors() == []

        # The sparkline leads to the target's last 7 days: the same outage, as wide a
        # mark, within the screen.
        link = await page.evaluate(
            "document.querySelector(\"tr[data-target='healthy'] a.week\").href"
        )
        assert link == daemon.base + "/history?target=healthy"
        await page.open(link, width, height)
        week_shot = await page.screenshot()
        (tmp_path / f"week-{width}px.png").write_bytes(week_shot)
        assert await page.evaluate("document.title") == "vigild on nas: healthy, last 7 days"
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        red, columns = await _red_columns(page, "section.week svg.strip")
        assert red > 0 and columns >= 2, (red, columns)
        week = await page.evaluate("document.querySelector('section.week').innerText")
        assert re.search(r"99\.9\d % up in the last 7 days", week)
        # Seven days from now back: eight local dates, seven when it starts at midnight.
        days_shown = await page.evaluate("document.querySelectorAll('table.days tbody tr').length")
        assert days_shown in (7, 8)
        days = await page.evaluate("document.querySelector('table.days').innerText")
        assert re.search(r"\d\d:\d\d CES?T", days)  # when it was last down, local time
        assert re.search(r"\d+(\.\d+)? ms", days)  # the slowest reading of each day, in units
        assert page.errors() == []

    assert await daemon.stop() == 0
    assert png_colours(shot)[:2] == (width, height)
