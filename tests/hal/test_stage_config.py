"""A port's optional power stage in the configuration: each wrong setting refused in words, and
the driver each part gets (opened only when the station first uses it)."""

from __future__ import annotations

from typing import Any

import pytest

from hal.clock import SimClock
from hal.config import PortConfig, parse_hal_config
from hal.errors import ConfigError, StageError
from hal.stage_config import pi_stage
from hal.stages import LazyStage


def port(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 1,
        "i2c_address": 0x40,
        "relay_gpio": 17,
        "max_current_a": 5.0,
        "min_voltage_v": 12.0,
        "max_voltage_v": 58.8,
    }
    base.update(overrides)
    return base


def parse(*ports: dict[str, Any], backend: str = "sim") -> Any:
    return parse_hal_config(
        {"hal": {"backend": backend}, "ports": list(ports)}, "station.toml", offline=True
    )


def pi_port(**overrides: Any) -> dict[str, Any]:
    return port(uart="/dev/pev-uart-14-15", **overrides)


def test_a_port_without_a_stage_is_regulated_by_its_vehicle() -> None:
    config = parse(port())
    assert config.ports[0].stage == ""
    assert pi_stage(config.ports[0], SimClock()) is None


def test_a_bench_port_may_carry_a_simulated_stage() -> None:
    config = parse(port(stage="sim"))
    assert config.ports[0].stage == "sim"


def test_an_rd60xx_port_parses_with_its_serial_settings() -> None:
    config = parse(
        pi_port(stage="rd60xx", stage_path="/dev/ttyUSB0", stage_device_id=2, stage_timeout_s=0.3),
        backend="pi",
    )
    stage = pi_stage(config.ports[0], SimClock())
    assert isinstance(stage, LazyStage)
    assert stage.describe() == {"part": "RD60xx", "opened": False}
    with pytest.raises(StageError, match="not been opened"):
        _ = stage.limits


def test_an_elcon_port_parses_with_its_bus_and_rating() -> None:
    config = parse(
        pi_port(
            stage="elcon",
            stage_can_channel="can0",
            stage_can_address=0xE7,
            stage_max_voltage_v=130.0,
            stage_max_current_a=10.0,
        ),
        backend="pi",
    )
    assert config.ports[0].stage_can_address == 0xE7
    assert isinstance(pi_stage(config.ports[0], SimClock()), LazyStage)


@pytest.mark.parametrize(
    ("ports", "backend", "message"),
    [
        ([port(stage="dps5005")], "sim", "port 1: stage 'dps5005' is not one of rd60xx, elcon"),
        ([port(stage="rd60xx", stage_path="/x")], "sim", "belongs to the 'pi' backend"),
        ([pi_port(stage="sim")], "pi", "stage 'sim' belongs to the 'sim' backend, not 'pi'"),
        ([pi_port(stage="rd60xx")], "pi", "stage_path is missing"),
        ([port(stage_path="/dev/ttyUSB0")], "sim", "stage_path is set but the port has no stage"),
        (
            [pi_port(stage="rd60xx", stage_path="/dev/ttyUSB0", max_voltage_v=84.0)],
            "pi",
            "max_voltage_v 84 V is above what an RD60xx reaches (60 V)",
        ),
        ([port(stage="sim", stage_device_id=0)], "sim", "stage_device_id must be 1..247"),
        ([port(stage="sim", stage_timeout_s=30.0)], "sim", "stage_timeout_s must be 0.05..5"),
        ([port(stage="sim", stage_baud=1200)], "sim", "stage_baud 1200 is not an RD60xx rate"),
        ([port(stage="sim", stage_can_address=0xE7)], "sim", 'is for a stage = "elcon" port'),
        ([port(stage="sim", max_current_a=8.0, shunt_ohms=0.01)], "sim", "simulated RD6006's"),
        (
            [
                pi_port(
                    stage="elcon",
                    stage_max_voltage_v=130.0,
                    stage_max_current_a=10.0,
                    stage_can_address=0xE6,
                )
            ],
            "pi",
            "stage_can_address 0xE6 is not one of 0xE5, 0xE7, 0xE8, 0xE9",
        ),
        (
            [pi_port(stage="elcon")],
            "pi",
            "stage_max_voltage_v and stage_max_current_a are needed",
        ),
        (
            [
                pi_port(
                    stage="elcon",
                    stage_path="/dev/ttyUSB0",
                    stage_max_voltage_v=130.0,
                    stage_max_current_a=10.0,
                )
            ],
            "pi",
            "stage_path is for a Modbus stage",
        ),
        (
            [
                pi_port(stage="rd60xx", stage_path="/dev/ttyUSB0"),
                port(
                    id=2,
                    i2c_address=0x41,
                    relay_gpio=27,
                    uart="/dev/pev-uart-4-5",
                    stage="rd60xx",
                    stage_path="/dev/ttyUSB0",
                ),
            ],
            "pi",
            "port 2: stage_path /dev/ttyUSB0 is already used by port 1",
        ),
        (
            [
                pi_port(stage="elcon", stage_max_voltage_v=130.0, stage_max_current_a=10.0),
                port(
                    id=2,
                    i2c_address=0x41,
                    relay_gpio=27,
                    uart="/dev/pev-uart-4-5",
                    stage="elcon",
                    stage_max_voltage_v=130.0,
                    stage_max_current_a=10.0,
                ),
            ],
            "pi",
            "port 2: the charger at 0xE5 on can0 is already port 1's",
        ),
    ],
)
def test_bad_stage_settings_are_refused_in_words(
    ports: list[dict[str, Any]], backend: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(*ports, backend=backend)


def test_the_riden_driver_is_capped_at_the_ports_limit() -> None:
    stage = pi_stage(
        PortConfig(id=1, stage="rd60xx", stage_path="/dev/ttyUSB0", max_voltage_v=42.0),
        SimClock(),
    )
    assert isinstance(stage, LazyStage)
    assert stage.inner is None  # nothing is opened before the first use
