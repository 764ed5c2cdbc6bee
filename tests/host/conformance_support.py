"""Running the conformance kit against a device in the same event loop, on simulated time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from hal.clock import SimClock
from hal.sim.serial_pty import PtyCable
from tests.support import LineSettler

T = TypeVar("T")

STEP_S = 0.004
"""Simulated time per step while lines cross the real ptys: a reply's T_REPLY (0.5 s) is then at
least 125 ms of real time, far more than a pty round trip takes even on a busy machine."""


async def drive(
    clock: SimClock, job: Awaitable[T], cables: Iterable[PtyCable], limit_s: float = 400.0
) -> T:
    """Advance simulated time until ``job`` is done (the kit's run), letting pty traffic flow:
    each step waits for the bytes on ``cables`` to reach their readers (tests/support.py)."""
    lines = LineSettler(lambda: cables)
    task = asyncio.ensure_future(job)
    try:
        while not task.done():
            if clock.monotonic() > limit_s:
                raise AssertionError(f"not done within {limit_s} s of simulated time")
            await lines.settle()
            await clock.advance(STEP_S)
            await asyncio.sleep(0.0005)
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


Starter = Callable[[], Awaitable[None]]

SLACK_S = 0.5
"""The kit's --slack in these tests: on a loaded machine the pty copying thread may run late by
tens of milliseconds of real time, which the stepped simulated clock turns into a few hundred
milliseconds of simulated time."""
