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


def parse(*ports: dict[str, Any], offline: bool = False, **hal: Any) -> Any:
    hal.setdefault("backend", "sim")
    return parse_hal_config({"hal": hal, "ports": list(ports)}, "station.toml", offline=offline)


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
        ([port(relay_gpio=24)], {}, "port 1: relay_gpio 24 is already used by the watchdog"),
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
        (
            [port(relay_gpio=2, uart="/dev/pev-uart-8-9")],
            {"backend": "pi"},
            "relay_gpio 2 is already used by I2C-1 SDA",
        ),
        (
            [port(relay_gpio=1, uart="/dev/pev-uart-8-9")],
            {"backend": "pi"},
            "relay_gpio 1 is reserved for the HAT ID EEPROM",
        ),
        # the example's old mistake: the watchdog kick on GPIO 4, port 3's uart3 TX
        (
            [port(uart="/dev/ttyAMA3")],
            {"backend": "pi", "board": "pi4", "watchdog_gpio": 4},
            "port 1: uart /dev/ttyAMA3 needs GPIO 4 (TX), already used by the watchdog",
        ),
        (
            [port(uart="/dev/ttyAMA2")],
            {"backend": "pi", "board": "pi5", "watchdog_gpio": 4},
            "port 1: uart /dev/ttyAMA2 needs GPIO 4 (TX), already used by the watchdog",
        ),
        (
            [port(uart="/dev/pev-uart-4-5")],
            {"backend": "pi", "watchdog_gpio": 5},
            "needs GPIO 5 (RX), already used by the watchdog",
        ),
        (
            [
                port(uart="/dev/pev-uart-8-9"),
                port(id=2, i2c_address=0x41, relay_gpio=9, uart="/dev/pev-uart-4-5"),
            ],
            {"backend": "pi"},
            "port 2: relay_gpio 9 is already used by port 1's uart RX",
        ),
        (
            [port(uart="/dev/ttyAMA3")],
            {"backend": "pi"},
            'is on different pins on a Pi 4 and a Pi 5: set [hal] board = "pi4"',
        ),
        ([port(uart="/dev/pev-uart-6-7")], {"backend": "pi"}, "names no UART of the header"),
        ([port()], {"backend": "pi", "board": "pi3"}, "board 'pi3' is not one of pi4, pi5"),
        ([port()], {"watchdog_gpio": 30}, "watchdog_gpio 30 is not a BCM GPIO"),
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
        parse_hal_config({"hal": {"backend": "sim"}}, "empty.toml")


@pytest.mark.parametrize("hal", [None, {}, {"watchdog_gpio": 24}])
def test_the_backend_is_required(hal: dict[str, Any] | None) -> None:
    data: dict[str, Any] = {"ports": [port()]}
    if hal is not None:
        data["hal"] = hal
    with pytest.raises(ConfigError, match='"pi" for the station\'s hardware'):
        parse_hal_config(data, "station.toml")


def test_offline_skips_only_the_devices() -> None:
    config = parse(port(uart="/dev/pev-uart-4-5"), backend="pi", offline=True)
    assert config.ports[0].uart == "/dev/pev-uart-4-5"
    with pytest.raises(ConfigError, match=r"does not exist .* --offline"):
        parse(port(uart="/dev/pev-uart-4-5"), backend="pi")
    with pytest.raises(ConfigError, match="already used by the watchdog"):
        parse(port(uart="/dev/pev-uart-4-5"), backend="pi", watchdog_gpio=4, offline=True)


def test_a_usb_serial_adapter_takes_no_header_pins() -> None:
    config = parse(
        port(uart="/dev/ttyUSB0", relay_gpio=4), backend="pi", watchdog_gpio=24, offline=True
    )
    assert config.ports[0].relay_gpio == 4


def test_the_example_validates_offline_on_any_machine() -> None:
    config = load_hal_config(ROOT / "hardware" / "station.example.toml", offline=True)
    assert config.backend == "pi" and len(config.ports) == 4
    assert config.watchdog_gpio not in (4, 5)


def test_the_example_board_validates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = (ROOT / "hardware" / "station.example.toml").read_text()
    # Online, the devices must exist: stand their paths in with files here (the pins these names
    # stand for are checked offline above).
    for index, device in enumerate(
        ["/dev/pev-uart-14-15", "/dev/pev-uart-0-1", "/dev/pev-uart-4-5", "/dev/pev-uart-8-9"]
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
