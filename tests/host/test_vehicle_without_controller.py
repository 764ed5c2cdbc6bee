"""A pack without an on-board charge controller: it draws what the station's CC/CV stage allows.

First on its own, driven in explicit steps; then behind the simulated RD60xx (the real Modbus
driver over a pty) and the simulated TC/Elcon charger (the CAN driver on python-can's virtual bus),
in virtual time.
"""

from __future__ import annotations

import asyncio
import contextlib

import can
import pytest

from hal.clock import SimClock
from hal.elcon import ElconStage
from hal.interfaces import StageMode
from hal.riden import RD6006, RidenStage
from hal.sim.elcon import SimElconCharger
from hal.sim.riden import SimRiden
from hal.stages import apply_output, apply_setpoints
from host.vehicle.battery import CELL_LIMITS
from host.vehicle.catalog import find
from host.vehicle.model import BmsFlags, SimVehicle
from host.vehicle.spec import VehicleState

NMC_BIKE = "ebike-36v-500wh"  # 10S4P NMC, 42.0 V full, 4 A


def bare(soc: float = 20.0) -> SimVehicle:
    return SimVehicle(find(NMC_BIKE), soc_pct=soc, seed=1, on_board_controller=False)


def test_the_default_vehicle_still_has_its_controller() -> None:
    vehicle = SimVehicle(find(NMC_BIKE), soc_pct=20.0)
    assert vehicle.on_board_controller
    vehicle.set_grant(2.0)
    vehicle.supply(42.0, 4.0, 1.0)  # the stage's limits do not matter to a regulated vehicle
    assert vehicle.current_a == pytest.approx(2.0, abs=0.01)


def test_a_bare_pack_draws_the_stages_current_whatever_the_grant() -> None:
    vehicle = bare()
    vehicle.set_grant(0.0)  # the vehicle's own grant plays no part
    for limit in (3.0, 1.0, 2.5):
        vehicle.supply(42.0, limit, 0.1)
        assert vehicle.current_a == pytest.approx(limit)
        assert vehicle.state is VehicleState.CHARGING_CC
        assert vehicle.terminal_voltage_v < 42.0
    vehicle.supply(42.0, 0.0, 0.1)  # output off
    assert vehicle.current_a == 0.0


def test_near_full_the_stages_voltage_limit_holds_and_the_current_tapers() -> None:
    vehicle = bare(soc=88.0)
    vehicle.supply(42.0, 4.0, 1.0)
    assert vehicle.state is VehicleState.CHARGING_CV
    assert vehicle.current_a < 4.0
    assert vehicle.terminal_voltage_v == pytest.approx(42.0, abs=0.01)
    before = vehicle.current_a
    for _ in range(600):
        vehicle.supply(42.0, 4.0, 1.0)
    assert vehicle.current_a < before
    assert vehicle.terminal_voltage_v <= 42.0 + 0.005  # within half the RD6006's 10 mV step


def test_a_stage_whose_voltage_is_still_rising_does_not_make_a_half_empty_pack_full() -> None:
    """As the stage's output slews up from 0 V it passes just above the pack's open-circuit voltage:
    the pack then draws a trickle, limited by voltage, that is no end of charge."""
    vehicle = bare(soc=20.0)
    open_circuit = vehicle.terminal_voltage_v
    vehicle.supply(open_circuit + 0.01, 4.0, 0.01)
    assert 0 < vehicle.current_a <= vehicle.spec.cutoff_a
    assert vehicle.state is not VehicleState.FULL
    vehicle.supply(42.0, 4.0, 0.01)
    assert vehicle.state is VehicleState.CHARGING_CC


def test_a_bare_pack_is_full_when_its_current_tapers_at_its_charge_voltage() -> None:
    vehicle = bare(soc=99.0)
    for _ in range(20_000):
        vehicle.supply(42.0, 4.0, 1.0)
        if vehicle.state is VehicleState.FULL:
            break
    assert vehicle.state is VehicleState.FULL
    assert vehicle.terminal_voltage_v == pytest.approx(42.0, abs=0.05)


def test_a_stage_set_above_the_packs_limit_is_stopped_by_the_bms() -> None:
    vehicle = bare(soc=95.0)
    over = 10 * (CELL_LIMITS["NMC"][1] + 0.1)  # 43.5 V on a 42 V pack
    for _ in range(400):
        vehicle.supply(over, 4.0, 0.05)
        if vehicle.state is VehicleState.STOPPED_BY_BMS:
            break
    assert vehicle.state is VehicleState.STOPPED_BY_BMS
    assert BmsFlags.BMS_STOP in vehicle.bms_flags
    vehicle.supply(over, 4.0, 0.05)
    assert vehicle.current_a == 0.0


async def test_behind_the_simulated_rd6006_the_current_follows_each_set_point() -> None:
    clock = SimClock()
    vehicle = bare(soc=30.0)
    sim = SimRiden(clock, RD6006, load=vehicle)
    await sim.start()
    stage = RidenStage(sim.path, clock, voltage_cap_v=42.0)
    try:
        await stage.open()
        await apply_setpoints(stage, vehicle.spec.v_max, 1.0)
        await apply_output(stage, True)
        for grant in (1.0, 3.0, 0.5, 4.0, 2.0):
            await apply_setpoints(stage, current_a=grant)
            await clock.advance(1.0)
            status = await stage.read()
            assert status.mode is StageMode.CONSTANT_CURRENT
            assert status.output_current_a == pytest.approx(grant, abs=0.002)
            assert vehicle.current_a == pytest.approx(grant)
            assert status.output_voltage_v == pytest.approx(vehicle.terminal_voltage_v, abs=0.01)
        await apply_output(stage, False)
        await clock.advance(0.1)
        assert (await stage.read()).output_current_a == 0.0
        assert vehicle.current_a == 0.0
    finally:
        await stage.close()
        await sim.aclose()


async def test_a_126_v_unicycle_charges_behind_the_simulated_can_charger() -> None:
    clock = SimClock()
    vehicle = SimVehicle(find("eunicycle-126v"), soc_pct=40.0, seed=1, on_board_controller=False)
    station_bus = can.Bus(interface="virtual", channel="unicycle-126v")
    charger_bus = can.Bus(interface="virtual", channel="unicycle-126v")
    charger = SimElconCharger(clock, charger_bus, load=vehicle, max_voltage_v=130.0)
    task = asyncio.create_task(charger.run())
    stage = ElconStage(station_bus, clock, max_voltage_v=126.0, max_current_a=10.0)
    try:
        opening = asyncio.ensure_future(stage.open())
        while not opening.done():
            await clock.advance(0.05)
        await opening
        await apply_setpoints(stage, vehicle.spec.v_max, 1.0)
        await apply_output(stage, True)
        for grant in (1.0, 2.3, 0.5):
            await apply_setpoints(stage, current_a=grant)
            await clock.advance(4.0)  # the charger's soft start: 50 V/s up to the pack's 111 V
            assert vehicle.current_a == pytest.approx(grant)
            status = await stage.read()
            assert status.output_current_a == pytest.approx(grant, abs=0.1)
            assert 100.0 < status.output_voltage_v < 126.0
    finally:
        await stage.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        station_bus.shutdown()
        charger_bus.shutdown()
