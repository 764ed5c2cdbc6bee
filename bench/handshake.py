"""Handshake: plug-in to power-on over a real pty at 115200 baud (real time).

The station runs on the bench's simulated hardware with real pseudo-terminal cables (the pyserial
links the daemon uses), on the machine's clock, with automatic start. A vehicle agent is plugged
into a free port; its own link observer timestamps every line it sends and receives, from its
first byte until the station's POWER request (the moment it may draw). The bytes exchanged until
then are turned into the time the wire itself needs at 115200 baud, 8N1 (10 bits a byte), to
show how much of the handshake is the protocol's own waiting (the station's 50 ms supervisor
passes, the 100 ms check of the pack's voltage after the switch closes) rather than the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import Any

from bench.common import percentile, table
from firmware.compose import build_station
from firmware.config import StationConfig
from firmware.pevlink import (
    BatteryReply,
    ChargeRequestReply,
    Decoded,
    Grant,
    HelloReply,
    Power,
    ProtocolError,
)
from firmware.station.port import PortState
from firmware.station.station import Station, StationSettings
from hal.clock import RealClock
from hal.config import bench_config
from hal.factory import build_hardware
from host.bench.station import VehicleBay

BAUD = 115200
MODELS = {
    1: "ebike-36v-500wh",
    2: "scooter-ninebot-max",
    3: "kids-scooter-24v",
    4: "eunicycle-84v",
    5: "onewheel-xr",
    6: "ebike-48v-lfp",
    7: "kids-scooter-24v",
    8: "ebike-52v-14s",
}
MILESTONES = (
    ("hello", HelloReply),
    ("battery", BatteryReply),
    ("request", ChargeRequestReply),
    ("grant", Grant),
    ("power", Power),
)


async def _until(condition: Any, timeout_s: float) -> bool:
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True


async def handshake(station: Station, bay: VehicleBay, port_id: int) -> dict[str, Any]:
    """Plug a vehicle into a free port and time its conversation until power-on."""
    port = station.ports[port_id]
    if not await _until(lambda: port.state == PortState.EMPTY, 15.0):
        raise RuntimeError(f"port {port_id} did not come free: {port.state_text}")
    marks: dict[str, float] = {}
    counted = {"bytes": 0, "lines": 0}

    def observe(direction: str, line: bytes, item: Decoded | ProtocolError) -> None:
        if "power" in marks:
            return
        counted["bytes"] += len(line)
        counted["lines"] += 1
        if direction != "rx" or not isinstance(item, Decoded):
            return
        for name, kind in MILESTONES:
            if isinstance(item.message, kind) and name not in marks:
                if kind is Power and not getattr(item.message, "on", 0):
                    continue
                marks[name] = time.perf_counter()

    station_retries = port.link.stats.retries
    plugged_at = time.perf_counter()
    await bay.attach(port_id, MODELS[port_id], soc_pct=30.0)
    agent = bay.bays[port_id].agent
    agent.link.observer = observe  # before the agent's task has sent its first byte
    if not await _until(lambda: "power" in marks, 10.0):
        raise RuntimeError(f"port {port_id}: no power-on ({port.state_text})")
    return {
        "port": port_id,
        "model": MODELS[port_id],
        "total_s": marks["power"] - plugged_at,
        **{f"{name}_s": marks[name] - plugged_at for name, _ in MILESTONES},
        "bytes": counted["bytes"],
        "lines": counted["lines"],
        "retries": agent.link.stats.retries + port.link.stats.retries - station_retries,
    }


async def measure(count: int) -> list[dict[str, Any]]:
    clock = RealClock()
    # The figures are the protocol's; a loaded benchmark machine's own pauses (the safety loop
    # runs inline here, on the machine's clock) must not trip the board's 100 ms watchdog.
    hal = dataclasses.replace(bench_config(len(MODELS)), watchdog_hold_s=1.0)
    config = StationConfig(hal=hal, budget_w=420.0 * len(MODELS))
    hardware = build_hardware(config.hal, clock)
    station = build_station(
        StationSettings(budget_w=config.budget_w, auto_start=True), config.hal, hardware, clock
    )
    bay = VehicleBay(hardware, clock, station)
    tasks = [asyncio.create_task(station.run()), asyncio.create_task(hardware.world.run())]
    cleanups: set[asyncio.Task[None]] = set()
    results: list[dict[str, Any]] = []

    async def unplug(port_id: int) -> None:
        port = station.ports[port_id]
        with contextlib.suppress(Exception):
            await station.stop(port_id)
            await _until(lambda: port.state in (PortState.DONE, PortState.FAULT), 5.0)
        await bay.detach(port_id)

    try:
        await station.started.wait()
        ports = sorted(MODELS)
        for n in range(count):
            port_id = ports[n % len(ports)]
            results.append(await handshake(station, bay, port_id))
            task = asyncio.create_task(unplug(port_id))
            cleanups.add(task)
            task.add_done_callback(cleanups.discard)
        await asyncio.gather(*cleanups, return_exceptions=True)
    finally:
        await bay.aclose()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hardware.aclose()
    return results


def run(smoke: bool = False) -> dict[str, Any]:
    count = 6 if smoke else 80
    results = asyncio.run(asyncio.wait_for(measure(count), 600))
    total_ms = [r["total_s"] * 1000 for r in results]
    wire_ms = [r["bytes"] * 10 / BAUD * 1000 for r in results]
    rows: list[list[Any]] = []
    summary: dict[str, Any] = {"handshakes": len(results), "baud": BAUD}
    for name, kind in MILESTONES:
        values = [r[f"{name}_s"] * 1000 for r in results]
        rows.append(
            [
                f"plug-in -> {kind.__name__} ({kind.KIND})",
                percentile(values, 50),
                percentile(values, 99),
            ]
        )
    rows.sort(key=lambda row: row[1])
    retried = sum(1 for r in results if r["retries"])
    rows.append(["wire time of the bytes", percentile(wire_ms, 50), percentile(wire_ms, 99)])
    print(table(["the vehicle receives", "p50 ms", "p99 ms"], rows))
    summary.update(
        {
            "plug_to_power_ms": {
                "p50": percentile(total_ms, 50),
                "p99": percentile(total_ms, 99),
                "max": max(total_ms),
            },
            "wire_ms": {"p50": percentile(wire_ms, 50), "p99": percentile(wire_ms, 99)},
            "bytes": {"p50": percentile([r["bytes"] for r in results], 50)},
            "lines": {"p50": percentile([r["lines"] for r in results], 50)},
            "with_retries": retried,
        }
    )
    print(
        f"{len(results)} handshakes; about {summary['bytes']['p50']:.0f} bytes in "
        f"{summary['lines']['p50']:.0f} lines each, {summary['wire_ms']['p50']:.0f} ms on "
        f"the wire; {retried} needed a retransmission"
    )
    return summary
