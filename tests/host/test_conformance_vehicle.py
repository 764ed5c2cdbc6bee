"""The kit in ``--role vehicle`` against the reference vehicle over a real pty cable."""

from __future__ import annotations

from hal.clock import SimClock
from hal.sim.serial_pty import PtyCable, open_peer
from host.conformance.report import Results, Verdict, text_report
from host.conformance.vehicle_kit import VehicleKit
from host.conformance.wire import Wire
from host.vehicle.agent import VehicleAgent
from host.vehicle.catalog import find
from host.vehicle.model import SimVehicle
from tests.host.conformance_support import drive


async def kit_against(make_agent: type[VehicleAgent] = VehicleAgent) -> Results:
    clock = SimClock()
    cable = PtyCable("kit")
    station_end = open_peer(cable.station_path)
    vehicle_end = open_peer(cable.peer_path)
    try:
        wire = Wire(station_end, clock)
        vehicle = SimVehicle(find("ebike-36v-500wh"), soc_pct=40.0)
        agent = make_agent(vehicle, vehicle_end, clock, own_physics=True)
        kit = VehicleKit(wire, plug_wait_s=5.0)

        async def run() -> Results:
            async with wire.running():
                import asyncio

                task = asyncio.create_task(agent.run())
                try:
                    return await kit.run()
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

        return await drive(clock, run())
    finally:
        await station_end.close()
        await vehicle_end.close()
        cable.close()


async def test_the_reference_vehicle_passes_the_kit() -> None:
    results = await kit_against()
    report = text_report(results)
    print(report)
    assert results.failed_ids() == [], report
    untested = {o.requirement.id for o in results.outcomes() if o.verdict is Verdict.UNTESTABLE}
    assert untested == {r.id for r in results.requirements if not r.kit}, report
