"""The high-voltage port's sensing: the adafruit ADS1x15 driver against the register-level ADS1115
on the simulated bus, through the divider, with the INA228 on the low side for the current."""

from __future__ import annotations

import adafruit_ads1x15.ads1115 as ads1115
import pytest
from adafruit_ads1x15.analog_in import AnalogIn

from hal.clock import SimClock
from hal.errors import ImplausibleReading, SensorError
from hal.hv_monitor import HighVoltageMonitor
from hal.monitors import Ina228Monitor
from hal.sim.ads1115 import CONFIG, MODE_SINGLE, Ads1115Model
from hal.sim.i2c import SimI2C
from hal.sim.ina228 import Ina228Model

RATIO = (1_000_000 + 22_000) / 22_000


def rig() -> tuple[SimI2C, Ads1115Model, Ina228Model, HighVoltageMonitor]:
    bus, adc, ina = SimI2C(), Ads1115Model(), Ina228Model(0.015)
    bus.add_device(0x48, adc)
    bus.add_device(0x40, ina)
    clock = SimClock()
    current = Ina228Monitor(bus, clock, address=0x40, shunt_ohms=0.015, inline=True)
    monitor = HighVoltageMonitor(bus, clock, current, inline=True)
    return bus, adc, ina, monitor


def test_the_adafruit_driver_reads_the_model_in_each_range() -> None:
    bus, adc = SimI2C(), Ads1115Model()
    bus.add_device(0x48, adc)
    adc.inputs_v[1] = 1.5
    for gain, volts in ((2 / 3, 1.5), (1, 1.5), (2, 1.5), (4, 1.024)):  # ±1.024 V clips
        driver = ads1115.ADS1115(bus, gain=gain)
        assert AnalogIn(driver, 1).voltage == pytest.approx(volts, abs=0.001)
    assert adc.conversions >= 4
    assert not adc.overdriven


async def test_a_126_v_pack_reads_through_the_divider() -> None:
    _, adc, ina, monitor = rig()
    adc.inputs_v[0] = 126.0 / RATIO  # 2.71 V at AIN0
    ina.bus_voltage_v, ina.current_a = 0.02, 2.3  # low side: near ground
    reading = await monitor.read()
    assert reading.bus_voltage_v == pytest.approx(126.0, abs=0.02)
    assert reading.current_a == pytest.approx(2.3, abs=0.01)
    assert reading.power_w == pytest.approx(126.0 * 2.3, rel=0.01)


async def test_a_voltage_beyond_the_ports_rating_is_refused() -> None:
    _, adc, _, monitor = rig()
    adc.inputs_v[0] = 150.0 / RATIO  # 3.23 V: inside the ADC, beyond the port's 140 V
    with pytest.raises(ImplausibleReading, match="above the port's 140 V rating"):
        await monitor.read()
    adc.inputs_v[0] = 5.0  # beyond VDD + 0.3 V: the input is clamped, the reading refused
    with pytest.raises(ImplausibleReading):
        await monitor.read()
    assert adc.overdriven


async def test_a_silent_adc_is_a_sensor_error() -> None:
    bus, _, _, monitor = rig()
    bus.fail_next[0x48] = 1
    with pytest.raises(SensorError, match="I2C read failed"):
        await monitor.read()


async def test_the_adc_converts_continuously_so_a_read_is_one_transfer() -> None:
    bus, adc, _, monitor = rig()
    config = adc.regs[CONFIG]
    assert not config & MODE_SINGLE  # continuous
    assert (config >> 5) & 0x7 == 0b100  # 128 samples a second
    adc.inputs_v[0] = 100.8 / RATIO
    before = bus.transfers
    await monitor.current.read()
    ina_transfers = bus.transfers - before
    before = bus.transfers
    reading = await monitor.read()
    assert bus.transfers - before == ina_transfers + 1  # the conversion register, nothing else
    assert reading.bus_voltage_v == pytest.approx(100.8, abs=0.02)
