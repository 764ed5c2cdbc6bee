"""Builds the Raspberry Pi hardware: I2C sensors, GPIO relays, the watchdog pin, UARTs."""

from __future__ import annotations

from typing import Any

from hal.clock import Clock
from hal.config import HalConfig
from hal.errors import BackendUnavailable
from hal.factory import Hardware, PortHardware
from hal.monitors import monitor_for
from hal.pi.gpio import GpioPlugDetect, GpioRelay, GpioWatchdog, load_gpio
from hal.serial_link import open_port
from hal.stage_config import pi_stage


def open_i2c(bus_number: int) -> Any:
    """The Pi's I2C bus as a busio object (Blinka), which the adafruit drivers take."""
    try:
        from adafruit_blinka.microcontroller.generic_linux.i2c import I2C as LinuxI2C  # noqa: N811
    except ImportError as exc:
        raise BackendUnavailable(
            f"the adafruit I2C stack is not installed ({exc}): pip install 'pev-charger[pi]'"
        ) from exc
    import busio

    bus = busio.I2C.__new__(busio.I2C)
    bus._i2c = LinuxI2C(bus_number, mode=LinuxI2C.MASTER, baudrate=400_000)
    return bus


def build(config: HalConfig, clock: Clock) -> Hardware:
    gpio = load_gpio()
    watchdog = GpioWatchdog(gpio, config.watchdog_gpio, config.watchdog_hold_s)
    buses: dict[int, Any] = {}
    ports: dict[int, PortHardware] = {}
    links: list[Any] = []
    try:
        for port in config.ports:
            relay = GpioRelay(gpio, port.relay_gpio, active_high=port.relay_active_high)
            bus = buses.get(port.i2c_bus)
            if bus is None:
                bus = buses[port.i2c_bus] = open_i2c(port.i2c_bus)
            monitor = monitor_for(port, bus, clock)
            link = open_port(port.uart, port.baud, exclusive=True)  # no console can share it
            links.append(link.port)
            detect = (
                GpioPlugDetect(gpio, port.detect_gpio) if port.detect_gpio is not None else None
            )
            stage = pi_stage(port, clock)  # opened on first use
            ports[port.id] = PortHardware(port.id, monitor, relay, link, detect=detect, stage=stage)
    except BaseException:
        for uart in links:  # a half-built station lets go of what it took
            uart.close()
        gpio.cleanup()
        raise
    return Hardware(ports=ports, watchdog=watchdog, closers=[gpio.cleanup])
