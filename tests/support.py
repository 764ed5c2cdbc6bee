"""The bench for tests: simulated hardware, real ptys, real drivers and records, simulated time."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from firmware.compose import build_station
from firmware.config import StationConfig
from firmware.events import EventHub
from firmware.station.port import PortController, PortState
from firmware.station.station import Station, StationSettings
from firmware.store import Store
from hal.clock import SimClock
from hal.config import HalConfig, bench_config
from hal.factory import Hardware, build_hardware
from hal.sim.serial_pty import PtyCable
from hal.stages import LazyStage
from host.bench.station import VehicleBay


def free_port() -> int:
    """A TCP port nobody listens on now, for a daemon started by a test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LineSettler:
    """Before simulated time moves on, let the bytes on the bench's ptys reach their readers.

    Each step of simulated time is a few milliseconds, and a real pty's bytes cross between
    threads in real time: on a machine busy elsewhere, a reply could otherwise arrive hundreds
    of simulated milliseconds late and time out. The cable's copying thread always drains what
    an end wrote, so that is waited for until it is gone; bytes copied towards an end that
    nobody reads (no vehicle on it) stay, so a reader's queue that has not moved for
    ``STUCK_S`` of real time is not waited for again until it changes.
    """

    STUCK_S = 0.2
    LIMIT_S = 5.0

    def __init__(self, cables: Callable[[], Iterable[PtyCable]]) -> None:
        self._cables = cables
        self._seen: dict[tuple[int, int], tuple[int, float]] = {}

    async def settle(self) -> None:
        deadline = time.monotonic() + self.LIMIT_S
        while time.monotonic() < deadline:
            if not self._moving(time.monotonic()):
                return
            await asyncio.sleep(0.0005)

    def _moving(self, now: float) -> bool:
        moving = False
        for cable in self._cables():
            written_a, written_b, toward_a, toward_b = cable.queued()
            if written_a or written_b:
                moving = True  # the copying thread has yet to pass these on
            for queue, count in ((0, toward_a), (1, toward_b)):
                key = (id(cable), queue)
                if count == 0:
                    self._seen.pop(key, None)
                    continue
                last = self._seen.get(key)
                if last is None or last[0] != count:
                    self._seen[key] = (count, now)
                    moving = True
                elif now - last[1] < self.STUCK_S:
                    moving = True
        return moving


def bench_cables(hardware: Hardware) -> Callable[[], list[PtyCable]]:
    def cables() -> list[PtyCable]:
        return [p.cable for p in hardware.world.ports.values() if p.cable is not None]

    return cables


@dataclass
class Bench:
    clock: SimClock
    hardware: Hardware
    station: Station
    bay: VehicleBay
    store: Store
    lines: LineSettler = field(init=False)

    def __post_init__(self) -> None:
        self.lines = LineSettler(bench_cables(self.hardware))

    async def run_for(self, seconds: float, step: float = 0.01) -> None:
        """Advance simulated time, letting real pty traffic flow between steps."""
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end - 1e-9:
            await self.lines.settle()
            await self.stage_answers()
            await self.clock.advance(min(step, end - self.clock.monotonic()))
            await asyncio.sleep(0.0005)

    async def stage_answers(self, limit_s: float = 5.0) -> None:
        """Let a power stage's Modbus round trip over its pty finish before time moves on.

        Sensors are read inline, in no simulated time; a stage answers over a real pty, and on a
        loaded machine a round trip could otherwise last longer in simulated time than its
        deadline. A stage told to stop answering is not waited for: its deadline must expire.
        """
        waiting = [
            port.stage
            for pid, port in self.hardware.ports.items()
            if isinstance(port.stage, LazyStage) and self._answering(pid)
        ]
        deadline = time.monotonic() + limit_s
        while True:
            if not any(stage.busy for stage in waiting) or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.0005)

    def _answering(self, port_id: int) -> bool:
        sim = self.hardware.world.ports[port_id].stage
        return sim is not None and sim.cable.connected

    async def run_until(
        self, condition: Callable[[], bool], timeout: float = 30.0, step: float = 0.01
    ) -> float:
        """Advance until ``condition`` holds; returns the simulated time it took."""
        start = self.clock.monotonic()
        while not condition():
            if self.clock.monotonic() - start > timeout:
                raise AssertionError(f"condition not met within {timeout} s of simulated time")
            await self.lines.settle()
            await self.stage_answers()
            await self.clock.advance(step)
            await asyncio.sleep(0.0005)
        return self.clock.monotonic() - start

    async def settle_current(
        self, port_id: int, amps: float, within: float = 0.02, seconds: float = 15.0
    ) -> None:
        """Wait until the vehicle on the port draws ``amps``; on failure say what the port was
        doing."""
        vehicle = self.bay.bays[port_id].vehicle
        port = self.port(port_id)
        try:
            await self.run_until(lambda: abs(vehicle.current_a - amps) < within, timeout=seconds)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: port {port.state.value} ({port.state_text}), grant {port.grant_a} A, "
                f"fault {port.fault}, pack {vehicle.current_a:.3f} A"
            ) from None

    def currents_at_open(self, port_id: int) -> list[float]:
        """From now on, the current the vehicle draws each time the port's switch opens under it
        (the list fills as the test runs)."""
        relay = self.hardware.ports[port_id].relay
        world_port = self.hardware.world.ports[port_id]
        seen: list[float] = []
        original = relay.open_now

        def recording_open() -> None:
            if relay.is_closed and world_port.load is not None:
                seen.append(world_port.load.current_a)
            original()

        relay.open_now = recording_open  # type: ignore[method-assign]
        return seen

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
        events=EventHub(clock),
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
