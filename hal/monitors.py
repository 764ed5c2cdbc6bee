"""Power monitors built on the adafruit drivers, for any busio-style bus.

The same classes run on a Raspberry Pi (over its I2C bus) and on the bench (over
:class:`hal.sim.i2c.SimI2C`), so the driver code the station depends on is the code the tests run.
On real hardware the blocking I2C transfers go to a worker thread; on the bench they run inline.
"""

from __future__ import annotations

import asyncio
import importlib
import math
from typing import Any

from hal.clock import Clock
from hal.config import PortConfig
from hal.errors import BackendUnavailable, ImplausibleReading, SensorError, SensorOverflow
from hal.interfaces import PowerMonitor, PowerReading

INA219_GAIN_RANGE_V = {1: 0.04, 2: 0.08, 4: 0.16, 8: 0.32}
INA219_BUS_REGISTER = 0x02
"""Bus voltage in bits 15-3 (4 mV), the conversion-ready flag in bit 1, overflow in bit 0."""
INA228_MATHOF = 1 << 9
"""DIAG_ALRT's math overflow flag (the current or power beyond the register's range)."""


def ina219_calibration(shunt_ohms: float, max_current_a: float) -> tuple[int, float]:
    """(calibration register, current LSB in A) per the datasheet's equations 1 and 2."""
    current_lsb = max_current_a / 32768
    cal = math.trunc(0.04096 / (current_lsb * shunt_ohms))
    if cal > 0xFFFE:
        cal = 0xFFFE
        current_lsb = 0.04096 / (cal * shunt_ohms)
    cal &= 0xFFFE
    return cal, current_lsb


def _import_driver(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(
            f"{module} is not installed: pip install 'pev-charger[pi]'"
        ) from exc


class _DriverMonitor(PowerMonitor):
    def __init__(self, clock: Clock, *, address: int, inline: bool) -> None:
        self._clock = clock
        self.address = address
        self._inline = inline
        self._driver: Any = None

    async def read(self) -> PowerReading:
        try:
            if self._inline:
                volts, amps, watts, overflow = self._read_blocking()
            else:
                volts, amps, watts, overflow = await asyncio.to_thread(self._read_blocking)
        except OSError as exc:
            raise SensorError(
                f"{self.part} at 0x{self.address:02X}: I2C read failed: {exc}"
            ) from exc
        except (ValueError, RuntimeError) as exc:
            raise SensorError(f"{self.part} at 0x{self.address:02X}: {exc}") from exc
        for name, value in (("voltage", volts), ("current", amps), ("power", watts)):
            if not math.isfinite(value):
                raise ImplausibleReading(f"{self.part} at 0x{self.address:02X}: {name} is {value}")
        if overflow:
            raise SensorOverflow(
                f"{self.part} at 0x{self.address:02X}: overflow flag set "
                f"(current beyond the shunt range, {amps:.2f} A read)"
            )
        if volts > self.max_bus_voltage_v:
            raise ImplausibleReading(
                f"{self.part} at 0x{self.address:02X}: {volts:.2f} V is above the part's "
                f"{self.max_bus_voltage_v:g} V input limit; the reading cannot be trusted"
            )
        return PowerReading(volts, amps, watts, overflow, self._clock.monotonic())

    def _read_blocking(self) -> tuple[float, float, float, bool]:
        raise NotImplementedError


class Ina219Monitor(_DriverMonitor):
    """INA219: bus input to 26 V (the "32 V range" is only a register setting)."""

    part = "INA219"
    max_bus_voltage_v = 26.0

    def __init__(
        self,
        i2c: Any,
        clock: Clock,
        *,
        address: int = 0x40,
        shunt_ohms: float = 0.1,
        max_current_a: float = 3.2,
        bus_range_v: int = 32,
        gain: int = 8,
        inline: bool = False,
    ) -> None:
        super().__init__(clock, address=address, inline=inline)
        driver_module = _import_driver("adafruit_ina219")
        self.shunt_ohms = shunt_ohms
        self.max_current_a = max_current_a
        self.bus_range_v = bus_range_v
        self.gain = gain
        # The driver with one more accessor: its bus voltage register read whole, so the voltage
        # and the overflow flag come from one read (the driver reads the register once for each).
        struct = _import_driver("adafruit_register.i2c_struct")
        ina219 = type(
            "INA219",
            (driver_module.INA219,),
            {"bus_register": struct.ROUnaryStruct(INA219_BUS_REGISTER, ">H")},
        )
        try:
            driver = ina219(i2c, address)
            driver.bus_voltage_range = 1 if bus_range_v == 32 else 0
            driver.gain = {1: 0, 2: 1, 4: 2, 8: 3}[gain]
            driver.bus_adc_resolution = driver_module.ADCResolution.ADCRES_12BIT_1S
            driver.shunt_adc_resolution = driver_module.ADCResolution.ADCRES_12BIT_1S
            cal, current_lsb = ina219_calibration(shunt_ohms, max_current_a)
            driver._current_lsb = current_lsb * 1000.0  # the driver reports milliamps
            driver._power_lsb = current_lsb * 20.0
            driver.calibration = cal
        except (OSError, ValueError) as exc:
            raise SensorError(f"INA219 at 0x{address:02X} does not answer: {exc}") from exc
        self._driver = driver
        self.calibration = cal

    def _read_blocking(self) -> tuple[float, float, float, bool]:
        """Two register reads and a write, five bus transfers (the driver's own properties for
        voltage, overflow, current and power take ten): the bus register once, then the current,
        which the driver reads after writing the calibration again (a part reset by a sharp load
        forgets it and would read 0 A). The power is the product, as the part computes it (signed
        like the current, where its register holds the magnitude); no rule reads it."""
        d = self._driver
        bus = int(d.bus_register)
        volts = (bus >> 3) * 0.004
        amps = float(d.current) / 1000.0
        return volts, amps, volts * amps, bool(bus & 1)

    def describe(self) -> dict[str, object]:
        return {
            "part": self.part,
            "address": f"0x{self.address:02X}",
            "bus_range_v": self.bus_range_v,
            "input_limit_v": self.max_bus_voltage_v,
            "gain": f"/{self.gain} (±{INA219_GAIN_RANGE_V[self.gain] * 1000:g} mV)",
            "conversion": "12-bit, 532 µs",
            "shunt_ohms": self.shunt_ohms,
            "max_current_a": self.max_current_a,
            "calibration": self.calibration,
        }


class Ina228Monitor(_DriverMonitor):
    """INA228: 20-bit, bus input to 85 V, for the packs most light vehicles carry."""

    part = "INA228"
    max_bus_voltage_v = 85.0

    def __init__(
        self,
        i2c: Any,
        clock: Clock,
        *,
        address: int = 0x40,
        shunt_ohms: float = 0.015,
        max_current_a: float = 10.0,
        inline: bool = False,
    ) -> None:
        super().__init__(clock, address=address, inline=inline)
        driver_module = _import_driver("adafruit_ina228")
        self.shunt_ohms = shunt_ohms
        self.max_current_a = max_current_a
        try:
            driver = driver_module.INA228(i2c, address)
            driver.set_calibration(shunt_ohms, max_current_a)
        except (OSError, ValueError, RuntimeError) as exc:
            raise SensorError(f"INA228 at 0x{address:02X} does not answer: {exc}") from exc
        self._driver = driver

    def _read_blocking(self) -> tuple[float, float, float, bool]:
        """Three register reads, six bus transfers (eight with the power register): the power is
        the product of what was read, and the overflow is one bit of the flags register, read
        through the driver's accessor rather than its dictionary of all eleven flags."""
        d = self._driver
        volts = float(d.bus_voltage)
        amps = float(d.current)
        overflow = bool(int(d._alert_flags) & INA228_MATHOF)
        return volts, amps, volts * amps, overflow

    def describe(self) -> dict[str, object]:
        return {
            "part": self.part,
            "address": f"0x{self.address:02X}",
            "input_limit_v": self.max_bus_voltage_v,
            "adc_range": "±163.84 mV",
            "conversion": "20-bit, bus 150 µs, shunt 280 µs, 16 samples averaged",
            "shunt_ohms": self.shunt_ohms,
            "max_current_a": self.max_current_a,
        }


def monitor_for(
    port: PortConfig, bus: Any, clock: Clock, *, inline: bool = False, range_factor: float = 1.0
) -> PowerMonitor:
    """The driver for a port's configured sensor, calibrated for its measuring range; on a
    high-voltage port the INA (low side) gives the current and the ADS1115 the voltage."""
    current = _ina_for(port, bus, clock, inline=inline, range_factor=range_factor)
    if not port.voltage_sensor:
        return current
    from hal.hv_config import adc_reach_v
    from hal.hv_monitor import HighVoltageMonitor

    return HighVoltageMonitor(
        bus,
        clock,
        current,
        adc_address=port.adc_address,
        channel=port.adc_channel,
        gain=port.adc_gain,
        r_top_ohms=port.divider_top_ohms,
        r_bottom_ohms=port.divider_bottom_ohms,
        max_bus_voltage_v=adc_reach_v(port),
        inline=inline,
    )


def _ina_for(
    port: PortConfig, bus: Any, clock: Clock, *, inline: bool, range_factor: float
) -> PowerMonitor:
    if port.sensor == "INA219":
        return Ina219Monitor(
            bus,
            clock,
            address=port.i2c_address,
            shunt_ohms=port.shunt_ohms,
            max_current_a=port.sensor_range_a * range_factor,
            bus_range_v=port.bus_range_v,
            gain=port.gain,
            inline=inline,
        )
    return Ina228Monitor(
        bus,
        clock,
        address=port.i2c_address,
        shunt_ohms=port.shunt_ohms,
        max_current_a=port.sensor_range_a * range_factor,
        inline=inline,
    )
