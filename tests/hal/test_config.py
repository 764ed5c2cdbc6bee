"""The port map: every bad configuration gets an error naming the file, the port and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hal.config import bench_config, load_hal_config, parse_hal_config
from hal.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def port(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 1,
        "sensor": "INA228",
        "i2c_address": 0x40,
        "shunt_ohms": 0.015,
        "relay_gpio": 17,
        "max_current_a": 5.0,
        "min_voltage_v": 12.0,
        "max_voltage_v": 84.0,
    }
    base.update(overrides)
    return base


def parse(*ports: dict[str, Any], **hal: Any) -> Any:
    return parse_hal_config({"hal": hal, "ports": list(ports)}, "station.toml")


def test_a_good_map_parses() -> None:
    config = parse(port(), port(id=2, i2c_address=0x41, relay_gpio=27))
    assert [p.id for p in config.ports] == [1, 2]


@pytest.mark.parametrize(
    ("ports", "hal", "message"),
    [
        ([port(colour="red")], {}, "station.toml: port 1: unknown key 'colour'"),
        (
            [port(), port(id=2, relay_gpio=27)],
            {},
            "port 2: i2c_address 0x40 on bus 1 is already used by port 1",
        ),
        (
            [port(), port(id=2, i2c_address=0x41)],
            {},
            "port 2: relay_gpio 17 is already used by port 1",
        ),
        ([port(relay_gpio=4)], {}, "port 1: relay_gpio 4 is already used by the watchdog"),
        ([port(i2c_address=0x50)], {}, "port 1: i2c_address 0x50 is outside 0x40..0x4F"),
        ([port(), port(id=1, i2c_address=0x41, relay_gpio=27)], {}, "port 1: duplicate port id"),
        ([port()], {"backend": "pi"}, "port 1: missing key 'uart'"),
        (
            [port(uart="/dev/ttyNOPE9")],
            {"backend": "pi"},
            "port 1: uart device /dev/ttyNOPE9 does not exist",
        ),
        (
            [port(sensor="INA219", shunt_ohms=0.05)],
            {},
            "port 1: max_voltage_v 84 V is above what the INA219 can measure (26 V)",
        ),
        ([port(sensor="INA999")], {}, "port 1: sensor 'INA999' is not INA219 or INA228"),
        ([port(max_current_a="lots")], {}, "port 1: max_current_a must be float"),
        ([port(max_current_a=20.0)], {}, "beyond what a 0.015 Ω shunt lets the INA228 measure"),
        ([port()], {"backend": "fpga"}, "[hal]: backend 'fpga' is not one of sim, pi"),
        ([port()], {"speed": 3}, "[hal]: unknown key 'speed'"),
        ([port(relay_gpio=2)], {"backend": "pi"}, "relay_gpio 2 is reserved"),
        ([port(detect_gpio=17)], {}, "port 1: detect_gpio 17 is already used by port 1"),
        ([port(detect_gpio=40)], {}, "port 1: detect_gpio 40 is not a BCM GPIO (0..27)"),
        (
            [port(max_current_a=6.0, sensor="INA219", shunt_ohms=0.05, max_voltage_v=25.0)],
            {},
            "needs the sensor to measure 7.5 A (1.25 x, to see an over-current)",
        ),
    ],
)
def test_configuration_errors_name_the_port_and_key(
    ports: list[dict[str, Any]], hal: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(*ports, **hal)
    assert message in str(info.value)
    assert str(info.value).startswith("station.toml")


def test_no_ports_is_an_error() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        parse_hal_config({"hal": {}}, "empty.toml")


def test_the_example_board_validates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = (ROOT / "hardware" / "station.example.toml").read_text()
    # The example names the Pi's UART devices; stand their paths in with files here.
    for index, device in enumerate(
        ["/dev/ttyAMA0", "/dev/ttyAMA2", "/dev/ttyAMA3", "/dev/ttyAMA4"]
    ):
        fake = tmp_path / f"tty{index}"
        fake.touch()
        text = text.replace(f'"{device}"', f'"{fake}"')
    path = tmp_path / "station.toml"
    path.write_text(text)
    config = load_hal_config(path)
    assert config.backend == "pi" and len(config.ports) == 4


def test_the_bench_mixes_both_sensors() -> None:
    parts = {p.sensor for p in bench_config(4).ports}
    assert parts == {"INA219", "INA228"}
    assert all(
        p.max_voltage_v <= (26 if p.sensor == "INA219" else 85) for p in bench_config(8).ports
    )
