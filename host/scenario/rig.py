"""A whole station on the simulated hardware, with vehicles plugged in over in-memory cables.

This composes what ``hal.sim.backend.build`` and ``host.bench.station.VehicleBay`` compose, with
the one change the scenario needs for speed: each port's serial line is a
:class:`~hal.sim.memory_cable.MemoryLine` instead of a pair of pseudo-terminals. Everything else
is the code that runs on the bench and on the station: the register-level INA219/INA228 models read
through the adafruit drivers, the relays behind the hardware watchdog, the world's physics, the
station (supervisor, allocator, ports, sessions) and the vehicles' PEV Link agents.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from firmware.compose import build_station
from firmware.station.allocator import Policy
from firmware.station.port import PortController
from firmware.station.station import StationSettings
from hal.clock import Clock
from hal.config import HalConfig, PortConfig, bench_config
from hal.sim.backend import build_memory
from hal.sim.elcon import SimElconCharger
from hal.sim.memory_cable import MemoryLine
from hal.sim.world import BenchWorld
from host.vehicle.agent import VehicleAgent
from host.vehicle.catalog import load_catalog
from host.vehicle.model import SimVehicle
from host.vehicle.spec import VehicleSpec

LAYOUTS = ("bench", "ina228")
STAGES = ("", "elcon")
"""``elcon``: every port behind a simulated TC/Elcon CAN charger (hal/sim/elcon.py) on python-can's
virtual bus, driven by the real :class:`~hal.elcon.ElconStage` through the HAL's opener; vehicles
are bare packs."""
STAGE_RATING_V, STAGE_RATING_A = 130.0, 10.0
"""The simulated chargers' rating; the station never sets them above the port's own limits."""


def hal_layout(layout: str, ports: int) -> HalConfig:
    """``bench``: the bench's ports (every fourth an INA219 port for packs to 25.5 V);
    ``ina228``: every port an INA228 port for packs from 12 V to 84 V."""
    config = bench_config(ports)
    if layout == "bench":
        return config
    if layout != "ina228":
        raise ValueError(f"unknown port layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    uniform = tuple(
        PortConfig(
            id=p.id,
            sensor="INA228",
            i2c_address=p.i2c_address,
            shunt_ohms=0.015,
            relay_gpio=p.relay_gpio,
            max_current_a=5.0,
            min_voltage_v=12.0,
            max_voltage_v=84.0,
        )
        for p in config.ports
    )
    return replace(config, ports=uniform)


def with_chargers(config: HalConfig) -> HalConfig:
    """Every port behind a simulated TC/Elcon charger on its own virtual CAN bus: built by
    ``build_memory`` as the bench builds its high-voltage port, and driven through the HAL's own
    opener (hal/stage_config.py ``elcon_opener``: the driver's lease, the port's voltage cap)."""
    ports = tuple(
        replace(
            p,
            stage="sim-elcon",
            stage_can_channel=f"scenario-port{p.id}",
            stage_max_voltage_v=STAGE_RATING_V,
            stage_max_current_a=STAGE_RATING_A,
        )
        for p in config.ports
    )
    return replace(config, ports=ports)


@dataclass
class MemoryRecorder:
    """The station's records, kept in memory (the :class:`~firmware.station.station.Recorder`
    shape): the scenario reads sessions and faults from here as the station wrote them."""

    sessions: dict[int, dict[str, Any]] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    samples: int = 0

    async def start_session(
        self,
        *,
        port_id: int,
        public_token: str,
        owner_token: str,
        vehicle: dict[str, object],
        started_at: float,
        soc_start: float | None,
    ) -> int:
        session_id = len(self.sessions) + 1
        self.sessions[session_id] = {
            "port_id": port_id,
            "vehicle": vehicle,
            "started_at": started_at,
            "soc_start": soc_start,
            "status": "running",
        }
        return session_id

    async def add_sample(self, session_id: int, sample: Any, peak_w: float) -> None:
        self.samples += 1

    async def end_session(
        self,
        session_id: int,
        *,
        ended_at: float,
        energy_wh: float,
        peak_w: float,
        reason: str,
        text: str,
        soc_end: float | None,
    ) -> None:
        self.sessions[session_id].update(
            status="ended",
            ended_at=ended_at,
            energy_wh=energy_wh,
            peak_w=peak_w,
            reason=reason,
            text=text,
            soc_end=soc_end,
        )

    async def add_fault(
        self, *, t: float, port_id: int, session_id: int | None, code: str, text: str
    ) -> int:
        self.faults.append(
            {"t": t, "port_id": port_id, "session_id": session_id, "code": code, "text": text}
        )
        return len(self.faults)


@dataclass
class Plugged:
    """A vehicle on a port, with the agent that speaks for it."""

    vehicle: SimVehicle
    agent: VehicleAgent
    task: asyncio.Task[None]
    line: MemoryLine


class Rig:
    """The station, its simulated hardware and the vehicles plugged into it."""

    def __init__(
        self,
        clock: Clock,
        config: HalConfig,
        settings: StationSettings,
        *,
        policy: Policy | None = None,
        baud: int | None = 115200,
        physics_dt_s: float = 0.05,
        sensor_range_factor: float = 1.0,
        stage: str = "",
    ) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}: use one of {', '.join(map(repr, STAGES))}")
        self.clock = clock
        self.stage = stage
        if stage:
            config = with_chargers(config)
        self.config = config
        self.port_configs = {p.id: p for p in config.ports}
        self.hardware, self._vehicle_ends = build_memory(
            config,
            clock,
            baud=baud,
            physics_dt_s=physics_dt_s,
            sensor_range_factor=sensor_range_factor,
        )
        # The watchdog must outlast a poll period, as the bench's set_speed arranges.
        self.hardware.watchdog.hold_time_s = max(
            config.watchdog_hold_s, 2.0 * settings.poll_period_s
        )
        self.world: BenchWorld = self.hardware.world
        self.chargers: dict[int, SimElconCharger] = {
            port_id: port.charger
            for port_id, port in self.world.ports.items()
            if port.charger is not None
        }
        self.adapt_hardware()
        self.recorder = MemoryRecorder()
        self.station = build_station(
            settings,
            config,
            self.hardware,
            clock,
            recorder=self.recorder,
            sample_factory=_sample,
            policy=policy,
        )
        self.catalog: dict[str, VehicleSpec] = {spec.id: spec for spec in load_catalog()}
        self.plugged: dict[int, Plugged] = {}
        self._serial = 0
        self._tasks: list[asyncio.Task[None]] = []

    run_world = True
    """Step the world's physics on its own timer as well as before every sensor read."""

    def adapt_hardware(self) -> None:
        """Change the simulated hardware before the station is built on it (a faster rig)."""

    def make_agent(
        self, vehicle: SimVehicle, line: MemoryLine, serial: str, seed: int
    ) -> VehicleAgent:
        return VehicleAgent(vehicle, line, self.clock, serial=serial, seed=seed)

    def port(self, port_id: int) -> PortController:
        return self.station.ports[port_id]

    def fits(self, port_id: int, spec: VehicleSpec) -> bool:
        """Whether the port can supply and measure this vehicle's pack."""
        port = self.port_configs[port_id]
        return port.min_voltage_v <= spec.v_min and spec.v_max <= port.max_voltage_v

    async def plug(
        self,
        port_id: int,
        model: str | VehicleSpec,
        soc_pct: float = 20.0,
        temperature_c: float = 25.0,
        seed: int = 0,
    ) -> Plugged:
        if port_id in self.plugged:
            raise ValueError(f"port {port_id} already has a vehicle")
        spec = self.catalog[model] if isinstance(model, str) else model
        vehicle = SimVehicle(
            spec,
            soc_pct=soc_pct,
            temperature_c=temperature_c,
            ambient_c=temperature_c,
            seed=seed,
            on_board_controller=port_id not in self.chargers,  # behind a stage: a bare pack
        )
        line = self._vehicle_ends[port_id]
        line.closed = False
        self._serial += 1
        agent = self.make_agent(vehicle, line, f"SCN-{port_id}-{self._serial:05d}", seed)
        self.world.attach(port_id, vehicle)
        task = asyncio.create_task(agent.run(), name=f"vehicle-{port_id}")
        plugged = Plugged(vehicle, agent, task, line)
        self.plugged[port_id] = plugged
        return plugged

    async def unplug(self, port_id: int) -> SimVehicle:
        plugged = self.plugged.pop(port_id)
        self.world.detach(port_id)
        plugged.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await plugged.task
        await plugged.agent.link.aclose()
        # The cable goes with the vehicle: whatever is still in flight is lost.
        await plugged.line.close()
        return plugged.vehicle

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Rig]:
        """Run the station and the world's physics for the body of the ``async with``."""
        self._tasks = [asyncio.create_task(self.station.run(), name="station")]
        if self.run_world:
            self._tasks.append(asyncio.create_task(self.world.run(), name="world"))
        await asyncio.sleep(0)
        try:
            yield self
        finally:
            for port_id in list(self.plugged):
                await self.unplug(port_id)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.hardware.aclose()

    async def wait_for(
        self, condition: Callable[[], bool], timeout_s: float, step_s: float = 0.05
    ) -> bool:
        """Poll ``condition`` every ``step_s`` of simulated time; False after ``timeout_s``."""
        deadline = self.clock.monotonic() + timeout_s
        while not condition():
            if self.clock.monotonic() >= deadline:
                return False
            await self.clock.sleep(step_s)
        return True


def _sample(
    t: float, volts: float, amps: float, watts: float, energy_wh: float, soc: float | None
) -> tuple[float, float, float, float, float, float | None]:
    return (t, volts, amps, watts, energy_wh, soc)
