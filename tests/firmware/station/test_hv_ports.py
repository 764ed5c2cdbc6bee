"""The high-voltage port: packs above the INA228's 85 V charge through a CAN (TC/Elcon) charger.

The bench's port 5 reads the pack's voltage through the divider into the register-level ADS1115
(the adafruit driver), its current from a low-side INA228, and charges through a simulated TC/Elcon
charger on python-can's virtual bus, set by the real CAN driver. The vehicles are bare packs: the
charger, not the vehicle, limits the current.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware.pevlink.timers import I_BREAK_A
from firmware.station.port import PortState
from firmware.station.views import port_view
from hal.config import bench_config
from hal.elcon import CHARGER_TIMEOUT_S
from hal.sim.elcon import SimElconCharger
from tests.support import Bench, make_bench

HV_PORT = 5
UNICYCLES = ("eunicycle-100v", "eunicycle-126v")


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    async with make_bench(tmp_path, budget_w=900.0, hal=bench_config(4, hv_ports=1)) as b:
        yield b


def charger(bench: Bench) -> SimElconCharger:
    sim = bench.hardware.world.ports[HV_PORT].charger
    assert sim is not None
    return sim


async def settle_current(bench: Bench, amps: float) -> None:
    await bench.settle_current(HV_PORT, amps, within=0.06)


@pytest.mark.parametrize("model", UNICYCLES)
async def test_a_unicycle_above_85_v_charges_on_the_hv_port_through_the_can_charger(
    bench: Bench, model: str
) -> None:
    relay = bench.hardware.ports[HV_PORT].relay
    world_port = bench.hardware.world.ports[HV_PORT]
    at_open = bench.currents_at_open(HV_PORT)
    sim = charger(bench)
    at_close: list[tuple[float, float, bool]] = []
    close = relay.close

    async def recording_close() -> None:
        sim.sync()  # what the charger has heard by now
        at_close.append((sim.voltage_set_v, sim.current_set_a, sim.charge_commanded))
        await close()

    relay.close = recording_close  # type: ignore[method-assign]
    await bench.charging(HV_PORT, model, soc=30.0)
    port = bench.port(HV_PORT)
    vehicle = bench.bay.bays[HV_PORT].vehicle
    # Both limits reached the charger before the switch closed, its output still off.
    assert len(at_close) == 1
    volts, amps, charging = at_close[0]
    assert volts == pytest.approx(vehicle.spec.v_max, abs=0.05) and amps > 0 and not charging
    assert not vehicle.on_board_controller
    assert port_view(port)["regulated"] == "station"
    assert sim.voltage_set_v == pytest.approx(vehicle.spec.v_max, abs=0.05)  # the declared vmax
    await settle_current(bench, vehicle.spec.i_max)
    assert port.grant_a - 0.1 < sim.current_set_a <= port.grant_a  # 0.1 A steps, never above
    # The voltage comes through the divider and the ADS1115, the current from the low side.
    assert world_port.adc is not None and world_port.adc.conversions > 0
    assert world_port.sensor.bus_voltage_v == 0.0
    assert port.reading is not None
    assert port.reading.bus_voltage_v == pytest.approx(vehicle.terminal_voltage_v, abs=0.2)
    assert port.reading.bus_voltage_v > 85.0 or model == "eunicycle-100v"
    for budget_w in (120.0, 200.0, 90.0):
        previous = port.grant_a
        bench.station.set_budget(budget_w)
        await bench.run_until(lambda p=previous: abs(port.grant_a - p) > 0.1, timeout=10.0)
        await bench.run_for(3.0)  # a few rounds: the accounted voltage follows the pack
        await settle_current(bench, charger(bench).current_set_a)
        assert port.grant_a - 0.1 < sim.current_set_a <= port.grant_a
        assert port.state == PortState.CHARGING
        assert port.reading is not None
        assert port.reading.bus_voltage_v * port.reading.current_a <= budget_w
    assert not sim.timed_out  # the command kept coming once a second all along
    await bench.station.stop(HV_PORT, "user")
    await bench.run_until(lambda: port.state == PortState.DONE)
    assert at_open and all(amps < I_BREAK_A for amps in at_open), at_open
    await bench.run_for(2.0)
    assert not sim.charge_commanded and not sim.output_enabled  # told to stop, not left to time out
    assert sim.output_current_a == 0.0


@pytest.mark.parametrize("model", UNICYCLES)
async def test_a_unicycle_above_85_v_is_refused_on_an_ordinary_port(
    bench: Bench, model: str
) -> None:
    await bench.bay.attach(2, model, 40.0)
    port = bench.port(2)
    await bench.run_until(lambda: port.state == PortState.UNSUPPORTED)
    vmax = bench.bay.bays[2].vehicle.spec.v_max
    assert port.state_text == (  # and where it can charge
        f"This port supplies and measures up to 84 V; the vehicle needs {vmax:g} V: use port 5"
    )
    assert port_view(port)["state_text"] == port.state_text
    assert not port.relay_closed


async def test_a_can_charger_that_stops_answering_faults_its_port_only(bench: Bench) -> None:
    await bench.charging(1, "ebike-36v-500wh", soc=30.0)
    await bench.charging(HV_PORT, "eunicycle-126v", soc=30.0)
    await settle_current(bench, 2.3)
    charger(bench).silent = True  # a dead unit or a broken CAN cable
    port = bench.port(HV_PORT)
    took = await bench.run_until(lambda: port.state == PortState.FAULT, timeout=10.0)
    assert took < CHARGER_TIMEOUT_S  # the station finds out before the charger would stop itself
    assert port.fault is not None and port.fault.code == "stage"
    assert "power stage" in port.fault.text
    assert not port.relay_closed
    assert bench.port(1).state == PortState.CHARGING
    assert bench.port(1).relay_closed


async def test_a_charger_whose_own_protection_trips_faults_the_port(bench: Bench) -> None:
    await bench.charging(HV_PORT, "eunicycle-100v", soc=30.0)
    await settle_current(bench, 2.5)
    charger(bench).over_temperature = True
    port = bench.port(HV_PORT)
    await bench.run_until(lambda: port.state == PortState.FAULT, timeout=5.0)
    assert port.fault is not None and port.fault.code == "stage"
    assert "protection" in port.fault.text
    assert not port.relay_closed
    await bench.run_for(1.5)
    assert not charger(bench).charge_commanded  # the fault disabled the charger, too
