"""``python -m bench all [--smoke]`` · ``python -m bench NAME [--smoke]``.

Benchmarks: allocation, fault, stall, footprint, handshake, eta, protocol, viewers, runner.
``--smoke`` runs each at a tiny size, in seconds, to check that it still works; the figures then
mean little.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import importlib
import json
import logging
import sys
import time
from typing import Any

from bench.common import machine, rounded, summary_line

NAMES = (
    "allocation",
    "fault",
    "stall",
    "footprint",
    "handshake",
    "eta",
    "protocol",
    "viewers",
    "runner",
)
TIME_LIMIT_S = {False: 900.0, True: 180.0}
"""A benchmark still running after this long is stuck: its stacks are printed and the run ends."""


def run_one(name: str, smoke: bool) -> dict[str, Any]:
    module = importlib.import_module(f"bench.{name}")
    title = (module.__doc__ or name).strip().splitlines()[0]
    print(f"\n== {name}: {title}", flush=True)
    started = time.perf_counter()
    if sys.__stderr__ is not None:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            limit = getattr(module, "TIME_LIMIT_S", TIME_LIMIT_S)[smoke]
            faulthandler.dump_traceback_later(limit, exit=True, file=sys.__stderr__)
    try:
        result: dict[str, Any] = module.run(smoke=smoke)
    finally:
        faulthandler.cancel_dump_traceback_later()
    result["bench_wall_s"] = round(time.perf_counter() - started, 2)
    print(summary_line(name, result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=[*NAMES, "all"], help="a benchmark, or all of them")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, not minutes")
    args = parser.parse_args(argv)
    # The stations under test log every fault they trip; the benchmarks count them instead.
    logging.basicConfig(level=logging.ERROR)
    names = NAMES if args.name == "all" else (args.name,)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    failed: list[str] = []
    for name in names:
        try:
            results[name] = run_one(name, args.smoke)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            print(f"{name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
    if args.name == "all":
        total = {
            "smoke": args.smoke,
            "wall_s": round(time.perf_counter() - started, 1),
            "failed": failed,
            "machine": machine(),
            "results": results,
        }
        print(json.dumps({"bench": "all", **rounded(total)}, separators=(",", ":")), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
