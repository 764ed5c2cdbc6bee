"""The kit in ``--role station`` against the reference station over the port's real pty."""

from __future__ import annotations

from pathlib import Path

from hal.serial_link import open_serial
from host.conformance.as_vehicle import VehicleProfile
from host.conformance.report import Verdict, text_report
from host.conformance.station_kit import StationKit
from host.conformance.wire import Wire
from host.vehicle.catalog import find
from host.vehicle.model import SimVehicle
from tests.host.conformance_support import drive
from tests.support import make_bench


async def test_the_reference_station_passes_the_kit(tmp_path: Path) -> None:
    async with make_bench(tmp_path, ports=1) as bench:
        pack = SimVehicle(find("ebike-36v-500wh"), soc_pct=40.0)
        bench.hardware.world.attach(1, pack)
        transport = await open_serial(bench.hardware.ports[1].peer_path)
        try:
            wire = Wire(transport, bench.clock)

            async def start() -> None:
                await bench.station.start(1)

            kit = StationKit(
                wire,
                VehicleProfile(pack_v=round(pack.terminal_voltage_v, 2)),
                start=start,
                start_wait_s=10.0,
            )

            async def run() -> object:
                async with wire.running():
                    return await kit.run()

            await drive(bench.clock, run())
        finally:
            await transport.close()
    results = kit.results
    report = text_report(results)
    print(report)
    assert results.failed_ids() == [], report
    untested = {o.requirement.id for o in results.outcomes() if o.verdict is Verdict.UNTESTABLE}
    assert untested == {r.id for r in results.requirements if not r.kit}, report
