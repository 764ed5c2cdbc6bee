"""One charging port: the state it is in, the session it holds, and the switch it may close.

The port carries out what the station decides (admit with a grant, change the grant, pause, stop,
trip, reset) and what its vehicle says (firmware/station/conversation.py). Every action that awaits
runs under the port's lock, so two of them never interleave (two starts, a stop during an
admission); a move that needs no await is atomic on the event loop. A trip is the exception by
design: it opens the switch and moves to FAULT at once, without waiting for the lock, because an
action holding it may be waiting on a vehicle for seconds; whatever the trip leaves to do (telling
the vehicle, the record) runs later under the lock and knows which session it belongs to.

The switch closes in one place only, :meth:`admit`, inside STARTING, after the vehicle accepted its
grant; every other path opens it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from firmware.pevlink import (
    Battery,
    ChargeRequest,
    Fault,
    Hello,
    Power,
    StationState,
    Telemetry,
)
from firmware.pevlink.link import Link
from firmware.pevlink.timers import T_REPLY
from firmware.pevlink.vocabulary import BmsFlag
from firmware.station import stage as stage_control
from firmware.station.conversation import Conversation
from firmware.station.power import PowerActions
from firmware.station.safety import GuardState, Limits, SafetyConfig, Trip
from firmware.station.session import STOP_WORDS, LiveSession, Session
from firmware.station.spec import (
    LINK_ERRORS,
    STATE_NOTICE,
    STATE_WORDS,
    PortIO,
    PortSpec,
)
from firmware.station.states import (
    IDLE_STATES,
    LIVE_STATES,
    SESSION_STATES,
    PortEvent,
    PortState,
    next_state,
)
from hal.clock import Clock, wait_for
from hal.interfaces import PowerReading, StageStatus

log = logging.getLogger(__name__)

READ_SLICE_S = 1.0
"""The longest a read of the vehicle's line waits before it looks again (bytes end it at once):
a quiet line costs one wake-up a second, not twenty. Silence is the supervisor's to judge."""

_CHARGING = int(BmsFlag.CHARGING)
"""As a plain int: asked on every pass, where building the enum cost more than the test."""

__all__ = [
    "LINK_ERRORS",
    "LIVE_STATES",
    "SESSION_STATES",
    "STATE_WORDS",
    "STOP_WORDS",
    "LiveSession",
    "PortController",
    "PortIO",
    "PortSpec",
    "PortState",
]


class PortController(PowerActions):
    """State, session and switch of one port; its power actions are in power.py."""

    def __init__(
        self,
        spec: PortSpec,
        io: PortIO,
        clock: Clock,
        safety: SafetyConfig,
        *,
        station_name: str,
        on_change: Callable[[PortController], None],
    ) -> None:
        self.spec = spec
        self.io = io
        self.clock = clock
        self.safety = safety
        self.station_name = station_name
        self._on_change = on_change
        self.lock = asyncio.Lock()
        conversation = Conversation(self)
        self.link = Link(
            io.link,
            clock,
            on_request=conversation.on_request,
            on_notice=conversation.on_notice,
            read_slice=READ_SLICE_S,
            name=f"port {spec.port_id}",
        )
        self.state = PortState.EMPTY
        self.state_text = STATE_WORDS[PortState.EMPTY]
        self.hello: Hello | None = None
        self.battery: Battery | None = None
        self._limits: Limits | None = None
        self._limits_of: Battery | None = None
        """The battery :attr:`_limits` were made for (frozen: compared by identity)."""
        self.battery_at: float | None = None
        """When the last BATT arrived: its departure time counts from there."""
        self.request: ChargeRequest | None = None
        self.telemetry: Telemetry | None = None
        self.last_tel_at: float | None = None
        self.session: Session | None = None
        self.last_session: Session | None = None
        self.grant_a = 0.0
        self.previous_grant_a = 0.0
        self.settle_until = 0.0
        """Until then a lowered grant still allows the old current (the vehicle is ramping down)."""
        self.settled_at = 0.0
        """Until then the vehicle is still ramping to its grant: no headroom is read into it."""
        self.limit_reason = ""
        self.limit_detail = ""
        self.thermal_factor = 1.0
        self.reading: PowerReading | None = None
        self.reading_at: float | None = None
        self.connected_at: float | None = None
        self.warning: str | None = None
        """The vehicle's last FAULT sev=warn, until it leaves or a new session starts."""
        self.vehicle_gone = False
        """The faulted vehicle fell silent: the next one to identify clears the fault."""
        self.taper: list[tuple[float, float]] = []
        """(time, current) every few seconds of the constant-voltage taper: how fast it decays."""
        self.ident_prompted = False
        self.verified = False
        self.fault: Trip | None = None
        self.guard = GuardState()
        self.stage_status: StageStatus | None = None
        """The port's power stage as last read while it fed the pack (stage.py's watch)."""
        self.stage_disagreements = 0
        self.account_v: float | None = None
        """The voltage the last allocation round counted this port's grant at (None: vmax)."""
        self.direct_reads = True
        """May the at-rest check read the sensor itself? Not while the safety core's own thread
        owns the bus: then it waits for the core's next reading."""
        self.out_of_service: str | None = None
        """Why no session may start here (set unavailable by the central system), or None."""
        self.link_down: str | None = None
        """Why the port's serial line is lost, while it is; None when it works."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.on_session_end: Callable[[PortController, Session], Any] | None = None
        self.on_trip: Callable[[PortController, Trip, Session | None], Any] | None = None
        self.ports_for: Callable[[float, float], list[int]] = lambda v_min, v_max: []
        """The station's ports whose range takes a pack from ``v_min`` to ``v_max``: a refusal
        tells the rider where to go."""

    # --- state ------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """An action is under way on this port: the allocator leaves it alone this round."""
        return self.lock.locked()

    def move(self, event: PortEvent, text: str | None = None, to: PortState | None = None) -> None:
        """Change state through the table; an illegal move raises and changes nothing."""
        state = next_state(self.state, event, to)
        changed = state != self.state
        if changed and state == PortState.CONNECTED:
            self.connected_at = self.clock.monotonic()
            self.ident_prompted = False
        words = text or STATE_WORDS[state]
        if state == PortState.READY and self.out_of_service and text is None:
            words = self.out_of_service
        told = changed or words != self.state_text
        self.state = state
        self.state_text = words
        if told and state in STATE_NOTICE:
            # The words decided now, not whatever the state is when the notice goes out; a new
            # reason in the same state is told too (PEV Link §3.11).
            self.spawn(self._tell(STATE_NOTICE[state], words[:48]))
        self._on_change(self)

    def set_words(self, text: str) -> None:
        """New words for the same state (why a port waits, a fault's vehicle went silent)."""
        if text != self.state_text:
            self.state_text = text
            if self.state in STATE_NOTICE:
                self.spawn(self._tell(STATE_NOTICE[self.state], text[:48]))
            self._on_change(self)

    def changed(self) -> None:
        """Something shown changed (telemetry, a warning, a grant) without a move."""
        self._on_change(self)

    async def _tell(self, word: str, text: str) -> None:
        with contextlib.suppress(*LINK_ERRORS):
            await wait_for(self.clock, self.link.notify(StationState(word, text)), T_REPLY)

    def in_state(self, state: PortState) -> bool:
        """The state now (after an await, when another task may have changed it)."""
        return self.state == state

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """A task of this port that failed trips it: a watch that died must not leave power on.
        A cancelled one (the session's end, the station's close) is no failure."""
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("port %d: a task failed", self.port_id, exc_info=exc)
            self.trip(Trip("internal", f"Station error: {exc}"[:120]))

    def limits(self) -> Limits | None:
        """The port's limits now; the same object while nothing in them changes (asked for
        several times on every pass)."""
        battery = self.battery
        if battery is None:
            return None
        grant = self.grant_a
        if self.clock.monotonic() < self.settle_until:
            grant = max(grant, self.previous_grant_a)
        made = self._limits
        if (
            made is not None
            and self._limits_of is battery
            and made.grant_a == grant
            and made.port_max_a == self.spec.max_current_a
        ):
            return made
        self._limits_of = battery
        self._limits = Limits(
            grant_a=grant,
            port_max_a=self.spec.max_current_a,
            v_max_v=battery.v_max_v,
            v_min_v=battery.v_min_v,
            t_min_c=battery.t_min_c,
            t_max_c=battery.t_max_c,
        )
        return self._limits

    def vehicle_max_a(self) -> float:
        """The most this vehicle may take now: its profile, its request, the port, heat."""
        if self.battery is None:
            return 0.0
        cap = min(self.battery.i_max_a, self.spec.max_current_a)
        reason = "vehicle" if self.battery.i_max_a <= self.spec.max_current_a else "port"
        if self.request is not None and self.request.current_a < cap:
            cap, reason = self.request.current_a, "vehicle request"
        power_cap = self.spec.max_power_w / self.battery.v_max_v
        if power_cap < cap:
            cap, reason = power_cap, "port power"
        if self.thermal_factor < 1.0:
            cap *= self.thermal_factor
            reason = "battery temperature"
        self.limit_reason = reason
        return max(0.0, cap)

    def vehicle_reports_charging(self) -> bool:
        tel = self.telemetry
        if tel is None:
            return False
        return bool(tel.flags & _CHARGING) and tel.current_a > 0.3

    def forget_vehicle(self, keep_fault: bool = False) -> None:
        """Everything the vehicle told us goes; a fault stays on show when asked."""
        self.warning = None
        self.hello = None
        self.battery = None
        self.request = None
        self.telemetry = None
        self.last_tel_at = None
        self.thermal_factor = 1.0
        self.link.last_rx = None
        if not keep_fault:
            self.fault = None
            self.vehicle_gone = False

    def vehicle_left(self) -> None:
        """The vehicle has gone (unplugged, or silent for T_LINK): forget it, free the port."""
        if self.state in LIVE_STATES or self.relay_closed:
            raise RuntimeError("a live port must trip before its vehicle is forgotten")
        self.forget_vehicle()
        self.move(PortEvent.GONE)

    # --- sessions ---------------------------------------------------------------------------------

    def open_session(self, event: PortEvent) -> Session:
        """READY -> WAITING or PAYMENT with a new session; called under the port's lock."""
        soc = self.telemetry.soc_pct if self.telemetry else None
        if soc is None and self.battery is not None:
            soc = self.battery.soc_pct
        session = Session.open(self.port_id, self.clock.wall(), self.clock.monotonic(), soc)
        self.move(event)  # raises, and nothing is opened, unless the port is READY
        self.taper.clear()
        self.warning = None
        self.session = session
        return session

    def end_session(
        self,
        session: Session,
        reason: str,
        text: str | None,
        *,
        move: bool = True,
        shown: bool = False,
    ) -> bool:
        """End ``session`` if it is still this port's; False for a stale or second ending."""
        if session is not self.session or not session.end(reason, text, self.clock.monotonic()):
            return False
        self.session = None
        self.grant_a = 0.0
        self.account_v = None
        self.last_session = session
        if move:
            words = text if shown and text else STOP_WORDS.get(reason, "Finished")
            self.move(PortEvent.FINISH, words)
        return True

    async def announce_end(self, session: Session) -> None:
        """The record, then the vehicle's summary (SUM) of an ended session."""
        if self.on_session_end is not None:
            result = self.on_session_end(self, session)
            if asyncio.iscoroutine(result):
                await result
        with contextlib.suppress(*LINK_ERRORS):
            reason = session.end_reason or "user"
            await wait_for(self.clock, self.link.notify(session.summary(reason)), T_REPLY)

    async def finish(
        self, session: Session, reason: str, text: str | None = None, *, shown: bool = False
    ) -> None:
        """End a session that has no power (payment, waiting); under the lock. ``shown``: the
        port shows ``text`` itself rather than the reason's usual words."""
        if self.end_session(session, reason, text, shown=shown):
            await self.announce_end(session)

    def open_switch(self) -> None:
        """Open now, synchronously; the power time stops counting.

        A switch that cannot be driven is logged here and found by the safety core at its next
        pass (it reads as closed outside a permit): the core then stops the watchdog's kicks.
        """
        try:
            self.io.relay.open_now()
        except Exception:
            log.exception("port %d: the switch did not open", self.port_id)
        if self.session is not None:
            self.session.power_off(self.clock.monotonic())

    def trip(self, trip: Trip) -> None:
        """A fault: the switch opens first, now; the session ends; the rest follows later."""
        self.open_switch()
        self.link.abandon(f"port {self.port_id}: {trip.text}")
        if self.state == PortState.FAULT and self.fault is not None:
            return
        session = self.session
        self.fault = trip
        self.vehicle_gone = False
        self.grant_a = 0.0
        log.warning("port %d: fault %s: %s", self.port_id, trip.code, trip.text)
        if session is not None:
            self.end_session(session, "fault", trip.text, move=False)
        self.move(PortEvent.TRIP, trip.text)
        if self.on_trip is not None:
            self.on_trip(self, trip, session)
        if self.io.stage is not None:  # after the switch, never before it: it may not answer
            self.spawn(stage_control.switch_off(self))
        self.spawn(self._after_trip(trip, session))

    async def _after_trip(self, trip: Trip, session: Session | None) -> None:
        """Tell the vehicle, record the ended session, switch its power off: that trip's only."""
        with contextlib.suppress(*LINK_ERRORS):
            notice = Fault(trip.code, "stop", trip.text[:48])
            await wait_for(self.clock, self.link.notify(notice), T_REPLY)
        if session is not None:
            async with self.lock:
                await self.announce_end(session)
        if self.state == PortState.FAULT and self.fault is trip:
            with contextlib.suppress(*LINK_ERRORS):
                await self.link.request(Power(0))

    async def reset(self) -> bool:
        """An operator's reset of a fault; False when the port has none."""
        async with self.lock:
            return self.reset_fault()

    def reset_fault(self) -> bool:
        if self.state != PortState.FAULT or self.relay_closed:
            return False
        self.fault = None
        self.vehicle_gone = False
        self.guard = GuardState()
        if self.battery is not None:
            target = PortState.READY
        elif self.hello is not None:
            target = PortState.CONNECTED
        else:
            target = PortState.EMPTY
        self.move(PortEvent.RESET, to=target)
        return True

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.link.aclose()


def idle(port: PortController) -> bool:
    return port.state in IDLE_STATES
