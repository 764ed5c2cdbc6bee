"""The INA219 at register level (TI datasheet SBOS448), driven by the bench's true values.

The world sets what flows (``bus_voltage_v``, ``current_a``); the model converts it exactly as the
part would: 10 µV shunt LSB clipped at the PGA range (which sets the math-overflow bit), a 13-bit
bus register with 4 mV LSB and the conversion-ready and overflow bits, current and power computed
from the calibration register. Its bus input is rated to 26 V: above that the register saturates
at the range's full scale and the part is out of its rating, which the monitor reports.

The conversions are computed once for what flows and how the part is set, and kept until either
changes: the world sets what flows every physics step, the driver reads three registers every
safety pass.
"""

from __future__ import annotations

import math

CONFIG, SHUNT, BUS, POWER, CURRENT, CALIBRATION = range(6)
CONFIG_RESET = 0x399F
PGA_RANGE_V = (0.04, 0.08, 0.16, 0.32)
SHUNT_LSB_V = 10e-6
BUS_LSB_V = 0.004
INPUT_LIMIT_V = 26.0


class Ina219Model:
    part = "INA219"

    def __init__(self, shunt_ohms: float = 0.1) -> None:
        self.shunt_ohms = shunt_ohms
        self._conversions: tuple[int, int, int, bool, int] | None = None
        """(shunt, bus, current, overflow, power) raw values for the present inputs and settings."""
        self._bus_voltage_v = 0.0
        self._current_a = 0.0
        self.reset()

    @property
    def bus_voltage_v(self) -> float:
        return self._bus_voltage_v

    @bus_voltage_v.setter
    def bus_voltage_v(self, value: float) -> None:
        if value != self._bus_voltage_v:
            self._bus_voltage_v = value
            self._conversions = None

    @property
    def current_a(self) -> float:
        return self._current_a

    @current_a.setter
    def current_a(self, value: float) -> None:
        if value != self._current_a:
            self._current_a = value
            self._conversions = None

    def reset(self) -> None:
        self.config = CONFIG_RESET
        self.calibration = 0
        self._cnvr = False
        self._conversions = None

    def brownout(self) -> None:
        """A load spike resets the part: configuration and calibration are lost."""
        self.reset()

    # --- derived values ---------------------------------------------------------------------------

    @property
    def bus_range_v(self) -> float:
        return 32.0 if self.config & (1 << 13) else 16.0

    @property
    def pga_range_v(self) -> float:
        return PGA_RANGE_V[(self.config >> 11) & 0x3]

    def _shunt_raw(self) -> tuple[int, bool]:
        limit = round(self.pga_range_v / SHUNT_LSB_V)
        raw = round(self.current_a * self.shunt_ohms / SHUNT_LSB_V)
        if not math.isfinite(raw):  # pragma: no cover - the world never sets NaN
            return limit, True
        clipped = max(-limit, min(limit, raw))
        return clipped, clipped != raw

    def _bus_raw(self) -> int:
        volts = max(0.0, min(self.bus_voltage_v, self.bus_range_v))
        return min(0x1FFF, round(volts / BUS_LSB_V))

    def _current_raw(self) -> tuple[int, bool]:
        shunt, clipped = self._shunt_raw()
        value = math.trunc(shunt * self.calibration / 4096)
        overflow = clipped or not -32768 <= value <= 32767
        return max(-32768, min(32767, value)), overflow

    def _power_raw(self) -> int:
        current, _ = self._current_raw()
        return min(0xFFFF, math.trunc(abs(current) * self._bus_raw() / 5000))

    # --- registers --------------------------------------------------------------------------------

    def _converted(self) -> tuple[int, int, int, bool, int]:
        conversions = self._conversions
        if conversions is None:
            current, overflow = self._current_raw()
            shunt, bus = self._shunt_raw()[0], self._bus_raw()
            conversions = (shunt, bus, current, overflow, self._power_raw())
            self._conversions = conversions
        return conversions

    def read_register(self, register: int, length: int) -> bytes:
        data = (self._value(register) & 0xFFFF).to_bytes(2, "big")
        return data if length == 2 else data[:length].ljust(length, b"\0")

    def _value(self, register: int) -> int:
        if register == CONFIG:
            return self.config
        if register == CALIBRATION:
            return self.calibration
        shunt, bus, current, overflow, power = self._converted()
        if register == SHUNT:
            return shunt & 0xFFFF
        if register == BUS:
            self._cnvr = (self.config & 0x7) != 0
            return (bus << 3) | (int(self._cnvr) << 1) | int(overflow)
        if register == POWER:
            self._cnvr = False
            return power
        if register == CURRENT:
            return current & 0xFFFF
        return 0

    def write_register(self, register: int, data: bytes) -> None:
        value = int.from_bytes(data[:2].ljust(2, b"\0"), "big")
        if register == CONFIG:
            if value & 0x8000:
                self.reset()
            elif value != self.config:
                self.config = value
                self._conversions = None
        elif register == CALIBRATION and value & 0xFFFE != self.calibration:
            # The driver writes it again before every current and power read.
            self.calibration = value & 0xFFFE  # bit 0 is read-only and always 0
            self._conversions = None
