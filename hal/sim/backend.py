"""The bench backend: register-level sensors on a simulated I2C bus, relays behind a watchdog,
serial cables, and the world that ties them to the vehicles.

Two compositions of the same parts: :func:`build` with real pseudo-terminals (a device path that a
person, the console or an outside vehicle can open), and :func:`build_memory` with in-memory
cables at the modelled baud rate (many ports in virtual time: the scenario runner, the benchmarks
and the tests that need no device path).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

from hal.clock import Clock
from hal.config import HalConfig, PortConfig
from hal.errors import ConfigError
from hal.factory import Hardware, PortHardware
from hal.hv_config import divider_ratio
from hal.interfaces import PowerMonitor, PowerReading, PowerStage
from hal.monitors import monitor_for
from hal.sim.ads1115 import Ads1115Model
from hal.sim.i2c import SimI2C
from hal.sim.ina219 import Ina219Model
from hal.sim.ina228 import Ina228Model
from hal.sim.memory_cable import MemoryLine, memory_cable
from hal.sim.relay import SimRelay, SimWatchdog
from hal.sim.serial_pty import PtyCable, open_peer
from hal.sim.world import BenchWorld, SimPlugDetect, SimPort, StageThroughRelay
from hal.stage_config import elcon_opener
from hal.stages import Closer, LazyStage

RELAY_STATE_FILE_ENV = "PEV_SIM_RELAY_LOG"
"""If set, every relay transition is appended to this file (for tests across processes)."""

WATCHDOG_HOLD_ENV = "PEV_SIM_WATCHDOG_HOLD_S"
"""If set, the simulated board's watchdog hold in seconds instead of the configuration's: tests
that start a whole daemon on a loaded machine to test something else than the safety loop's
timing give it a hold that a busy two-core machine can keep."""


_can_channels = itertools.count()
"""Each bench's chargers get virtual CAN channels of their own (python-can's are per process)."""


def watchdog_hold_s(config: HalConfig) -> float:
    value = os.environ.get(WATCHDOG_HOLD_ENV)
    return float(value) if value else config.watchdog_hold_s


def sim_sensor(
    port: PortConfig, bus: SimI2C, clock: Clock, range_factor: float = 1.0
) -> tuple[PowerMonitor, Ina219Model | Ina228Model]:
    """A port's register-level sensor model on ``bus``, and the real driver that reads it (with
    the ADS1115 model beside it on a high-voltage port: :func:`wire_adc` hands it to the world)."""
    sensor: Ina219Model | Ina228Model
    if port.sensor == "INA219":
        sensor = Ina219Model(port.shunt_ohms)
    else:
        sensor = Ina228Model(port.shunt_ohms)
    bus.add_device(port.i2c_address, sensor)
    if port.voltage_sensor:
        bus.add_device(port.adc_address, Ads1115Model())
    monitor = monitor_for(port, bus, clock, inline=True, range_factor=range_factor)
    return monitor, sensor


def wire_adc(port: PortConfig, sim_port: SimPort) -> None:
    """Give the world a high-voltage port's ADS1115 model and its divider."""
    if port.voltage_sensor and sim_port.bus is not None:
        adc = sim_port.bus.device(port.adc_address)
        assert isinstance(adc, Ads1115Model)
        sim_port.adc, sim_port.adc_channel = adc, port.adc_channel
        sim_port.divider_ratio = divider_ratio(port)


def sim_charger(
    port: PortConfig,
    sim_port: SimPort,
    clock: Clock,
    closers: list[Callable[[], None]],
    physics_dt_s: float = 0.05,
) -> PowerStage:
    """A simulated TC/Elcon charger on its own virtual CAN bus, fed into the vehicle through the
    relay and stepped by the world, and the real CAN driver for it on a second bus object."""
    from hal.elcon import open_bus
    from hal.sim.elcon import SimElconCharger

    channel = f"pev-bench-{next(_can_channels)}-{port.stage_can_channel}"
    charger_bus = open_bus("virtual", channel)
    closers.append(charger_bus.shutdown)
    sim_port.charger = SimElconCharger(
        clock,
        charger_bus,
        load=StageThroughRelay(sim_port),
        max_voltage_v=port.stage_max_voltage_v,
        max_current_a=port.stage_max_current_a,
        address=port.stage_can_address,
        physics_dt_s=physics_dt_s,
    )

    return LazyStage("simulated TC/Elcon charger", elcon_opener(port, clock, "virtual", channel))


def sim_stage(
    port: PortConfig, sim_port: SimPort, clock: Clock, closers: list[Callable[[], None]]
) -> PowerStage:
    """A simulated RD6006 on its own pty, fed into the vehicle through the relay, and the real
    Modbus driver for it (pymodbus's server starts on first use)."""
    from hal.riden import RD6006, RidenStage
    from hal.sim.riden import SimRiden

    sim = SimRiden(clock, RD6006, load=StageThroughRelay(sim_port), name=f"stage{port.id}")
    sim_port.stage = sim
    closers.append(sim.cable.close)

    async def opener() -> tuple[PowerStage, Closer | None]:
        await sim.start()
        driver = RidenStage(
            sim.path, clock, timeout_s=port.stage_timeout_s, voltage_cap_v=port.max_voltage_v
        )
        return driver, sim.aclose

    return LazyStage(f"simulated {RD6006.name}", opener)


def build(config: HalConfig, clock: Clock) -> Hardware:
    buses: dict[int, SimI2C] = {}
    watchdog = SimWatchdog(clock, watchdog_hold_s(config))
    ports: dict[int, PortHardware] = {}
    sim_ports: dict[int, SimPort] = {}
    closers: list[Callable[[], None]] = []
    state_file = os.environ.get(RELAY_STATE_FILE_ENV)
    for port in config.ports:
        bus = buses.setdefault(port.i2c_bus, SimI2C())
        monitor, sensor = sim_sensor(port, bus, clock)
        relay = SimRelay(
            clock, name=f"port{port.id}", watchdog=watchdog, state_file=state_file or None
        )
        cable = PtyCable(f"port{port.id}")
        closers.append(cable.close)
        link = open_peer(cable.station_path, port.baud)
        sim_port = SimPort(port.id, relay, sensor, bus=bus, address=port.i2c_address, cable=cable)
        sim_ports[port.id] = sim_port
        wire_adc(port, sim_port)
        stage: PowerStage | None = None
        if port.stage == "sim":
            stage = sim_stage(port, sim_port, clock, closers)
        elif port.stage == "sim-elcon":
            stage = sim_charger(port, sim_port, clock, closers)
        ports[port.id] = PortHardware(
            port.id,
            monitor,
            relay,
            link,
            cable.peer_path,
            detect=SimPlugDetect(sim_port, clock),
            stage=stage,
        )
    world = BenchWorld(clock, sim_ports)
    return Hardware(ports=ports, watchdog=watchdog, world=world, closers=closers)


def build_memory(
    config: HalConfig,
    clock: Clock,
    *,
    baud: int | None = 115200,
    physics_dt_s: float = 0.05,
    sensor_range_factor: float = 1.0,
) -> tuple[Hardware, dict[int, MemoryLine]]:
    """The bench backend with in-memory serial lines instead of ptys (many ports, virtual time):
    returns the hardware and the vehicle ends of the cables.

    ``sensor_range_factor`` widens each sensor's range beyond the bench backend's calibration.
    """
    buses: dict[int, SimI2C] = {}
    watchdog = SimWatchdog(clock, config.watchdog_hold_s)
    ports: dict[int, PortHardware] = {}
    sim_ports: dict[int, SimPort] = {}
    vehicle_ends: dict[int, MemoryLine] = {}
    closers: list[Callable[[], None]] = []
    for port in config.ports:
        if port.stage and port.stage != "sim-elcon":
            raise ConfigError(
                f"{config.source}: port {port.id}: a simulated Modbus stage needs a pty (the "
                "bench's build), not the in-memory rig; a sim-elcon stage is on a virtual CAN bus"
            )
        bus = buses.setdefault(port.i2c_bus, SimI2C())
        monitor, sensor = sim_sensor(port, bus, clock, sensor_range_factor)
        relay = SimRelay(clock, name=f"port{port.id}", watchdog=watchdog)
        station_end, vehicle_end = memory_cable(clock, f"port{port.id}", baud)
        vehicle_ends[port.id] = vehicle_end
        ports[port.id] = PortHardware(port.id, monitor, relay, station_end)
        sim_ports[port.id] = SimPort(port.id, relay, sensor, bus=bus, address=port.i2c_address)
        wire_adc(port, sim_ports[port.id])
        if port.stage == "sim-elcon":
            ports[port.id].stage = sim_charger(
                port, sim_ports[port.id], clock, closers, physics_dt_s
            )
    for port_hw in ports.values():
        port_hw.relay.open_now()
    world = BenchWorld(clock, sim_ports, physics_dt_s=physics_dt_s)
    for port_hw in ports.values():
        port_hw.monitor = CurrentMonitor(port_hw.monitor, world)
    return Hardware(ports=ports, watchdog=watchdog, world=world, closers=closers), vehicle_ends


class CurrentMonitor(PowerMonitor):
    """The port's sensor, read after the world's physics has caught up with the clock.

    On the bench the world steps every ``physics_dt_s`` on its own, and a sensor read between two
    steps sees the state of the last one. Here the world is brought to the present before each
    read, so the physics can take longer steps (it is the most expensive part of a long run)
    while every reading still shows the pack as it is at that moment.
    """

    def __init__(self, inner: PowerMonitor, world: BenchWorld) -> None:
        self.inner = inner
        self.world = world
        self.part = inner.part
        self.max_bus_voltage_v = inner.max_bus_voltage_v

    async def read(self) -> PowerReading:
        self.world.sync()
        return await self.inner.read()

    def describe(self) -> dict[str, object]:
        return self.inner.describe()
