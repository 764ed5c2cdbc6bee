"""Builds a station's hardware from its configuration, by backend name.

Backends are looked up in a table and imported only when chosen (python-can's way), so the bench
never imports RPi.GPIO and a Pi without the simulator's needs still starts. A missing package is
one clear error; there is no silent fall-back to the simulator.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hal.clock import Clock
from hal.config import HalConfig
from hal.errors import BackendUnavailable, ConfigError
from hal.interfaces import PlugDetect, PowerMonitor, PowerStage, Relay, SerialLink, Watchdog

BACKENDS: dict[str, tuple[str, str]] = {
    "sim": ("hal.sim.backend", "build"),
    "pi": ("hal.pi.backend", "build"),
}


@dataclass
class PortHardware:
    port_id: int
    monitor: PowerMonitor
    relay: Relay
    link: SerialLink
    peer_path: str | None = None
    """Bench only: the pty path a vehicle or a person opens to plug into this port."""
    detect: PlugDetect | None = None
    """The connector's detect pin, where the board wires one."""
    stage: PowerStage | None = None
    """The port's programmable CC/CV stage; None where the vehicle regulates its own current."""


@dataclass
class Hardware:
    ports: dict[int, PortHardware]
    watchdog: Watchdog
    world: Any = None
    """Bench only: the :class:`hal.sim.world.BenchWorld`."""
    closers: list[Callable[[], None]] = field(default_factory=list)

    async def aclose(self) -> None:
        self.watchdog.stop()  # first: the board drops any switch that does not open below
        for port in self.ports.values():
            with contextlib.suppress(Exception):
                port.relay.open_now()
        for port in self.ports.values():
            with contextlib.suppress(Exception):  # best effort: the relays are already open
                await port.link.close()
            if port.stage is not None:
                with contextlib.suppress(Exception):
                    await port.stage.close()
        for close in self.closers:
            close()


def build_hardware(config: HalConfig, clock: Clock) -> Hardware:
    try:
        module_name, function = BACKENDS[config.backend]
    except KeyError:
        raise ConfigError(f"{config.source}: unknown backend '{config.backend}'") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"the '{config.backend}' hardware backend cannot load ({exc}); on a Raspberry Pi "
            "install the 'pi' extra into the station's venv (hardware/install.sh does)"
        ) from exc
    hardware: Hardware = getattr(module, function)(config, clock)
    for port in hardware.ports.values():
        port.relay.open_now()
    return hardware
