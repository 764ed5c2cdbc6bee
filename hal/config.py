"""The hardware port map: parsed from TOML, validated, with errors that name file, port and key.

[hal]
backend = "pi"            # "pi" or "sim": required, so a station never runs simulated by mistake
board = "pi5"             # "pi4" or "pi5": which pins /dev/ttyAMAn is on (not needed with the
                          # install's stable names, /dev/pev-uart-TX-RX)
watchdog_gpio = 24
watchdog_hold_s = 0.1

[[ports]]
id = 1
sensor = "INA228"         # "INA219" (bus input to 26 V) or "INA228" (to 85 V); a port for packs
                          # above 85 V adds voltage_sensor = "ADS1115" (hal/hv_config.py)
i2c_bus = 1
i2c_address = 0x40
shunt_ohms = 0.015
relay_gpio = 17
relay_active_high = true
uart = "/dev/pev-uart-14-15"
baud = 115200
max_current_a = 5.0
min_voltage_v = 12.0
max_voltage_v = 84.0

With the Pi backend every header pin has one owner: a relay, a detect input, the watchdog, a UART's
TX and RX, I2C-1 (GPIO 2/3, every sensor), or the MCP2515 CAN board (SPI0 and its interrupt) when
a stage is on CAN. GPIO 0/1 (the ID EEPROM's) may carry a UART only.
``offline=True`` checks a file on another machine: everything but the devices' existence.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hal.errors import ConfigError
from hal.hv_config import ADS1115_ADDRESSES, can_gpio, check_hv_port, claim_adc
from hal.pi.uarts import BOARDS, uart_pins
from hal.stage_config import check_stages

SENSOR_LIMIT_V = {"INA219": 26.0, "INA228": 85.0}
BACKENDS = ("sim", "pi")
I2C1_GPIO = {2: "I2C-1 SDA (the sensors)", 3: "I2C-1 SCL (the sensors)"}
ID_EEPROM_GPIO = {0: "the HAT ID EEPROM (ID_SD)", 1: "the HAT ID EEPROM (ID_SC)"}
"""I2C-1 carries every sensor; the ID EEPROM's pins may carry a UART, never a switch or input."""


@dataclass(frozen=True, slots=True)
class PortConfig:
    id: int
    sensor: str = "INA228"
    i2c_bus: int = 1
    i2c_address: int = 0x40
    shunt_ohms: float = 0.015
    bus_range_v: int = 32
    gain: int = 8
    relay_gpio: int = 17
    relay_active_high: bool = True
    detect_gpio: int | None = None
    """The connector's detect pin (pulled up; the plug ties it to ground), if the board has one."""
    uart: str = ""
    baud: int = 115200
    max_current_a: float = 5.0
    min_voltage_v: float = 12.0
    max_voltage_v: float = 84.0
    stage: str = ""
    """The port's programmable CC/CV stage (hal/stage_config.py): "" when the vehicle regulates
    its own current, "rd60xx", "elcon", or "sim" on the bench."""
    stage_path: str = ""
    stage_baud: int = 115200
    stage_device_id: int = 1
    stage_timeout_s: float = 0.5
    stage_can_channel: str = "can0"
    stage_can_address: int = 0xE5
    stage_max_voltage_v: float = 0.0
    stage_max_current_a: float = 0.0
    shunt_side: str = "high"
    """Where the INA's shunt sits: "low" only with ``voltage_sensor`` (hal/hv_config.py)."""
    voltage_sensor: str = ""
    """"" when the INA measures the pack's voltage; "ADS1115" through a divider."""
    adc_address: int = 0x48
    adc_channel: int = 0
    adc_gain: int = 1
    divider_top_ohms: float = 1_000_000.0
    divider_bottom_ohms: float = 22_000.0

    @property
    def sensor_range_a(self) -> float:
        """The sensor is calibrated above the port's limit, so an over-current reads as a value."""
        return self.max_current_a * SENSOR_HEADROOM


SENSOR_HEADROOM = 1.25
"""The station's hard over-current factor: up to there a current is measured, not flagged."""


@dataclass(frozen=True, slots=True)
class HalConfig:
    backend: str = "sim"
    board: str | None = None
    """"pi4" or "pi5", where the configuration names the kernel's UART devices."""
    watchdog_gpio: int = 24
    watchdog_hold_s: float = 0.1
    can_interrupt_gpio: int = 25
    """The MCP2515 CAN board's interrupt pin, taken when a port's stage is on CAN."""
    ports: tuple[PortConfig, ...] = field(default_factory=tuple)
    source: str = "<defaults>"


_PORT_TYPES: dict[str, type] = {
    "id": int,
    "sensor": str,
    "i2c_bus": int,
    "i2c_address": int,
    "shunt_ohms": float,
    "bus_range_v": int,
    "gain": int,
    "relay_gpio": int,
    "relay_active_high": bool,
    "detect_gpio": int,
    "uart": str,
    "baud": int,
    "max_current_a": float,
    "min_voltage_v": float,
    "max_voltage_v": float,
    "stage": str,
    "stage_path": str,
    "stage_baud": int,
    "stage_device_id": int,
    "stage_timeout_s": float,
    "stage_can_channel": str,
    "stage_can_address": int,
    "stage_max_voltage_v": float,
    "stage_max_current_a": float,
    "shunt_side": str,
    "voltage_sensor": str,
    "adc_address": int,
    "adc_channel": int,
    "adc_gain": int,
    "divider_top_ohms": float,
    "divider_bottom_ohms": float,
}
_HAL_TYPES: dict[str, type] = {
    "backend": str,
    "board": str,
    "watchdog_gpio": int,
    "watchdog_hold_s": float,
    "can_interrupt_gpio": int,
}


def _check_type(where: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{where} must be a whole number, not {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where} must be {kind.__name__}, not {type(value).__name__} {value!r}")
    return value


def _port(source: str, index: int, table: Any) -> PortConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: ports[{index}] must be a table")
    label = f"port {table.get('id', f'#{index + 1}')}"
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _PORT_TYPES:
            raise ConfigError(f"{source}: {label}: unknown key '{key}'")
        values[key] = _check_type(f"{source}: {label}: {key}", value, _PORT_TYPES[key])
    if "id" not in values:
        raise ConfigError(f"{source}: ports[{index}]: missing key 'id'")
    port = PortConfig(**values)
    where = f"{source}: port {port.id}"
    if not 1 <= port.id <= 99:
        raise ConfigError(f"{where}: id must be 1..99")
    if port.sensor not in SENSOR_LIMIT_V:
        raise ConfigError(f"{where}: sensor '{port.sensor}' is not INA219 or INA228")
    if not 0x40 <= port.i2c_address <= 0x4F:
        raise ConfigError(
            f"{where}: i2c_address 0x{port.i2c_address:02X} is outside 0x40..0x4F "
            f"(the {port.sensor}'s address pins select one of 16)"
        )
    if not 0 < port.shunt_ohms <= 10:
        raise ConfigError(f"{where}: shunt_ohms must be above 0 and at most 10")
    if port.sensor == "INA219":
        if port.bus_range_v not in (16, 32):
            raise ConfigError(f"{where}: bus_range_v must be 16 or 32")
        if port.gain not in (1, 2, 4, 8):
            raise ConfigError(f"{where}: gain must be 1, 2, 4 or 8")
        shunt_max_a = 0.04 * port.gain / port.shunt_ohms
    else:
        shunt_max_a = 0.16384 / port.shunt_ohms
    if not 0 < port.max_current_a <= 50:
        raise ConfigError(f"{where}: max_current_a must be above 0 and at most 50")
    if port.sensor_range_a > shunt_max_a:
        raise ConfigError(
            f"{where}: max_current_a {port.max_current_a:g} A needs the sensor to measure "
            f"{port.sensor_range_a:g} A ({SENSOR_HEADROOM:g} x, to see an over-current), beyond "
            f"what a {port.shunt_ohms:g} Ω shunt lets the {port.sensor} measure "
            f"({shunt_max_a:.2f} A)"
        )
    check_hv_port(where, port, SENSOR_LIMIT_V[port.sensor])
    if not 0 < port.min_voltage_v < port.max_voltage_v:
        raise ConfigError(f"{where}: need 0 < min_voltage_v < max_voltage_v")
    if not 0 <= port.relay_gpio <= 27:
        raise ConfigError(f"{where}: relay_gpio {port.relay_gpio} is not a BCM GPIO (0..27)")
    if port.detect_gpio is not None and not 0 <= port.detect_gpio <= 27:
        raise ConfigError(f"{where}: detect_gpio {port.detect_gpio} is not a BCM GPIO (0..27)")
    if port.baud not in (9600, 19200, 38400, 57600, 115200, 230400):
        raise ConfigError(f"{where}: baud {port.baud} is not a standard rate")
    return port


def parse_hal_config(
    data: dict[str, Any], source: str = "<config>", *, offline: bool = False
) -> HalConfig:
    """``data`` holds the ``hal`` table and the ``ports`` array of a parsed TOML document.

    ``[hal] backend`` is required: a station without it would run on simulated hardware.
    """
    hal = data.get("hal")
    if hal is None:
        raise ConfigError(
            f'{source}: [hal] is missing: set backend = "pi" for the station\'s hardware '
            '(or "sim" for simulated hardware)'
        )
    if not isinstance(hal, dict):
        raise ConfigError(f"{source}: [hal] must be a table")
    values: dict[str, Any] = {"source": source}
    for key, value in hal.items():
        if key not in _HAL_TYPES:
            raise ConfigError(f"{source}: [hal]: unknown key '{key}'")
        values[key] = _check_type(f"{source}: [hal]: {key}", value, _HAL_TYPES[key])
    if "backend" not in values:
        raise ConfigError(
            f"{source}: [hal]: missing key 'backend': \"pi\" for the station's hardware, "
            '"sim" for simulated hardware'
        )
    backend = values["backend"]
    if backend not in BACKENDS:
        raise ConfigError(
            f"{source}: [hal]: backend '{backend}' is not one of {', '.join(BACKENDS)}"
        )
    if not 0.01 <= values.get("watchdog_hold_s", 0.1) <= 2.0:
        raise ConfigError(f"{source}: [hal]: watchdog_hold_s must be 0.01..2")
    if values.get("board") is not None and values["board"] not in BOARDS:
        raise ConfigError(
            f"{source}: [hal]: board '{values['board']}' is not one of {', '.join(BOARDS)}"
        )
    for key, default in (("watchdog_gpio", 24), ("can_interrupt_gpio", 25)):
        if not 0 <= values.get(key, default) <= 27:
            raise ConfigError(f"{source}: [hal]: {key} {values[key]} is not a BCM GPIO (0..27)")
    raw_ports = data.get("ports", [])
    if not isinstance(raw_ports, list) or not raw_ports:
        raise ConfigError(f"{source}: at least one [[ports]] table is needed")
    ports = tuple(_port(source, i, table) for i, table in enumerate(raw_ports))
    config = HalConfig(ports=ports, **values)
    _check_unique(config, offline)
    check_stages(config, offline)
    return config


def _check_unique(config: HalConfig, offline: bool) -> None:
    source, pi = config.source, config.backend == "pi"
    ids: set[int] = set()
    addresses: dict[tuple[int, int], str] = {}
    gpios: dict[int, str] = {}
    if pi:
        gpios.update(I2C1_GPIO)
        _claim(f"{source}: [hal]", gpios, "watchdog_gpio", config.watchdog_gpio, "the watchdog")
        for pin, owner in can_gpio(config).items():
            name = "can_interrupt_gpio" if "INT" in owner else "the CAN board's SPI0 pin"
            _claim(f"{source}: [hal]", gpios, name, pin, owner)
    else:
        gpios[config.watchdog_gpio] = "the watchdog"
    uarts: dict[str, int] = {}
    ports = config.ports
    for port in ports:
        where = f"{source}: port {port.id}"
        if port.id in ids:
            raise ConfigError(f"{where}: duplicate port id")
        ids.add(port.id)
        key = (port.i2c_bus, port.i2c_address)
        if key in addresses:
            raise ConfigError(
                f"{where}: i2c_address 0x{port.i2c_address:02X} on bus {port.i2c_bus} is already "
                f"used by {addresses[key]}"
            )
        addresses[key] = f"port {port.id}"
        claim_adc(where, port, addresses)
        pins = [("relay_gpio", port.relay_gpio, f"port {port.id}")]
        if port.detect_gpio is not None:
            pins.append(("detect_gpio", port.detect_gpio, f"port {port.id}'s detect pin"))
        for name, pin, owner in pins:
            if pi:
                _claim(where, gpios, name, pin, owner)
            elif pin in gpios:
                raise ConfigError(f"{where}: {name} {pin} is already used by {gpios[pin]}")
            gpios[pin] = owner
        if pi:
            if not port.uart:
                raise ConfigError(f"{where}: missing key 'uart' (the port's serial device)")
            if port.uart in uarts:
                raise ConfigError(
                    f"{where}: uart {port.uart} is already used by port {uarts[port.uart]}"
                )
            uarts[port.uart] = port.id
            _claim_uart(where, gpios, port, config.board)
    if pi and not offline:  # the pin map first: it can be checked anywhere
        for port in ports:
            if not Path(port.uart).exists():
                raise ConfigError(
                    f"{source}: port {port.id}: uart device {port.uart} does not exist (on "
                    "another machine than the station, check with --offline)"
                )


def _claim(where: str, gpios: dict[int, str], name: str, pin: int, owner: str) -> None:
    """Give ``pin`` to ``owner``, or say who has it; reserved pins go to no relay or input."""
    if pin in gpios:
        raise ConfigError(f"{where}: {name} {pin} is already used by {gpios[pin]}")
    if pin in ID_EEPROM_GPIO:
        raise ConfigError(f"{where}: {name} {pin} is reserved for {ID_EEPROM_GPIO[pin]}")
    gpios[pin] = owner


def _claim_uart(where: str, gpios: dict[int, str], port: PortConfig, board: str | None) -> None:
    try:
        pins = uart_pins(port.uart, board)
    except ValueError as exc:
        raise ConfigError(f"{where}: uart: {exc}") from None
    if pins is None:
        return  # USB or I2C/SPI-attached: no header pins
    for role, pin in zip(("TX", "RX"), pins, strict=True):
        if pin in gpios:
            raise ConfigError(
                f"{where}: uart {port.uart} needs GPIO {pin} ({role}), already used by {gpios[pin]}"
            )
        gpios[pin] = f"port {port.id}'s uart {role}"


def load_hal_config(path: str | Path, *, offline: bool = False) -> HalConfig:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_hal_config(data, str(path), offline=offline)


def bench_config(n_ports: int = 4, stage_ports: int = 0, hv_ports: int = 0) -> HalConfig:
    """Simulated ports. Every fourth port (3, 7, ...) has an INA219 for small packs (to 25.5 V);
    the others have INA228s for packs to 84 V, so the station is always tested against both.
    ``stage_ports`` more ports follow, each behind a simulated RD6006 (packs to 58.8 V, bare
    packs regulated by the station), then ``hv_ports`` high-voltage ports (packs to 126 V: an
    ADS1115 through the divider, a low-side INA228, a simulated TC/Elcon charger on CAN). The
    ADS1115s take 0x4B downwards; the INAs the other addresses from 0x40 upwards."""
    if hv_ports > len(ADS1115_ADDRESSES) or n_ports + stage_ports + 2 * hv_ports > 16:
        raise ConfigError(
            "the bench has at most 16 I2C addresses (0x40-0x4F): one per port and one more per "
            "high-voltage port's ADS1115 (at most four)"
        )
    adcs = sorted(ADS1115_ADDRESSES, reverse=True)[:hv_ports]
    free = [a for a in range(0x40, 0x50) if a not in adcs]
    ports = []
    for index in range(n_ports + stage_ports + hv_ports):
        base = PortConfig(
            id=index + 1, i2c_address=free[index], relay_gpio=5 + index, max_current_a=5.0
        )
        if index >= n_ports + stage_ports:
            port = replace(
                base,
                min_voltage_v=48.0,
                max_voltage_v=126.0,
                shunt_side="low",
                voltage_sensor="ADS1115",
                adc_address=adcs[index - n_ports - stage_ports],
                stage="sim-elcon",
                stage_can_channel=f"elcon{index + 1}",
                stage_max_voltage_v=130.0,
                stage_max_current_a=5.0,
            )
        elif index >= n_ports:
            port = replace(base, max_voltage_v=58.8, stage="sim", stage_timeout_s=1.0)
        elif index % 4 == 2:
            port = replace(base, sensor="INA219", shunt_ohms=0.05, min_voltage_v=6.0)
            port = replace(port, max_voltage_v=25.5)
        else:
            port = base
        ports.append(port)
    return HalConfig(backend="sim", ports=tuple(ports), source="<bench>")


def default_bench_config() -> HalConfig:
    return bench_config(4)
