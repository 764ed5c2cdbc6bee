"""The electrical safety loop: read every sensor, apply the electrical rules, open, kick.

It knows nothing of sessions or the protocol. The control plane publishes a :class:`Permit` per
port (may this port's switch be closed, and within which limits) whenever a port changes and on
every supervisor pass; the core reads each sensor in turn with a deadline, opens a switch at once
(a synchronous GPIO write) when a rule or a stale permit says so, reports the trip back, and kicks
the hardware watchdog only after a complete pass.

It runs in one of two ways, with the same code: in its own thread with its own event loop and its
own single I2C worker (the daemon: a web client, a slow disk or a busy event loop cannot delay
it), or inline in the supervisor's pass (tests in simulated time). docs/architecture.md says why
a thread and not a process.

Three things stop the kicks for good, so the board drops every switch within its hold time: a
switch that cannot be opened (its GPIO write failed: the relay is unknown), and nothing else:
everything else is handled by opening the one port concerned. A pass that starts later than the
watchdog's hold after the last (the loop stalled: the board dropped every switch meanwhile) opens
every switch and trips every port that had a permit, so no switch closes again when the kicks
resume without a fresh admission and its at-rest check.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import math
import os
import sys
import threading
import types
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any

from firmware.station.safety import (
    GuardState,
    Limits,
    SafetyConfig,
    Trip,
    check_disconnect,
    check_overcurrent,
    check_overvoltage,
)
from hal.clock import Clock, wait_for
from hal.errors import SensorError, SensorOverflow
from hal.interfaces import PowerMonitor, PowerReading, Relay, Watchdog

log = logging.getLogger(__name__)

PERMIT_TTL_S = 1.0
"""A permit not renewed for this long (the control plane has stopped) no longer holds a switch;
at least five watchdog holds, so a bench given a longer hold is as patient."""

PASSES_PER_HOLD = 4
"""The thread passes (and kicks) at least this often per watchdog hold, whatever the poll period:
a pass delayed by as much again as its own period still kicks within half the hold."""

SWITCH_INTERVAL_S = 0.001
"""How long another thread may hold the interpreter before the safety loop's turn (Python's
default is 5 ms): a web thread busy with thousands of clients hands it over within a
millisecond."""

READ_DEADLINE_FRACTION = 0.4
"""A sensor read (two registers at 400 kHz take well under a millisecond) may take this share of
the poll period before its port trips."""


@dataclass(frozen=True, slots=True)
class Permit:
    """What the control plane allows on one port now; replaced whole, never changed."""

    live: bool = False
    """A live session: the switch may be closed."""
    limits: Limits | None = None
    verified: bool = False
    grant_a: float = 0.0
    busy: bool = False
    vehicle_charging: bool = False
    guard: GuardState = field(default_factory=GuardState)
    expires_at: float = math.inf


@dataclass(frozen=True, slots=True)
class Measurement:
    reading: PowerReading | None
    error: SensorError | None
    at: float


@dataclass(slots=True)
class CorePort:
    port_id: int
    monitor: PowerMonitor
    relay: Relay


Report = Callable[[int, Trip], None]

_NO_PERMIT = Permit()
"""What a port without a permit may do: nothing (only read, never changed: its guard too)."""


class SafetyCore:
    def __init__(
        self,
        clock: Clock,
        config: SafetyConfig,
        ports: list[CorePort],
        watchdog: Watchdog | None,
        report: Report,
        *,
        hold_s: Callable[[], float],
        read_deadline_s: Callable[[], float],
    ) -> None:
        self.clock = clock
        self.config = config
        self.ports = {p.port_id: p for p in ports}
        self.watchdog = watchdog
        self.report = report
        self._hold_s = hold_s
        self._read_deadline_s = read_deadline_s
        self.permits: dict[int, Permit] = {p.port_id: Permit() for p in ports}
        self.latest: dict[int, Measurement] = {}
        self.kicks_stopped: str | None = None
        """Why the watchdog is no longer kicked (a switch that would not open), if it is not."""
        self.passes = 0
        self.overruns = 0
        self.longest_gap_s = 0.0
        self._last_pass: float | None = None
        self.pass_seconds: collections.deque[float] = collections.deque(maxlen=1000)
        """Durations of the last passes (for the benchmarks and metrics); bounded."""

    # --- one pass ---------------------------------------------------------------------------------

    async def pass_once(self) -> None:
        now = self.clock.monotonic()
        if self._last_pass is not None:
            gap = now - self._last_pass
            self.longest_gap_s = max(self.longest_gap_s, gap)
            if gap > self._hold_s():
                self._stalled(gap)
        self._last_pass = now
        for port in self.ports.values():
            measurement = await self._read(port)
            self.latest[port.port_id] = measurement
            trip = self._check(port, measurement, self.clock.monotonic())
            if trip is not None:
                self.cut(port.port_id, trip)
        self.passes += 1
        self.pass_seconds.append(self.clock.monotonic() - now)

    def hold_s(self) -> float:
        return self._hold_s()

    def kick(self) -> None:
        if self.kicks_stopped is None and self.watchdog is not None:
            self.watchdog.kick()

    async def _read(self, port: CorePort) -> Measurement:
        read = port.monitor.read()
        try:
            # A read that answers without waiting (a bus read in this thread) needs no deadline
            # timer: none could fire before it returns. Only one that waits gets one (two tasks
            # and a timer per read were most of a pass's cost on the bench).
            waiting_on = read.send(None)
        except StopIteration as answered:
            return Measurement(answered.value, None, self.clock.monotonic())
        except SensorError as exc:
            return Measurement(None, exc, self.clock.monotonic())
        deadline = self._read_deadline_s()
        try:
            reading = await wait_for(self.clock, _resume(read, waiting_on), deadline)
        except SensorError as exc:
            return Measurement(None, exc, self.clock.monotonic())
        except TimeoutError:
            error = SensorError(f"no answer within {deadline * 1000:.0f} ms")
            return Measurement(None, error, self.clock.monotonic())
        return Measurement(reading, None, self.clock.monotonic())

    def _check(self, port: CorePort, m: Measurement, now: float) -> Trip | None:
        permit = self.permits.get(port.port_id) or _NO_PERMIT
        closed = port.relay.is_closed
        if not (closed or permit.live):
            return None
        if permit.live and now > permit.expires_at:
            return Trip("internal", "The station's control loop stopped answering")
        if closed and not permit.live:
            return Trip("internal", "The switch was closed outside a live session")
        if m.error is not None:
            if isinstance(m.error, SensorOverflow):  # most likely a real over-current
                return Trip("overcurrent", f"Current beyond what the port can measure: {m.error}")
            return Trip("sensor", f"The port's power sensor failed: {m.error}")
        limits, reading = permit.limits, m.reading
        if not closed or reading is None:
            return None
        if limits is None:
            return Trip("internal", "The switch was closed without a battery profile")
        cfg, guard = self.config, permit.guard
        trip = check_overcurrent(cfg, guard, limits, reading.current_a, now) or check_overvoltage(
            cfg, limits, reading.bus_voltage_v
        )
        if trip is None and permit.verified and permit.grant_a > 0 and not permit.busy:
            trip = check_disconnect(cfg, guard, reading.current_a, permit.vehicle_charging, now)
        return trip

    def cut(self, port_id: int, trip: Trip) -> None:
        """Open this port's switch now, then report why; a switch that will not open stops the
        kicks, so the board drops every switch."""
        port = self.ports[port_id]
        try:
            port.relay.open_now()
        except Exception as exc:
            self.stop_kicks(f"port {port_id}: the switch did not open ({exc})")
        self.permits[port_id] = Permit()
        self.report(port_id, trip)

    def stop_kicks(self, why: str) -> None:
        if self.kicks_stopped is None:
            log.critical("%s: no more watchdog kicks; the board drops every switch", why)
            self.kicks_stopped = why
            if self.watchdog is not None:
                self.watchdog.stop()

    def _stalled(self, gap: float) -> None:
        """The board dropped every switch during the gap: keep them open, and say so."""
        self.overruns += 1
        trip = Trip(
            "watchdog",
            f"The safety loop stalled for {gap * 1000:.0f} ms; the switch was dropped",
        )
        tripped = [
            port_id
            for port_id, port in self.ports.items()
            if self.permits.get(port_id, Permit()).live or port.relay.is_closed
        ]
        for port_id in tripped:
            self.cut(port_id, trip)
        # With no switch closed the pause cost nothing (the station may choose such moments).
        log.log(
            logging.ERROR if tripped else logging.INFO,
            "safety loop stalled for %.0f ms (hold %.0f ms); ports tripped: %s",
            gap * 1000,
            self._hold_s() * 1000,
            tripped or "none",
        )

    def open_all(self) -> None:
        for port_id, port in self.ports.items():
            try:
                port.relay.open_now()
            except Exception as exc:
                self.stop_kicks(f"port {port_id}: the switch did not open ({exc})")


@types.coroutine
def _resume(
    coro: Coroutine[Any, Any, PowerReading], waiting_on: Any
) -> Generator[Any, Any, PowerReading]:
    """The rest of ``coro``, which has already yielded ``waiting_on`` to its first step: the
    event loop gets that future and every later one, and the result or error comes back."""
    try:
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                raise
            except BaseException as exc:  # cancellation from the deadline, passed on inside
                waiting_on = coro.throw(exc)
            else:
                waiting_on = coro.send(sent)
    except StopIteration as done:
        result: PowerReading = done.value
        return result
    finally:
        coro.close()


class SafetyThread:
    """The core in its own thread, with its own event loop and its own single I2C worker."""

    def __init__(self, core: SafetyCore, period_s: Callable[[], float]) -> None:
        self.core = core
        self._poll_period_s = period_s
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._pause: asyncio.Future[None] | None = None
        """The wait between two passes, cancelled by :meth:`stop`."""
        self._ready = threading.Event()
        self.error: BaseException | None = None

    def _period_s(self) -> float:
        return min(self._poll_period_s(), self.core.hold_s() / PASSES_PER_HOLD)

    def start(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._thread = threading.Thread(target=self._main, name="safety-loop", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def _main(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            # Ahead of the web and the records in the kernel's queue, where allowed (root).
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        loop = asyncio.new_event_loop()
        self._loop = loop
        i2c = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="i2c")
        loop.set_default_executor(i2c)
        try:
            loop.run_until_complete(self._run())
        except BaseException as exc:  # the loop must not die silently: stop the kicks
            self.error = exc
            log.exception("safety loop failed")
            self.core.stop_kicks(f"the safety loop failed: {exc}")
            self.core.open_all()
        finally:
            i2c.shutdown(wait=False, cancel_futures=True)
            loop.close()

    async def _run(self) -> None:
        self._ready.set()
        core = self.core
        while not self._stopping:
            started = core.clock.monotonic()
            try:
                await core.pass_once()
            except Exception as exc:
                log.exception("safety pass failed; opening every switch")
                for port_id in core.ports:
                    core.cut(port_id, Trip("internal", f"Station error in the safety loop: {exc}"))
            else:
                core.kick()
            elapsed = core.clock.monotonic() - started
            if self._stopping:
                break
            # One sleep on the clock per pass, which stop() cancels (a wait on a stop event
            # besides cost two tasks and a wait per pass).
            self._pause = asyncio.ensure_future(
                core.clock.sleep(max(0.001, self._period_s() - elapsed))
            )
            try:
                await self._pause
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
            finally:
                self._pause = None

    def _stop_now(self) -> None:
        self._stopping = True
        if self._pause is not None:
            self._pause.cancel()

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile: the thread has ended
                loop.call_soon_threadsafe(self._stop_now)
        if self._thread is not None:
            self._thread.join(2.0)
