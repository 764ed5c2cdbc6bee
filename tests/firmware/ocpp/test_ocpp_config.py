"""The [ocpp] section: every bad value is one clear error naming the key."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from firmware.config import ConfigError, load_ocpp_section, parse_config
from firmware.ocpp.backoff import Backoff
from firmware.ocpp.config import OcppConfigError, parse_ocpp_config

ROOT = Path(__file__).resolve().parents[3]


def test_the_example_configuration_has_an_ocpp_section_that_parses() -> None:
    with (ROOT / "hardware" / "station.example.toml").open("rb") as handle:
        data = tomllib.load(handle)
    ocpp = parse_ocpp_config(data["ocpp"])
    assert ocpp.enabled is False
    assert ocpp.endpoint == "wss://csms.example.net/ocpp/PEV-0001"


def test_a_good_section() -> None:
    config = parse_config(
        {
            "hal": {"backend": "sim"},
            "ports": [{"id": 1}],
            "ocpp": {
                "enabled": True,
                "url": "ws://127.0.0.1:9000/",
                "charge_point_id": "PEV-7",
                "meter_interval_s": 15,
                "measurands": ["Energy.Active.Import.Register", "SoC"],
            },
        }
    )
    assert config.ocpp.endpoint == "ws://127.0.0.1:9000/PEV-7"
    assert config.ocpp.meter_interval_s == 15.0
    assert config.ocpp.password is None


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"enabled": True, "url": "http://x/", "charge_point_id": "A"}, "url"),
        ({"enabled": True, "url": "ws://x/", "charge_point_id": "a/b"}, "charge_point_id"),
        ({"enabled": True, "url": "ws://x/"}, "charge_point_id"),
        ({"meter_interval_s": 0}, "meter_interval_s"),
        ({"measurands": ["Temperature"]}, "measurands"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": True, "url": "ws://x/", "charge_point_id": "A", "password": ""}, "password"),
    ],
)
def test_bad_values_name_the_key(section: dict[str, object], words: str, tmp_path: Path) -> None:
    with pytest.raises(OcppConfigError, match=words):
        parse_ocpp_config(section)
    # Read from a file (``--ocpp-config``), the error also names the file.
    lines = [f"{k} = {json.dumps(v)}" for k, v in section.items()]
    path = tmp_path / "ocpp.toml"
    path.write_text("[ocpp]\n" + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=f"ocpp.toml: .*{words}"):
        load_ocpp_section(path)


def test_the_backoff_grows_to_its_ceiling_and_starts_over() -> None:
    backoff = Backoff(1.0, 30.0, jitter=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    backoff.reset()
    assert backoff.next_delay() == 1.0
    half = Backoff(4.0, 30.0, jitter=lambda: 0.0)
    assert half.next_delay() == 2.0
