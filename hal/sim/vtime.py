"""Virtual time for whole-station simulations: an event loop whose clock jumps to the next timer.

:class:`hal.clock.SimClock` is made for tests that step time by hand: every wake-up lets the loop
run twenty rounds, which is right for a test and far too slow for a day of an 8-port station (tens
of millions of wake-ups). Here the loop itself keeps virtual time: when nothing is ready to run it
does not wait for the next timer, it moves its clock to that timer at once. Every ``sleep`` on the
station's :class:`~hal.clock.Clock`, every ``asyncio.sleep`` and every ``asyncio.wait_for`` then
runs in the same simulated time, in the same order as in real time, and as fast as the code
itself runs.

Nothing may wait on real input/output or on a thread under this loop (virtual time would run on
while the thread works): the scenario composes its station with inline sensors, in-memory serial
lines and no SQLite store.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

WALL_ORIGIN = 1_767_225_600.0
"""2026-01-01T00:00:00Z: records made in simulated time carry plausible dates."""


class _JumpingSelector(selectors.DefaultSelector):
    """Polls without blocking and tells the loop how far to move its clock instead.

    With nothing registered but the loop's own wake-up pipe (a scenario has no file or socket)
    and no signal handler (signals arrive through that pipe), a poll that may not wait could only
    drain the pipe, so it is not made: a callback another thread hands over is already in the
    loop's ready queue, and the pipe is drained by the next poll that may wait. That saves a
    system call on every turn of the loop, a few percent of a day's simulation.
    """

    loop: VirtualTimeLoop | None = None
    own_fds = 0
    """How many file descriptors the loop registered for itself (its wake-up pipe)."""

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is not None and self.loop is not None:
            if timeout > 0:
                self.loop.jump(timeout)
            if len(self.get_map()) <= self.own_fds and not self.loop.signals:
                return []
            timeout = 0
        return super().select(timeout)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop in simulated time: ``loop.time()`` starts at 0 and never waits."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        selector.own_fds = len(selector.get_map())
        self._virtual_now = 0.0
        self.jumps = 0
        self.signals: set[int] = set()
        """The signals handled on this loop (they arrive through its wake-up pipe)."""

    def add_signal_handler(  # type: ignore[override]
        self, sig: int, callback: Callable[..., object], *args: Any
    ) -> None:
        super().add_signal_handler(sig, callback, *args)
        self.signals.add(sig)

    def remove_signal_handler(self, sig: int) -> bool:
        self.signals.discard(sig)
        return super().remove_signal_handler(sig)

    def time(self) -> float:
        return self._virtual_now

    def jump(self, seconds: float) -> None:
        self._virtual_now += seconds
        self.jumps += 1


class LoopClock:
    """The :class:`hal.clock.Clock` of a :class:`VirtualTimeLoop`: its time, its sleeps.

    It belongs to the loop it is made on (or, made outside one, first asked on): the station asks
    the time hundreds of thousands of times an hour, so the loop is looked up once.
    """

    def __init__(self, wall_origin: float = WALL_ORIGIN) -> None:
        self._wall_origin = wall_origin
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()

    def monotonic(self) -> float:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    def wall(self) -> float:
        return self._wall_origin + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop`; returns its result."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)
