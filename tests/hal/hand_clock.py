"""A clock the test moves by hand, for a bench world stepped by hand (it has no timer then)."""

from __future__ import annotations


class HandClock:
    """Time the test moves by hand, with nothing asleep on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("nothing sleeps in these tests")

    def advance(self, seconds: float) -> None:
        self.now += seconds
