"""The operator's budget survives a restart of the daemon; the configuration names bad keys."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from firmware.config import ConfigError, StationConfig, parse_config
from firmware.daemon import build_daemon
from hal.clock import SimClock
from host.bench.station import bench_station_config


async def start_and_stop(config: StationConfig, watts: float | None = None) -> dict[str, object]:
    daemon = await build_daemon(config, SimClock())
    try:
        assert daemon.budget is not None
        if watts is not None:
            await daemon.budget.set_manual(watts)
        return {"budget_w": daemon.station.budget_w, **daemon.budget.view()}
    finally:
        await daemon.hardware.aclose()
        await daemon.store.close()


async def test_manual_budget_survives_restart(tmp_path: Path) -> None:
    config = replace(bench_station_config(ports=1), db_path=str(tmp_path / "var" / "bench.db"))
    first = await start_and_stop(config)
    assert first["budget_w"] == 150.0 and first["active"] == "static"
    set_once = await start_and_stop(config, 90.0)
    assert set_once["budget_w"] == 90.0 and set_once["active"] == "manual"
    again = await start_and_stop(config)
    assert again["budget_w"] == 90.0 and again["active"] == "manual"
    assert (tmp_path / "var" / "budget.json").exists()


async def test_unreadable_saved_budget_is_set_aside(tmp_path: Path) -> None:
    config = replace(bench_station_config(ports=1), db_path=str(tmp_path / "bench.db"))
    (tmp_path / "budget.json").write_text("{not json")
    view = await start_and_stop(config)
    assert view["active"] == "static"
    assert (tmp_path / "budget.json.bad").read_text() == "{not json"


def test_site_sections_parse() -> None:
    config = parse_config(
        {
            "station": {"budget_w": 800},
            "budget": {
                "source": "mqtt",
                "max_import_w": 5000,
                "fallback_w": 150,
                "mqtt": {"topic": "tele/meter/SENSOR", "key": "ENERGY.Power"},
            },
            "mqtt": {"host": "broker.lan", "username": "pev", "password": "x", "tls": True},
            "metrics": {"host": "127.0.0.1", "port": 9108},
            "hal": {"backend": "sim"},
            "ports": [
                {
                    "id": 1,
                    "sensor": "INA228",
                    "i2c_address": 0x40,
                    "shunt_ohms": 0.015,
                    "relay_gpio": 17,
                    "max_current_a": 5.0,
                }
            ],
        },
        "station.toml",
    )
    assert config.budget.max_w == 800.0
    assert config.budget.mqtt.key == "ENERGY.Power"
    assert config.mqtt.tls and config.metrics.port == 9108


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mqtt": {"password": "x"}}, r"\[mqtt\] password needs a username"),
        ({"mqtt": {"base_topic": "pev/#"}}, r"\[mqtt\] base_topic must be a topic"),
        ({"metrics": {"host": "0.0.0.0"}}, r"\[metrics\] host needs a port"),
        ({"metrics": {"port": 70000}}, r"\[metrics\] port 70000"),
        ({"mqtt": {"port": "1883"}}, r"\[mqtt\] port must be a int"),
    ],
)
def test_site_section_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data, "station.toml")
