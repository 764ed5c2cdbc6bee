"""The safety loop: every poll period, read every sensor, apply every rule, then kick the watchdog.

The watchdog is kicked only after a complete pass, so a hung loop stops the kicks and the board
drops every switch within its hold time. A pass that fails with an unexpected error trips every
port that may have power (a fault with reason ``internal``), so no session goes on counting power
time behind an open switch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from firmware.pevlink.timers import T_IDENT, T_LINK, T_TEL, T_TEL_PERIOD
from firmware.station.port import PortController
from firmware.station.progress import observe_taper
from firmware.station.safety import (
    Trip,
    check_reported_voltage,
    check_temperature,
    check_vehicle_flags,
    debounce,
    overcurrent_threshold,
    thermal_factor,
)
from firmware.station.states import LIVE_STATES, SESSION_STATES, PortState
from hal.interfaces import PowerReading

if TYPE_CHECKING:
    from firmware.station.station import Station

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, station: Station) -> None:
        self.station = station
        self.settings = station.settings
        self.clock = station.clock
        self.ticks = 0
        self._last_tick: float | None = None
        self._over_budget_since: float | None = None
        self._last_sample: dict[int, float] = {}
        self.on_tick: Callable[[], None] | None = None

    async def run(self) -> None:
        while True:
            period = self.station.poll_period_s
            started = self.clock.monotonic()
            try:
                # Through the station, where the metrics time each pass.
                await self.station.supervise_once()
            except Exception as exc:
                log.exception("supervisor pass failed; tripping every port that may have power")
                self.trip_all(Trip("internal", f"Station error in the safety loop: {exc}"))
            elapsed = self.clock.monotonic() - started
            await self.clock.sleep(max(0.0, period - elapsed))

    def trip_all(self, trip: Trip) -> None:
        for port in self.station.ports.values():
            try:
                if port.relay_closed or port.state in LIVE_STATES:
                    port.trip(trip)
                else:
                    port.open_switch()
            except Exception:
                log.exception("port %d: could not trip", port.port_id)

    async def pass_once(self) -> None:
        station = self.station
        now = self.clock.monotonic()
        dt = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        ports = list(station.ports.values())
        for port in ports:
            station.publish_permit(port)
        core = station.safety
        if not station.safety_threaded:
            await core.pass_once()
        for port in ports:
            measurement = core.latest.get(port.port_id)
            port.reading = measurement.reading if measurement is not None else None
            if measurement is not None and measurement.reading is not None:
                port.reading_at = measurement.at
            try:
                self._check_port(port, port.reading, now, dt)
            except Exception as exc:
                log.exception("port %d: check failed", port.port_id)
                port.trip(Trip("internal", f"Station error: {exc}"))
        self._check_budget(now)
        self.ticks += 1
        if not station.safety_threaded:
            core.kick()  # inline: only after the whole pass, the vehicle rules included
        if self.on_tick is not None:
            self.on_tick()

    def _check_port(
        self, port: PortController, reading: PowerReading | None, now: float, dt: float
    ) -> None:
        if port.io.detect is not None and port.io.detect.plugged() is False:
            self._unplugged(port)
            return
        if port.relay_closed:
            self._check_powered(port, reading, now, dt)
        if port.state in LIVE_STATES:
            self._check_vehicle(port, now)
        self._check_presence(port, now)
        self._check_identification(port, now)
        self._check_target(port)
        self._maybe_sample(port, now)
        observe_taper(port, now)

    def _check_powered(
        self, port: PortController, reading: PowerReading | None, now: float, dt: float
    ) -> None:
        """Meter the energy; the electrical rules are the safety core's (safety_core.py)."""
        session = port.session
        if reading is None or session is None or dt <= 0 or port.state not in LIVE_STATES:
            return
        session.meter(reading.bus_voltage_v * reading.current_a, dt)

    def _check_vehicle(self, port: PortController, now: float) -> None:
        limits = port.limits()
        tel = port.telemetry
        if limits is None:
            return
        last = port.last_tel_at
        if last is None and port.session is not None:
            last = port.session.requested_at
        if last is None or now - last > T_TEL:
            port.trip(Trip("silent", "The vehicle stopped reporting its battery state"))
            return
        if tel is None:
            return
        safety = self.settings.safety
        trip = check_temperature(limits, tel.temperature_c) or check_vehicle_flags(tel.flags)
        reading = port.reading
        # Compare only a fresh report with the present measurement: an old one drifts anyway.
        fresh = port.last_tel_at is not None and now - port.last_tel_at <= T_TEL_PERIOD / 2
        if trip is None and fresh and port.relay_closed and port.verified and reading is not None:
            trip = check_reported_voltage(
                safety,
                port.guard,
                reading.bus_voltage_v,
                tel.voltage_v,
                reading.current_a,
                now,
            )
        if trip is not None:
            port.trip(trip)
            return
        factor = thermal_factor(safety, limits.t_max_c, tel.temperature_c, port.thermal_factor)
        if factor != port.thermal_factor:
            port.thermal_factor = factor
            self.station.wake_allocator()

    def _check_target(self, port: PortController) -> None:
        session, tel, battery = port.session, port.telemetry, port.battery
        if session is None or tel is None or battery is None or port.busy:
            return
        target = battery.target_soc_pct
        if target is not None and port.state == PortState.CHARGING and tel.soc_pct >= target:
            port.spawn(port.stop("target"))

    def _unplugged(self, port: PortController) -> None:
        """The detect pin opened: it breaks before the power pins, so cut now, before they part."""
        if port.relay_closed or port.state in LIVE_STATES:
            port.trip(Trip("disconnect", "The vehicle was unplugged during the charge"))
        if port.state == PortState.EMPTY:
            return
        self._vehicle_left(port, "The vehicle was unplugged before charging")

    def _check_identification(self, port: PortController, now: float) -> None:
        """T_IDENT: something talks on the port but never identifies; ask it to start over, once."""
        if port.state != PortState.CONNECTED or port.hello is not None or port.ident_prompted:
            return
        if port.connected_at is None or now - port.connected_at <= T_IDENT:
            return
        port.ident_prompted = True
        port.set_words("Vehicle not recognised: it did not identify itself; replug it")
        port.spawn(self.station.announce(port))

    def _check_presence(self, port: PortController, now: float) -> None:
        """A link silent for T_LINK means the vehicle has gone (unplugged) or died."""
        last = port.link.last_rx
        if port.state == PortState.EMPTY or last is None or now - last <= T_LINK:
            return
        if port.relay_closed or port.state in LIVE_STATES:
            port.trip(Trip("silent", "The vehicle stopped answering"))
            return
        self._vehicle_left(port, "The vehicle left before charging")

    def _vehicle_left(self, port: PortController, text: str) -> None:
        """End a session that had no power, forget the vehicle, free the port (faults too)."""
        port.link.last_rx = None

        async def leave() -> None:
            async with port.lock:
                session = port.session
                if session is not None and port.state in SESSION_STATES:
                    await port.finish(session, "vehicle", text)
                if port.state not in LIVE_STATES and not port.relay_closed:
                    port.vehicle_left()

        port.spawn(leave())

    def _check_budget(self, now: float) -> None:
        station = self.station
        measured = [
            (p, p.reading.bus_voltage_v * p.reading.current_a)
            for p in station.ports.values()
            if p.reading is not None and p.relay_closed
        ]
        total = sum(w for _, w in measured)
        limit = station.budget_w * (1.0 + self.settings.budget_tolerance_frac) + 5.0
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
        worst.trip(
            Trip(
                "budget",
                f"The station drew {total:.0f} W, above its {station.budget_w:.0f} W budget",
            )
        )

    def _maybe_sample(self, port: PortController, now: float) -> None:
        session = port.session
        if session is None:
            return
        last = self._last_sample.get(port.port_id)
        if last is not None and now - last < self.settings.sample_period_s:
            return
        self._last_sample[port.port_id] = now
        reading = port.reading if port.relay_closed else None
        volts = reading.bus_voltage_v if reading else 0.0
        amps = reading.current_a if reading else 0.0
        soc = port.telemetry.soc_pct if port.telemetry else None
        session.add_point(now, volts * amps, soc)
        self.station.sessions.sample(session, session.wall_at(now), volts, amps, soc)

    def forget_samples(self, port_id: int) -> None:
        self._last_sample.pop(port_id, None)
