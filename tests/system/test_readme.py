"""README's "Five minutes" walk-through, typed as written and read as a person reads it.

Every fenced block after a ``<!-- walkthrough: NAME -->`` comment is used: the
commands run in two shells as the README's two terminals (terminal 1 on a
pseudo-terminal, so vigild prints the console lines a person sees), and the
output blocks are compared with what vigild printed, sent and served. Only
what cannot be the same on two runs is made generic: times, durations, a
silence's id, the two ports (free ones instead of 8000 and 9469), and the
apprise URL (the receiver's ``json://`` instead of Discord's).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from browser import Page, browser, chromium
from process import environment, until
from receivers import Receiver
from targets import closed_port

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"<!-- walkthrough: ([\w-]+) -->\n```\w*\n(.*?)```", re.S)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_GENERIC = (
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "<time>"),
    (re.compile(r"\b(\d+h)?(\d+m)?\d+s\b"), "<duration>"),
    (re.compile(r"\bversion=\S+"), "version=<version>"),
    (re.compile(r"^  disks: .*"), "  disks: <this host's filesystems>"),
)
_SECTION = "Five minutes: watch a real service"
SERVICE, API = "8000", "9469"
INSTANCE = "yourhost"
DISCORD = "https://discord.com/api/webhooks/ID/TOKEN"


def walkthrough() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"## {_SECTION}") :]
    section = section[: section.index("\n## ", 1)]
    return dict(_BLOCK.findall(section))


def generic(text: str) -> str:
    for pattern, placeholder in _GENERIC:
        text = pattern.sub(placeholder, text)
    return text


class Terminal2:
    """One bash that keeps its jobs between commands, as a terminal does."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self._shell: asyncio.subprocess.Process | None = None
        self._typed = 0

    async def __aenter__(self) -> Terminal2:
        self._shell = await asyncio.create_subprocess_exec(
            "bash",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.cwd,
            env=self.env,
        )
        return self

    async def type(self, block: str) -> tuple[int, str]:
        """Run the block's lines; its last command's exit status and everything printed."""
        assert self._shell is not None and self._shell.stdin and self._shell.stdout
        self._typed += 1
        marker = f"__typed_{self._typed}__"
        self._shell.stdin.write(f"{block}\necho {marker} $?\n".encode())
        await self._shell.stdin.drain()
        printed: list[str] = []
        while True:
            line = (await asyncio.wait_for(self._shell.stdout.readline(), 30)).decode()
            assert line, "terminal 2's shell ended:\n" + "".join(printed)
            if line.startswith(marker):
                return int(line.split()[1]), "".join(printed)
            printed.append(line)

    async def __aexit__(self, *_: object) -> None:
        assert self._shell is not None and self._shell.stdin
        # The service the walk-through left running must not outlive the test.
        self._shell.stdin.write(b"kill %1 2>/dev/null; exit\n")
        self._shell.stdin.close()
        try:
            await asyncio.wait_for(self._shell.wait(), 10)
        except TimeoutError:
            self._shell.kill()
            await self._shell.wait()


@contextlib.asynccontextmanager
async def terminal1(block: str, cwd: Path, env: dict[str, str]) -> AsyncIterator[list[str]]:
    """The block run on a pseudo-terminal, its lines (colours taken off) as they come;
    Ctrl-C on leaving."""
    controller, tty = os.openpty()
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        block,
        stdin=tty,
        stdout=tty,
        stderr=tty,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    os.close(tty)
    received = bytearray()
    lines: list[str] = []
    loop = asyncio.get_running_loop()

    def read() -> None:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every writer of the terminal has gone
            chunk = b""
        if not chunk:
            loop.remove_reader(controller)
            return
        received.extend(chunk)
        complete = received.decode(errors="replace").split("\n")[:-1]
        lines[:] = [_ANSI.sub("", line).rstrip("\r") for line in complete]

    loop.add_reader(controller, read)
    try:
        yield lines
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends the foreground job
        assert await asyncio.wait_for(process.wait(), 15) == 0, "\n".join(lines)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        loop.remove_reader(controller)
        os.close(controller)


async def serving(port: int) -> None:
    """Wait for the service a background job starts, as a person would glance at it."""
    for _ in range(100):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def pages_about(receiver: Receiver, target: str) -> list[str]:
    """Each page about ``target`` as a phone shows it: title, then body."""
    bodies = (r.json for r in receiver.requests)
    return [
        f"{b['title']}\n{b['message']}"
        for b in bodies
        if b["title"].startswith((f"{target} ", f"RESOLVED {target} "))
    ]


async def test_the_readme_walk_through_as_a_person_follows_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    assert chromium() is not None, "needs Debian's chromium: scripts/test installs it"
    blocks = walkthrough()
    service, api = str(closed_port()), str(closed_port())

    def typed(block: str) -> str:
        """A block as the test types it: on the free ports."""
        return re.sub(rf"\b{SERVICE}\b", service, re.sub(rf"\b{API}\b", api, block))

    def seen(text: str) -> str:
        """Output as the README shows it: on the README's ports."""
        return re.sub(rf"\b{service}\b", SERVICE, re.sub(rf"\b{api}\b", API, text))

    # The checkout: the shipped config, and the venv's `vigild` being this tree's.
    (tmp_path / "thresholds.toml").write_text(typed((ROOT / "thresholds.toml").read_text()))
    vigild = tmp_path / ".venv" / "bin" / "vigild"
    vigild.parent.mkdir(parents=True)
    vigild.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m vigild "$@"\n')
    vigild.chmod(0o755)
    env = environment(PYTHONPATH=str(ROOT), TZ="UTC", VIGILD_INSTANCE=INSTANCE)
    env.pop("DISCORD_WEBHOOK_URL", None)

    async with Terminal2(tmp_path, env) as terminal2:
        assert await terminal2.type(typed(blocks["service-start"])) == (0, "")
        await serving(int(service))
        status, printed = await terminal2.type(typed(blocks["configure"]))
        assert status == 0, printed
        assert DISCORD in blocks["run"]
        run = typed(blocks["run"]).replace(DISCORD, receiver.url("/hook").replace("http", "json"))
        async with terminal1(run, tmp_path, env) as log:
            shown = blocks["run-output"].splitlines()
            for _ in range(400):  # the first-run line comes after the 30 s cycle's start
                missing = matched(shown, [seen(line) for line in log])
                if missing is None:
                    break
                await asyncio.sleep(0.05)
            assert missing is None, f"README shows {missing!r}; vigild printed:\n" + "\n".join(log)

            assert await terminal2.type(typed(blocks["service-stop"])) == (0, "")
            await until(lambda: pages_about(receiver, "svc") != [], 15, "the page")
            [down] = pages_about(receiver, "svc")
            assert generic(seen(down)) == generic(blocks["page-down"].rstrip("\n"))

            async with browser(tmp_path / "profile") as page:
                base = f"http://127.0.0.1:{api}/"
                words = await read_page(page, base)
                for line in blocks["status-down"].splitlines():
                    assert line in map(str.strip, seen(words).splitlines()), (line, words)

                status, silence_id = await terminal2.type(blocks["silence-add"])
                assert status == 0, silence_id
                silence_id = silence_id.strip()
                shown_id = blocks["silence-add-output"].strip()
                assert re.fullmatch(r"[0-9a-f]{16}", silence_id), silence_id
                assert re.fullmatch(r"[0-9a-f]{16}", shown_id), shown_id
                words = await read_page(page, base)
                assert f"silenced by {silence_id}" in words, words
                assert "fixing svc" in words, words

            status, expired = await terminal2.type(
                blocks["silence-expire"].replace(shown_id, silence_id)
            )
            assert status == 0, expired
            assert expired == blocks["silence-expire-output"].replace(shown_id, silence_id)

            assert await terminal2.type(typed(blocks["service-restart"])) == (0, "")
            await until(lambda: len(pages_about(receiver, "svc")) >= 2, 15, "the RESOLVED page")
            resolved = pages_about(receiver, "svc")[1]
            assert generic(seen(resolved)) == generic(blocks["page-resolved"].rstrip("\n"))
            # One outage, two pages: the silence's end did not page about it again.
            assert len(pages_about(receiver, "svc")) == 2, pages_about(receiver, "svc")

        assert "vigild stopped" in "\n".join(log)


async def read_page(page: Page, url: str) -> str:
    """The status page's words at a phone's width, as the phone lays them out."""
    await page.open(url, 390, 844)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at 390 px: {width} px"
    assert page.errors() == []
    text = await page.evaluate("document.body.innerText")
    assert isinstance(text, str)
    return text


def matched(shown: list[str], log: list[str]) -> str | None:
    """The first README line the log does not print (in order), or None when all are.

    The first-run line's counts depend on this machine (its CPU may be busy), so
    only their total and that every target was probed are compared."""
    rest = iter(generic(line) for line in log)
    for line in shown:
        want = counts_generic(generic(line))
        if not any(counts_generic(got) == want for got in rest):
            return line
    return None


def counts_generic(line: str) -> str:
    match = re.search(r"watching (\d+) targets \(([^)]*)\)", line)
    if match is None:
        return line
    total = int(match.group(1))
    counts = [part.split(" ", 1) for part in match.group(2).split(", ")]
    probed = all(label != "not probed yet" for _, label in counts)
    summed = sum(int(n) for n, _ in counts) == total
    return line.replace(match.group(0), f"watching {total} targets ({probed and summed})")
