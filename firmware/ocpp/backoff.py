"""Reconnect delays: exponential with jitter, so a fleet does not reconnect all at once."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(
        self,
        minimum_s: float,
        maximum_s: float,
        factor: float = 2.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.minimum_s = minimum_s
        self.maximum_s = maximum_s
        self.factor = factor
        self._jitter = jitter
        self.attempts = 0

    def next_delay(self) -> float:
        """The wait before the next attempt: grows per failure, half to all of the step."""
        step = min(self.maximum_s, self.minimum_s * self.factor**self.attempts)
        self.attempts += 1
        return step * (0.5 + 0.5 * self._jitter())

    def reset(self) -> None:
        self.attempts = 0
