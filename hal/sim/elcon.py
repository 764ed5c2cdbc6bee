"""A TC/Elcon CAN charger at frame level, on python-can's virtual bus.

It does what the protocol says the part does (see :mod:`hal.elcon`): it takes the controller's
``0x1806E5F4`` limits, regulates constant current then constant voltage into its load, slews toward
new limits, answers ``0x18FF50E5`` once a second with its output and status bits, and stops by
itself (bit 4, communication time-out) when no command has come for 5 s. Faults can be injected:
over-temperature, a hardware failure, and a charger that falls silent. A command above the
charger's rating is clamped to the rating, as the units do. Time comes from the injected clock.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hal.clock import Clock
from hal.elcon import CHARGER_TIMEOUT_S, command_id, decode_command, encode_status, status_id
from hal.sim.pack import StageLoad, slew_toward

HARDWARE_FAILURE, OVER_TEMPERATURE, INPUT_VOLTAGE, NO_BATTERY, COMM_TIMEOUT = 1, 2, 4, 8, 16


class SimElconCharger:
    def __init__(
        self,
        clock: Clock,
        bus: Any,
        *,
        load: StageLoad | None,
        max_voltage_v: float = 130.0,
        max_current_a: float = 10.0,
        slew_v_per_s: float = 50.0,
        slew_a_per_s: float = 5.0,
        status_period_s: float = 1.0,
        physics_dt_s: float = 0.05,
        address: int = 0xE5,
    ) -> None:
        self.clock = clock
        self.command_id = command_id(address)
        self.status_id = status_id(address)
        self.bus = bus
        self.load = load
        self.max_voltage_v = max_voltage_v
        self.max_current_a = max_current_a
        self.slew_v_per_s = slew_v_per_s
        self.slew_a_per_s = slew_a_per_s
        self.status_period_s = status_period_s
        self.physics_dt_s = physics_dt_s
        self.voltage_set_v = 0.0
        self.current_set_a = 0.0
        self.charge_commanded = False
        self.last_command_at: float | None = None
        self.voltage_limit_v = 0.0
        self.current_limit_a = 0.0
        self.output_voltage_v = 0.0
        self.output_current_a = 0.0
        self.over_temperature = False
        self.hardware_failure = False
        self.silent = False
        """True: the charger neither hears commands nor sends status (a dead unit or cable)."""
        self.commands = 0
        self.status_sent = 0
        self._last = clock.monotonic()
        self._next_status = self._last + status_period_s

    @property
    def timed_out(self) -> bool:
        if self.last_command_at is None:
            return True
        return self.clock.monotonic() - self.last_command_at > CHARGER_TIMEOUT_S

    @property
    def status_bits(self) -> int:
        bits = 0
        if self.hardware_failure:
            bits |= HARDWARE_FAILURE
        if self.over_temperature:
            bits |= OVER_TEMPERATURE
        if self.load is None:
            bits |= NO_BATTERY
        if self.last_command_at is not None and self.timed_out:
            bits |= COMM_TIMEOUT
        return bits

    @property
    def output_enabled(self) -> bool:
        fault = self.hardware_failure or self.over_temperature or self.load is None
        return self.charge_commanded and not self.timed_out and not fault

    def _hear(self) -> None:
        while True:
            frame = self.bus.recv(timeout=0)
            if frame is None:
                return
            if self.silent or frame.arbitration_id != self.command_id or not frame.is_extended_id:
                continue
            with contextlib.suppress(ValueError):
                volts, amps, charge = decode_command(bytes(frame.data))
                self.voltage_set_v = min(volts, self.max_voltage_v)
                self.current_set_a = min(amps, self.max_current_a)
                self.charge_commanded = charge
                self.last_command_at = self.clock.monotonic()
                self.commands += 1

    def _send_status(self) -> None:
        import can

        frame = can.Message(
            arbitration_id=self.status_id,
            is_extended_id=True,
            data=encode_status(self.output_voltage_v, self.output_current_a, self.status_bits),
        )
        self.bus.send(frame)
        self.status_sent += 1

    def step(self, dt_s: float) -> None:
        on = self.output_enabled
        self.voltage_limit_v = slew_toward(
            self.voltage_limit_v, self.voltage_set_v if on else 0.0, self.slew_v_per_s * dt_s
        )
        self.current_limit_a = slew_toward(
            self.current_limit_a, self.current_set_a if on else 0.0, self.slew_a_per_s * dt_s
        )
        if not on:
            self.current_limit_a = 0.0  # stopping is immediate; starting ramps
        if self.load is not None:
            self.load.supply(self.voltage_limit_v, self.current_limit_a, dt_s)
            self.output_voltage_v = self.load.terminal_voltage_v
            self.output_current_a = self.load.current_a
        else:
            self.output_voltage_v = self.output_current_a = 0.0

    def sync(self) -> None:
        """Hear commands, advance physics to the clock's present, send the status frames due."""
        self._hear()
        now = self.clock.monotonic()
        while self._last < now - 1e-9:
            dt = min(self.physics_dt_s, now - self._last, max(1e-6, self._next_status - self._last))
            self.step(dt)
            self._last += dt
            if self._last >= self._next_status - 1e-9:
                self._next_status += self.status_period_s
                if not self.silent:
                    self._send_status()
        self._last = max(self._last, now)

    async def run(self) -> None:
        while True:
            self.sync()
            await self.clock.sleep(self.physics_dt_s)
