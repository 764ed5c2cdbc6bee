"""Where a steady port's lag could show (hal/sim/world.py ``sync_port``): a watchdog that lapses
without a switch, and a pack reaching its constant-voltage setpoint within a long step."""

from __future__ import annotations

import asyncio

import pytest

from hal.config import bench_config
from hal.sim.backend import build_memory
from hal.sim.relay import SimWatchdog
from hal.sim.world import BenchWorld
from host.scenario.fast import STEADY_STEP_S
from host.vehicle.catalog import load_catalog
from host.vehicle.model import SimVehicle
from tests.hal.hand_clock import HandClock

PASS_S = 0.05
"""A supervisor pass: the watchdog kicked, then every port read."""


def charging(
    steady_step_s: float, model: str, soc_pct: float
) -> tuple[HandClock, BenchWorld, SimVehicle, SimWatchdog]:
    """A vehicle on port 1 at its full current, the switch hooked to the world as FastRig does."""
    clock = HandClock()
    hardware, _ = build_memory(bench_config(1), clock)
    world = hardware.world
    world.steady_step_s = steady_step_s
    relay = world.ports[1].relay
    relay.before_switch = lambda: world.sync_port(1, force=True)
    spec = next(s for s in load_catalog() if s.id == model)
    vehicle = SimVehicle(spec, soc_pct=soc_pct)
    vehicle.set_grant(spec.i_max)
    world.attach(1, vehicle)
    watchdog = hardware.watchdog
    assert isinstance(watchdog, SimWatchdog)
    watchdog.hold_time_s = 0.1
    watchdog.kick()
    asyncio.run(relay.close())
    return clock, world, vehicle, watchdog


def test_a_watchdog_that_lapses_keeps_the_charge_before_the_lapse() -> None:
    energy: dict[float, float] = {}
    for steady in (0.0, STEADY_STEP_S):
        clock, world, vehicle, watchdog = charging(steady, "ebike-48v-13s", 30.0)
        for i in range(int(20.0 / PASS_S)):
            clock.now = round((i + 1) * PASS_S, 6)
            if clock.now < 9.0:  # the station stops kicking at 9 s
                watchdog.kick()
            world.sync_port(1)
        world.sync_port(1, force=True)
        energy[steady] = vehicle.energy_in_wh
    assert energy[STEADY_STEP_S] == pytest.approx(energy[0.0], rel=0.01)


def test_constant_voltage_begins_within_one_steady_step_of_the_reference() -> None:
    began: dict[float, float] = {}
    for steady in (0.0, STEADY_STEP_S):
        clock, world, vehicle, watchdog = charging(steady, "scooter-ninebot-max", 90.0)
        i = 0
        while not vehicle._cv and i < int(120.0 / PASS_S):
            i += 1
            clock.now = round(i * PASS_S, 6)
            watchdog.kick()
            world.sync_port(1)
        began[steady] = clock.now
    assert began[STEADY_STEP_S] - began[0.0] <= STEADY_STEP_S


def test_the_taper_is_stepped_less_often_and_ends_full_within_a_taper_step() -> None:
    """In constant voltage the current falls slowly: steps of up to 1 s, and its end seen at most
    two such steps late (a step takes the current the cells allowed at its start)."""
    full_at: dict[float, float] = {}
    steps: dict[float, int] = {}
    for steady in (0.0, STEADY_STEP_S):
        clock, world, vehicle, watchdog = charging(steady, "scooter-ninebot-max", 97.0)
        taken = [0]
        advance = vehicle.advance

        def counted(
            dt_s: float, closed: bool, advance: object = advance, taken: list[int] = taken
        ) -> None:
            taken[0] += 1
            advance(dt_s, closed)  # type: ignore[operator]

        vehicle.advance = counted  # type: ignore[method-assign]
        i = 0
        while vehicle.state.name != "FULL" and i < int(3600.0 / PASS_S):
            i += 1
            clock.now = round(i * PASS_S, 6)
            watchdog.kick()
            world.sync_port(1)
        full_at[steady], steps[steady] = clock.now, taken[0]
    assert abs(full_at[STEADY_STEP_S] - full_at[0.0]) <= 2 * 1.0 + PASS_S
    assert steps[STEADY_STEP_S] < steps[0.0] / 4
