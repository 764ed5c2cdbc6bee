"""``pev-conformance``: runs every testable MUST of PEV Link 1.2 against a device on a serial port.

    pev-conformance --role vehicle /dev/ttyUSB0 --junit report.xml
    pev-conformance --role station /dev/ttyUSB0 --pack-v 37.2 \\
        --start-command "curl -s -X POST http://station/api/ports/1/start"

``--role vehicle`` tests a vehicle (the kit plays the station); ``--role station`` tests a station
(the kit plays the vehicle). The report lists every requirement by id: pass, fail (with the lines
exchanged) or not testable here. The exit status is 1 when a requirement failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from hal.clock import RealClock
from hal.errors import HalError
from hal.serial_link import open_serial
from host.conformance.as_station import PortOffer
from host.conformance.as_vehicle import Starter, VehicleProfile
from host.conformance.report import Results, dumps_json, junit_xml, text_report
from host.conformance.station_kit import StationKit
from host.conformance.vehicle_kit import VehicleKit
from host.conformance.wire import Wire

START_TIMEOUT_S = 30.0
"""How long a --start-command may run."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pev-conformance", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    parser.add_argument("port", help="serial device (or pty) of the device under test")
    parser.add_argument(
        "--role", required=True, choices=("vehicle", "station"), help="what the device is"
    )
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--junit", type=Path, help="write JUnit XML here")
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    parser.add_argument(
        "--slack", type=float, default=0.25, help="seconds added to every time limit (default 0.25)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show every line as it crosses"
    )
    station = parser.add_argument_group("--role station (the kit plays a vehicle)")
    station.add_argument(
        "--pack-v",
        type=float,
        help="voltage of the pack wired to the port; without it power-on checks are not testable",
    )
    station.add_argument(
        "--vnom", type=float, default=36.0, help="declared nominal voltage (default 36)"
    )
    station.add_argument(
        "--vmax", type=float, default=42.0, help="declared maximum voltage (default 42)"
    )
    station.add_argument(
        "--vmin", type=float, default=30.0, help="declared minimum voltage (default 30)"
    )
    station.add_argument(
        "--imax", type=float, default=4.0, help="declared maximum current (default 4)"
    )
    station.add_argument(
        "--iend",
        type=float,
        help="declared end-of-charge current (BATT iend, PEV Link 1.2; default: not sent)",
    )
    station.add_argument(
        "--start-command",
        help="shell command that starts a charge on the port (else you are asked)",
    )
    station.add_argument(
        "--start-wait", type=float, default=60.0, help="seconds to wait for the GRANT after a start"
    )
    vehicle = parser.add_argument_group("--role vehicle (the kit plays a station)")
    vehicle.add_argument(
        "--plug-wait", type=float, default=30.0, help="seconds to wait for the vehicle's first line"
    )
    return parser


def make_starter(command: str | None) -> Starter:
    async def by_command() -> None:
        assert command is not None
        proc = await asyncio.create_subprocess_shell(command, stdout=asyncio.subprocess.DEVNULL)
        try:
            await asyncio.wait_for(proc.wait(), START_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def by_hand() -> None:
        print(
            "pev-conformance: start a charge on the station's port now", file=sys.stderr, flush=True
        )

    return by_command if command else by_hand


async def run(args: argparse.Namespace) -> Results:
    clock = RealClock()
    transport = await open_serial(args.port, args.baud)
    try:
        show = print if args.verbose else None
        wire = Wire(transport, clock, show=show)
        async with wire.running():
            if args.role == "vehicle":
                print(
                    f"pev-conformance: waiting for the vehicle on {args.port}: "
                    "plug it in or power it on now",
                    file=sys.stderr,
                    flush=True,
                )
                results = await VehicleKit(
                    wire, PortOffer(), plug_wait_s=args.plug_wait, slack_s=args.slack
                ).run()
            else:
                profile = VehicleProfile(
                    vnom=args.vnom,
                    vmax=args.vmax,
                    vmin=args.vmin,
                    imax=args.imax,
                    iend=args.iend,
                    pack_v=args.pack_v,
                )
                kit = StationKit(
                    wire,
                    profile,
                    start=make_starter(args.start_command),
                    start_wait_s=args.start_wait,
                    slack_s=args.slack,
                )
                results = await kit.run()
    finally:
        await transport.close()
    results.device = args.port
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except (HalError, OSError) as exc:
        print(f"pev-conformance: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text_report(results))
    if args.junit:
        args.junit.write_text(junit_xml(results), encoding="utf-8")
    if args.json:
        args.json.write_text(dumps_json(results), encoding="utf-8")
    return 1 if results.failed_ids() else 0


if __name__ == "__main__":
    sys.exit(main())
