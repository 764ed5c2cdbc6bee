"""The bench world steps a steady port less often, and loses nothing by it."""

from __future__ import annotations

import asyncio

import pytest

from hal.config import bench_config
from hal.sim.backend import build_memory
from hal.sim.relay import SimRelay
from hal.sim.world import BenchWorld
from host.vehicle.catalog import load_catalog
from host.vehicle.model import SimVehicle
from tests.hal.hand_clock import HandClock


def charging_world(steady_step_s: float) -> tuple[HandClock, BenchWorld, SimVehicle, SimRelay]:
    clock = HandClock()
    hardware, _ = build_memory(bench_config(1), clock, physics_dt_s=0.25)
    world = hardware.world
    world.steady_step_s = steady_step_s
    spec = next(s for s in load_catalog() if s.id == "ebike-48v-13s")
    vehicle = SimVehicle(spec, soc_pct=30.0)
    vehicle.set_grant(2.0)
    world.attach(1, vehicle)
    relay = world.ports[1].relay
    asyncio.run(relay.close())
    hardware.watchdog.hold_time_s = 1e9
    hardware.watchdog.kick()
    return clock, world, vehicle, relay


def advances(vehicle: SimVehicle) -> list[float]:
    """Record the step lengths the world takes on this vehicle."""
    steps: list[float] = []
    advance = vehicle.advance

    def counted(dt_s: float, supply_closed: bool) -> None:
        steps.append(dt_s)
        advance(dt_s, supply_closed)

    vehicle.advance = counted  # type: ignore[method-assign]
    return steps


def read_every_quarter_second(clock: HandClock, world: BenchWorld, seconds: float) -> None:
    for _ in range(int(seconds / 0.25)):
        clock.advance(0.25)
        world.sync_port(1)


def test_a_steady_charge_is_stepped_once_a_second_and_gives_the_same_charge() -> None:
    clock, world, vehicle, _ = charging_world(steady_step_s=1.0)
    ref_clock, ref_world, reference, _ = charging_world(steady_step_s=0.0)
    read_every_quarter_second(clock, world, 2.0)  # the current's rise: every step taken
    read_every_quarter_second(ref_clock, ref_world, 2.0)
    assert vehicle.steady
    steps = advances(vehicle)
    read_every_quarter_second(clock, world, 600.0)
    read_every_quarter_second(ref_clock, ref_world, 600.0)
    world.sync_port(1, force=True)
    assert len(steps) <= 601  # against 2,400 quarter-second reads
    assert max(steps) == pytest.approx(1.0)
    assert vehicle.energy_in_wh == pytest.approx(reference.energy_in_wh, rel=1e-3)
    assert vehicle.soc_pct == pytest.approx(reference.soc_pct, rel=1e-4)


def test_a_new_grant_ends_the_steady_state() -> None:
    clock, world, vehicle, _ = charging_world(steady_step_s=1.0)
    read_every_quarter_second(clock, world, 2.0)
    assert vehicle.steady
    vehicle.set_grant(1.0)
    assert not vehicle.steady  # the next read steps it, and the current follows the grant
    clock.advance(0.25)
    world.sync_port(1)
    assert vehicle.current_a < 1.1


def test_a_switch_that_opened_is_seen_at_the_next_read() -> None:
    clock, world, vehicle, relay = charging_world(steady_step_s=1.0)
    read_every_quarter_second(clock, world, 2.0)
    clock.advance(0.25)
    world.sync_port(1)  # a step of a quarter second after the last read: nothing due yet
    relay.open_now()
    clock.advance(0.25)
    world.sync_port(1)  # its relay no longer conducts as it did: stepped now, not a second later
    assert vehicle.current_a == 0.0
    assert world.ports[1].sensor.current_a == 0.0


def test_a_switch_hooked_to_the_world_counts_the_charge_up_to_its_moment() -> None:
    clock, world, vehicle, relay = charging_world(steady_step_s=1.0)
    relay.before_switch = lambda: world.sync_port(1, force=True)
    ref_clock, ref_world, reference, ref_relay = charging_world(steady_step_s=0.0)
    for c, w in ((clock, world), (ref_clock, ref_world)):
        read_every_quarter_second(c, w, 2.0)
        c.advance(0.75)  # a steady port lags up to a second: the switch comes before its step
    relay.open_now()
    ref_world.sync_port(1)
    ref_relay.open_now()
    for c, w in ((clock, world), (ref_clock, ref_world)):
        read_every_quarter_second(c, w, 2.0)
    assert vehicle.energy_in_wh == pytest.approx(reference.energy_in_wh, rel=1e-3)
