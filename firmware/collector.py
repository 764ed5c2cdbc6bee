"""When Python's cycle collector may run a full pass: when the pause fits, or no switch is closed.

A full pass holds the interpreter for as long as it scans every long-lived object: about 80 ms of
one core here with a thousand live viewers (``python -m bench viewers``), during which the safety
thread cannot run or kick, so it would trip every live port (docs/architecture.md). Young passes
are short and stay automatic. A full pass runs once the heap has grown by a quarter since the
last one, and then only if no port is live or its pause, estimated from the last pass's cost per
allocated block, fits in ``pause_budget_s``; otherwise it waits for an idle moment. Only past a
leak bound does it run regardless (logged): the stall may then trip the live ports, which is
safe. Growth is read from ``sys.getallocatedblocks()``, which costs nothing, never by listing
the heap, which itself takes tens of milliseconds on a large one.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable

from hal.clock import Clock

log = logging.getLogger(__name__)

NEVER = 1_000_000_000
"""A full-pass threshold the automatic collector never reaches."""

CHECK_PERIOD_S = 10.0
GROWTH = 1.25
"""A full pass is due once the heap has grown by a quarter (CPython's own rule for its gen 2)."""
LEAK_BLOCKS = 1_000_000
"""Growth (allocated blocks, some tens of megabytes) after which a pass runs even while live."""


class FullCollections:
    """Take full cycle collections off the automatic schedule and run them when they fit."""

    def __init__(
        self,
        clock: Clock,
        idle: Callable[[], bool],
        pause_budget_s: Callable[[], float],
        *,
        check_period_s: float = CHECK_PERIOD_S,
        blocks: Callable[[], int] = sys.getallocatedblocks,
        collect: Callable[[], object] = lambda: gc.collect(2),
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        self.clock = clock
        self.idle = idle
        self.pause_budget_s = pause_budget_s
        self.check_period_s = check_period_s
        self._blocks = blocks
        self._collect = collect
        self._cpu = cpu
        self.baseline = 0
        self.seconds_per_block = 0.0
        self.last_pause_s = 0.0
        self.runs = 0
        self.forced = 0

    def take_over(self) -> None:
        """Collect once and freeze what is left (it lives as long as the daemon, and is never
        scanned again), then stop the automatic full passes; young passes keep their thresholds."""
        self._run()
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, NEVER)

    def estimated_pause_s(self) -> float:
        return self.seconds_per_block * self._blocks()

    def due(self) -> str | None:
        """Why a full pass should run now, or None."""
        blocks = self._blocks()
        if blocks <= self.baseline * GROWTH:
            return None
        if self.idle():
            return "idle"
        if self.seconds_per_block * blocks <= self.pause_budget_s():
            return "fits"
        if blocks > self.baseline + LEAK_BLOCKS:
            return "leak"
        return None

    def check(self) -> None:
        why = self.due()
        if why is None:
            return
        if why == "leak":
            self.forced += 1
            log.warning(
                "a full collection runs while ports are live (the heap grew by %d blocks, about "
                "%.0f ms to collect): the safety loop may trip the live ports during the pause",
                self._blocks() - self.baseline,
                self.estimated_pause_s() * 1000,
            )
        self._run()

    def _run(self) -> None:
        started = self._cpu()
        self._collect()
        self.last_pause_s = self._cpu() - started
        self.baseline = self._blocks()
        self.seconds_per_block = self.last_pause_s / max(1, self.baseline)
        self.runs += 1

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.check_period_s)
            self.check()
