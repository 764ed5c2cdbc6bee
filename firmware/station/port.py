"""One charging port: its PEV Link conversation, its session, and the relay it may close.

The port answers the vehicle (HELLO, BATT, REQ, STOP), remembers what the vehicle declared and
reported, and carries out what the station decides (admit with a grant, change the grant, stop,
trip). It never decides on power sharing, and the relay is closed only inside :meth:`admit`, after a
negotiated grant was accepted, and opened on every other path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from firmware.pevlink import (
    Battery,
    BatteryReply,
    Boot,
    ChargeRequest,
    ChargeRequestReply,
    ErrorCode,
    Fault,
    Grant,
    Hello,
    HelloReply,
    Message,
    Power,
    ProtocolError,
    StationState,
    Stop,
    StopReply,
    Summary,
    Telemetry,
)
from firmware.pevlink.errors import PevLinkError
from firmware.pevlink.link import ByteTransport, Link
from firmware.pevlink.messages import BmsFlag
from firmware.pevlink.rules import check_battery, check_request, common_version
from firmware.pevlink.timers import I_BREAK_A, T_RAMP_MAX, T_SETTLE, T_VERIFY
from firmware.station.safety import GuardState, Limits, SafetyConfig, Trip, voltage_matches
from hal.clock import Clock
from hal.errors import SensorError
from hal.interfaces import PlugDetect, PowerMonitor, PowerReading, Relay

log = logging.getLogger(__name__)


VERIFY_SETTLE_S = 0.1
"""After the switch closes: its operate time plus one sensor conversion before the check reads."""


class PortState(StrEnum):
    EMPTY = "empty"
    CONNECTED = "connected"
    UNSUPPORTED = "unsupported"
    READY = "ready"
    PAYMENT = "payment"
    WAITING = "waiting"
    STARTING = "starting"
    CHARGING = "charging"
    STOPPING = "stopping"
    DONE = "done"
    FAULT = "fault"


STATE_WORDS: dict[PortState, str] = {
    PortState.EMPTY: "Free",
    PortState.CONNECTED: "Vehicle connected, identifying",
    PortState.UNSUPPORTED: "This vehicle cannot charge on this port",
    PortState.READY: "Ready: press start",
    PortState.PAYMENT: "Waiting for payment",
    PortState.WAITING: "Waiting for power",
    PortState.STARTING: "Starting",
    PortState.CHARGING: "Charging",
    PortState.STOPPING: "Stopping",
    PortState.DONE: "Finished",
    PortState.FAULT: "Stopped by a fault",
}

SETTLE_GRACE_S = 3.0
"""After power-on or a raised grant, how long a vehicle may take to reach it before its measured
current is read as spare headroom."""

LIVE_STATES = frozenset({PortState.STARTING, PortState.CHARGING, PortState.STOPPING})
SESSION_STATES = LIVE_STATES | {PortState.PAYMENT, PortState.WAITING}

STOP_WORDS: dict[str, str] = {
    "user": "Stopped by the rider",
    "full": "Complete: the battery is full",
    "target": "Complete: the target charge was reached",
    "vehicle": "Stopped by the vehicle",
    "bms": "Stopped by the vehicle's battery system",
    "fault": "Stopped by a fault",
    "operator": "Stopped by the operator",
    "payment": "Stopped: payment limit reached",
    "shutdown": "Stopped: the station shut down",
}


@dataclass(frozen=True, slots=True)
class PortSpec:
    """What the port's hardware can do (from the hardware configuration)."""

    port_id: int
    max_current_a: float
    v_min_v: float
    v_max_v: float
    max_power_w: float


class PortIO(Protocol):
    """The hardware a port uses; the station never knows which backend provides it."""

    @property
    def monitor(self) -> PowerMonitor: ...

    @property
    def relay(self) -> Relay: ...

    @property
    def link(self) -> ByteTransport: ...

    @property
    def detect(self) -> PlugDetect | None: ...


@dataclass(slots=True)
class LiveSession:
    session_id: int | None
    public_token: str
    owner_token: str
    started_at: float
    requested_at: float
    soc_start: float | None
    energy_wh: float = 0.0
    peak_w: float = 0.0
    power_on_at: float | None = None
    power_seconds: float = 0.0
    end_reason: str | None = None
    end_text: str | None = None
    ended_at: float | None = None
    paid: bool = False
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    """(wall time, power W, SoC %) every sample period: the phone page's charge curve."""

    def summary(self, reason: str) -> Summary:
        """The SUM notice that tells the vehicle how its session ended."""
        return Summary(
            round(self.energy_wh, 3), int(self.power_seconds), reason, round(self.peak_w, 1)
        )


class PortController:
    """State and conversation of one port."""

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
        self.link = Link(
            io.link,
            clock,
            on_request=self._on_request,
            on_notice=self._on_notice,
            name=f"port {spec.port_id}",
        )
        self.state = PortState.EMPTY
        self.state_text = STATE_WORDS[PortState.EMPTY]
        self.hello: Hello | None = None
        self.battery: Battery | None = None
        self.request: ChargeRequest | None = None
        self.telemetry: Telemetry | None = None
        self.last_tel_at: float | None = None
        self.session: LiveSession | None = None
        self.last_session: LiveSession | None = None
        self.grant_a = 0.0
        self.settle_until = 0.0
        self.settled_at = 0.0
        """Until then the vehicle is still ramping to its grant: no headroom is read into it."""
        self.previous_grant_a = 0.0
        self.limit_reason = ""
        self.limit_detail = ""
        self.thermal_factor = 1.0
        self.reading: PowerReading | None = None
        self.connected_at: float | None = None
        self.battery_at: float | None = None
        """When the last BATT arrived: its departure time counts from there."""
        self.warning: str | None = None
        """The vehicle's last FAULT sev=warn, until it leaves or a new session starts."""
        self.vehicle_gone = False
        """The faulted vehicle fell silent: the next one to identify clears the fault."""
        self.taper: list[tuple[float, float]] = []
        """(time, current) every few seconds of the constant-voltage taper: how fast it decays."""
        self.ident_prompted = False
        self.reading_at: float | None = None
        self.verified = False
        self.fault: Trip | None = None
        self.guard = GuardState()
        self.busy = False
        """An admission, grant change or stop is under way: the allocator leaves the port alone."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.on_session_end: Callable[[PortController, LiveSession], Any] | None = None
        self.on_trip: Callable[[PortController, Trip], Any] | None = None

    # --- state ------------------------------------------------------------------------------------

    @property
    def port_id(self) -> int:
        return self.spec.port_id

    def set_state(self, state: PortState, text: str | None = None) -> None:
        changed = state != self.state
        if changed and state == PortState.CONNECTED:
            self.connected_at = self.clock.monotonic()
            self.ident_prompted = False
        self.state = state
        self.state_text = text or STATE_WORDS[state]
        if changed:
            self._spawn(self._tell_state())
        self._on_change(self)

    async def _tell_state(self) -> None:
        word = {
            PortState.READY: "ready",
            PortState.PAYMENT: "payment",
            PortState.WAITING: "waiting",
            PortState.STARTING: "granted",
            PortState.CHARGING: "charging",
            PortState.STOPPING: "stopping",
            PortState.DONE: "done",
            PortState.FAULT: "fault",
        }.get(self.state)
        if word is None:
            return
        with contextlib.suppress(PevLinkError, OSError):
            await self.link.notify(StationState(word, self.state_text[:48]))

    def in_state(self, state: PortState) -> bool:
        """The state now (after an await, when another task may have changed it)."""
        return self.state == state

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def relay_closed(self) -> bool:
        return self.io.relay.is_closed

    def limits(self) -> Limits | None:
        if self.battery is None:
            return None
        grant = self.grant_a
        if self.clock.monotonic() < self.settle_until:
            grant = max(grant, self.previous_grant_a)
        return Limits(
            grant_a=grant,
            port_max_a=self.spec.max_current_a,
            v_max_v=self.battery.v_max_v,
            v_min_v=self.battery.v_min_v,
            t_min_c=self.battery.t_min_c,
            t_max_c=self.battery.t_max_c,
        )

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

    # --- the vehicle speaks -----------------------------------------------------------------------

    async def _on_request(self, message: Message) -> Message:
        if isinstance(message, Hello):
            return self._hello(message)
        if isinstance(message, Battery):
            return self._battery(message)
        if isinstance(message, ChargeRequest):
            return self._charge_request(message)
        if isinstance(message, Stop):
            reason = message.reason if message.reason != "user" else "vehicle"
            if self.state in LIVE_STATES:
                self._spawn(self.stop(reason, message.text, by_vehicle=True))
            elif self.state in SESSION_STATES:
                await self._finish(reason, message.text)
            return StopReply()
        raise ProtocolError(ErrorCode.WRONG_STATE, f"{message.NAME} is not accepted here")

    def _hello(self, hello: Hello) -> Message:
        version = common_version(hello)
        if self.state in LIVE_STATES or self.state in SESSION_STATES:
            self._spawn(self.trip(Trip("link", "The vehicle restarted its connection")))
        self.hello = hello
        self.battery = None
        self.request = None
        if self.state == PortState.FAULT and self.vehicle_gone:
            self.reset_fault()  # a new vehicle identified itself: as good as a reset
        elif self.state != PortState.FAULT:
            self.set_state(PortState.CONNECTED)
        else:
            self._on_change(self)
        return HelloReply(version, self.station_name[:32], self.port_id)

    def _battery(self, battery: Battery) -> Message:
        try:
            check_battery(self.hello, battery, self.spec.v_min_v, self.spec.v_max_v)
        except ProtocolError as err:
            if err.field == "vmax":
                self.battery = None
                self.set_state(
                    PortState.UNSUPPORTED,
                    f"This port supplies and measures up to {self.spec.v_max_v:g} V; "
                    f"the vehicle needs {battery.v_max_v:g} V",
                )
            elif err.field == "vmin":
                self.set_state(
                    PortState.UNSUPPORTED,
                    f"This port starts at {self.spec.v_min_v:g} V; the vehicle's pack goes down "
                    f"to {battery.v_min_v:g} V",
                )
            raise
        self.battery = battery
        self.battery_at = self.clock.monotonic()
        if self.state in (PortState.CONNECTED, PortState.UNSUPPORTED, PortState.DONE):
            self.set_state(PortState.READY)
        else:
            self._on_change(self)
        return BatteryReply(
            self.spec.v_min_v, self.spec.v_max_v, self.spec.max_current_a, self.spec.max_power_w
        )

    def _charge_request(self, request: ChargeRequest) -> Message:
        check_request(self.battery, request)
        self.request = request
        if self.state == PortState.DONE:
            self.set_state(PortState.READY)
        self._on_change(self)
        word = {
            PortState.PAYMENT: "wait_payment",
            PortState.WAITING: "wait_power",
            PortState.STARTING: "granted",
            PortState.CHARGING: "granted",
        }.get(self.state, "wait_start")
        return ChargeRequestReply(word)

    async def _on_notice(self, message: Message) -> None:
        if isinstance(message, Telemetry):
            self.telemetry = message
            self.last_tel_at = self.clock.monotonic()
            if self.state == PortState.EMPTY:
                self.set_state(PortState.CONNECTED)
            self._on_change(self)
        elif isinstance(message, Fault):
            text = message.text or "The vehicle reported a fault"
            if message.severity == "stop" and (self.state in LIVE_STATES or self.relay_closed):
                await self.trip(Trip(message.code, f"Vehicle fault: {text}"))
            elif message.severity == "warn":
                # Not a reason to stop, but the rider and the operator should see it.
                log.warning("port %d: vehicle warning %s: %s", self.port_id, message.code, text)
                self.warning = f"Vehicle warning: {text}"
                self._on_change(self)
        elif isinstance(message, Boot):
            self.link.reset()
            if self.state in LIVE_STATES or self.relay_closed:
                await self.trip(Trip("link", "The vehicle restarted during the charge"))
            elif self.session is not None:
                await self._finish("vehicle", "The vehicle restarted before charging")
            self.forget_vehicle(keep_fault=True)
            self.set_state(PortState.CONNECTED if self.state != PortState.FAULT else self.state)

    def forget_vehicle(self, keep_fault: bool = False) -> None:
        self.warning = None
        self.hello = None
        self.battery = None
        self.request = None
        self.telemetry = None
        self.last_tel_at = None
        if not keep_fault:
            self.fault = None
            self.vehicle_gone = False

    # --- the station acts -------------------------------------------------------------------------

    def open_session(self, now_wall: float, now: float) -> LiveSession:
        soc = self.telemetry.soc_pct if self.telemetry else None
        if soc is None and self.battery is not None:
            soc = self.battery.soc_pct
        self.taper.clear()
        self.warning = None
        self.session = LiveSession(
            session_id=None,
            public_token=secrets.token_urlsafe(16),
            owner_token=secrets.token_urlsafe(16),
            started_at=now_wall,
            requested_at=now,
            soc_start=soc,
        )
        return self.session

    async def admit(self, current_a: float, why: str) -> bool:
        """Grant, close the relay, announce power: the only path that closes the relay."""
        if self.state != PortState.WAITING or self.battery is None or self.busy:
            return False
        self.busy = True
        try:
            self.set_state(PortState.STARTING)
            reply = await self.link.request(Grant(current_a, self.battery.v_max_v, why[:16]))
            if not self.in_state(PortState.STARTING):
                return False
            applied = getattr(reply, "current_a", current_a)
            self.grant_a = min(current_a, applied)
            self.previous_grant_a = self.grant_a
            self.verified = False
            self.guard = GuardState()
            if self.io.detect is not None and self.io.detect.plugged() is False:
                await self.trip(Trip("disconnect", "The vehicle was unplugged before power-on"))
                return False
            await self.io.relay.close()
            closed_at = self.clock.monotonic()
            if not await self._verify_at_rest(closed_at):
                return False
            if self.session is not None:
                self.session.power_on_at = self.clock.monotonic()
            self.settled_at = self.clock.monotonic() + SETTLE_GRACE_S
            if not self.in_state(PortState.STARTING) or not self.relay_closed:
                return False
            await self.link.request(Power(1))
            if not self.in_state(PortState.STARTING):
                return False
            self.set_state(PortState.CHARGING)
            return True
        except PevLinkError as exc:
            await self.trip(Trip("link", f"The vehicle did not complete the start: {exc}"))
            return False
        finally:
            self.busy = False

    async def _verify_at_rest(self, closed_at: float) -> bool:
        """Before the vehicle may draw, the port's voltage must be the pack the vehicle declared.

        The vehicle draws nothing until POWER, so the first readings after the switch closes show
        its pack at rest: they must lie within the declared window and match the voltage it last
        reported. A wrong or lying battery is stopped here, before any energy flows.
        """
        assert self.battery is not None
        deadline = closed_at + T_VERIFY
        settle = closed_at + VERIFY_SETTLE_S
        while self.clock.monotonic() < deadline:
            if not self.in_state(PortState.STARTING):
                return False
            reading = self.reading
            if (reading is None or reading.timestamp < settle) and self.clock.monotonic() >= settle:
                # Do not wait for the next supervisor pass: read the port's sensor now.
                with contextlib.suppress(SensorError):
                    reading = await self.io.monitor.read()
            if reading is not None and reading.timestamp >= settle:
                tel = self.telemetry
                # Only a pack at rest is comparable: a reading taken under load sits higher.
                at_rest = tel is not None and abs(tel.current_a) <= I_BREAK_A
                declared = tel.voltage_v if tel is not None and at_rest else self.battery.v_nom_v
                measured = reading.bus_voltage_v
                if measured < 1.0:
                    await self.trip(
                        Trip(
                            "sensor",
                            "No voltage at the port after the switch closed: "
                            "the switch, the cable or the sensor is faulty",
                        )
                    )
                    return False
                window_ok = self.battery.v_min_v * 0.97 <= measured <= self.battery.v_max_v * 1.01
                if window_ok and voltage_matches(self.safety, measured, declared):
                    self.verified = True
                    return True
                await self.trip(
                    Trip(
                        "mismatch",
                        f"Measured {measured:.1f} V at the port but the vehicle declared "
                        f"{declared:.1f} V: this battery is not what it says",
                    )
                )
                return False
            await self.clock.sleep(0.01)
        await self.trip(Trip("sensor", "No measurement after the switch closed"))
        return False

    async def change_grant(self, current_a: float, why: str) -> bool:
        """Send a new limit; True once the vehicle confirmed it."""
        if self.state != PortState.CHARGING or self.battery is None:
            return False
        old = self.grant_a
        try:
            reply = await self.link.request(Grant(current_a, self.battery.v_max_v, why[:16]))
        except PevLinkError as exc:
            await self.trip(Trip("link", f"The vehicle did not confirm a new limit: {exc}"))
            return False
        applied = getattr(reply, "current_a", current_a)
        new = min(current_a, applied)
        if new < old:
            self.previous_grant_a = old
            self.settle_until = self.clock.monotonic() + T_SETTLE
        else:
            self.settled_at = self.clock.monotonic() + SETTLE_GRACE_S
        self.grant_a = new
        self._on_change(self)
        return True

    async def pause(self, why: str) -> None:
        """Rotated out or budget gone: ramp to zero, open, keep the session waiting."""
        if self.state != PortState.CHARGING or self.battery is None:
            return
        self.busy = True
        try:
            await self.change_grant(0.0, why)
            await self._wait_ramp_down()
            await self.io.relay.open()
            self._account_power_off()
            self.grant_a = 0.0
            with contextlib.suppress(PevLinkError):
                await self.link.request(Power(0))
            if self.state == PortState.CHARGING:
                self.set_state(PortState.WAITING, "Waiting for power: taking turns")
        finally:
            self.busy = False

    async def _wait_ramp_down(self) -> None:
        deadline = self.clock.monotonic() + T_RAMP_MAX
        while self.clock.monotonic() < deadline and self.relay_closed:
            if self.reading is not None and abs(self.reading.current_a) <= I_BREAK_A:
                return
            await self.clock.sleep(0.05)
        if self.relay_closed:
            log.warning("port %d: opening under load after %.1f s", self.port_id, T_RAMP_MAX)

    async def stop(self, reason: str, text: str | None = None, *, by_vehicle: bool = False) -> None:
        """A normal stop: the vehicle ramps down, then the relay opens, then the summary."""
        if self.state in (PortState.PAYMENT, PortState.WAITING, PortState.READY):
            await self._finish(reason, text)
            return
        if self.state not in (PortState.STARTING, PortState.CHARGING):
            return
        self.busy = True
        try:
            self.set_state(PortState.STOPPING)
            if not by_vehicle:
                with contextlib.suppress(PevLinkError):
                    await self.link.request(Stop(reason, (text or "")[:48] or None))
            await self._wait_ramp_down()
            await self.io.relay.open()
            self._account_power_off()
            with contextlib.suppress(PevLinkError):
                await self.link.request(Power(0))
            await self._finish(reason, text)
        finally:
            self.busy = False

    async def trip(self, trip: Trip) -> None:
        """A fault: open the relay first, everything else after."""
        await self.io.relay.open()
        self._account_power_off()
        if self.state == PortState.FAULT and self.fault is not None:
            return
        self.fault = trip
        self.vehicle_gone = False
        self.grant_a = 0.0
        log.warning("port %d: fault %s: %s", self.port_id, trip.code, trip.text)
        had_session = self.session is not None
        self.set_state(PortState.FAULT, trip.text)
        if self.on_trip is not None:
            self.on_trip(self, trip)
        self._spawn(self._after_trip(trip, had_session))

    async def _after_trip(self, trip: Trip, had_session: bool) -> None:
        with contextlib.suppress(PevLinkError, OSError):
            await self.link.notify(Fault(trip.code, "stop", trip.text[:48]))
        if had_session:
            await self._finish("fault", trip.text, keep_state=True)
        with contextlib.suppress(PevLinkError, OSError):
            await self.link.request(Power(0))

    def reset_fault(self) -> bool:
        if self.state != PortState.FAULT:
            return False
        self.fault = None
        self.vehicle_gone = False
        self.guard = GuardState()
        if self.battery is not None:
            self.set_state(PortState.READY)
        elif self.hello is not None:
            self.set_state(PortState.CONNECTED)
        else:
            self.set_state(PortState.EMPTY)
        return True

    def _account_power_off(self) -> None:
        if self.session is not None and self.session.power_on_at is not None:
            self.session.power_seconds += self.clock.monotonic() - self.session.power_on_at
            self.session.power_on_at = None

    async def _finish(self, reason: str, text: str | None, keep_state: bool = False) -> None:
        session = self.session
        if session is None:
            return
        self.session = None
        self.grant_a = 0.0
        session.end_reason = reason
        session.end_text = text or STOP_WORDS.get(reason, reason)
        session.ended_at = self.clock.wall()
        self.last_session = session
        if not keep_state:
            self.set_state(PortState.DONE, STOP_WORDS.get(reason, "Finished"))
        if self.on_session_end is not None:
            result = self.on_session_end(self, session)
            if asyncio.iscoroutine(result):
                await result
        with contextlib.suppress(PevLinkError, OSError):
            await self.link.notify(session.summary(reason))

    def vehicle_reports_charging(self) -> bool:
        tel = self.telemetry
        if tel is None:
            return False
        return bool(BmsFlag(tel.flags) & BmsFlag.CHARGING) and tel.current_a > 0.3

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.link.aclose()
