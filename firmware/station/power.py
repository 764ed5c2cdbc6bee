"""What the station does with a port's power: admit, change the grant, pause, stop.

Each runs under the port's lock and, after every await, checks that the same session is still in
the same state before it goes on: a trip meanwhile (which never waits for the lock) ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, cast

from firmware.pevlink import Grant, Power, Stop
from firmware.pevlink.timers import I_BREAK_A, T_RAMP_MAX, T_SETTLE
from firmware.station import stage as stage_control
from firmware.station.at_rest import verify_at_rest
from firmware.station.safety import GuardState, Trip
from firmware.station.session import Session
from firmware.station.spec import LINK_ERRORS, SETTLE_GRACE_S
from firmware.station.states import POWERLESS, PortEvent, PortState
from hal.errors import HalError

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from firmware.pevlink import Battery
    from firmware.pevlink.link import Link
    from firmware.station.port import PortController
    from firmware.station.spec import PortIO, PortSpec
    from hal.clock import Clock
    from hal.interfaces import PowerReading, StageStatus

log = logging.getLogger(__name__)


class PowerActions:
    """Mixed into :class:`~firmware.station.port.PortController`, which provides these."""

    lock: asyncio.Lock
    state: PortState
    session: Session | None
    battery: Battery | None
    link: Link
    io: PortIO
    spec: PortSpec
    clock: Clock
    reading: PowerReading | None
    grant_a: float
    previous_grant_a: float
    settle_until: float
    settled_at: float
    verified: bool
    guard: GuardState
    stage_status: StageStatus | None
    stage_disagreements: int

    @property
    def port_id(self) -> int:
        return self.spec.port_id

    @property
    def relay_closed(self) -> bool:
        return self.io.relay.is_closed

    def move(self, event: PortEvent, text: str | None = None, to: PortState | None = None) -> None:
        raise NotImplementedError

    def changed(self) -> None:
        raise NotImplementedError

    def trip(self, trip: Trip) -> None:
        raise NotImplementedError

    def open_switch(self) -> None:
        raise NotImplementedError

    def spawn(self, coro: Awaitable[object]) -> None:
        raise NotImplementedError

    def end_session(
        self, session: Session, reason: str, text: str | None, *, move: bool = True
    ) -> bool:
        raise NotImplementedError

    async def announce_end(self, session: Session) -> None:
        raise NotImplementedError

    async def finish(self, session: Session, reason: str, text: str | None = None) -> None:
        raise NotImplementedError

    async def admit(self, current_a: float, why: str) -> bool:
        """Grant, close the switch, verify the pack at rest, announce power: the only close."""
        if self.lock.locked():
            return False
        async with self.lock:
            session = self.session
            if self.state != PortState.WAITING or self.battery is None or session is None:
                return False
            try:
                return await self._admit(session, current_a, why)
            except LINK_ERRORS as exc:
                if session is self.session:
                    self.trip(Trip("link", f"The vehicle did not complete the start: {exc}"))
                return False

    async def _admit(self, session: Session, current_a: float, why: str) -> bool:
        assert self.battery is not None
        self.move(PortEvent.ADMIT)
        reply = await self.link.request(Grant(current_a, self.battery.v_max_v, why[:16]))
        if not self._still(session, PortState.STARTING):
            return False
        applied = getattr(reply, "current_a", current_a)
        self.grant_a = min(current_a, applied)
        self.previous_grant_a = self.grant_a
        self.verified = False
        self.guard = GuardState()
        stage = self.io.stage
        if stage is not None:
            # Both limits set and read back before the switch closes; the output stays off.
            voltage = stage_control.stage_voltage(cast("PortController", self))
            if not await self._on_stage(
                session, stage_control.prepare(stage, voltage, self.grant_a)
            ):
                return False
            if not self._still(session, PortState.STARTING):
                return False
        self.changed()  # the safety core's permit: this grant, a fresh guard, before the close
        if self.io.detect is not None and self.io.detect.plugged() is False:
            self.trip(Trip("disconnect", "The vehicle was unplugged before power-on"))
            return False
        await self.io.relay.close()
        if not self._still(session, PortState.STARTING):
            self.open_switch()  # tripped or stopped while the coil moved
            return False
        trip = await verify_at_rest(cast("PortController", self), self.clock.monotonic())
        if trip is not None:
            self.trip(trip)
            return False
        if not self._still(session, PortState.STARTING) or not self.relay_closed:
            return False
        self.verified = True
        self.changed()
        if stage is not None:  # the pack at rest is the declared one: now the stage may feed it
            if not await self._on_stage(session, stage_control.output_on(stage)):
                return False
            if not self._still(session, PortState.STARTING) or not self.relay_closed:
                return False
        now = self.clock.monotonic()
        session.power_on(now)
        self.settled_at = now + SETTLE_GRACE_S
        await self.link.request(Power(1))
        if not self._still(session, PortState.STARTING):
            return False
        self.move(PortEvent.POWERED)
        if stage is not None:
            self.spawn(stage_control.watch(cast("PortController", self), session))
        return True

    async def _on_stage(self, session: Session, action: Awaitable[None]) -> bool:
        """Await a stage action; a stage that fails is a fault of this port (code ``stage``)."""
        try:
            await action
        except HalError as exc:  # a stage that fails, or whose driver cannot load
            if session is self.session:
                self.trip(stage_control.stage_trip(exc))
            return False
        return True

    def _still(self, session: Session, state: PortState) -> bool:
        """After an await: is this still the same session, in the same state?"""
        return self.session is session and self.state == state

    async def change_grant(self, current_a: float, why: str) -> bool:
        """Send a new limit; True once the vehicle confirmed it."""
        if self.lock.locked():
            return False
        async with self.lock:
            return await self._change_grant(current_a, why)

    async def _change_grant(self, current_a: float, why: str) -> bool:
        session = self.session
        if self.state != PortState.CHARGING or self.battery is None or session is None:
            return False
        old = self.grant_a
        try:
            reply = await self.link.request(Grant(current_a, self.battery.v_max_v, why[:16]))
        except LINK_ERRORS as exc:
            if session is self.session:
                self.trip(Trip("link", f"The vehicle did not confirm a new limit: {exc}"))
            return False
        if not self._still(session, PortState.CHARGING):
            return False
        new = min(current_a, getattr(reply, "current_a", current_a))
        # The stage, not the vehicle, enforces the grant: a reduction moves it before the safety
        # core's permit is lowered, an increase after the permit is raised.
        if new < old and not await self._move_stage(session, new):
            return False
        if new < old:
            self.previous_grant_a = old
            self.settle_until = self.clock.monotonic() + T_SETTLE
        else:
            self.settled_at = self.clock.monotonic() + SETTLE_GRACE_S
        self.grant_a = new
        self.changed()
        return new < old or await self._move_stage(session, new)

    async def _move_stage(self, session: Session, current_a: float) -> bool:
        """Move the stage's current limit; True when there is none or it followed."""
        stage = self.io.stage
        if stage is None:
            return True
        if not await self._on_stage(session, stage_control.set_current(stage, current_a)):
            return False
        return self._still(session, PortState.CHARGING)

    async def pause(self, why: str) -> None:
        """Rotated out or budget gone: ramp to zero, open, keep the session waiting."""
        if self.lock.locked():
            return
        async with self.lock:
            session = self.session
            if self.state != PortState.CHARGING or self.battery is None or session is None:
                return
            await self._change_grant(0.0, why)
            await self._wait_ramp_down()
            if not self._still(session, PortState.CHARGING):
                return
            self.open_switch()
            self.grant_a = 0.0
            await stage_control.switch_off(cast("PortController", self))
            with contextlib.suppress(*LINK_ERRORS):
                await self.link.request(Power(0))
            if self._still(session, PortState.CHARGING):
                self.move(PortEvent.PAUSE, "Waiting for power: taking turns")

    async def _wait_ramp_down(self) -> None:
        deadline = self.clock.monotonic() + T_RAMP_MAX
        while self.clock.monotonic() < deadline and self.relay_closed:
            if self.reading is not None and abs(self.reading.current_a) <= I_BREAK_A:
                return
            await self.clock.sleep(0.05)
        if self.relay_closed:
            log.warning("port %d: opening under load after %.1f s", self.port_id, T_RAMP_MAX)

    async def stop(self, reason: str, text: str | None = None, *, by_vehicle: bool = False) -> None:
        """A normal stop: the vehicle ramps down, then the switch opens, then the summary."""
        async with self.lock:
            session = self.session
            if session is None:
                return
            if self.state in POWERLESS:
                await self.finish(session, reason, text)
                return
            if self.state not in (PortState.STARTING, PortState.CHARGING):
                return
            self.move(PortEvent.STOP)
            if not by_vehicle:
                with contextlib.suppress(*LINK_ERRORS):
                    await self.link.request(Stop(reason, (text or "")[:48] or None))
            stage = self.io.stage
            # The stage brings the current under the break level before the switch opens.
            if (
                stage is not None
                and self.relay_closed
                and not await self._on_stage(session, stage_control.set_current(stage, 0.0))
            ):
                return
            await self._wait_ramp_down()
            self.open_switch()
            await stage_control.switch_off(cast("PortController", self))
            with contextlib.suppress(*LINK_ERRORS):
                await self.link.request(Power(0))
            if self.end_session(session, reason, text):
                await self.announce_end(session)
