"""Simulated power switches and the hardware watchdog that gates them.

A relay's contacts follow its coil after an operate/release time, and only while the watchdog is
being kicked: on the reference board the coil supply passes through a retriggerable monostable, so
a daemon that stops kicking drops every relay within the hold time. Each relay keeps a timestamped
history (as gpiozero's MockPin does) and may append every transition to a file, so a test in
another process can see what happened even after this one died.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hal.clock import Clock
from hal.interfaces import Relay, Watchdog


class SimWatchdog(Watchdog):
    def __init__(self, clock: Clock, hold_time_s: float = 0.1) -> None:
        self._clock = clock
        self.hold_time_s = hold_time_s
        self._last_kick: float | None = None
        self.kicks = 0

    def kick(self) -> None:
        self._last_kick = self._clock.monotonic()
        self.kicks += 1

    def stop(self) -> None:
        self._last_kick = None

    @property
    def holding(self) -> bool:
        if self._last_kick is None:
            return False
        return self._clock.monotonic() - self._last_kick <= self.hold_time_s


class SimRelay(Relay):
    def __init__(
        self,
        clock: Clock,
        *,
        name: str = "relay",
        watchdog: SimWatchdog | None = None,
        switch_time_s: float = 0.01,
        state_file: str | Path | None = None,
    ) -> None:
        self._clock = clock
        self.name = name
        self._watchdog = watchdog
        self.switch_time_s = switch_time_s
        self._coil = False
        self._coil_changed_at = clock.monotonic()
        self.history: list[tuple[float, bool]] = [(clock.monotonic(), False)]
        self._state_file = Path(state_file) if state_file else None
        self.before_switch: Callable[[], None] | None = None
        """Called just before the coil changes (a simulation brings its physics up to then)."""
        self._record(False)

    def _record(self, closed: bool) -> None:
        if self._state_file is not None:
            with self._state_file.open("a") as handle:
                handle.write(f"{self.name} {'closed' if closed else 'open'}\n")
                handle.flush()

    def _set(self, energised: bool) -> None:
        if energised != self._coil:
            if self.before_switch is not None:
                self.before_switch()
            self._coil = energised
            self._coil_changed_at = self._clock.monotonic()
            self.history.append((self._coil_changed_at, energised))
            self._record(energised)

    async def close(self) -> None:
        self._set(True)

    async def open(self) -> None:
        self._set(False)

    def open_now(self) -> None:
        try:
            self._set(False)
        except Exception:
            self._coil = False

    @property
    def commanded(self) -> bool:
        return self._coil

    @property
    def is_closed(self) -> bool:
        """Contacts closed: coil energised for the operate time, and the watchdog holding."""
        if not self._coil:
            return False
        now = self._clock.monotonic()  # asked once: the supervisor asks this for every port
        watchdog = self._watchdog
        if watchdog is not None:
            kicked = watchdog._last_kick
            if kicked is None or now - kicked > watchdog.hold_time_s:
                return False  # not holding
        return now - self._coil_changed_at >= 0.0

    def lapsed_at(self) -> float | None:
        """When the contacts opened with the coil still on (the watchdog's hold ran out), if
        they have; None when they conduct, the coil is off, or the watchdog was stopped."""
        watchdog = self._watchdog
        if not self._coil or watchdog is None or watchdog._last_kick is None:
            return None
        end = watchdog._last_kick + watchdog.hold_time_s
        return end if end < self._clock.monotonic() else None

    @property
    def conducting(self) -> bool:
        """Whether current can flow now (after the operate time)."""
        if not self.is_closed:
            return False
        return self._clock.monotonic() - self._coil_changed_at >= self.switch_time_s
