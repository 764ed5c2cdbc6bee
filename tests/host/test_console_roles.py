"""``--as-station``: the console's minimal station takes a simulated vehicle through a charge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from hal.clock import SimClock
from hal.serial_link import open_serial
from hal.sim.serial_pty import PtyCable, open_peer
from host.console.roles import MiniStation, PortProfile, RoleError, make_vehicle
from host.console.session import Console
from host.vehicle.agent import VehicleAgent

STEP_S = 0.002
"""Simulated time per step: a reply is due within 0.5 s of it, at least 125 ms of real time for
the pty round trip even on a busy machine."""


@dataclass
class Rig:
    clock: SimClock
    station: MiniStation
    agent: VehicleAgent
    shown: list[str]

    async def run_until(self, condition: Callable[[], bool], limit_s: float = 60.0) -> None:
        """Advance simulated time until ``condition`` holds, letting pty traffic flow."""
        start = self.clock.monotonic()
        while not condition():
            if self.clock.monotonic() - start > limit_s:
                raise AssertionError(f"not reached within {limit_s} s of simulated time")
            await self.clock.advance(STEP_S)
            await asyncio.sleep(0.0005)


@contextlib.asynccontextmanager
async def rig(model: str, profile: PortProfile, soc_pct: float = 40.0) -> AsyncIterator[Rig]:
    """The console as a station on one end of a pty cable, a simulated vehicle on the other."""
    clock = SimClock()
    cable = PtyCable("roles")
    station_end = await open_serial(cable.station_path)
    vehicle_end = open_peer(cable.peer_path)
    shown: list[str] = []
    station = MiniStation(Console(station_end, clock, show=shown.append), profile)
    vehicle = make_vehicle(model, soc_pct=soc_pct)
    agent = VehicleAgent(vehicle, vehicle_end, clock, own_physics=True)
    tasks = [asyncio.create_task(station.run()), asyncio.create_task(agent.run())]
    try:
        yield Rig(clock, station, agent, shown)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await station_end.close()
        await vehicle_end.close()
        cable.close()


async def test_the_minimal_station_charges_a_vehicle_and_sends_the_summary() -> None:
    async with rig("ebike-36v-500wh", PortProfile(charge_s=2.0)) as r:
        await r.run_until(lambda: r.agent.power_on)
        assert r.agent.grant_a == pytest.approx(4.0)  # the vehicle's own limit, under the port's
        await r.run_until(lambda: r.agent.summary is not None)
    summary = r.agent.summary
    assert summary is not None and summary.reason == "user"
    assert 2 <= summary.duration_s <= 4  # two seconds, then the ramp-down before opening
    # about 4 A at about 38 V for 2 s, integrated from the vehicle's own telemetry
    assert 0.05 < summary.energy_wh < 0.13
    assert not r.agent.power_on
    assert any(" >> ok      " in line and " GRANT i=4A v=42V" in line for line in r.shown)
    assert any(" << ok      " in line and " POWER v=" in line for line in r.shown)


async def test_the_minimal_station_refuses_a_pack_above_its_port() -> None:
    async with rig("eunicycle-126v", PortProfile()) as r:
        await r.run_until(lambda: r.agent.refused is not None)
    assert r.agent.refused is not None and "E210" in r.agent.refused
    assert not r.agent.power_on
    assert any(" >> ok      " in line and "NAK code=E210 field=vmax" in line for line in r.shown)


async def test_a_vehicle_that_is_full_ends_the_charge_itself() -> None:
    async with rig("eskate-lfp-99wh", PortProfile(charge_s=600.0), soc_pct=99.0) as r:
        await r.run_until(lambda: r.agent.summary is not None, limit_s=300.0)
    assert r.agent.summary is not None and r.agent.summary.reason == "full"


def test_an_unknown_model_is_named_with_the_choices() -> None:
    with pytest.raises(RoleError, match=r"unknown vehicle model 'hoverboard'.*ebike-36v-500wh"):
        make_vehicle("hoverboard")
