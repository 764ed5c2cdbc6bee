"""A high-voltage port in the configuration: each setting that would leave a pack unmeasured, or a
part beyond its limit, is refused in words; the bench's ports pass the same checks."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hal.clock import SimClock
from hal.config import PortConfig, bench_config, parse_hal_config
from hal.errors import ConfigError
from hal.hv_config import adc_reach_v
from hal.hv_monitor import HighVoltageMonitor
from hal.monitors import Ina228Monitor, monitor_for
from hal.sim.ads1115 import Ads1115Model
from hal.sim.i2c import SimI2C
from hal.sim.ina228 import Ina228Model

ROOT = Path(__file__).resolve().parents[2]


def port(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 1,
        "sensor": "INA228",
        "i2c_address": 0x40,
        "shunt_ohms": 0.015,
        "relay_gpio": 17,
        "max_current_a": 5.0,
        "min_voltage_v": 48.0,
        "max_voltage_v": 126.0,
        "shunt_side": "low",
        "voltage_sensor": "ADS1115",
        "adc_address": 0x48,
    }
    base.update(overrides)
    return base


def pi_elcon(**overrides: Any) -> dict[str, Any]:
    values = {
        "uart": "/dev/pev-uart-14-15",
        "stage": "elcon",
        "stage_max_voltage_v": 130.0,
        "stage_max_current_a": 10.0,
        **overrides,
    }
    return port(**values)


def parse(*ports: dict[str, Any], **hal: Any) -> Any:
    hal.setdefault("backend", "sim")
    return parse_hal_config({"hal": hal, "ports": list(ports)}, "station.toml", offline=True)


def test_a_high_voltage_port_parses_and_reads_126_v_through_its_divider() -> None:
    config = parse(port(), port(id=2, i2c_address=0x41, relay_gpio=27, adc_address=0x49))
    hv = config.ports[0]
    assert (hv.voltage_sensor, hv.shunt_side, hv.adc_gain) == ("ADS1115", "low", 1)
    assert adc_reach_v(hv) == pytest.approx(3.3 * 1_022_000 / 22_000)  # 153.3 V
    bus = SimI2C()
    bus.add_device(0x40, Ina228Model(0.015))
    bus.add_device(0x48, Ads1115Model())
    monitor = monitor_for(hv, bus, SimClock(), inline=True)
    assert isinstance(monitor, HighVoltageMonitor)
    assert isinstance(monitor.current, Ina228Monitor)
    assert monitor.max_bus_voltage_v == pytest.approx(adc_reach_v(hv))
    assert monitor.describe()["adc"] == "ADS1115 0x48 AIN0, ±4.096 V"


def test_a_pi_high_voltage_port_with_its_can_charger_parses() -> None:
    config = parse(pi_elcon(), backend="pi")
    assert config.ports[0].stage == "elcon" and config.can_interrupt_gpio == 25


@pytest.mark.parametrize(
    ("ports", "hal", "message"),
    [
        # a port above the INA's limit without its high-voltage monitor
        (
            [port(voltage_sensor="", shunt_side="high", adc_address=0x48)],
            {},
            "port 1: max_voltage_v 126 V is above what the INA228 can measure (85 V); use an "
            "INA228 (85 V) or lower the port's limit; a port for packs above 85 V needs its "
            'high-voltage monitor: voltage_sensor = "ADS1115"',
        ),
        # the INA228 on the high side of a 126 V port sees the pack's voltage directly
        (
            [port(shunt_side="high")],
            {},
            "port 1: max_voltage_v 126 V is above the INA228's 85 V limit, and on the high side it "
            'sees the pack\'s voltage directly: put the shunt on the low side (shunt_side = "low")',
        ),
        (
            [port(sensor="INA219", shunt_ohms=0.05, max_voltage_v=84.0, shunt_side="high")],
            {},
            "above the INA219's 26 V limit, and on the high side it sees the pack's voltage",
        ),
        # a divider and gain that cannot reach the port's limit (and 10 % above it)
        (
            [port(adc_gain=2)],
            {},
            "port 1: the divider (1e+06 Ω / 22000 Ω) and adc_gain 2 (±2.048 V, read to 2.048 V) "
            "reach 95.1 V; the port's max_voltage_v 126 V needs 138.6 V (1.1 x, to see an "
            "over-voltage)",
        ),
        (
            [port(divider_bottom_ohms=47_000.0)],
            {},
            "(1e+06 Ω / 47000 Ω) and adc_gain 1 (±4.096 V, read to 3.3 V) reach 73.5 V",
        ),
        ([port(divider_top_ohms=0.0)], {}, "divider_top_ohms and divider_bottom_ohms must be"),
        ([port(adc_gain=3)], {}, "port 1: adc_gain 3 is not one of 1, 2, 4, 8, 16"),
        ([port(adc_channel=4)], {}, "port 1: adc_channel must be 0..3"),
        ([port(adc_address=0x4C)], {}, "port 1: adc_address 0x4C is not an ADS1115's"),
        ([port(voltage_sensor="ADS1015")], {}, "port 1: voltage_sensor 'ADS1015' is not ADS1115"),
        ([port(shunt_side="middle")], {}, "port 1: shunt_side 'middle' is not high or low"),
        # a low-side INA without the divider measures no voltage at all
        (
            [port(voltage_sensor="", max_voltage_v=84.0)],
            {},
            "port 1: a low-side INA228 cannot see the pack's voltage: add "
            'voltage_sensor = "ADS1115"',
        ),
        (
            [port(voltage_sensor="", shunt_side="high", max_voltage_v=84.0, adc_gain=2)],
            {},
            "port 1: adc_gain is set but the port has no voltage_sensor",
        ),
        # one I2C bus: the ADC's address against the INAs' and another ADC's
        (
            [
                port(),
                port(
                    id=2,
                    i2c_address=0x48,
                    relay_gpio=27,
                    voltage_sensor="",
                    shunt_side="high",
                    max_voltage_v=84.0,
                ),
            ],
            {},
            "port 2: i2c_address 0x48 on bus 1 is already used by port 1's ADS1115",
        ),
        (
            [port(), port(id=2, i2c_address=0x41, relay_gpio=27)],
            {},
            "port 2: adc_address 0x48 on bus 1 is already used by port 1's ADS1115",
        ),
        (
            [port(i2c_address=0x48)],
            {},
            "port 1: adc_address 0x48 on bus 1 is already used by port 1",
        ),
        # the MCP2515 CAN board's pins
        (
            [pi_elcon(uart="/dev/pev-uart-8-9")],
            {"backend": "pi"},
            "port 1: uart /dev/pev-uart-8-9 needs GPIO 8 (TX), already used by the MCP2515 CAN "
            "board (SPI0 CE0)",
        ),
        (
            [pi_elcon(relay_gpio=25)],
            {"backend": "pi"},
            "port 1: relay_gpio 25 is already used by the MCP2515 CAN board (INT)",
        ),
        (
            [pi_elcon(relay_gpio=11)],
            {"backend": "pi"},
            "port 1: relay_gpio 11 is already used by the MCP2515 CAN board (SPI0 SCLK)",
        ),
        (
            [pi_elcon()],
            {"backend": "pi", "can_interrupt_gpio": 24},
            "[hal]: can_interrupt_gpio 24 is already used by the watchdog",
        ),
        ([pi_elcon()], {"backend": "pi", "can_interrupt_gpio": 40}, "can_interrupt_gpio 40 is not"),
    ],
)
def test_bad_high_voltage_settings_are_refused_in_words(
    ports: list[dict[str, Any]], hal: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(*ports, **hal)
    assert message in str(info.value)
    assert str(info.value).startswith("station.toml")


def test_the_can_pins_are_free_without_a_can_stage() -> None:
    plain = port(uart="/dev/pev-uart-8-9", relay_gpio=25, voltage_sensor="", shunt_side="high")
    plain["max_voltage_v"] = 84.0
    assert parse(plain, backend="pi").ports[0].relay_gpio == 25
    moved = parse(pi_elcon(relay_gpio=25), backend="pi", can_interrupt_gpio=6)
    assert moved.can_interrupt_gpio == 6


def as_table(port: PortConfig) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(port).items() if v is not None}


@pytest.mark.parametrize(("n", "stages", "hv"), [(4, 0, 0), (4, 1, 1), (4, 0, 1), (8, 0, 4)])
def test_the_bench_ports_pass_the_configuration_checks(n: int, stages: int, hv: int) -> None:
    bench = bench_config(n, stage_ports=stages, hv_ports=hv)
    config = parse(*(as_table(p) for p in bench.ports))
    assert config.ports == bench.ports
    assert [p.i2c_address for p in bench.ports[:n]] == [0x40 + i for i in range(n)]
    high = [p for p in bench.ports if p.voltage_sensor]
    assert len(high) == hv
    assert all(p.max_voltage_v == 126.0 and p.stage == "sim-elcon" for p in high)


def test_the_bench_has_sixteen_i2c_addresses() -> None:
    assert len(bench_config(14, hv_ports=1).ports) == 15
    with pytest.raises(ConfigError, match="at most 16 I2C addresses"):
        bench_config(15, hv_ports=1)
    with pytest.raises(ConfigError, match="at most four"):
        bench_config(4, hv_ports=5)


def test_the_examples_high_voltage_port_validates_once_port_4s_uart_leaves_spi0() -> None:
    text = (ROOT / "hardware" / "station.example.toml").read_text()
    block = text[text.index("# [[ports]]\n# id = 5") :]
    enabled = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    with pytest.raises(ConfigError, match=r"already used by the MCP2515 CAN board \(SPI0 CE0\)"):
        parse_hal_config(tomllib.loads(text + "\n" + enabled), "example", offline=True)
    moved = text.replace('uart = "/dev/pev-uart-8-9"', 'uart = "/dev/serial/by-path/port4"')
    config = parse_hal_config(tomllib.loads(moved + "\n" + enabled), "example", offline=True)
    hv = config.ports[-1]
    assert (hv.id, hv.voltage_sensor, hv.stage, hv.max_voltage_v) == (5, "ADS1115", "elcon", 126.0)
