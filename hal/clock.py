"""Injectable time.

Domain code (physics, timeouts, the control loop) never calls ``time.monotonic()`` or
``asyncio.sleep()`` directly: it takes a :class:`Clock`. Production uses :class:`RealClock`;
the bench may run faster than real time with :class:`ScaledClock`; tests drive
:class:`SimClock` by hand, so they run in simulated time without sleeps or flakiness.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    """A source of time and of waiting."""

    def monotonic(self) -> float:
        """Seconds since an arbitrary origin; never goes backwards."""
        ...

    def wall(self) -> float:
        """Unix time in seconds, for records people read."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


async def wait_for(clock: Clock, awaitable: Awaitable[T], timeout: float) -> T:
    """Await ``awaitable`` for at most ``timeout`` seconds of ``clock`` time.

    Raises :class:`TimeoutError` (and cancels the awaitable) when the clock's time runs out first.
    Works with every clock, unlike ``asyncio.timeout`` which only knows the loop's time.
    """
    task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
    timer: asyncio.Future[None] = asyncio.ensure_future(clock.sleep(timeout))
    try:
        waiters: list[asyncio.Future[Any]] = [task, timer]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        raise
    if task.done():
        timer.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise TimeoutError(f"no result within {timeout:g} s")


class RealClock:
    """The machine's clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Real time multiplied by ``speed``: the bench runs physics and timers faster than life."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._speed = speed
        self._origin_real = time.monotonic()
        self._origin_scaled = 0.0
        self._wall0 = time.time()

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value <= 0:
            raise ValueError("speed must be positive")
        now = self.monotonic()
        self._origin_real = time.monotonic()
        self._origin_scaled = now
        self._speed = value

    def monotonic(self) -> float:
        return self._origin_scaled + (time.monotonic() - self._origin_real) * self._speed

    def wall(self) -> float:
        return self._wall0 + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._speed)


class SimClock:
    """Simulated time that moves only when told to.

    ``await clock.advance(dt)`` wakes every sleeper whose deadline falls within ``dt``, in order,
    letting the event loop run the woken tasks before time moves on. ``await clock.run_until(t)``
    does the same up to an absolute time.
    """

    def __init__(self, start: float = 0.0, wall_origin: float = 1_767_225_600.0) -> None:
        self._now = start
        self._wall_origin = wall_origin  # 2026-01-01T00:00:00Z, so records look plausible
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._wall_origin + self._now

    def jump_wall(self, seconds: float) -> None:
        """Set the wall clock forward or back, as NTP does to a Pi without a real-time clock."""
        self._wall_origin += seconds

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._counter), future))
        await future

    def next_deadline(self) -> float | None:
        """When the earliest pending sleeper wakes, if any."""
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    async def advance(self, seconds: float) -> None:
        await self.run_until(self._now + seconds)

    async def run_until(self, deadline: float) -> None:
        await _settle()
        while True:
            self._drop_cancelled()
            if not self._sleepers or self._sleepers[0][0] > deadline:
                break
            wake_at, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, wake_at)
            if not future.done():
                future.set_result(None)
            await _settle()
        self._now = max(self._now, deadline)
        await _settle()

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)


async def _settle(rounds: int = 20) -> None:
    """Let ready tasks run: each ``sleep(0)`` gives every ready callback one turn."""
    for _ in range(rounds):
        await asyncio.sleep(0)
