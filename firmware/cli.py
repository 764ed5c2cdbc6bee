"""``pev-charger``: run the station.

``pev-charger run --config station.toml`` on the station; ``pev-charger run --sim`` on the bench
(simulated hardware and vehicles, four ports, http://127.0.0.1:8080). Expected failures (a bad
configuration, a busy address) print one clear line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NoReturn
from urllib.parse import urlsplit

from firmware.config import (
    ConfigError,
    StationConfig,
    load_config,
    load_ocpp_section,
    state_path,
)
from firmware.daemon import serve
from firmware.logs import configure_logging
from hal.clock import Clock, ScaledClock
from hal.errors import HalError


class OneLineParser(argparse.ArgumentParser):
    """A bad command-line value is one line on stderr (and exit status 2), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def number(kind: type, lo: float, hi: float, what: str) -> Callable[[str], float | int]:
    """An argparse type: a finite number of ``kind`` from ``lo`` to ``hi``, or one clear line."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise argparse.ArgumentTypeError(f"{text} is outside {lo:g}..{hi:g}")
        return value  # type: ignore[no-any-return]

    return parse


def base_url(text: str) -> str:
    """An argparse type: the phone pages' base URL, http(s)://host[:port][/path]."""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has a port that is not a number") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// address")
    return text


MAX_BENCH_PORTS = 16
"""One I2C bus holds 16 sensors (0x40-0x4F); the bench's ports are built the same way."""
MAX_SPEED = 20.0
"""The bench's fastest simulated time (host/bench/station.py explains why)."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pev-charger", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the station daemon")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="station configuration (TOML)")
    source.add_argument("--sim", action="store_true", help="bench mode: simulated hardware")
    run.add_argument("--host", help="address to serve the web and API on")
    run.add_argument(
        "--port", type=number(int, 1, 65535, "a TCP port"), help="TCP port for the web and API"
    )
    run.add_argument("--db", help="SQLite file for the records")
    run.add_argument(
        "--ports",
        type=number(int, 1, MAX_BENCH_PORTS, "a whole number"),
        help="bench mode: number of simulated ports",
    )
    run.add_argument(
        "--stage-ports",
        type=number(int, 0, 4, "a whole number"),
        default=0,
        help="bench mode: more simulated ports, each behind a simulated RD6006 power stage",
    )
    run.add_argument(
        "--hv-ports",
        type=number(int, 0, 4, "a whole number"),
        help="bench mode: high-voltage ports after those (packs to 126 V: an ADS1115 divider and a "
        "simulated TC/Elcon charger on CAN); 1 by default, 0 when the other ports leave no room",
    )
    run.add_argument(
        "--budget",
        type=number(float, 0, 100_000, "a number of watts"),
        help="total power budget in watts",
    )
    run.add_argument(
        "--speed",
        type=number(float, 0.1, MAX_SPEED, "a number"),
        default=1.0,
        help="bench mode: simulation speed",
    )
    run.add_argument(
        "--sim-lan",
        action="store_true",
        help="bench mode: let other machines use the simulator's API (loopback only by default)",
    )
    run.add_argument(
        "--meter",
        choices=["sim"],
        help="bench mode: the budget follows a simulated site meter (Modbus TCP, SDM630)",
    )
    run.add_argument(
        "--rfid",
        action="store_true",
        help="bench mode: a simulated PN532 tag reader on every port (tags from the /sim page)",
    )
    run.add_argument(
        "--payment", action="store_true", help="require payment before charging (demo provider)"
    )
    run.add_argument("--max-streams", type=int, help="live event streams served at once")
    run.add_argument("--max-requests", type=int, help="requests in progress at once")
    run.add_argument("--public-url", type=base_url, help="base URL of the phone pages (QR codes)")
    run.add_argument(
        "--ocpp-config", help="take the [ocpp] section (central system) from this TOML file"
    )
    run.add_argument("--json-logs", action="store_true", help="log one JSON object per line")
    run.add_argument("--debug", action="store_true", help="debug logs and full tracebacks")
    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("config")
    check.add_argument(
        "--offline",
        action="store_true",
        help="on another machine than the station: do not look for the serial devices",
    )
    backup = sub.add_parser(
        "backup", help="copy the records to PATH while the station runs (SQLite online backup)"
    )
    backup.add_argument("path", help="the backup file to write (replaced if it exists)")
    records = backup.add_mutually_exclusive_group(required=True)
    records.add_argument("--db", help="the records' SQLite file")
    records.add_argument("--config", help="the station configuration that names the records")
    return parser


def run_backup(args: argparse.Namespace) -> int:
    from firmware.backup import BackupError, backup_records

    try:
        source = state_path(args.db) if args.db else load_config(args.config, offline=True).db_path
        result = backup_records(source, args.path)
    except (BackupError, ConfigError, HalError, ValueError) as exc:
        print(f"pev-charger: {exc}", file=sys.stderr)
        return 2
    print(
        f"{source} -> {result.path}: {result.sessions} sessions, "
        f"{result.size_bytes / 1e6:.1f} MB, integrity ok"
    )
    return 0


def apply_overrides(config: StationConfig, args: argparse.Namespace) -> StationConfig:
    changes: dict[str, Any] = {}
    if args.host:
        changes["http_host"] = args.host
    if args.port:
        changes["http_port"] = args.port
    if args.db:
        changes["db_path"] = state_path(args.db)
    if args.budget is not None:
        changes["budget_w"] = args.budget
    if args.public_url:
        changes["public_url"] = args.public_url
    if args.max_streams:
        changes["max_streams"] = args.max_streams
    if args.max_requests:
        changes["max_requests"] = args.max_requests
    if args.payment:
        changes["payment"] = replace(config.payment, enabled=True)
    if args.ocpp_config:
        changes["ocpp"] = load_ocpp_section(args.ocpp_config)
    return replace(config, **changes) if changes else config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "backup":
        return run_backup(args)
    if args.command == "check-config":
        try:
            config = load_config(args.config, offline=args.offline)
        except (ConfigError, HalError, ValueError) as exc:
            print(f"pev-charger: {exc}", file=sys.stderr)
            return 2
        print(
            f"{args.config}: ok ({config.hal.backend} backend, {len(config.hal.ports)} ports, "
            f"budget {config.budget_w:g} W{', devices not checked' if args.offline else ''})"
        )
        return 0
    configure_logging(args.debug, args.json_logs)
    try:
        clock: Clock
        if args.sim:
            # The bench (simulated vehicles) is composed in host/bench, imported only here.
            bench = importlib.import_module("host.bench.station")
            ports = args.ports or 4
            hv_ports = args.hv_ports
            if hv_ports is None:  # an HV port takes two I2C addresses (its INA and its ADS1115)
                hv_ports = 1 if ports + args.stage_ports + 2 <= MAX_BENCH_PORTS else 0
            config = bench.bench_station_config(
                ports=ports, stage_ports=args.stage_ports, hv_ports=hv_ports
            )
            config = apply_overrides(config, args)
            if args.meter == "sim":
                meter = importlib.import_module("host.bench.meter_api")
                config = meter.with_simulated_meter(config)
            if args.rfid:
                tags = importlib.import_module("host.bench.rfid_api")
                config = tags.with_simulated_readers(config)
            clock = ScaledClock(args.speed)
            extend = bench.bench_extension(lan=args.sim_lan)
            asyncio.run(serve(config, clock=clock, extend=extend, ready=bench.announce))
        else:
            if args.meter or args.rfid:
                raise ConfigError("--meter sim and --rfid are for the bench (--sim) only")
            config = apply_overrides(load_config(args.config), args)
            asyncio.run(serve(config))
    except KeyboardInterrupt:
        return 0
    except (ConfigError, HalError) as exc:
        if args.debug:
            raise
        print(f"pev-charger: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if args.debug:
            raise
        print(f"pev-charger: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
