"""The bench for tests: simulated hardware, real ptys, real drivers and records, simulated time."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from firmware.compose import build_station
from firmware.config import StationConfig
from firmware.station.port import PortController, PortState
from firmware.station.station import Station, StationSettings
from firmware.store import Store
from hal.clock import SimClock
from hal.config import HalConfig, bench_config
from hal.factory import Hardware, build_hardware
from host.bench.station import VehicleBay


def free_port() -> int:
    """A TCP port nobody listens on now, for a daemon started by a test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Bench:
    clock: SimClock
    hardware: Hardware
    station: Station
    bay: VehicleBay
    store: Store

    async def run_for(self, seconds: float, step: float = 0.01) -> None:
        """Advance simulated time, letting real pty traffic flow between steps."""
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end - 1e-9:
            await self.clock.advance(min(step, end - self.clock.monotonic()))
            await asyncio.sleep(0.0005)

    async def run_until(
        self, condition: Callable[[], bool], timeout: float = 30.0, step: float = 0.01
    ) -> float:
        """Advance until ``condition`` holds; returns the simulated time it took."""
        start = self.clock.monotonic()
        while not condition():
            if self.clock.monotonic() - start > timeout:
                raise AssertionError(f"condition not met within {timeout} s of simulated time")
            await self.clock.advance(step)
            await asyncio.sleep(0.0005)
        return self.clock.monotonic() - start

    def port(self, port_id: int) -> PortController:
        return self.station.ports[port_id]

    async def charging(self, port_id: int, model: str, soc: float = 40.0, **kw: float) -> None:
        """Attach a vehicle, wait until it is ready, start, and wait until it charges."""
        await self.bay.attach(port_id, model, soc, kw.get("temperature_c", 25.0))
        await self.run_until(lambda: self.port(port_id).state == PortState.READY)
        await self.station.start(port_id)
        await self.run_until(lambda: self.port(port_id).state == PortState.CHARGING)


@contextlib.asynccontextmanager
async def make_bench(
    tmp_path: Path,
    ports: int = 4,
    budget_w: float = 600.0,
    hal: HalConfig | None = None,
    **settings: object,
) -> AsyncIterator[Bench]:
    clock = SimClock()
    config = StationConfig(hal=hal or bench_config(ports), budget_w=budget_w)
    hardware = build_hardware(config.hal, clock)
    store = Store(tmp_path / "records.db")
    await store.open()
    station = build_station(
        StationSettings(budget_w=budget_w, **settings),  # type: ignore[arg-type]
        config.hal,
        hardware,
        clock,
        recorder=store,
    )
    bay = VehicleBay(hardware, clock, station)
    tasks = [asyncio.create_task(station.run()), asyncio.create_task(hardware.world.run())]
    await asyncio.wait_for(station.started.wait(), 5.0)
    try:
        yield Bench(clock, hardware, station, bay, store)
    finally:
        await bay.aclose()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hardware.aclose()
        await store.close()
