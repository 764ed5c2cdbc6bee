"""A monitor's read takes as few bus transfers as it can and reads what the driver's own
properties read: on a Pi each transfer is a real I2C transaction, 37 passes a second per sensor."""

from __future__ import annotations

import adafruit_ina219
import adafruit_ina228
import pytest

from hal.clock import SimClock
from hal.errors import SensorOverflow
from hal.monitors import Ina219Monitor, Ina228Monitor
from hal.sim.i2c import SimI2C
from hal.sim.ina219 import Ina219Model
from hal.sim.ina228 import Ina228Model


def by_properties(driver: adafruit_ina219.INA219) -> tuple[float, float, float, bool]:
    """What the driver's own properties give, each its own register read (ten transfers)."""
    return driver.bus_voltage, driver.current / 1000.0, driver.power, driver.overflow


@pytest.mark.parametrize(("volts", "amps"), [(18.5, 3.3), (12.0, 0.0), (25.0, -1.2), (7.0, 4.9)])
async def test_ina219_read_in_five_transfers_agrees_with_the_driver(
    volts: float, amps: float
) -> None:
    bus, model = SimI2C(), Ina219Model(0.05)
    bus.add_device(0x40, model)
    monitor = Ina219Monitor(
        bus, SimClock(), address=0x40, shunt_ohms=0.05, max_current_a=5.0, inline=True
    )
    model.bus_voltage_v, model.current_a = volts, amps
    before = bus.transfers
    reading = await monitor.read()
    assert bus.transfers - before == 5  # bus register, calibration, current register
    v, i, w, overflow = by_properties(monitor._driver)
    assert reading.bus_voltage_v == v and reading.current_a == pytest.approx(i, abs=1e-9)
    # the part's power register holds the magnitude; the product is signed like the current
    assert abs(reading.power_w) == pytest.approx(w, abs=0.05 + 0.01 * w)
    assert reading.overflow is overflow is False


async def test_ina219_overflow_from_the_bus_register_and_calibration_after_a_brownout() -> None:
    bus, model = SimI2C(), Ina219Model(0.05)
    bus.add_device(0x40, model)
    monitor = Ina219Monitor(
        bus, SimClock(), address=0x40, shunt_ohms=0.05, max_current_a=5.0, inline=True
    )
    model.bus_voltage_v, model.current_a = 12.0, 1.0
    model.brownout()
    reading = await monitor.read()  # the calibration is written again before the current
    assert reading.current_a == pytest.approx(1.0, abs=0.01)
    model.current_a = 8.0  # 400 mV across 0.05 Ω: beyond the 320 mV range
    with pytest.raises(SensorOverflow):
        await monitor.read()


async def test_ina228_read_in_six_transfers_agrees_with_the_driver() -> None:
    bus, model = SimI2C(), Ina228Model(0.015)
    bus.add_device(0x41, model)
    monitor = Ina228Monitor(
        bus, SimClock(), address=0x41, shunt_ohms=0.015, max_current_a=10.0, inline=True
    )
    model.bus_voltage_v, model.current_a = 54.6, 3.25
    before = bus.transfers
    reading = await monitor.read()
    assert bus.transfers - before == 6  # bus voltage, current, flags
    d: adafruit_ina228.INA228 = monitor._driver
    assert reading.bus_voltage_v == d.bus_voltage and reading.current_a == d.current
    assert reading.power_w == pytest.approx(d.power, rel=0.002)
    assert reading.overflow is d.alert_flags["MATHOF"] is False
    model.current_a = 40.0  # far past the calibrated range: the math overflows
    with pytest.raises(SensorOverflow):
        await monitor.read()
