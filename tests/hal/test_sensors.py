"""The real adafruit drivers read the simulated INA219 and INA228 at register level."""

from __future__ import annotations

import adafruit_ina219
import adafruit_ina228
import pytest

from hal.clock import SimClock
from hal.errors import ImplausibleReading, SensorError
from hal.monitors import Ina219Monitor, Ina228Monitor, ina219_calibration
from hal.sim.i2c import SimI2C
from hal.sim.ina219 import Ina219Model
from hal.sim.ina228 import Ina228Model


def ina219(shunt_ohms: float = 0.1) -> tuple[SimI2C, Ina219Model]:
    bus, model = SimI2C(), Ina219Model(shunt_ohms)
    bus.add_device(0x40, model)
    return bus, model


def ina228(shunt_ohms: float = 0.015) -> tuple[SimI2C, Ina228Model]:
    bus, model = SimI2C(), Ina228Model(shunt_ohms)
    bus.add_device(0x41, model)
    return bus, model


def test_adafruit_ina219_driver_reads_what_the_model_carries() -> None:
    bus, model = ina219()
    driver = adafruit_ina219.INA219(bus, 0x40)  # its own 32 V / 2 A calibration
    model.bus_voltage_v, model.current_a = 12.34, 1.5
    assert driver.bus_voltage == pytest.approx(12.34, abs=0.004)
    assert driver.shunt_voltage == pytest.approx(0.15, abs=1e-5)
    assert driver.current == pytest.approx(1500.0, abs=0.2)  # milliamps
    assert driver.power == pytest.approx(18.5, rel=0.01)
    assert driver.conversion_ready
    assert not driver.overflow


def test_ina219_negative_current() -> None:
    bus, model = ina219()
    driver = adafruit_ina219.INA219(bus, 0x40)
    model.bus_voltage_v, model.current_a = 5.0, -0.75
    assert driver.current == pytest.approx(-750.0, abs=0.2)
    assert driver.shunt_voltage == pytest.approx(-0.075, abs=1e-5)


def test_ina219_overflow_flag_when_the_shunt_range_is_exceeded() -> None:
    bus, model = ina219()
    driver = adafruit_ina219.INA219(bus, 0x40)
    model.bus_voltage_v, model.current_a = 12.0, 4.0  # 400 mV across 0.1 Ω > 320 mV
    assert driver.overflow
    assert driver.shunt_voltage == pytest.approx(0.32, abs=1e-5)


def test_ina219_range_change_clips_at_the_new_full_scale() -> None:
    bus, model = ina219()
    driver = adafruit_ina219.INA219(bus, 0x40)
    model.bus_voltage_v, model.current_a = 20.0, 0.1
    assert driver.bus_voltage == pytest.approx(20.0, abs=0.004)
    driver.bus_voltage_range = adafruit_ina219.BusVoltageRange.RANGE_16V
    assert driver.bus_voltage == pytest.approx(16.0, abs=0.004)
    driver.gain = adafruit_ina219.Gain.DIV_1_40MV
    model.current_a = 0.5  # 50 mV > 40 mV
    assert driver.overflow


def test_ina219_calibration_is_rewritten_before_each_read_after_a_brownout() -> None:
    bus, model = ina219()
    driver = adafruit_ina219.INA219(bus, 0x40)
    model.bus_voltage_v, model.current_a = 10.0, 1.0
    model.brownout()
    assert model.calibration == 0
    assert driver.current == pytest.approx(1000.0, abs=0.2)  # the driver restores it first


async def test_ina219_monitor_with_our_calibration() -> None:
    bus, model = ina219(shunt_ohms=0.05)
    monitor = Ina219Monitor(
        bus, SimClock(), address=0x40, shunt_ohms=0.05, max_current_a=5.0, inline=True
    )
    model.bus_voltage_v, model.current_a = 18.5, 3.3
    reading = await monitor.read()
    assert reading.bus_voltage_v == pytest.approx(18.5, abs=0.004)
    assert reading.current_a == pytest.approx(3.3, abs=0.01)
    assert reading.power_w == pytest.approx(61.05, rel=0.01)
    cal, lsb = ina219_calibration(0.05, 5.0)
    assert model.calibration == cal and lsb == pytest.approx(5.0 / 32768)


async def test_a_48v_pack_on_an_ina219_is_flagged_never_silently_wrong() -> None:
    bus, model = ina219(shunt_ohms=0.05)
    monitor = Ina219Monitor(
        bus, SimClock(), address=0x40, shunt_ohms=0.05, max_current_a=5.0, inline=True
    )
    model.bus_voltage_v, model.current_a = 52.0, 2.0
    with pytest.raises(ImplausibleReading, match="26 V input limit"):
        await monitor.read()


async def test_ina219_monitor_reports_overflow_as_an_error() -> None:
    bus, model = ina219(shunt_ohms=0.05)
    monitor = Ina219Monitor(
        bus, SimClock(), address=0x40, shunt_ohms=0.05, max_current_a=5.0, inline=True
    )
    model.bus_voltage_v, model.current_a = 12.0, 8.0  # 400 mV across 0.05 Ω
    with pytest.raises(ImplausibleReading, match="overflow"):
        await monitor.read()


def test_adafruit_ina228_driver_reads_the_model() -> None:
    bus, model = ina228()
    driver = adafruit_ina228.INA228(bus, 0x41)
    driver.set_calibration(0.015, 10.0)
    model.bus_voltage_v, model.current_a = 54.6, 3.25
    assert driver.device_id == 0x228
    assert driver.bus_voltage == pytest.approx(54.6, abs=0.001)
    assert driver.current == pytest.approx(3.25, abs=0.001)
    assert driver.power == pytest.approx(54.6 * 3.25, rel=0.002)
    assert driver.shunt_voltage == pytest.approx(3.25 * 0.015, abs=1e-6)
    model.current_a = -2.0
    assert driver.current == pytest.approx(-2.0, abs=0.001)
    assert not driver.alert_flags["MATHOF"]


def test_ina228_overflow_and_range_change() -> None:
    bus, model = ina228()
    driver = adafruit_ina228.INA228(bus, 0x41)
    driver.set_calibration(0.015, 10.0)
    model.bus_voltage_v, model.current_a = 40.0, 12.0  # 180 mV > 163.84 mV
    assert driver.alert_flags["MATHOF"]
    model.current_a = 2.0  # 30 mV: fits ±163.84 mV but not ±40.96 mV? it does (30 < 40.96)
    assert not driver.alert_flags["MATHOF"]
    driver.adc_range = 1
    model.current_a = 3.0  # 45 mV > 40.96 mV in the fine range
    assert driver.alert_flags["MATHOF"]


async def test_ina228_monitor_reads_an_84v_pack_and_flags_above_85v() -> None:
    bus, model = ina228()
    monitor = Ina228Monitor(
        bus, SimClock(), address=0x41, shunt_ohms=0.015, max_current_a=5.0, inline=True
    )
    model.bus_voltage_v, model.current_a = 84.0, 2.5
    reading = await monitor.read()
    assert reading.bus_voltage_v == pytest.approx(84.0, abs=0.001)
    assert reading.current_a == pytest.approx(2.5, abs=0.001)
    model.bus_voltage_v = 126.0
    with pytest.raises(ImplausibleReading, match="85 V input limit"):
        await monitor.read()


async def test_a_sensor_that_stops_answering_is_a_sensor_error() -> None:
    bus, model = ina228()
    monitor = Ina228Monitor(bus, SimClock(), address=0x41, inline=True)
    bus.fail_next[0x41] = 1
    with pytest.raises(SensorError, match="I2C read failed"):
        await monitor.read()
    model.bus_voltage_v = 40.0
    assert (await monitor.read()).bus_voltage_v == pytest.approx(40.0, abs=0.001)


def test_an_absent_address_fails_like_linux_and_the_monitor_says_so() -> None:
    bus = SimI2C()
    with pytest.raises(OSError) as info:
        bus.writeto(0x45, b"\x00")
    assert info.value.errno == 121  # EREMOTEIO: no ACK
    with pytest.raises(SensorError, match="0x45 does not answer"):
        Ina219Monitor(bus, SimClock(), address=0x45, inline=True)


@pytest.mark.parametrize("port_id", [1, 3])  # an INA228 port and the INA219 port of the bench
async def test_a_port_at_its_full_current_reads_a_value_and_above_its_hard_limit_overflows(
    port_id: int,
) -> None:
    from hal.config import bench_config
    from hal.errors import SensorOverflow
    from hal.factory import build_hardware

    config = bench_config(4)
    hardware = build_hardware(config, SimClock())
    try:
        port = next(p for p in config.ports if p.id == port_id)
        sensor = hardware.world.ports[port_id].sensor  # type: ignore[union-attr]
        sensor.bus_voltage_v = 20.0
        sensor.current_a = port.max_current_a
        reading = await hardware.ports[port_id].monitor.read()
        assert reading.current_a == pytest.approx(port.max_current_a, abs=0.01)
        sensor.current_a = port.sensor_range_a * 1.1
        with pytest.raises(SensorOverflow):
            await hardware.ports[port_id].monitor.read()
    finally:
        await hardware.aclose()
