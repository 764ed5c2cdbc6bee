"""``pev-vehicle``: one simulated vehicle speaking PEV Link on a serial port or pty.

    pev-vehicle --serial /dev/pts/5 --model bosch-powerpack-500 --soc 20 --temp 25 --speed 60

Faults are injected on a schedule with ``--fault KIND@SECONDS`` (simulated seconds after start),
for example ``--fault over_temperature@120``. ``--list`` prints the catalog and the fault kinds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from hal.clock import ScaledClock
from hal.errors import HalError
from hal.serial_link import open_serial
from host.vehicle.agent import VehicleAgent
from host.vehicle.catalog import load_catalog
from host.vehicle.faults import FaultKind
from host.vehicle.model import SimVehicle


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pev-vehicle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serial", help="serial device or pty path of the station")
    parser.add_argument("--model", help="vehicle id from the catalog (see --list)")
    parser.add_argument("--soc", type=float, default=20.0, help="state of charge at start, %%")
    parser.add_argument("--temp", type=float, default=25.0, help="battery temperature, °C")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--seed", type=int, default=0, help="random seed (imbalance, noise)")
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument(
        "--fault", action="append", default=[], metavar="KIND@SECONDS", help="inject a fault"
    )
    parser.add_argument("--list", action="store_true", help="list vehicle models and fault kinds")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every line")
    parser.add_argument("--debug", action="store_true", help="full tracebacks")
    return parser


def parse_fault(text: str) -> tuple[FaultKind, float]:
    kind, _, when = text.partition("@")
    try:
        return FaultKind(kind), float(when or 0)
    except ValueError:
        kinds = ", ".join(k.value for k in FaultKind)
        raise SystemExit(
            f"pev-vehicle: bad --fault {text!r}; use KIND@SECONDS with KIND in {kinds}"
        ) from None


async def run(args: argparse.Namespace) -> None:
    catalog = {spec.id: spec for spec in load_catalog()}
    if args.model not in catalog:
        raise SystemExit(f"pev-vehicle: unknown model {args.model!r}; see pev-vehicle --list")
    faults = [parse_fault(f) for f in args.fault]
    clock = ScaledClock(args.speed)
    link = await open_serial(args.serial, args.baud)
    vehicle = SimVehicle(
        catalog[args.model], soc_pct=args.soc, temperature_c=args.temp, seed=args.seed
    )

    def show(direction: str, line: bytes, decoded: object) -> None:
        if args.verbose:
            arrow = "→" if direction == "tx" else "←"
            print(f"{clock.monotonic():9.2f} {arrow} {line.decode('ascii', 'replace').rstrip()}")

    agent = VehicleAgent(vehicle, link, clock, seed=args.seed, own_physics=True, observer=show)
    agent.on_event = lambda text: print(f"{clock.monotonic():9.2f}   {text}")

    async def schedule() -> None:
        for kind, when in sorted(faults, key=lambda f: f[1]):
            await clock.sleep(max(0.0, when - clock.monotonic()))
            print(f"{clock.monotonic():9.2f}   injecting {kind.value}")
            agent.inject(kind)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(agent.run())
            group.create_task(schedule())
    finally:
        with contextlib.suppress(Exception):
            await link.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for spec in load_catalog():
            print(f"{spec.id:28} {spec.name}")
        print("\nfaults: " + ", ".join(k.value for k in FaultKind))
        return 0
    if not args.serial or not args.model:
        print("pev-vehicle: --serial and --model are required (or --list)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0
    except (HalError, OSError) as exc:
        if args.debug:
            raise
        print(f"pev-vehicle: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
