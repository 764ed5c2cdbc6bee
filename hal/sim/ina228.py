"""The INA228 at register level (TI datasheet SBOS938): 20-bit conversions, bus input to 85 V.

24-bit result registers carry the 20-bit value in bits 23..4. Shunt LSB 312.5 nV (ADCRANGE 0,
±163.84 mV) or 78.125 nV (ADCRANGE 1, ±40.96 mV); bus LSB 195.3125 µV; current from SHUNT_CAL;
power LSB 3.2 × current LSB. Clipping at the shunt range sets MATHOF in DIAG_ALRT.

Each register's answer is computed once for what flows and how the part is set, and kept until
either changes: the world sets what flows every physics step, the drivers read four registers
every safety pass.
"""

from __future__ import annotations

import math

CONFIG, ADC_CONFIG, SHUNT_CAL, SHUNT_TEMPCO = 0x00, 0x01, 0x02, 0x03
VSHUNT, VBUS, DIETEMP, CURRENT, POWER = 0x04, 0x05, 0x06, 0x07, 0x08
ENERGY, CHARGE, DIAG_ALRT = 0x09, 0x0A, 0x0B
MANUFACTURER_ID, DEVICE_ID = 0x3E, 0x3F
TI_ID = 0x5449
INA228_ID = 0x2281  # device 0x228, revision 1
BUS_LSB_V = 195.3125e-6
INPUT_LIMIT_V = 85.0
MATHOF = 1 << 9
SHNTOL = 1 << 6
CNVRF = 1 << 1
_WIDTH = {VSHUNT: 3, VBUS: 3, CURRENT: 3, POWER: 3, ENERGY: 5, CHARGE: 5}


class Ina228Model:
    part = "INA228"

    def __init__(self, shunt_ohms: float = 0.015) -> None:
        self.shunt_ohms = shunt_ohms
        self._answers: dict[int, bytes] = {}
        """Register -> its bytes (full width), for the present inputs and settings."""
        self._current: tuple[int, bool] | None = None
        """The current conversion and its overflow, shared by CURRENT, POWER and DIAG_ALRT."""
        self._bus_voltage_v = 0.0
        self._current_a = 0.0
        self._die_temperature_c = 30.0
        self.reset()

    # --- what flows (set by the world) ------------------------------------------------------------

    @property
    def bus_voltage_v(self) -> float:
        return self._bus_voltage_v

    @bus_voltage_v.setter
    def bus_voltage_v(self, value: float) -> None:
        if value != self._bus_voltage_v:
            self._bus_voltage_v = value
            self._answers.pop(VBUS, None)  # the current's registers stay as they are
            self._answers.pop(POWER, None)

    @property
    def current_a(self) -> float:
        return self._current_a

    @current_a.setter
    def current_a(self, value: float) -> None:
        if value != self._current_a:
            self._current_a = value
            self._changed()

    @property
    def die_temperature_c(self) -> float:
        return self._die_temperature_c

    @die_temperature_c.setter
    def die_temperature_c(self, value: float) -> None:
        if value != self._die_temperature_c:
            self._die_temperature_c = value
            self._answers.pop(DIETEMP, None)

    def _changed(self) -> None:
        self._answers.clear()
        self._current = None

    def reset(self) -> None:
        self._changed()
        self.regs: dict[int, int] = {
            CONFIG: 0x0000,
            ADC_CONFIG: 0xFB68,
            SHUNT_CAL: 0x1000,
            SHUNT_TEMPCO: 0,
            DIAG_ALRT: 0x0001,
        }

    def brownout(self) -> None:
        self.reset()

    @property
    def adc_range(self) -> int:
        return (self.regs[CONFIG] >> 4) & 1

    @property
    def shunt_lsb_v(self) -> float:
        return 78.125e-9 if self.adc_range else 312.5e-9

    @property
    def current_lsb_a(self) -> float:
        scale = 4 if self.adc_range else 1
        cal = self.regs[SHUNT_CAL] & 0x7FFF
        if cal == 0 or self.shunt_ohms <= 0:
            return 0.0
        return cal / (13107.2e6 * self.shunt_ohms * scale)

    def _shunt_raw(self) -> tuple[int, bool]:
        limit = (1 << 19) - 1
        raw = round(self.current_a * self.shunt_ohms / self.shunt_lsb_v)
        clipped = max(-limit - 1, min(limit, raw))
        return clipped, clipped != raw

    def _current_raw(self) -> tuple[int, bool]:
        if self._current is None:
            self._current = self._convert_current()
        return self._current

    def _convert_current(self) -> tuple[int, bool]:
        shunt, clipped = self._shunt_raw()
        lsb = self.current_lsb_a
        if lsb == 0:
            return 0, clipped
        value = round(shunt * self.shunt_lsb_v / self.shunt_ohms / lsb)
        limit = (1 << 19) - 1
        bounded = max(-limit - 1, min(limit, value))
        return bounded, clipped or bounded != value

    def _value(self, register: int) -> int:
        if register == VSHUNT:
            return (self._shunt_raw()[0] << 4) & 0xFFFFFF
        if register == VBUS:
            volts = max(0.0, self.bus_voltage_v)
            raw = min((1 << 19) - 1, round(volts / BUS_LSB_V))
            return raw << 4
        if register == CURRENT:
            return (self._current_raw()[0] << 4) & 0xFFFFFF
        if register == POWER:
            current, _ = self._current_raw()
            lsb = self.current_lsb_a
            if lsb == 0:
                return 0
            watts = abs(current * lsb) * max(0.0, self.bus_voltage_v)
            return min(0xFFFFFF, math.trunc(watts / (3.2 * lsb)))
        if register == DIETEMP:
            return round(self.die_temperature_c / 7.8125e-3) & 0xFFFF
        if register == DIAG_ALRT:
            _, overflow = self._current_raw()
            flags = self.regs[DIAG_ALRT] & ~(MATHOF | SHNTOL) | CNVRF
            return flags | (MATHOF | SHNTOL if overflow else 0)
        if register == MANUFACTURER_ID:
            return TI_ID
        if register == DEVICE_ID:
            return INA228_ID
        return self.regs.get(register, 0)

    def read_register(self, register: int, length: int) -> bytes:
        data = self._answers.get(register)
        if data is None:
            data = self._value(register).to_bytes(_WIDTH.get(register, 2), "big")
            self._answers[register] = data
        if len(data) == length:
            return data
        return data[:length].ljust(length, b"\0")

    def write_register(self, register: int, data: bytes) -> None:
        self._changed()  # a write is rare: the driver sets the part up once
        value = int.from_bytes(data[:2].ljust(2, b"\0"), "big")
        if register == CONFIG and value & 0x8000:
            self.reset()
            return
        if (
            register in (CONFIG, ADC_CONFIG, SHUNT_CAL, SHUNT_TEMPCO, DIAG_ALRT)
            or 0x0C <= register <= 0x11
        ):
            self.regs[register] = value & (0xBFFF if register == CONFIG else 0xFFFF)
