"""The bench backend: register-level sensors on a simulated I2C bus, relays behind a watchdog,
pty cables, and the world that ties them to the vehicles."""

from __future__ import annotations

import os
from collections.abc import Callable

from hal.clock import Clock
from hal.config import HalConfig, PortConfig
from hal.factory import Hardware, PortHardware
from hal.interfaces import PowerMonitor
from hal.monitors import monitor_for
from hal.sim.i2c import SimI2C
from hal.sim.ina219 import Ina219Model
from hal.sim.ina228 import Ina228Model
from hal.sim.relay import SimRelay, SimWatchdog
from hal.sim.serial_pty import PtyCable, open_peer
from hal.sim.world import BenchWorld, SimPlugDetect, SimPort

RELAY_STATE_FILE_ENV = "PEV_SIM_RELAY_LOG"
"""If set, every relay transition is appended to this file (for tests across processes)."""


def sim_sensor(
    port: PortConfig, bus: SimI2C, clock: Clock, range_factor: float = 1.0
) -> tuple[PowerMonitor, Ina219Model | Ina228Model]:
    """A port's register-level sensor model on ``bus``, and the real driver that reads it."""
    sensor: Ina219Model | Ina228Model
    if port.sensor == "INA219":
        sensor = Ina219Model(port.shunt_ohms)
    else:
        sensor = Ina228Model(port.shunt_ohms)
    bus.add_device(port.i2c_address, sensor)
    monitor = monitor_for(port, bus, clock, inline=True, range_factor=range_factor)
    return monitor, sensor


def build(config: HalConfig, clock: Clock) -> Hardware:
    buses: dict[int, SimI2C] = {}
    watchdog = SimWatchdog(clock, config.watchdog_hold_s)
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
        ports[port.id] = PortHardware(
            port.id, monitor, relay, link, cable.peer_path, detect=SimPlugDetect(sim_port, clock)
        )
    world = BenchWorld(clock, sim_ports)
    return Hardware(ports=ports, watchdog=watchdog, world=world, closers=closers)
