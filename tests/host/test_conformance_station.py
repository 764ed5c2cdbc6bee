"""The kit in ``--role station`` against the reference station over the port's real pty."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from firmware.pevlink.errors import ErrorCode, ProtocolError
from firmware.pevlink.messages import Battery
from firmware.station.port import PortController
from hal.serial_link import open_serial
from host.conformance.as_vehicle import VehicleProfile
from host.conformance.report import Results, Verdict, text_report
from host.conformance.station_kit import StationKit
from host.conformance.wire import Wire
from tests.host.broken_peers import power_before_grant
from tests.host.conformance_support import SLACK_S, drive
from tests.support import bench_cables, make_bench


async def kit_against_station(
    tmp_path: Path, break_port: Callable[[PortController], None] | None = None
) -> Results:
    async with make_bench(tmp_path, ports=1) as bench:
        if break_port is not None:
            break_port(bench.port(1))
        pack = bench.bay.plug_pack(1, "ebike-36v-500wh", soc_pct=40.0)  # the bench's external port
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
                slack_s=SLACK_S,
            )

            async def run() -> object:
                async with wire.running():
                    return await kit.run()

            await drive(bench.clock, run(), bench_cables(bench.hardware)())
        finally:
            await transport.close()
    return kit.results


KNOWN_STATION_GAPS: set[str] = set()
"""What the reference station does not do yet (docs/pev-link.md, Appendix A): it sends an
outstanding GRANT again after its own FAULT and SUM."""

_REFERENCE: dict[str, Results] = {}


async def reference_results(tmp_path: Path) -> Results:
    """One run of the kit against the reference station, shared by the tests below."""
    if "results" not in _REFERENCE:
        _REFERENCE["results"] = await kit_against_station(tmp_path)
    return _REFERENCE["results"]


async def test_the_reference_station_passes_the_kit(tmp_path: Path) -> None:
    results = await reference_results(tmp_path)
    report = text_report(results)
    print(report)
    assert set(results.failed_ids()) <= KNOWN_STATION_GAPS, report
    untested = {o.requirement.id for o in results.outcomes() if o.verdict is Verdict.UNTESTABLE}
    assert untested == {r.id for r in results.requirements if not r.kit}, report


async def test_the_reference_station_sends_no_grant_after_its_fault(tmp_path: Path) -> None:
    results = await reference_results(tmp_path)
    assert "ST-APP-19" not in results.failed_ids(), text_report(results)


@pytest.mark.slow
async def test_a_station_that_powers_before_the_grant_is_accepted_fails_exactly_that(
    tmp_path: Path,
) -> None:
    results = await kit_against_station(tmp_path, power_before_grant)
    report = text_report(results)
    # POWER on=1 before R GRANT (ST-APP-08), and so also before the GRANT it then sees refused
    assert set(results.failed_ids()) - KNOWN_STATION_GAPS == {"ST-APP-08", "ST-APP-09"}, report
    failure = next(o for o in results.outcomes() if o.requirement.id == "ST-APP-08")
    assert "POWER on=1 came before the vehicle confirmed the GRANT" in failure.detail
    assert any("POWER on=1" in line for line in failure.lines), report


@pytest.mark.slow
async def test_a_station_that_refuses_iend_above_imax_with_the_wrong_error_fails_app_05(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PEV Link 1.2: `iend` above `imax` is NAK E206 field=iend accept=<imax>, not a range error."""
    checked = Battery.check

    def wrong_code(self: Battery) -> None:
        if self.i_end_a is not None and self.i_end_a > self.i_max_a:
            raise ProtocolError(ErrorCode.OUT_OF_RANGE, "iend too high", field="iend")
        checked(self)

    monkeypatch.setattr(Battery, "check", wrong_code)
    results = await kit_against_station(tmp_path)
    report = text_report(results)
    assert set(results.failed_ids()) - KNOWN_STATION_GAPS == {"ST-APP-05"}, report
    failure = next(o for o in results.outcomes() if o.requirement.id == "ST-APP-05")
    assert "not NAK E206 field=iend accept=" in failure.detail
