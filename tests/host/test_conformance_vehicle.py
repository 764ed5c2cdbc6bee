"""The kit in ``--role vehicle`` against the reference vehicle over a real pty cable."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from firmware.pevlink.link import ByteTransport
from hal.clock import SimClock
from hal.sim.serial_pty import PtyCable, open_peer
from host.conformance.report import Results, Verdict, text_report
from host.conformance.vehicle_kit import VehicleKit
from host.conformance.wire import Wire
from host.vehicle.agent import VehicleAgent
from host.vehicle.catalog import find
from host.vehicle.model import SimVehicle
from tests.host.broken_peers import (
    NoEchoTransport,
    NoTelemetryVehicle,
    StubbornVehicle,
    WrongCrcTransport,
)
from tests.host.conformance_support import SLACK_S, drive


async def kit_against(
    make_agent: type[VehicleAgent] = VehicleAgent,
    wrap: Callable[[ByteTransport], ByteTransport] | None = None,
) -> Results:
    clock = SimClock()
    cable = PtyCable("kit")
    station_end = open_peer(cable.station_path)
    vehicle_end = open_peer(cable.peer_path)
    try:
        wire = Wire(station_end, clock)
        vehicle = SimVehicle(find("ebike-36v-500wh"), soc_pct=40.0)
        agent = make_agent(
            vehicle, wrap(vehicle_end) if wrap else vehicle_end, clock, own_physics=True
        )
        kit = VehicleKit(wire, plug_wait_s=5.0, slack_s=SLACK_S)

        async def run() -> Results:
            async with wire.running():
                import asyncio

                task = asyncio.create_task(agent.run())
                try:
                    return await kit.run()
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

        return await drive(clock, run(), [cable])
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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("agent", "wrap", "broken"),
    [
        (NoTelemetryVehicle, None, ["VH-APP-03"]),
        (StubbornVehicle, None, ["VH-APP-09"]),
        (VehicleAgent, WrongCrcTransport, ["VH-LINK-01"]),
        (VehicleAgent, NoEchoTransport, ["VH-LINK-04", "VH-LINK-16"]),
    ],
    ids=["never-sends-tel", "ignores-a-lowered-grant", "wrong-crc-polynomial", "no-echo"],
)
async def test_a_broken_vehicle_fails_exactly_the_requirements_it_breaks(
    agent: type[VehicleAgent],
    wrap: Callable[[ByteTransport], ByteTransport] | None,
    broken: list[str],
) -> None:
    results = await kit_against(agent, wrap)
    report = text_report(results)
    assert results.failed_ids() == broken, report
    for outcome in results.outcomes():
        if outcome.verdict is Verdict.FAIL:
            assert outcome.detail and outcome.lines, report  # says why, with the lines exchanged
