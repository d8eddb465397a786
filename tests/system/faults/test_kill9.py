"""kill -9 at twenty random moments across an outage, with a receiver that refuses
the first requests: nothing is lost, and a duplicate only ever follows a kill that
landed while the receiver held the request (DESIGN.md, "Delivery guarantee").

The story: two lives healthy, then the target goes down; the receiver refuses
the first requests (about 15 s of backoff), then takes the firing; the outage
goes on for a few more lives, then the target recovers and the resolved goes
out; the last lives are quiet. vigild is killed after each life, the lengths of
which come from a seeded generator. The seed is printed with the report (``pytest
-rP`` shows it for a passing run) and named in every failure; ``FAULT_SEED``
replays one.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from faultkit import accepted, told, watch
from process import listen_address, start, until
from receivers import Receiver, Recorded
from targets import TargetServer

KILLS = 20
REFUSED = 4
"""The receiver answers 503 to this many requests first: about 15 s of backoff."""
HOLD = 0.3
"""How long the receiver holds each request before answering."""
AFTER_ANSWER = 0.5
"""After the answer left the receiver, vigild still has to read it and record the
delivery: a kill this soon after it counts as landing in the window."""
LIFE = (0.1, 1.0)
"""Each vigild lives this long (uniformly drawn, in seconds) after it answers ready."""


def in_window(request: Recorded, moment: float) -> bool:
    """Whether a kill at ``moment`` could have left vigild not knowing this request
    succeeded (the receiver held it, or vigild had not recorded the answer yet)."""
    end = request.answered_at
    return request.received_at <= moment and (end is None or moment <= end + AFTER_ANSWER)


async def test_twenty_kills_lose_nothing_and_duplicate_only_inside_the_window(
    tmp_path: Path, target_server: TargetServer, receiver: Receiver
) -> None:
    seed = int(os.environ.get("FAULT_SEED") or random.randrange(2**32))
    lives = random.Random(seed)
    receiver.delay = HOLD
    receiver.queue(*[503] * REFUSED)
    listen = listen_address()
    config = watch(tmp_path, listen, receiver, {"api": target_server.url()})
    began = time.monotonic()
    kills: list[float] = []
    timeline: list[tuple[float, str]] = []

    def arrived(status: str) -> bool:
        return told(accepted(receiver))[("api", status)] >= 1

    async def outage() -> None:
        await until(lambda: len(kills) >= 2, within=60, what="two healthy lives")
        target_server.status = 503
        timeline.append((time.monotonic(), "target down"))
        await until(
            lambda: arrived("firing") and len(kills) >= KILLS * 2 // 3,
            within=120,
            what="the firing accepted and the outage two thirds through",
        )
        target_server.status = 200
        timeline.append((time.monotonic(), "target up"))
        await until(lambda: arrived("resolved"), within=120, what="the resolved accepted")

    story = asyncio.create_task(outage())
    try:
        for _ in range(KILLS):
            daemon = await start(config, listen)
            await asyncio.sleep(lives.uniform(*LIFE))
            kills.append(time.monotonic())
            await daemon.kill()
        last = await start(config, listen)
        await asyncio.wait_for(story, 120)
    finally:
        story.cancel()
    # Two more cycles: nothing more to say, and a duplicate still due would show.
    hits = target_server.hits
    await until(lambda: target_server.hits >= hits + 2, what="two quiet cycles")
    await receiver.wait_quiet(HOLD + AFTER_ANSWER)
    assert await last.stop() == 0

    taken = accepted(receiver)
    counts = told(taken)
    for request in receiver.requests:
        about = ", ".join(f"{t} {s}" for t, s in told([request]))
        timeline.append((request.received_at, f"request ({about}) answered {request.status}"))
    landed = [m for m in kills if any(in_window(r, m) for r in taken)]
    mark = "  <- inside an accepted request's window"
    timeline += [(m, "kill" + (mark if m in landed else "")) for m in kills]
    duplicates = sum(counts.values()) - len(counts)
    report = "\n".join(
        [f"seed {seed} (FAULT_SEED={seed} replays it); seconds from the start:"]
        + [f"  {moment - began:6.2f} {what}" for moment, what in sorted(timeline)]
        + [
            f"{len(landed)} of {KILLS} kills landed while the receiver held an accepted "
            f"request; {duplicates} duplicate(s) arrived"
        ]
    )
    print(report)
    assert set(counts) == {("api", "firing"), ("api", "resolved")}, report  # nothing lost
    for key, copies in counts.items():
        # Each kill inside a held request can cost at most one more copy of that message.
        allowed = sum(1 for r in taken if key in told([r]) for m in kills if in_window(r, m))
        assert copies - 1 <= allowed, report
    order = [status for request in taken for _, status in told([request])]
    assert order.index("firing") < order.index("resolved"), report
    assert sum(1 for r in receiver.requests if r.status == 503) == REFUSED, report
