"""The link's heartbeat: HB goes out once a side has sent nothing for a period, looked at every
half period, whatever else the link sends (run in virtual time, so nothing waits)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.pevlink import Telemetry, decode
from firmware.pevlink.link import Link
from hal.sim.vtime import LoopClock, run_virtual

PERIOD = 1.0
END = 12.0
TEL = Telemetry(50.0, 40.0, 2.0, 25.0, 1)


class Recorder:
    """A transport that keeps what is written, and when; nothing ever arrives."""

    def __init__(self, clock: LoopClock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, str]] = []

    async def read(self, timeout: float) -> bytes:
        await asyncio.Event().wait()
        return b""

    async def write(self, data: bytes) -> None:
        self.sent.append((self.clock.monotonic(), decode(data).message.NAME))


def half_period_looks(traffic: list[float]) -> list[float]:
    """When HB is due by the rule itself: a look every half period, HB after a silent period."""
    sent: list[float] = []
    t = 0.0
    while t + PERIOD / 2 < END:
        t += PERIOD / 2
        last = max([x for x in traffic if x <= t] + [x for x in sent if x <= t], default=None)
        if last is None or t - last >= PERIOD:
            sent.append(t)
    return sent


async def heartbeats(traffic: list[float]) -> list[float]:
    clock = LoopClock()
    transport = Recorder(clock)
    link = Link(transport, clock, heartbeat_period=PERIOD, name="test")
    running = asyncio.create_task(link.run())
    for at in traffic:
        await clock.sleep(at - clock.monotonic())
        await link.notify(TEL)
    await clock.sleep(END - clock.monotonic() - 0.01)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    return [t for t, name in transport.sent if name == "HB"]


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.integers(0, 47), max_size=30, unique=True).map(sorted))
def test_heartbeats_go_out_exactly_when_half_period_looks_find_a_silent_period(
    eighths: list[int],
) -> None:
    # Other lines at odd eighths of a period: never at the same moment as a look.
    traffic = [(2 * k + 1) * PERIOD / 8 for k in eighths]
    assert run_virtual(heartbeats(traffic)) == half_period_looks(traffic)


def test_a_link_that_sends_more_often_than_the_period_sends_no_heartbeat() -> None:
    traffic = [0.375 + 0.75 * k for k in range(15)]
    assert run_virtual(heartbeats(traffic)) == []
    assert run_virtual(heartbeats([])) == [0.5 + k for k in range(12)]
