"""The watchdog's kicks as the board sees them: the longest gap between two, and how many gaps
outlasted its hold time (each one would have dropped every switch), and the reference board's
100 ms and half of it, whatever hold the bench's watchdog was given (``PEV_SIM_WATCHDOG_HOLD_S``
lengthens it on a crowded machine so the ports keep charging while the gaps are measured).

The bench wraps the simulated watchdog's ``kick`` so a benchmark can read the gaps over HTTP
(``GET /api/sim/watchdog``, ``POST /api/sim/watchdog/reset``) from outside the process.
"""

from __future__ import annotations

import threading

from aiohttp import web

from hal.clock import Clock
from hal.interfaces import Watchdog

BOARD_HOLD_S = 0.1
"""The reference board's monostable (hardware/README.md)."""


class KickLog:
    def __init__(self, watchdog: Watchdog, clock: Clock) -> None:
        self._watchdog = watchdog
        self._clock = clock
        self._kick = watchdog.kick
        self._lock = threading.Lock()  # the safety loop may kick from its own thread
        self.hold_s = float(getattr(watchdog, "hold_time_s", 0.1))
        self.reset()
        watchdog.kick = self.kick  # type: ignore[method-assign]

    def reset(self) -> None:
        with self._lock:
            self.kicks = 0
            self.longest_s = 0.0
            self.over_hold = 0
            self.over_half_hold = 0
            self.over_board = 0
            self.over_half_board = 0
            self._last: float | None = None

    def kick(self) -> None:
        self._kick()
        now = self._clock.monotonic()
        with self._lock:
            if self._last is not None:
                gap = now - self._last
                self.longest_s = max(self.longest_s, gap)
                self.over_hold += gap > self.hold_s
                self.over_half_hold += gap > self.hold_s / 2
                self.over_board += gap > BOARD_HOLD_S
                self.over_half_board += gap > BOARD_HOLD_S / 2
            self._last = now
            self.kicks += 1

    def view(self) -> dict[str, float | int]:
        with self._lock:
            return {
                "kicks": self.kicks,
                "longest_gap_s": round(self.longest_s, 4),
                "gaps_over_hold": self.over_hold,
                "gaps_over_half_hold": self.over_half_hold,
                "hold_s": self.hold_s,
                "gaps_over_100ms": self.over_board,
                "gaps_over_50ms": self.over_half_board,
            }


KICKS_KEY = web.AppKey("kick_log", KickLog)


async def get_kicks(request: web.Request) -> web.Response:
    return web.json_response(request.app[KICKS_KEY].view())


async def reset_kicks(request: web.Request) -> web.Response:
    log = request.app[KICKS_KEY]
    log.reset()
    return web.json_response(log.view())


def add_kick_routes(app: web.Application, watchdog: Watchdog, clock: Clock) -> KickLog:
    log = app[KICKS_KEY] = KickLog(watchdog, clock)
    app.router.add_get("/api/sim/watchdog", get_kicks)
    app.router.add_post("/api/sim/watchdog/reset", reset_kicks)
    return log
