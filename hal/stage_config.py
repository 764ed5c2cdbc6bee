"""A port's optional power stage: its configuration keys, their checks, and the driver they build.

[[ports]]
id = 1
...
stage = "rd60xx"              # a Riden RD60xx over Modbus RTU (to 60 V)
stage_path = "/dev/ttyUSB0"   # its USB-serial port
stage_baud = 115200
stage_device_id = 1
stage_timeout_s = 0.5

[[ports]]
id = 2
...
stage = "elcon"               # a TC/Elcon charger over CAN (the packs above 60 V)
stage_can_channel = "can0"
stage_can_address = 0xE5      # 0xE5, 0xE7, 0xE8 or 0xE9: up to four on one bus
stage_max_voltage_v = 130.0   # the charger's rating: the part cannot be asked for it
stage_max_current_a = 10.0

``stage = "sim"`` (the bench only) puts a simulated RD6006 behind the port, ``stage = "sim-elcon"``
a simulated TC/Elcon charger on python-can's virtual bus (its channel named by
``stage_can_channel``, its rating by the two ``stage_max_`` keys). A port without
``stage`` is regulated by its vehicle, as before. The drivers are built here but open their part
only when the station first uses it (:class:`hal.stages.LazyStage`), so a station starts, and says
what is wrong, even while a stage is unplugged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hal.clock import Clock
from hal.errors import ConfigError
from hal.interfaces import PowerStage
from hal.stages import Closer, LazyStage, Opener

if TYPE_CHECKING:
    from hal.config import HalConfig, PortConfig

STAGE_PARTS = {"rd60xx": "pi", "elcon": "pi", "sim": "sim", "sim-elcon": "sim"}
"""Each stage part and the backend it belongs to."""
RD60XX_MAX_V = 60.0
SIM_STAGE_MAX_A = 6.0
"""The bench's simulated stage is an RD6006: 60 V, 6 A."""
ELCON_ADDRESSES = (0xE5, 0xE7, 0xE8, 0xE9)
_RD60XX_KEYS = ("stage_path", "stage_baud", "stage_device_id", "stage_timeout_s")
_ELCON_KEYS = ("stage_can_channel", "stage_can_address")
_ELCON_RATING_KEYS = ("stage_max_voltage_v", "stage_max_current_a")


def check_stages(config: HalConfig, offline: bool) -> None:
    """Refuse a stage the backend cannot have, a setting of another part, a range it cannot
    reach, and two ports on one stage."""
    paths: dict[str, int] = {}
    chargers: dict[tuple[str, int], int] = {}
    uarts = {p.uart: p.id for p in config.ports if p.uart}
    for port in config.ports:
        where = f"{config.source}: port {port.id}"
        _check_port(where, port, config.backend)
        if port.stage in ("rd60xx", "sim") and port.stage_path:
            owner = paths.get(port.stage_path, uarts.get(port.stage_path))
            if owner is not None:
                raise ConfigError(
                    f"{where}: stage_path {port.stage_path} is already used by port {owner}"
                )
            paths[port.stage_path] = port.id
        if port.stage in ("elcon", "sim-elcon"):
            key = (port.stage_can_channel, port.stage_can_address)
            if key in chargers:
                raise ConfigError(
                    f"{where}: the charger at 0x{port.stage_can_address:02X} on "
                    f"{port.stage_can_channel} is already port {chargers[key]}'s"
                )
            chargers[key] = port.id
    del offline  # a stage's device is looked for when it is opened, not in the file check


def set_keys(port: PortConfig, keys: tuple[str, ...]) -> list[str]:
    """The keys among ``keys`` that differ from their defaults: given in the file."""
    from hal.config import PortConfig

    default = PortConfig(id=port.id)
    return [k for k in keys if getattr(port, k) != getattr(default, k)]


def _check_port(where: str, port: PortConfig, backend: str) -> None:
    if not port.stage:
        stray = set_keys(port, _RD60XX_KEYS + _ELCON_KEYS + _ELCON_RATING_KEYS)
        if stray:
            raise ConfigError(f"{where}: {stray[0]} is set but the port has no stage")
        return
    if port.stage not in STAGE_PARTS:
        raise ConfigError(
            f"{where}: stage '{port.stage}' is not one of {', '.join(STAGE_PARTS)} "
            "(leave it out for a vehicle that regulates its own current)"
        )
    if STAGE_PARTS[port.stage] != backend:
        raise ConfigError(
            f"{where}: stage '{port.stage}' belongs to the '{STAGE_PARTS[port.stage]}' backend, "
            f"not '{backend}'"
        )
    if port.stage in ("elcon", "sim-elcon"):
        _check_elcon(where, port)
        return
    stray = set_keys(port, _ELCON_KEYS + _ELCON_RATING_KEYS)
    if stray:
        raise ConfigError(f'{where}: {stray[0]} is for a stage = "elcon" port')
    if port.stage == "rd60xx" and not port.stage_path:
        raise ConfigError(f"{where}: stage_path is missing (the RD60xx's USB-serial port)")
    if port.stage_baud not in (9600, 19200, 38400, 57600, 115200):
        raise ConfigError(f"{where}: stage_baud {port.stage_baud} is not an RD60xx rate")
    if not 1 <= port.stage_device_id <= 247:
        raise ConfigError(f"{where}: stage_device_id must be 1..247 (a Modbus device address)")
    if not 0.05 <= port.stage_timeout_s <= 5.0:
        raise ConfigError(f"{where}: stage_timeout_s must be 0.05..5")
    if port.max_voltage_v > RD60XX_MAX_V:
        raise ConfigError(
            f"{where}: max_voltage_v {port.max_voltage_v:g} V is above what an RD60xx reaches "
            f'({RD60XX_MAX_V:g} V); lower the port\'s limit or use stage = "elcon"'
        )
    if port.stage == "sim" and port.max_current_a > SIM_STAGE_MAX_A:
        raise ConfigError(
            f"{where}: max_current_a {port.max_current_a:g} A is above the simulated RD6006's "
            f"{SIM_STAGE_MAX_A:g} A"
        )


def _check_elcon(where: str, port: PortConfig) -> None:
    stray = set_keys(port, _RD60XX_KEYS)
    if stray:
        raise ConfigError(f'{where}: {stray[0]} is for a Modbus stage, not stage = "elcon"')
    if not port.stage_can_channel:
        raise ConfigError(f"{where}: stage_can_channel is empty (the CAN interface, e.g. can0)")
    if port.stage_can_address not in ELCON_ADDRESSES:
        raise ConfigError(
            f"{where}: stage_can_address 0x{port.stage_can_address:02X} is not one of "
            + ", ".join(f"0x{a:02X}" for a in ELCON_ADDRESSES)
        )
    if port.stage_max_voltage_v <= 0 or port.stage_max_current_a <= 0:
        raise ConfigError(
            f"{where}: stage_max_voltage_v and stage_max_current_a are needed: the charger's "
            "rating (the part cannot be asked for it)"
        )
    if port.max_voltage_v > port.stage_max_voltage_v:
        raise ConfigError(
            f"{where}: max_voltage_v {port.max_voltage_v:g} V is above the charger's "
            f"{port.stage_max_voltage_v:g} V"
        )


def pi_stage(port: PortConfig, clock: Clock) -> PowerStage | None:
    """The real driver of a port's stage, unopened; None for a vehicle-regulated port."""
    if port.stage == "rd60xx":
        from hal.riden import RidenStage

        riden = RidenStage(
            port.stage_path,
            clock,
            baud=port.stage_baud,
            device_id=port.stage_device_id,
            timeout_s=port.stage_timeout_s,
            voltage_cap_v=port.max_voltage_v,
        )
        return LazyStage(riden.part, _opened(riden))
    if port.stage == "elcon":
        return LazyStage("TC/Elcon CAN charger", elcon_opener(port, clock))
    return None


def _opened(stage: PowerStage) -> Opener:
    async def make() -> tuple[PowerStage, Closer | None]:
        return stage, None

    return make


def elcon_opener(
    port: PortConfig, clock: Clock, interface: str = "socketcan", channel: str | None = None
) -> Opener:
    """The port's TC/Elcon driver on its CAN bus (SocketCAN on the Pi; a virtual bus on the
    bench), capped at the port's own voltage limit."""

    async def make() -> tuple[PowerStage, Closer | None]:
        from hal.elcon import LEASE_S, ElconStage, open_bus

        bus = open_bus(interface, channel or port.stage_can_channel)

        async def shutdown() -> None:
            bus.shutdown()

        stage = ElconStage(
            bus,
            clock,
            max_voltage_v=min(port.stage_max_voltage_v, port.max_voltage_v),
            max_current_a=port.stage_max_current_a,
            charger_address=port.stage_can_address,
            lease_s=LEASE_S,
        )
        return stage, shutdown

    return make
