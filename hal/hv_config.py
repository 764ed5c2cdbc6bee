"""A high-voltage port in the configuration: its keys, the checks that keep its sensors in range,
and the header pins of the CAN board its charger needs.

[[ports]]
id = 5
sensor = "INA228"              # the current, from a shunt on the low side
shunt_side = "low"             # "high" (the default) or "low"
voltage_sensor = "ADS1115"     # the pack's voltage, through a divider into an ADS1115
adc_address = 0x48             # 0x48-0x4B; on the port's I2C bus, so no INA may take it
adc_channel = 0                # AIN0-AIN3
adc_gain = 1                   # the PGA: 1 (±4.096 V), 2 (±2.048 V), 4, 8 or 16
divider_top_ohms = 1000000.0
divider_bottom_ohms = 22000.0
max_voltage_v = 126.0

The ADS1115 runs from the Pi's 3.3 V: no input may exceed VDD + 0.3 V, so a reading is trusted up
to :data:`ADC_SUPPLY_V` whatever the gain (gain 2/3, ±6.144 V, is therefore not offered). The
divider and gain must read :data:`VOLTAGE_HEADROOM` times the port's ``max_voltage_v``, so that an
over-voltage is measured, not clipped. An INA that sees the pack's voltage directly (high side,
or as its bus input) is held to its own limit: 85 V for the INA228, 26 V for the INA219.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hal.errors import ConfigError
from hal.stage_config import set_keys

if TYPE_CHECKING:
    from hal.config import HalConfig, PortConfig

VOLTAGE_SENSORS = ("", "ADS1115")
SHUNT_SIDES = ("high", "low")
ADS1115_ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)
ADS1115_FULL_SCALE_V = {1: 4.096, 2: 2.048, 4: 1.024, 8: 0.512, 16: 0.256}
ADC_SUPPLY_V = 3.3
"""The ADS1115's VDD on the board: the highest input it reads (its inputs may see VDD + 0.3 V)."""
VOLTAGE_HEADROOM = 1.1
"""The divider and gain read this much above the port's limit: an over-voltage reads as a value."""
_ADC_KEYS = ("adc_address", "adc_channel", "adc_gain", "divider_top_ohms", "divider_bottom_ohms")
CAN_SPI_GPIO = {
    8: "the MCP2515 CAN board (SPI0 CE0)",
    9: "the MCP2515 CAN board (SPI0 MISO)",
    10: "the MCP2515 CAN board (SPI0 MOSI)",
    11: "the MCP2515 CAN board (SPI0 SCLK)",
}
"""SPI0's pins, taken when a port's stage is a TC/Elcon charger on the Pi (hardware/README.md)."""


def divider_ratio(port: PortConfig) -> float:
    return (port.divider_top_ohms + port.divider_bottom_ohms) / port.divider_bottom_ohms


def adc_reach_v(port: PortConfig) -> float:
    """The highest pack voltage the port's divider and ADC gain read without clipping."""
    top_v = min(ADS1115_FULL_SCALE_V.get(port.adc_gain, 0.0), ADC_SUPPLY_V)
    return top_v * divider_ratio(port)


def direct_limit_v(port: PortConfig, sensor_limit_v: float) -> str | None:
    """Why the port's INA would see its pack's voltage beyond the part's limit, or None."""
    if port.max_voltage_v <= sensor_limit_v:
        return None
    if port.voltage_sensor and port.shunt_side == "low":
        return None  # the INA sits near ground; the divider reads the voltage
    if port.voltage_sensor:
        return (
            f"max_voltage_v {port.max_voltage_v:g} V is above the {port.sensor}'s "
            f"{sensor_limit_v:g} V limit, and on the high side it sees the pack's voltage "
            'directly: put the shunt on the low side (shunt_side = "low")'
        )
    return (
        f"max_voltage_v {port.max_voltage_v:g} V is above what the {port.sensor} can measure "
        f"({sensor_limit_v:g} V); use an INA228 (85 V) or lower the port's limit; a port for "
        'packs above 85 V needs its high-voltage monitor: voltage_sensor = "ADS1115" with a '
        'divider, and shunt_side = "low" (hardware/README.md)'
    )


def check_hv_port(where: str, port: PortConfig, sensor_limit_v: float) -> None:
    """The voltage sensing of one port: its INA's limit, or its divider and ADC."""
    if port.voltage_sensor not in VOLTAGE_SENSORS:
        raise ConfigError(
            f"{where}: voltage_sensor '{port.voltage_sensor}' is not ADS1115 (leave it out for "
            "a port whose INA measures the voltage)"
        )
    if port.shunt_side not in SHUNT_SIDES:
        raise ConfigError(f"{where}: shunt_side '{port.shunt_side}' is not high or low")
    if not port.voltage_sensor:
        stray = set_keys(port, _ADC_KEYS)
        if stray:
            raise ConfigError(f"{where}: {stray[0]} is set but the port has no voltage_sensor")
        if port.shunt_side == "low":
            raise ConfigError(
                f"{where}: a low-side {port.sensor} cannot see the pack's voltage: add "
                'voltage_sensor = "ADS1115" and its divider'
            )
    problem = direct_limit_v(port, sensor_limit_v)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")
    if port.voltage_sensor:
        _check_adc(where, port)


def _check_adc(where: str, port: PortConfig) -> None:
    if port.adc_address not in ADS1115_ADDRESSES:
        raise ConfigError(
            f"{where}: adc_address 0x{port.adc_address:02X} is not an ADS1115's (0x48-0x4B)"
        )
    if not 0 <= port.adc_channel <= 3:
        raise ConfigError(f"{where}: adc_channel must be 0..3 (AIN0-AIN3)")
    if port.adc_gain not in ADS1115_FULL_SCALE_V:
        raise ConfigError(
            f"{where}: adc_gain {port.adc_gain} is not one of 1, 2, 4, 8, 16 (the PGA's settings "
            "a 3.3 V-supplied ADS1115 can use)"
        )
    if port.divider_top_ohms <= 0 or port.divider_bottom_ohms <= 0:
        raise ConfigError(f"{where}: divider_top_ohms and divider_bottom_ohms must be above 0")
    need_v = port.max_voltage_v * VOLTAGE_HEADROOM
    reach_v = adc_reach_v(port)
    if reach_v < need_v:
        full_scale = ADS1115_FULL_SCALE_V[port.adc_gain]
        raise ConfigError(
            f"{where}: the divider ({port.divider_top_ohms:g} Ω / {port.divider_bottom_ohms:g} Ω) "
            f"and adc_gain {port.adc_gain} (±{full_scale:g} V, read to "
            f"{min(full_scale, ADC_SUPPLY_V):g} V) reach {reach_v:.1f} V; the port's "
            f"max_voltage_v {port.max_voltage_v:g} V needs {need_v:.1f} V "
            f"({VOLTAGE_HEADROOM:g} x, to see an over-voltage)"
        )


def claim_adc(where: str, port: PortConfig, addresses: dict[tuple[int, int], str]) -> None:
    """The ADC's address on the port's bus, which no sensor or other ADC may share."""
    if not port.voltage_sensor:
        return
    key = (port.i2c_bus, port.adc_address)
    if key in addresses:
        raise ConfigError(
            f"{where}: adc_address 0x{port.adc_address:02X} on bus {port.i2c_bus} is already "
            f"used by {addresses[key]}"
        )
    addresses[key] = f"port {port.id}'s ADS1115"


def can_gpio(config: HalConfig) -> dict[int, str]:
    """The header pins the MCP2515 CAN board takes: none unless a port's stage is on CAN."""
    if config.backend != "pi" or not any(p.stage == "elcon" for p in config.ports):
        return {}
    return {**CAN_SPI_GPIO, config.can_interrupt_gpio: "the MCP2515 CAN board (INT)"}
