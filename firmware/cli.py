"""``pev-charger``: run the station.

``pev-charger run --config station.toml`` on the station; ``pev-charger run --sim`` on the bench
(simulated hardware and vehicles, four ports, http://127.0.0.1:8080). Expected failures (a bad
configuration, a busy address) print one clear line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
from dataclasses import replace
from typing import Any

from firmware.config import ConfigError, StationConfig, load_config, load_ocpp_section
from firmware.daemon import serve
from hal.clock import Clock, ScaledClock
from hal.errors import HalError


class JsonFormatter(logging.Formatter):
    """One JSON object per line: structured logs that journald and people can both read."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "t": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)


def configure_logging(debug: bool, json_logs: bool) -> None:
    handler = logging.StreamHandler()
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler])
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pev-charger", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the station daemon")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="station configuration (TOML)")
    source.add_argument("--sim", action="store_true", help="bench mode: simulated hardware")
    run.add_argument("--host", help="address to serve the web and API on")
    run.add_argument("--port", type=int, help="TCP port for the web and API")
    run.add_argument("--db", help="SQLite file for the records")
    run.add_argument("--ports", type=int, help="bench mode: number of simulated ports")
    run.add_argument("--budget", type=float, help="total power budget in watts")
    run.add_argument("--speed", type=float, default=1.0, help="bench mode: simulation speed")
    run.add_argument(
        "--payment", action="store_true", help="require payment before charging (demo provider)"
    )
    run.add_argument("--public-url", help="base URL of the phone pages (QR codes)")
    run.add_argument(
        "--ocpp-config", help="take the [ocpp] section (central system) from this TOML file"
    )
    run.add_argument("--json-logs", action="store_true", help="log one JSON object per line")
    run.add_argument("--debug", action="store_true", help="debug logs and full tracebacks")
    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("config")
    return parser


def apply_overrides(config: StationConfig, args: argparse.Namespace) -> StationConfig:
    changes: dict[str, Any] = {}
    if args.host:
        changes["http_host"] = args.host
    if args.port:
        changes["http_port"] = args.port
    if args.db:
        changes["db_path"] = args.db
    if args.budget is not None:
        changes["budget_w"] = args.budget
    if args.public_url:
        changes["public_url"] = args.public_url
    if args.payment:
        changes["payment"] = replace(config.payment, enabled=True)
    if args.ocpp_config:
        changes["ocpp"] = load_ocpp_section(args.ocpp_config)
    return replace(config, **changes) if changes else config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        try:
            config = load_config(args.config)
        except (ConfigError, HalError, ValueError) as exc:
            print(f"pev-charger: {exc}", file=sys.stderr)
            return 2
        print(f"{args.config}: ok ({len(config.hal.ports)} ports, budget {config.budget_w:g} W)")
        return 0
    configure_logging(args.debug, args.json_logs)
    try:
        clock: Clock
        if args.sim:
            # The bench (simulated vehicles) is composed in host/bench, imported only here.
            bench = importlib.import_module("host.bench.station")
            config = bench.bench_station_config(ports=args.ports or 4)
            config = apply_overrides(config, args)
            clock = ScaledClock(args.speed)
            asyncio.run(serve(config, clock=clock, extend=bench.extend_with_bench))
        else:
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
