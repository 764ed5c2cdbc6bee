"""The station: ports, the safety supervisor, the power sharing, the meter and the records.

Three kinds of long-lived task run under one task group: each port's PEV Link reader, the
supervisor (reads every sensor every poll period, trips on any fault, integrates energy, kicks the
hardware watchdog) and the allocator (shares the budget, applies reductions before increases).
Commands from the web arrive as method calls; the web reads :meth:`Station.snapshot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from firmware.events import EventHub
from firmware.pevlink.errors import PevLinkError
from firmware.pevlink.messages import SUPPORTED_VERSIONS, BmsFlag, Boot
from firmware.pevlink.timers import T_IDENT, T_LINK, T_REPLY, T_SETTLE, T_TEL, T_TEL_PERIOD
from firmware.station.allocator import Demand, Policy, SharingPolicy, plan_transition
from firmware.station.eta import EtaInput, estimate_seconds, taper_seconds
from firmware.station.port import (
    LIVE_STATES,
    SESSION_STATES,
    LiveSession,
    PortController,
    PortIO,
    PortSpec,
    PortState,
)
from firmware.station.safety import (
    SafetyConfig,
    Trip,
    check_disconnect,
    check_overcurrent,
    check_overvoltage,
    check_reported_voltage,
    check_temperature,
    check_vehicle_flags,
    debounce,
    overcurrent_threshold,
    thermal_factor,
)
from hal.clock import Clock, wait_for
from hal.errors import SensorError, SensorOverflow
from hal.interfaces import PowerReading, Watchdog

log = logging.getLogger(__name__)


class StationError(Exception):
    """A command the station refuses; ``status`` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class Recorder(Protocol):
    """What the station needs from persistence (firmware.store.Store has this shape)."""

    async def start_session(
        self,
        *,
        port_id: int,
        public_token: str,
        owner_token: str,
        vehicle: dict[str, object],
        started_at: float,
        soc_start: float | None,
    ) -> int: ...

    async def add_sample(self, session_id: int, sample: Any, peak_w: float) -> None: ...

    async def end_session(
        self,
        session_id: int,
        *,
        ended_at: float,
        energy_wh: float,
        peak_w: float,
        reason: str,
        text: str,
        soc_end: float | None,
    ) -> None: ...

    async def add_fault(
        self, *, t: float, port_id: int, session_id: int | None, code: str, text: str
    ) -> int: ...


SampleFactory = Callable[[float, float, float, float, float, float | None], Any]


@dataclass(frozen=True, slots=True)
class StationSettings:
    name: str = "pev-charger"
    budget_w: float = 600.0
    poll_period_s: float = 0.05
    allocation_period_s: float = 1.0
    sample_period_s: float = 5.0
    auto_start: bool = False
    payment_required: bool = False
    payment_window_s: float = 300.0
    """A session still unpaid after this long ends, so the port is free for the next rider."""
    budget_tolerance_frac: float = 0.05
    budget_debounce_s: float = 0.5
    safety: SafetyConfig = field(default_factory=SafetyConfig)


TAPER_STEP_S = 10.0
TAPER_POINTS = 30
"""Five minutes of taper: enough to see its time constant, recent enough to follow it."""

START_TEMPERATURE_MARGIN_C = 2.0
"""How far inside its charging window a waiting battery must be before its switch closes."""


class Station:
    def __init__(
        self,
        settings: StationSettings,
        clock: Clock,
        ports: Sequence[tuple[PortSpec, PortIO]],
        *,
        watchdog: Watchdog | None = None,
        recorder: Recorder | None = None,
        sample_factory: SampleFactory | None = None,
        policy: Policy | None = None,
        events: EventHub | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.budget_w = settings.budget_w
        self.poll_period_s = settings.poll_period_s
        self.watchdog = watchdog
        self.recorder = recorder
        self._sample_factory = sample_factory
        self.policy: Policy = policy or SharingPolicy()
        self.events = events or EventHub()
        self.ports: dict[int, PortController] = {}
        for spec, io in ports:
            port = PortController(
                spec,
                io,
                clock,
                settings.safety,
                station_name=settings.name,
                on_change=self._port_changed,
            )
            port.on_session_end = self._session_ended
            port.on_trip = self._tripped
            self.ports[spec.port_id] = port
        self._wake = asyncio.Event()
        self._last_tick: float | None = None
        self._last_sample: dict[int, float] = {}
        self._over_budget_since: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._records: set[asyncio.Future[None]] = set()
        """Writes to the records in flight: shutdown lets them finish (briefly) before it ends."""
        self.store_error: str | None = None
        self.ticks = 0
        self.started = asyncio.Event()
        self.on_end: Callable[[PortController, LiveSession], Awaitable[None]] | None = None
        self.on_start: Callable[[PortController, LiveSession], None] | None = None
        self.on_tick: Callable[[], None] | None = None

    # --- running ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; every relay is open before and after."""
        await self.open_all_relays()
        for port in self.ports.values():
            await self._announce(port)
        try:
            async with asyncio.TaskGroup() as group:
                for port in self.ports.values():
                    group.create_task(port.link.run(), name=f"link-{port.port_id}")
                group.create_task(self._supervise(), name="supervisor")
                group.create_task(self._allocate_loop(), name="allocator")
                self.started.set()
        finally:
            await asyncio.shield(self._shutdown())

    async def _announce(self, port: PortController) -> None:
        """BOOT on every port: a vehicle still plugged in from before a restart handshakes again."""
        with contextlib.suppress(PevLinkError, OSError, TimeoutError):
            await wait_for(
                self.clock, port.link.notify(Boot("station", SUPPORTED_VERSIONS)), T_REPLY
            )

    async def open_all_relays(self) -> None:
        for port in self.ports.values():
            try:
                await port.io.relay.open()
            except Exception:
                log.exception("port %d: relay open failed; forcing", port.port_id)
                port.io.relay.open_now()

    async def _shutdown(self) -> None:
        for port in self.ports.values():
            port.io.relay.open_now()
        if self.watchdog is not None:
            self.watchdog.stop()
        for port in self.ports.values():
            session = port.session
            if session is not None:
                port._account_power_off()
                port.session = None
                session.end_reason = "shutdown"
                session.end_text = "Stopped: the station shut down"
                session.ended_at = self.clock.wall()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._session_ended(port, session), 2.0)
                # The switch is already open; tell the vehicle why, so it does not wait for power.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(port.link.notify(session.summary("shutdown")), 0.5)
            with contextlib.suppress(Exception):
                await port.aclose()
        if self._records:
            await asyncio.wait(list(self._records), timeout=2.0)
        for task in [*self._tasks, *self._records]:
            task.cancel()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- supervisor -------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            period = self.poll_period_s
            started = self.clock.monotonic()
            try:
                await self.supervise_once()
            except Exception:
                log.exception("supervisor tick failed; opening every relay")
                await self.open_all_relays()
            elapsed = self.clock.monotonic() - started
            await self.clock.sleep(max(0.0, period - elapsed))

    async def supervise_once(self) -> None:
        now = self.clock.monotonic()
        dt = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        ports = list(self.ports.values())
        readings = await asyncio.gather(*(self._read(p, now) for p in ports))
        for port, reading in zip(ports, readings, strict=True):
            try:
                await self._check_port(port, reading, now, dt)
            except Exception as exc:
                log.exception("port %d: check failed", port.port_id)
                await port.trip(Trip("internal", f"Station error: {exc}"))
        await self._check_budget(now)
        self.ticks += 1
        if self.watchdog is not None:
            self.watchdog.kick()
        if self.on_tick is not None:
            self.on_tick()

    async def _read(self, port: PortController, now: float) -> PowerReading | None:
        try:
            reading = await port.io.monitor.read()
        except SensorError as exc:
            port.reading = None
            if port.relay_closed or port.state in LIVE_STATES:
                if isinstance(exc, SensorOverflow):  # most likely a real over-current
                    trip = Trip("overcurrent", f"Current beyond what the port can measure: {exc}")
                else:
                    trip = Trip("sensor", f"The port's power sensor failed: {exc}")
                await port.trip(trip)
            return None
        port.reading = reading
        port.reading_at = now
        return reading

    async def _check_port(
        self, port: PortController, reading: PowerReading | None, now: float, dt: float
    ) -> None:
        if port.io.detect is not None and port.io.detect.plugged() is False:
            await self._unplugged(port)
            return
        if port.relay_closed:
            await self._check_powered(port, reading, now, dt)
        if port.state in LIVE_STATES and port.state != PortState.FAULT:
            await self._check_vehicle(port, now)
        self._check_presence(port, now)
        self._check_identification(port, now)
        if port.session is not None and port.telemetry is not None:
            target = port.battery.target_soc_pct if port.battery else None
            if (
                target is not None
                and port.state == PortState.CHARGING
                and not port.busy
                and port.telemetry.soc_pct >= target
            ):
                self._spawn(port.stop("target"))
        self._maybe_sample(port, now)
        self.observe_taper(port, now)

    async def _check_powered(
        self, port: PortController, reading: PowerReading | None, now: float, dt: float
    ) -> None:
        if port.state not in LIVE_STATES and not port.busy:
            await port.trip(Trip("internal", "The relay was closed outside a live session"))
            return
        limits = port.limits()
        if limits is None:
            await port.trip(Trip("internal", "The relay was closed without a battery profile"))
            return
        if reading is None:
            return
        session = port.session
        power_w = reading.bus_voltage_v * reading.current_a
        if session is not None and dt > 0:
            session.energy_wh += max(0.0, power_w) * dt / 3600.0
            session.peak_w = max(session.peak_w, power_w)
        trip = check_overcurrent(
            self.settings.safety, port.guard, limits, reading.current_a, now
        ) or check_overvoltage(self.settings.safety, limits, reading.bus_voltage_v)
        if trip is None and port.verified and port.grant_a > 0 and not port.busy:
            trip = check_disconnect(
                self.settings.safety,
                port.guard,
                reading.current_a,
                port.vehicle_reports_charging(),
                now,
            )
        if trip is not None:
            await port.trip(trip)

    async def _check_vehicle(self, port: PortController, now: float) -> None:
        limits = port.limits()
        tel = port.telemetry
        if limits is None:
            return
        last = port.last_tel_at
        if last is None and port.session is not None:
            last = port.session.requested_at
        if last is None or now - last > T_TEL:
            await port.trip(Trip("silent", "The vehicle stopped reporting its battery state"))
            return
        if tel is None:
            return
        trip = check_temperature(limits, tel.temperature_c) or check_vehicle_flags(tel.flags)
        reading = port.reading
        # Compare only a fresh report with the present measurement: an old one drifts anyway.
        fresh = port.last_tel_at is not None and now - port.last_tel_at <= T_TEL_PERIOD / 2
        if trip is None and fresh and port.relay_closed and port.verified and reading is not None:
            trip = check_reported_voltage(
                self.settings.safety,
                port.guard,
                reading.bus_voltage_v,
                tel.voltage_v,
                reading.current_a,
                now,
            )
        if trip is not None:
            await port.trip(trip)
            return
        factor = thermal_factor(
            self.settings.safety, limits.t_max_c, tel.temperature_c, port.thermal_factor
        )
        if factor != port.thermal_factor:
            port.thermal_factor = factor
            self._wake.set()

    async def _unplugged(self, port: PortController) -> None:
        """The detect pin opened: it breaks before the power pins, so cut now, before they part."""
        if port.relay_closed or port.state in LIVE_STATES:
            if port.state != PortState.FAULT:
                await port.trip(Trip("disconnect", "The vehicle was unplugged during the charge"))
            else:
                await port.io.relay.open()
            return
        if port.state == PortState.EMPTY:
            return
        if port.session is not None and port.state in SESSION_STATES:
            await port.stop("vehicle", "The vehicle was unplugged before charging")
        # Unplugging is what clears a fault, and it frees the port for the next rider.
        self._vehicle_gone(port)

    def _check_identification(self, port: PortController, now: float) -> None:
        """T_IDENT: something talks on the port but never identifies; ask it to start over, once."""
        if port.state != PortState.CONNECTED or port.hello is not None or port.ident_prompted:
            return
        if port.connected_at is None or now - port.connected_at <= T_IDENT:
            return
        port.ident_prompted = True
        port.set_state(
            PortState.CONNECTED, "Vehicle not recognised: it did not identify itself; replug it"
        )
        self._spawn(self._announce(port))

    def _check_presence(self, port: PortController, now: float) -> None:
        """A link silent for T_LINK means the vehicle has gone (unplugged) or died."""
        last = port.link.last_rx
        if port.state == PortState.EMPTY or last is None or now - last <= T_LINK:
            return
        if port.relay_closed or port.state in LIVE_STATES:
            self._spawn(port.trip(Trip("silent", "The vehicle stopped answering")))
            return
        if port.session is not None and port.state in SESSION_STATES:
            self._spawn(port.stop("vehicle", "The vehicle left before charging"))
        if port.state == PortState.FAULT and port.fault is not None:
            # Keep the reason on show: the rider may come back to a bike that is still plugged
            # in. The next vehicle that identifies itself clears it, as a reset would.
            self._vehicle_gone(port, keep_fault=True)
            port.vehicle_gone = True
            port.set_state(PortState.FAULT, f"{port.fault.text} (the vehicle no longer answers)")
            return
        self._vehicle_gone(port)

    @staticmethod
    def _vehicle_gone(port: PortController, *, keep_fault: bool = False) -> None:
        """Forget the vehicle, its link and its derating; the port is free unless a fault stays."""
        port.thermal_factor = 1.0
        port.link.last_rx = None
        port.forget_vehicle(keep_fault=keep_fault)
        if not keep_fault:
            port.set_state(PortState.EMPTY)

    async def _check_budget(self, now: float) -> None:
        measured = [
            (p, p.reading.bus_voltage_v * p.reading.current_a)
            for p in self.ports.values()
            if p.reading is not None and p.relay_closed
        ]
        total = sum(w for _, w in measured)
        limit = self.budget_w * (1.0 + self.settings.budget_tolerance_frac) + 5.0
        self._over_budget_since, held = debounce(
            self._over_budget_since, total > limit, now, self.settings.budget_debounce_s
        )
        if not held or not measured:
            return

        def excess(item: tuple[PortController, float]) -> float:
            p, watts = item
            allowed = overcurrent_threshold(self.settings.safety, p.grant_a)
            return watts - allowed * (p.battery.v_max_v if p.battery else 0.0)

        worst, _ = max(measured, key=excess)
        self._over_budget_since = None
        await worst.trip(
            Trip(
                "budget", f"The station drew {total:.0f} W, above its {self.budget_w:.0f} W budget"
            )
        )

    def _maybe_sample(self, port: PortController, now: float) -> None:
        session = port.session
        if session is None or session.session_id is None:
            return
        last = self._last_sample.get(port.port_id)
        if last is not None and now - last < self.settings.sample_period_s:
            return
        self._last_sample[port.port_id] = now
        reading = port.reading if port.relay_closed else None
        volts = reading.bus_voltage_v if reading else 0.0
        amps = reading.current_a if reading else 0.0
        soc = port.telemetry.soc_pct if port.telemetry else None
        session.samples.append((self.clock.wall(), volts * amps, soc if soc is not None else -1.0))
        del session.samples[:-720]
        if self.recorder is None or self._sample_factory is None:
            return
        sample = self._sample_factory(
            self.clock.wall(), volts, amps, volts * amps, session.energy_wh, soc
        )
        self._record(self.recorder.add_sample(session.session_id, sample, session.peak_w))

    def _record(self, coro: Awaitable[Any]) -> None:
        """Persistence never blocks or breaks safety: failures are reported, not raised."""

        async def guarded() -> None:
            try:
                await coro
                self.store_error = None
            except Exception as exc:
                if self.store_error is None:
                    log.error("store: %s", exc)
                self.store_error = str(exc)
                self.events.publish("station", self.station_summary())

        task = asyncio.ensure_future(guarded())
        self._records.add(task)
        task.add_done_callback(self._records.discard)

    # --- allocator --------------------------------------------------------------------------------

    async def _allocate_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await wait_for(self.clock, self._wake.wait(), self.settings.allocation_period_s)
            self._wake.clear()
            try:
                await self.allocate_once()
            except Exception:
                log.exception("allocation round failed")

    def wake_allocator(self) -> None:
        self._wake.set()

    def demands(self, now: float) -> list[Demand]:
        out: list[Demand] = []
        for port in self.ports.values():
            session, battery = port.session, port.battery
            if session is None or battery is None or port.telemetry is None:
                continue  # no power before the vehicle has reported its state
            if port.state not in (PortState.WAITING, PortState.STARTING, PortState.CHARGING):
                continue
            if port.state == PortState.WAITING and not self._may_start_at(port):
                continue
            fresh = (
                port.reading is not None
                and port.reading_at is not None
                and now - port.reading_at <= 4 * self.poll_period_s
                and port.relay_closed
                and port.verified
            )
            measured = port.reading.current_a if fresh and port.reading is not None else None
            if measured is not None and now < port.settled_at:
                measured = max(measured, port.grant_a)  # still ramping: not spare headroom
            departure = None
            if battery.departure_s is not None:
                declared_at = (
                    port.battery_at if port.battery_at is not None else session.requested_at
                )
                departure = declared_at + battery.departure_s
            out.append(
                Demand(
                    port_id=port.port_id,
                    v_max_v=battery.v_max_v,
                    i_min_a=min(battery.i_min_a, port.vehicle_max_a()),
                    i_max_a=port.vehicle_max_a(),
                    requested_since=session.requested_at,
                    charging=port.state != PortState.WAITING,
                    granted_a=port.grant_a,
                    measured_a=measured,
                    soc_pct=port.telemetry.soc_pct if port.telemetry else battery.soc_pct,
                    capacity_wh=battery.capacity_wh,
                    target_soc_pct=battery.target_soc_pct,
                    departure_at=departure,
                )
            )
        return out

    def _may_start_at(self, port: PortController) -> bool:
        """A battery outside its charging window waits with the switch open, and says why."""
        limits, tel = port.limits(), port.telemetry
        if limits is None or tel is None:
            return False
        # Start only a little inside the window, so a battery at its edge does not start and trip.
        margin = START_TEMPERATURE_MARGIN_C
        now_c = tel.temperature_c
        flags = BmsFlag(tel.flags)
        if now_c < limits.t_min_c + margin or flags & BmsFlag.UNDER_TEMP:
            text = f"Waiting for the battery to warm up to {limits.t_min_c + margin:.0f} °C"
        elif now_c > limits.t_max_c - margin or flags & BmsFlag.OVER_TEMP:
            text = f"Waiting for the battery to cool below {limits.t_max_c - margin:.0f} °C"
        else:
            return True
        text = f"{text} (now {now_c:.0f} °C)"
        if port.state_text != text:
            port.set_state(PortState.WAITING, text)
        return False

    async def allocate_once(self) -> None:
        now = self.clock.monotonic()
        demands = self.demands(now)
        # Power still flowing to a port outside the sharing (a vehicle ramping down to stop) is
        # not free until its switch opens.
        sharing = {d.port_id for d in demands}
        reserved = sum(
            p.grant_a * p.battery.v_max_v
            for p in self.ports.values()
            if p.relay_closed and p.port_id not in sharing and p.battery is not None
        )
        budget = max(0.0, self.budget_w - reserved)
        grants = self.policy.allocate(budget, demands, now)
        v_max = {d.port_id: d.v_max_v for d in demands}
        current = {d.port_id: self.ports[d.port_id].grant_a for d in demands if d.charging}
        target: dict[int, float] = {}
        for d in demands:
            port = self.ports[d.port_id]
            grant = grants.get(d.port_id)
            new = grant.current_a if grant is not None else 0.0
            if port.busy:
                new = current.get(d.port_id, 0.0)
            target[d.port_id] = new
            if grant is not None:
                port.limit_detail = grant.detail
                if port.state == PortState.WAITING and new <= 0 and not port.busy:
                    port.set_state(PortState.WAITING, grant.detail or "Waiting for power")
        try:
            phases = plan_transition(budget, v_max, current, target)
        except ValueError:
            log.error("allocation exceeds the budget; keeping the current grants")
            return
        for index, phase in enumerate(phases):
            steps = [(self.ports[pid], amps) for pid, amps in phase]
            if index == 0:
                await asyncio.gather(*(self._reduce(p, a) for p, a in steps))
                await self._await_settled([p for p, _ in steps])
            else:
                await asyncio.gather(*(self._increase(p, a) for p, a in steps))
        self.events.publish("station", self.station_summary())

    async def _reduce(self, port: PortController, amps: float) -> None:
        if port.state != PortState.CHARGING or port.busy:
            return
        if amps <= 0:
            await port.pause("rotation")
        else:
            await port.change_grant(amps, "shared")

    async def _increase(self, port: PortController, amps: float) -> None:
        if amps <= 0:
            return
        if port.state == PortState.WAITING:
            await port.admit(amps, "shared")
        elif port.state == PortState.CHARGING and not port.busy:
            await port.change_grant(amps, "shared")

    async def _await_settled(self, ports: list[PortController]) -> None:
        """Increases wait until reduced ports measure at or under their new grant."""
        deadline = self.clock.monotonic() + T_SETTLE
        while self.clock.monotonic() < deadline:
            if all(
                not p.relay_closed
                or p.reading is None
                or p.reading.current_a <= overcurrent_threshold(self.settings.safety, p.grant_a)
                for p in ports
            ):
                return
            await self.clock.sleep(self.poll_period_s)

    # --- commands ---------------------------------------------------------------------------------

    def port(self, port_id: int) -> PortController:
        try:
            return self.ports[port_id]
        except KeyError:
            raise StationError(f"no port {port_id}", 404) from None

    async def start(self, port_id: int) -> LiveSession:
        port = self.port(port_id)
        if port.state == PortState.FAULT:
            raise StationError(f"port {port_id} has a fault: {port.state_text}; reset it first")
        if port.state != PortState.READY or port.battery is None:
            raise StationError(f"port {port_id} is not ready to start ({port.state_text})")
        session = port.open_session(self.clock.wall(), self.clock.monotonic())
        if self.on_start is not None:
            self.on_start(port, session)
        if self.recorder is not None:
            try:
                session.session_id = await self.recorder.start_session(
                    port_id=port_id,
                    public_token=session.public_token,
                    owner_token=session.owner_token,
                    vehicle=self.vehicle_info(port),
                    started_at=session.started_at,
                    soc_start=session.soc_start,
                )
            except Exception as exc:
                self.store_error = str(exc)
                log.error("store: session not recorded: %s", exc)
        if self.settings.payment_required and not session.paid:
            port.set_state(PortState.PAYMENT)
            self._spawn(self._payment_deadline(port, session))
        else:
            port.set_state(PortState.WAITING)
            self.wake_allocator()
        return session

    async def _payment_deadline(self, port: PortController, session: LiveSession) -> None:
        await self.clock.sleep(self.settings.payment_window_s)
        if port.session is session and port.state == PortState.PAYMENT:
            await port.stop("payment", "No payment was made in time")

    def payment_approved(self, port_id: int) -> None:
        port = self.port(port_id)
        if port.state != PortState.PAYMENT or port.session is None:
            raise StationError(f"port {port_id} is not waiting for payment")
        port.session.paid = True
        port.set_state(PortState.WAITING)
        self.wake_allocator()

    async def stop(self, port_id: int, reason: str = "user") -> None:
        """Begin a normal stop and return once the port says STOPPING; the ramp-down runs on."""
        port = self.port(port_id)
        if port.session is None:
            raise StationError(f"port {port_id} has no session to stop")
        self._spawn(self._stop_port(port, reason))
        await asyncio.sleep(0)

    async def _stop_port(self, port: PortController, reason: str) -> None:
        try:
            await port.stop(reason)
        finally:
            self.wake_allocator()

    def reset(self, port_id: int) -> None:
        if not self.port(port_id).reset_fault():
            raise StationError(f"port {port_id} has no fault to reset")

    def set_budget(self, watts: float) -> None:
        if not 0 <= watts <= 100_000:
            raise StationError("budget must be between 0 and 100000 W", 400)
        self.budget_w = float(watts)
        self.wake_allocator()
        self.events.publish("station", self.station_summary())

    # --- callbacks from ports ---------------------------------------------------------------------

    def _port_changed(self, port: PortController) -> None:
        if self.events.subscribers:  # a port view is not free to build: only when someone looks
            self.events.publish("port", self.port_view(port))
        if port.state in (PortState.DONE, PortState.FAULT, PortState.EMPTY):
            self._wake.set()
        if port.state == PortState.READY and self.settings.auto_start and port.session is None:
            self._spawn(self._auto_start(port.port_id))

    async def _auto_start(self, port_id: int) -> None:
        with contextlib.suppress(StationError):
            await self.start(port_id)

    def _tripped(self, port: PortController, trip: Trip) -> None:
        self._wake.set()
        if self.recorder is not None:
            session_id = port.session.session_id if port.session else None
            self._record(
                self.recorder.add_fault(
                    t=self.clock.wall(),
                    port_id=port.port_id,
                    session_id=session_id,
                    code=trip.code,
                    text=trip.text,
                )
            )

    async def _session_ended(self, port: PortController, session: LiveSession) -> None:
        self._wake.set()
        self._last_sample.pop(port.port_id, None)
        if self.on_end is not None:
            self._spawn(self.on_end(port, session))
        if self.recorder is None or session.session_id is None:
            return
        soc = port.telemetry.soc_pct if port.telemetry else None
        self._record(
            self.recorder.end_session(
                session.session_id,
                ended_at=session.ended_at or self.clock.wall(),
                energy_wh=session.energy_wh,
                peak_w=session.peak_w,
                reason=session.end_reason or "user",
                text=session.end_text or "",
                soc_end=soc,
            )
        )

    # --- views ------------------------------------------------------------------------------------

    def vehicle_info(self, port: PortController) -> dict[str, object]:
        info: dict[str, object] = {}
        if port.hello is not None:
            info.update(
                type=port.hello.vehicle_type,
                maker=port.hello.maker,
                model=port.hello.model,
                serial=port.hello.serial,
            )
        if port.battery is not None:
            b = port.battery
            info.update(
                chemistry=b.chemistry,
                cells=b.cells_series,
                v_nom_v=b.v_nom_v,
                v_max_v=b.v_max_v,
                v_min_v=b.v_min_v,
                capacity_wh=b.capacity_wh,
                i_max_a=b.i_max_a,
                i_min_a=b.i_min_a,
                t_min_c=b.t_min_c,
                t_max_c=b.t_max_c,
            )
        if port.telemetry is not None:
            info.update(soc_pct=port.telemetry.soc_pct, temperature_c=port.telemetry.temperature_c)
        elif port.battery is not None:
            info.update(soc_pct=port.battery.soc_pct, temperature_c=port.battery.temperature_c)
        return info

    def in_constant_voltage(self, port: PortController) -> bool:
        """The battery is at its maximum voltage and the current tapers: the last stretch."""
        b, tel = port.battery, port.telemetry
        if b is None or tel is None or port.state != PortState.CHARGING:
            return False
        amps = port.reading.current_a if port.reading is not None else port.grant_a
        return tel.voltage_v >= b.v_max_v * 0.995 and amps < port.grant_a * 0.9

    def observe_taper(self, port: PortController, now: float) -> None:
        """Keep the last few minutes of the taper, one point every TAPER_STEP_S."""
        if not self.in_constant_voltage(port) or port.reading is None:
            if port.state != PortState.CHARGING:
                port.taper.clear()
            return
        if port.taper and now - port.taper[-1][0] < TAPER_STEP_S:
            return
        port.taper.append((now, port.reading.current_a))
        del port.taper[:-TAPER_POINTS]

    def eta_seconds(self, port: PortController) -> float | None:
        b, tel = port.battery, port.telemetry
        if b is None or tel is None or port.state != PortState.CHARGING:
            return None
        amps = port.reading.current_a if port.reading is not None else port.grant_a
        learned = taper_seconds(port.taper, amps, b.capacity_wh / b.v_nom_v)
        if learned is not None and (b.target_soc_pct or 100.0) >= 100.0:
            return learned
        in_cv = self.in_constant_voltage(port)
        return estimate_seconds(
            EtaInput(
                soc_pct=tel.soc_pct,
                capacity_wh=b.capacity_wh,
                v_nom_v=b.v_nom_v,
                v_max_v=b.v_max_v,
                current_a=max(0.0, amps),
                in_cv=in_cv,
                target_soc_pct=b.target_soc_pct or 100.0,
            )
        )

    def session_view(
        self, session: LiveSession, port: PortController, live: bool
    ) -> dict[str, Any]:
        now_wall = self.clock.wall()
        end = session.ended_at or now_wall
        return {
            "public_token": session.public_token,
            "session_id": session.session_id,
            "port": port.port_id,
            "live": live,
            "started_at": session.started_at,
            "ended_at": session.ended_at,
            "elapsed_s": round(end - session.started_at, 1),
            "energy_wh": round(session.energy_wh, 3),
            "peak_w": round(session.peak_w, 1),
            "end_reason": session.end_reason,
            "end_text": session.end_text,
            "soc_start": session.soc_start,
            "eta_s": self.eta_seconds(port) if live else None,
            "finishing": live and self.in_constant_voltage(port),
            "curve": [[round(t, 1), round(w, 1), round(s, 1)] for t, w, s in session.samples],
        }

    def port_view(self, port: PortController) -> dict[str, Any]:
        reading = port.reading if port.relay_closed else None
        volts = reading.bus_voltage_v if reading else 0.0
        amps = reading.current_a if reading else 0.0
        v_max = port.battery.v_max_v if port.battery else 0.0
        view: dict[str, Any] = {
            "id": port.port_id,
            "state": port.state.value,
            "state_text": port.state_text,
            "vehicle": self.vehicle_info(port) or None,
            "granted": {
                "amps": round(port.grant_a, 3),
                "volts": v_max,
                "watts": round(port.grant_a * v_max, 1),
            },
            "measured": {
                "volts": round(volts, 3),
                "amps": round(amps, 3),
                "watts": round(volts * amps, 1),
            },
            "relay_closed": port.relay_closed,
            "limit_reason": port.limit_reason,
            "limit_detail": port.limit_detail,
            "thermal_factor": port.thermal_factor,
            "warning": port.warning,
            "fault": None
            if port.fault is None
            else {"code": port.fault.code, "text": port.fault.text},
            "session": None,
            "limits": {
                "max_current_a": port.spec.max_current_a,
                "v_min_v": port.spec.v_min_v,
                "v_max_v": port.spec.v_max_v,
                "max_power_w": port.spec.max_power_w,
            },
        }
        if port.session is not None:
            view["session"] = self.session_view(port.session, port, live=True)
        elif port.last_session is not None and port.state in (PortState.DONE, PortState.FAULT):
            view["session"] = self.session_view(port.last_session, port, live=False)
        return view

    def station_summary(self) -> dict[str, Any]:
        allocated = sum(
            p.grant_a * (p.battery.v_max_v if p.battery else 0.0) for p in self.ports.values()
        )
        measured = sum(
            p.reading.bus_voltage_v * p.reading.current_a
            for p in self.ports.values()
            if p.reading is not None and p.relay_closed
        )
        waiting = sum(
            (p.battery.i_min_a * p.battery.v_max_v if p.battery else 0.0)
            for p in self.ports.values()
            if p.state == PortState.WAITING
        )
        return {
            "name": self.settings.name,
            "budget_w": round(self.budget_w, 1),
            "allocated_w": round(allocated, 1),
            "measured_w": round(measured, 1),
            "waiting_w": round(waiting, 1),
            "available_w": round(max(0.0, self.budget_w - allocated), 1),
            "store_ok": self.store_error is None,
            "store_error": self.store_error,
        }

    def snapshot(self) -> dict[str, Any]:
        summary = self.station_summary()
        summary["ports"] = [self.port_view(p) for p in self.ports.values()]
        return summary

    def find_session(self, public_token: str) -> tuple[PortController, LiveSession, bool] | None:
        for port in self.ports.values():
            if port.session is not None and port.session.public_token == public_token:
                return port, port.session, True
            if port.last_session is not None and port.last_session.public_token == public_token:
                return port, port.last_session, False
        return None
