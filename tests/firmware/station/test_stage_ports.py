"""A port with a programmable CC/CV stage: the station, not the vehicle, limits the current.

The bench's port 5 carries a simulated RD6006 (pymodbus's server over a pty) read and set by the
real Modbus driver; the vehicle on it is a bare pack that draws whatever the stage allows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware.pevlink.timers import I_BREAK_A
from firmware.station.allocator import account_voltage
from firmware.station.port import PortState
from firmware.station.views import port_view
from hal.config import HalConfig, bench_config
from hal.sim.riden import SimRiden
from tests.support import Bench, make_bench

STAGE_PORT = 5
BIKE = "ebike-36v-500wh"  # 10S NMC, 42 V full, 4 A


def stage_hal() -> HalConfig:
    """The bench's four ports and a fifth behind a simulated RD6006 (packs to 58.8 V), with a
    deadline that a loaded machine's pty round trips keep in simulated time."""
    config = bench_config(4, stage_ports=1)
    ports = [dataclasses.replace(p, stage_timeout_s=2.0) if p.stage else p for p in config.ports]
    assert [p.id for p in config.ports if p.stage == "sim"] == [STAGE_PORT]
    return dataclasses.replace(config, ports=tuple(ports))


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    async with make_bench(tmp_path, budget_w=600.0, hal=stage_hal()) as b:
        yield b


def sim_stage(bench: Bench) -> SimRiden:
    stage = bench.hardware.world.ports[STAGE_PORT].stage
    assert stage is not None
    return stage


async def settle_current(bench: Bench, amps: float) -> None:
    await bench.settle_current(STAGE_PORT, amps, within=0.02)


async def test_the_stage_not_the_vehicle_limits_the_current_and_follows_each_grant(
    bench: Bench,
) -> None:
    await bench.charging(STAGE_PORT, BIKE, soc=30.0)
    port = bench.port(STAGE_PORT)
    vehicle = bench.bay.bays[STAGE_PORT].vehicle
    model = sim_stage(bench).model
    assert not vehicle.on_board_controller
    assert port_view(port)["regulated"] == "station"
    assert port_view(bench.port(1))["regulated"] == "vehicle"
    assert model.voltage_set_v == pytest.approx(42.0)  # the vehicle's vmax
    await settle_current(bench, 4.0)
    assert model.current_set_a == pytest.approx(4.0)
    previous = port.grant_a
    for budget_w in (84.0, 126.0, 63.0):
        bench.station.set_budget(budget_w)
        await bench.run_until(lambda p=previous: abs(port.grant_a - p) > 0.1, timeout=10.0)
        await bench.run_for(3.0)  # a few rounds: the accounted voltage follows the pack
        previous = port.grant_a
        await settle_current(bench, port.grant_a)
        assert model.current_set_a == pytest.approx(port.grant_a, abs=0.001)
        assert port.state == PortState.CHARGING
        assert port.reading is not None
        volts = port.reading.bus_voltage_v
        assert port.reading.current_a == pytest.approx(port.grant_a, abs=0.05)
        # Counted at the measured voltage plus its margin, not at 42 V: more current, in budget.
        assert port.grant_a > budget_w / 42.0 + 0.1
        assert port.grant_a * account_voltage(42.0, volts) <= budget_w + 0.5
        assert volts * port.reading.current_a <= budget_w
        assert bench.station.station_summary()["allocated_w"] <= budget_w + 0.5
        assert port_view(port)["granted"]["volts"] < 42.0


async def test_a_normal_stop_brings_the_current_below_the_break_level_before_the_switch_opens(
    bench: Bench,
) -> None:
    at_open = bench.currents_at_open(STAGE_PORT)
    # Well inside constant current: the stop, not a full pack, ends each session.
    for soc in (20.0, 30.0, 40.0):
        await bench.charging(STAGE_PORT, BIKE, soc=soc)
        await settle_current(bench, 4.0)
        await bench.station.stop(STAGE_PORT, "user")
        await bench.run_until(lambda: bench.port(STAGE_PORT).state == PortState.DONE)
        assert not sim_stage(bench).model.output_on  # and the stage is off afterwards
        await bench.bay.detach(STAGE_PORT)
        await bench.run_until(lambda: bench.port(STAGE_PORT).state == PortState.EMPTY)
    assert len(at_open) == 3
    assert all(amps < I_BREAK_A for amps in at_open), at_open


async def test_a_stage_that_stops_answering_trips_the_port(bench: Bench) -> None:
    await bench.charging(STAGE_PORT, BIKE, soc=30.0)
    await settle_current(bench, 4.0)
    sim_stage(bench).stop_answering()
    port = bench.port(STAGE_PORT)
    took = await bench.run_until(lambda: port.state == PortState.FAULT, timeout=10.0)
    assert took < 3.0  # the watch period and the stage's 2 s deadline
    assert port.fault is not None and port.fault.code == "stage"
    assert "power stage" in port.fault.text
    assert not port.relay_closed
    assert bench.port(1).state != PortState.FAULT


async def test_a_stage_turned_by_hand_trips_the_port(bench: Bench) -> None:
    await bench.charging(STAGE_PORT, BIKE, soc=30.0)
    await settle_current(bench, 4.0)
    sim_stage(bench).model.panel_set(current_a=5.5)  # the front-panel knob, past the grant
    port = bench.port(STAGE_PORT)
    await bench.run_until(lambda: port.state == PortState.FAULT, timeout=3.0)
    assert port.fault is not None and port.fault.code == "stage"
    assert "current limit 5.5 A, set 4 A" in port.fault.text
    await bench.run_for(1.5)
    assert not sim_stage(bench).model.output_on  # switched off after the switch opened


async def test_a_stage_whose_own_protection_trips_faults_the_port(bench: Bench) -> None:
    await bench.charging(STAGE_PORT, BIKE, soc=30.0)
    await settle_current(bench, 4.0)
    model = sim_stage(bench).model
    model.ocp_raw = round(3.0 * model.model.current_scale)  # its OCP under what flows
    port = bench.port(STAGE_PORT)
    await bench.run_until(lambda: port.state == PortState.FAULT, timeout=3.0)
    assert port.fault is not None and port.fault.code == "stage"
    assert "protection" in port.fault.text
    assert not port.relay_closed


async def test_a_pack_above_the_stages_reach_is_refused_on_its_port_and_charges_on_another(
    bench: Bench,
) -> None:
    unicycle = "eunicycle-84v"  # 84 V: beyond the RD6006's 60 V and the port's 58.8 V
    await bench.bay.attach(STAGE_PORT, unicycle, 40.0)
    port = bench.port(STAGE_PORT)
    await bench.run_until(lambda: port.state == PortState.UNSUPPORTED)
    assert port.state_text == (
        "This port supplies and measures up to 58.8 V; the vehicle needs 84 V: use port 1, 2 or 4"
    )
    assert not port.relay_closed
    await bench.charging(2, unicycle, soc=40.0)  # an 84 V port, regulated by the vehicle
    assert port_view(bench.port(2))["regulated"] == "vehicle"
