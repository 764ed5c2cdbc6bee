"""A bench station with its OCPP uplink, and a central system on a real localhost websocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from firmware.compose import build_station
from firmware.config import StationConfig
from firmware.ocpp.config import OcppConfig
from firmware.ocpp.profiles import CappedPolicy
from firmware.ocpp.uplink import Uplink
from firmware.station.allocator import SharingPolicy
from firmware.station.station import StationSettings
from firmware.store import Store
from hal.clock import SimClock
from hal.config import bench_config
from hal.factory import build_hardware
from host.bench.station import VehicleBay
from tests.firmware.ocpp.csms import CentralSystem
from tests.support import Bench, free_port

CP_ID = "PEV-0001"
PASSWORD = "bench-basic-auth-secret"


@dataclass
class Rig:
    bench: Bench
    uplink: Uplink
    csms: CentralSystem
    task: asyncio.Task[None]
    policy: CappedPolicy
    station_task: asyncio.Task[None]

    async def until(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        """Advance simulated time until ``condition``; 2 ms of real time a step, since what is
        awaited often crosses the real localhost websocket (slow on a busy machine)."""
        start = self.bench.clock.monotonic()
        while not condition():
            if self.bench.clock.monotonic() - start > timeout:
                raise AssertionError(f"condition not met within {timeout} s of simulated time")
            await self.bench.clock.advance(0.02)
            await asyncio.sleep(0.002)

    async def settle(self, seconds: float = 0.3) -> None:
        await self.bench.run_for(seconds, step=0.02)

    def statuses(self, connector: int) -> list[dict[str, Any]]:
        return [
            s for s in self.csms.state.of("StatusNotification") if s["connector_id"] == connector
        ]

    async def ask(self, payload: Any) -> Any:
        """A request from the central system, answered while simulated time runs on."""
        reply = asyncio.ensure_future(self.csms.call(CP_ID, payload))
        await self.until(reply.done, timeout=30.0)
        return reply.result()

    async def online(self) -> None:
        await self.until(lambda: self.uplink.state == "online" and CP_ID in self.csms.connected)

    async def shutdown(self) -> None:
        """As the daemon stops on SIGTERM: the station first, then the uplink, then its close."""
        self.station_task.cancel()
        await asyncio.gather(self.station_task, return_exceptions=True)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.uplink.close()

    async def kill_uplink(self) -> None:
        """As a SIGKILL would: the uplink stops where it is, writes nothing more."""
        self.bench.station.on_start = self.bench.station.on_end = None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        for task in list(self.uplink._tasks):
            task.cancel()
        await asyncio.gather(*self.uplink._tasks, return_exceptions=True)
        await self.uplink.outbox.close()


def ocpp_config(tmp_path: Path, csms: CentralSystem, **kw: Any) -> OcppConfig:
    base = OcppConfig(
        enabled=True,
        url=csms.url,
        charge_point_id=CP_ID,
        password=PASSWORD,
        meter_interval_s=10.0,
        db_path=str(tmp_path / "ocpp.db"),
        backoff_min_s=1.0,
        backoff_max_s=8.0,
        response_timeout_s=10.0,
    )
    return replace(base, **kw)


@contextlib.asynccontextmanager
async def make_rig(
    tmp_path: Path,
    csms: CentralSystem,
    ports: int = 2,
    budget_w: float = 600.0,
    clock_start: float = 0.0,
    **ocpp: Any,
) -> AsyncIterator[Rig]:
    clock = SimClock(start=clock_start)
    config = StationConfig(hal=bench_config(ports), budget_w=budget_w)
    hardware = build_hardware(config.hal, clock)
    store = Store(tmp_path / "records.db")
    await store.open()
    policy = CappedPolicy(SharingPolicy())
    station = build_station(
        StationSettings(budget_w=budget_w),
        config.hal,
        hardware,
        clock,
        recorder=store,
        policy=policy,
    )
    uplink = Uplink(ocpp_config(tmp_path, csms, **ocpp), station, clock, policy=policy)
    await uplink.open()
    uplink.attach()
    bay = VehicleBay(hardware, clock, station)
    tasks = [asyncio.create_task(station.run()), asyncio.create_task(hardware.world.run())]
    await asyncio.wait_for(station.started.wait(), 5.0)
    uplink_task = asyncio.create_task(uplink.run())
    bench = Bench(clock, hardware, station, bay, store)
    try:
        yield Rig(bench, uplink, csms, uplink_task, policy, tasks[0])
    finally:
        uplink_task.cancel()
        await asyncio.gather(uplink_task, return_exceptions=True)
        await bay.aclose()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if uplink.outbox._db is not None:
            await uplink.close()
        await hardware.aclose()
        await store.close()


@pytest.fixture
async def csms() -> AsyncIterator[CentralSystem]:
    central = CentralSystem(free_port(), (CP_ID, PASSWORD))
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


@pytest.fixture
async def rig(tmp_path: Path, csms: CentralSystem) -> AsyncIterator[Rig]:
    async with make_rig(tmp_path, csms) as r:
        yield r
