"""When Python's cycle collector may run a full pass: only while no switch may be closed.

A full pass holds the interpreter for as long as it scans every long-lived object: about 80 ms of
one core here with a thousand live viewers (``python -m bench viewers``), during which the
safety thread cannot run, cannot kick, and so would trip every port (docs/architecture.md).
Young passes are short (a few milliseconds) and stay automatic. The full pass waits for a moment
when no port is live, where a pause costs nothing; on a station that is never idle it still runs
once the long-lived heap has grown well past its size after the last pass, so a cycle leak
cannot grow without bound: that pause may then trip the live ports, which is safe, and is logged.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

from hal.clock import Clock

log = logging.getLogger(__name__)

NEVER = 1_000_000_000
"""A full-pass threshold the automatic collector never reaches."""

CHECK_PERIOD_S = 60.0
IDLE_GROWTH = 1.25
"""While idle, a full pass runs once the long-lived heap grew by a quarter (CPython's own rule)."""
GROWTH_FACTOR = 4
GROWTH_MIN_OBJECTS = 1_000_000


class FullCollections:
    """Take full cycle collections off the automatic schedule and run them while idle."""

    def __init__(
        self,
        clock: Clock,
        idle: Callable[[], bool],
        *,
        check_period_s: float = CHECK_PERIOD_S,
        long_lived: Callable[[], int] = lambda: len(gc.get_objects(generation=2)),
        collect: Callable[[], object] = lambda: gc.collect(2),
    ) -> None:
        self.clock = clock
        self.idle = idle
        self.check_period_s = check_period_s
        self._long_lived = long_lived
        self._collect = collect
        self.baseline = 0
        self.runs = 0
        self.forced = 0

    def take_over(self) -> None:
        """Leave what exists now out of every scan (it lives as long as the daemon), and stop
        the automatic full passes; young passes keep their thresholds."""
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, NEVER)
        self.baseline = self._long_lived()

    def due(self) -> str | None:
        """Why a full pass should run now, or None."""
        long_lived = self._long_lived()
        if self.idle() and long_lived > self.baseline * IDLE_GROWTH:
            return "idle"
        bound = max(self.baseline * GROWTH_FACTOR, self.baseline + GROWTH_MIN_OBJECTS)
        if long_lived > bound:
            return "grown"
        return None

    def check(self) -> None:
        why = self.due()
        if why is None:
            return
        if why == "grown":
            self.forced += 1
            log.warning(
                "a full collection runs while ports are live: the long-lived heap grew past %d "
                "objects; the safety loop may trip the live ports during the pause",
                max(self.baseline * GROWTH_FACTOR, self.baseline + GROWTH_MIN_OBJECTS),
            )
        self._collect()
        self.runs += 1
        self.baseline = self._long_lived()

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.check_period_s)
            self.check()
