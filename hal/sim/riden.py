"""An RD60xx at register level, served by pymodbus's own RTU server over a real pty.

The station's driver (:class:`hal.riden.RidenStage`) opens one end of a :class:`PtyCable` as it
would the module's USB-serial port; pymodbus's :class:`ModbusSerialServer` holds the other end and
answers from :class:`Rd60xxModel`'s registers. The model behaves as the part does, as far as a
charger cares:

- set points in the part's units (scale by model id), refused above the part's range;
- constant current into the pack until the pack's terminals reach the voltage limit, then constant
  voltage (register 17 says which);
- limits that slew rather than jump: ``slew_v_per_s`` and ``slew_a_per_s`` are assumed figures
  (a few tenths of a second to full scale), not measurements of a module;
- over-voltage and over-current protection (registers 82/83): the output switches off and register
  16 names the cause until the output is switched on again;
- a cable that can be cut, so the stage stops answering.

Physics advances on the injected clock, lazily, in steps of at most ``physics_dt_s``, whenever a
request arrives (or :meth:`Rd60xxModel.sync` is called), so tests run in virtual time.
"""

from __future__ import annotations

from typing import Any, cast

from hal.clock import Clock
from hal.riden import (
    MODEL_IDS,
    PROTECTION_OCP,
    PROTECTION_OVP,
    RD6006,
    REG_FIRMWARE,
    REG_I_OUT,
    REG_I_SET,
    REG_KEYPAD_LOCK,
    REG_MODE,
    REG_MODEL,
    REG_OCP,
    REG_OUTPUT,
    REG_OVP,
    REG_POWER_HIGH,
    REG_POWER_LOW,
    REG_PROTECTION,
    REG_SERIAL_HIGH,
    REG_SERIAL_LOW,
    REG_V_IN,
    REG_V_OUT,
    REG_V_SET,
    RidenModel,
)
from hal.sim.pack import StageLoad, slew_toward
from hal.sim.serial_pty import PtyCable

REGISTER_COUNT = 120
READ_ONLY = frozenset(
    {
        REG_MODEL,
        REG_SERIAL_HIGH,
        REG_SERIAL_LOW,
        REG_FIRMWARE,
        4,
        5,
        6,
        7,
        REG_V_OUT,
        REG_I_OUT,
        REG_POWER_HIGH,
        REG_POWER_LOW,
        REG_V_IN,
        REG_PROTECTION,
        REG_MODE,
    }
)
ILLEGAL_ADDRESS, ILLEGAL_VALUE = 0x02, 0x03
"""Modbus exception codes (pymodbus's ExcCodes values)."""


class Rd60xxModel:
    def __init__(
        self,
        clock: Clock,
        model: RidenModel = RD6006,
        *,
        load: StageLoad | None = None,
        input_voltage_v: float = 65.0,
        slew_v_per_s: float = 200.0,
        slew_a_per_s: float = 60.0,
        physics_dt_s: float = 0.01,
    ) -> None:
        self.clock = clock
        self.model = model
        self.load = load
        self.input_voltage_v = input_voltage_v
        self.slew_v_per_s = slew_v_per_s
        self.slew_a_per_s = slew_a_per_s
        self.physics_dt_s = physics_dt_s
        self.registers = [0] * REGISTER_COUNT
        self.voltage_set_raw = round(5.0 * model.voltage_scale)  # a factory-fresh module: 5 V, 1 A
        self.current_set_raw = round(min(1.0, model.max_current_a) * model.current_scale)
        self.ovp_raw = round((model.max_voltage_v + 2.0) * model.voltage_scale)
        self.ocp_raw = round((model.max_current_a + 0.2) * model.current_scale)
        self.output_on = False
        self.protection = 0
        self.keypad_locked = False
        self.voltage_limit_v = 0.0
        """The regulator's voltage limit as it slews toward the set point."""
        self.current_limit_a = 0.0
        self.output_voltage_v = 0.0
        self.output_current_a = 0.0
        self.constant_current = False
        self.dropped_writes: set[int] = set()
        """Registers whose writes are acknowledged but not applied (a firmware fault)."""
        self.requests = 0
        self.trips: list[tuple[float, str]] = []
        self._last = clock.monotonic()
        self._refresh()

    # --- the part's settings, in SI units ---------------------------------------------------------

    @property
    def voltage_set_v(self) -> float:
        return self.voltage_set_raw / self.model.voltage_scale

    @property
    def current_set_a(self) -> float:
        return self.current_set_raw / self.model.current_scale

    @property
    def ovp_v(self) -> float:
        return self.ovp_raw / self.model.voltage_scale

    @property
    def ocp_a(self) -> float:
        return self.ocp_raw / self.model.current_scale

    def panel_set(self, voltage_v: float | None = None, current_a: float | None = None) -> None:
        """A person turns the front-panel knob: the set points change without a Modbus write."""
        self.sync()
        if voltage_v is not None:
            self.voltage_set_raw = round(voltage_v * self.model.voltage_scale)
        if current_a is not None:
            self.current_set_raw = round(current_a * self.model.current_scale)
        self._refresh()

    # --- physics ----------------------------------------------------------------------------------

    def sync(self) -> None:
        now = self.clock.monotonic()
        remaining = now - self._last
        while remaining > 1e-9:
            dt = min(self.physics_dt_s, remaining)
            self.step(dt)
            remaining -= dt
        self._last = now

    def step(self, dt_s: float) -> None:
        on = self.output_on
        target_v = self.voltage_set_v if on else 0.0
        target_i = self.current_set_a if on else 0.0
        self.voltage_limit_v = slew_toward(self.voltage_limit_v, target_v, self.slew_v_per_s * dt_s)
        self.current_limit_a = slew_toward(self.current_limit_a, target_i, self.slew_a_per_s * dt_s)
        if self.load is not None:
            self.load.supply(self.voltage_limit_v, self.current_limit_a if on else 0.0, dt_s)
            volts, amps = self.load.terminal_voltage_v, self.load.current_a
        else:
            volts, amps = (self.voltage_limit_v if on else 0.0), 0.0
        self.output_voltage_v, self.output_current_a = volts, amps
        tolerance = max(0.01, 0.002 * self.voltage_limit_v)
        self.constant_current = on and volts < self.voltage_limit_v - tolerance
        if on and volts > self.ovp_v:
            self._trip(PROTECTION_OVP, f"over-voltage: {volts:.2f} V > {self.ovp_v:g} V")
        elif on and amps > self.ocp_a:
            self._trip(PROTECTION_OCP, f"over-current: {amps:.3f} A > {self.ocp_a:g} A")

    def _trip(self, code: int, why: str) -> None:
        self.protection = code
        self.output_on = False
        self.voltage_limit_v = self.current_limit_a = 0.0
        self.trips.append((self.clock.monotonic(), why))

    # --- registers --------------------------------------------------------------------------------

    def _refresh(self) -> None:
        r, m = self.registers, self.model
        r[REG_MODEL] = MODEL_IDS[m.name]
        r[REG_SERIAL_HIGH], r[REG_SERIAL_LOW] = 0, 12345
        r[REG_FIRMWARE] = 140
        r[4], r[5] = 0, 30  # internal temperature, °C: sign then value
        r[6], r[7] = 0, 86
        r[REG_V_SET], r[REG_I_SET] = self.voltage_set_raw, self.current_set_raw
        r[REG_V_OUT] = min(0xFFFF, round(self.output_voltage_v * m.voltage_scale))
        r[REG_I_OUT] = min(0xFFFF, round(self.output_current_a * m.current_scale))
        power = round(self.output_voltage_v * self.output_current_a * 100)
        r[REG_POWER_HIGH], r[REG_POWER_LOW] = (power >> 16) & 0xFFFF, power & 0xFFFF
        r[REG_V_IN] = round(self.input_voltage_v * 100)
        r[REG_KEYPAD_LOCK] = int(self.keypad_locked)
        r[REG_PROTECTION] = self.protection
        r[REG_MODE] = int(self.constant_current)
        r[REG_OUTPUT] = int(self.output_on)
        r[REG_OVP], r[REG_OCP] = self.ovp_raw, self.ocp_raw

    def _write(self, register: int, value: int) -> int | None:
        """Apply one register write; a Modbus exception code when the part refuses it."""
        m = self.model
        if register in READ_ONLY:
            return ILLEGAL_ADDRESS
        if register in self.dropped_writes:
            return None
        if register == REG_V_SET:
            if value > round(m.max_voltage_v * m.voltage_scale):
                return ILLEGAL_VALUE
            self.voltage_set_raw = value
        elif register == REG_I_SET:
            if value > round(m.max_current_a * m.current_scale):
                return ILLEGAL_VALUE
            self.current_set_raw = value
        elif register == REG_OUTPUT:
            if value not in (0, 1):
                return ILLEGAL_VALUE
            self.output_on = bool(value)
            if value:
                self.protection = 0
        elif register == REG_OVP:
            self.ovp_raw = value
        elif register == REG_OCP:
            self.ocp_raw = value
        elif register == REG_KEYPAD_LOCK:
            self.keypad_locked = bool(value)
        else:
            self.registers[register] = value
        return None

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> Any:
        """pymodbus's hook, called on every request: physics to now, writes, then registers."""
        self.requests += 1
        self.sync()
        if set_values:
            for i, value in enumerate(set_values):
                register = address + i
                refused = self._write(register, int(value))
                if refused is not None:
                    self._refresh()
                    registers[:] = self._served(start_address, len(registers))
                    return _exception(refused)
                if register in self.dropped_writes:
                    cast(list[int], set_values)[i] = self.registers[register]
            self.sync()
        self._refresh()
        registers[:] = self._served(start_address, len(registers))
        return None

    def _served(self, start_address: int, length: int) -> list[int]:
        values = self.registers[start_address : start_address + length]
        return values + [0] * (length - len(values))


def _exception(code: int) -> Any:
    from pymodbus.constants import ExcCodes

    return ExcCodes(code)


class SimRiden:
    """An RD60xx on the bench: the model, pymodbus's serial server, and the pty cable to it."""

    def __init__(
        self,
        clock: Clock,
        model: RidenModel = RD6006,
        *,
        load: StageLoad | None = None,
        name: str = "stage",
        baud: int = 115200,
        device_id: int = 1,
        **model_options: Any,
    ) -> None:
        self.model = Rd60xxModel(clock, model, load=load, **model_options)
        self.cable = PtyCable(name)
        self.path = self.cable.station_path
        """The end the station's driver opens, as it would /dev/ttyUSB0."""
        self.baud = baud
        self.device_id = device_id
        self._server: Any = None

    async def start(self) -> None:
        from pymodbus.framer import FramerType
        from pymodbus.server import ModbusSerialServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        device = SimDevice(
            self.device_id,
            simdata=[SimData(0, count=REGISTER_COUNT, datatype=DataType.REGISTERS)],
            action=self.model.action,
        )
        self._server = ModbusSerialServer(
            device, framer=FramerType.RTU, port=self.cable.peer_path, baudrate=self.baud
        )
        await self._server.serve_forever(background=True)

    def sync(self) -> None:
        self.model.sync()

    def stop_answering(self) -> None:
        """The stage goes silent: requests and answers are lost on the cable."""
        self.cable.connected = False

    def resume_answering(self) -> None:
        self.cable.connected = True

    async def aclose(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
        self.cable.close()
