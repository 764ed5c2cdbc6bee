"""``pev-charger check-config`` and the command line: every mistake is one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firmware.cli import main
from firmware.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "hardware" / "station.example.toml"

PORT = {
    "id": 1,
    "sensor": "INA228",
    "i2c_address": 0x40,
    "shunt_ohms": 0.015,
    "relay_gpio": 17,
    "max_current_a": 5.0,
}


def config(**sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"hal": {"backend": "sim"}, "ports": [dict(PORT)]}
    for name, table in sections.items():
        data.setdefault(name, {}).update(table)
    return data


def test_the_example_passes_offline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--offline", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "ok (pi backend, 4 ports" in out and "devices not checked" in out


def test_online_the_example_needs_its_devices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "uart device /dev/pev-uart-14-15 does not exist" in err and "--offline" in err


def test_a_file_without_a_backend_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text('[station]\nname = "x"\n\n[[ports]]\nid = 1\n')
    with pytest.raises(ValueError, match=r"\[hal\] is missing: set backend = \"pi\""):
        parse_config({"station": {"name": "x"}, "ports": [dict(PORT)]}, str(path))
    assert main(["check-config", str(path)]) == 2


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"station": {"poll_period_s": 0.06}},
            "poll_period_s = 0.06 is more than half the watchdog's hold time",
        ),
        (
            {"station": {"poll_period_s": 0.2}, "hal": {"watchdog_hold_s": 0.3}},
            "poll_period_s = 0.2 is more than half",
        ),
        (
            {"safety": {"hard_current_factor": 1.5}},
            "hard_current_factor = 1.5 is outside 1.05..1.25",
        ),
        ({"safety": {"hard_current_factor": 0.9}}, "hard_current_factor = 0.9 is outside"),
        ({"safety": {"overcurrent_margin_frac": 0.6}}, "overcurrent_margin_frac = 0.6 is outside"),
        ({"safety": {"overvoltage_margin_frac": 0.2}}, "overvoltage_margin_frac = 0.2 is outside"),
        ({"safety": {"disconnect_debounce_s": 0.01}}, "is shorter than poll_period_s = 0.05"),
        ({"safety": {"mismatch_ohm": float("nan")}}, "mismatch_ohm = nan is outside"),
        ({"station": {"budget_w": float("nan")}}, "budget_w = nan is outside"),
        (
            {"station": {"public_url": "charger.local:8080"}},
            "public_url 'charger.local:8080' is not",
        ),
    ],
)
def test_safety_settings_have_ranges(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config(**sections), "station.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("station.toml: [")


def test_the_defaults_and_the_example_safety_pass() -> None:
    parsed = parse_config(config(station={"poll_period_s": 0.05}), "station.toml")
    assert parsed.safety.hard_current_factor == 1.25


def test_a_relative_db_path_goes_to_the_state_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert parse_config(config(), "s.toml").db_path == str(tmp_path / "state" / "records.db")
    named = parse_config(config(station={"db_path": "x/r.db"}), "s.toml")
    assert named.db_path == str(tmp_path / "state" / "x" / "r.db")
    absolute = parse_config(config(station={"db_path": "/srv/r.db"}), "s.toml")
    assert absolute.db_path == "/srv/r.db"
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.chdir(tmp_path)
    assert parse_config(config(), "s.toml").db_path == str(tmp_path / "records.db")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "-100"], "argument --budget: -100 is outside 0..100000"),
        (["--budget", "nan"], "argument --budget: nan is outside 0..100000"),
        (["--budget", "inf"], "argument --budget: inf is outside 0..100000"),
        (["--budget", "lots"], "argument --budget: 'lots' is not a number of watts"),
        (["--ports", "0"], "argument --ports: 0 is outside 1..16"),
        (["--ports", "-2"], "argument --ports: -2 is outside 1..16"),
        (["--ports", "2.5"], "argument --ports: '2.5' is not a whole number"),
        (["--stage-ports", "5"], "argument --stage-ports: 5 is outside 0..4"),
        (["--speed", "nan"], "argument --speed: nan is outside 0.1..20"),
        (["--speed", "0"], "argument --speed: 0 is outside 0.1..20"),
        (["--speed", "-5"], "argument --speed: -5 is outside 0.1..20"),
        (["--port", "70000"], "argument --port: 70000 is outside 1..65535"),
        (["--port", "http"], "argument --port: 'http' is not a TCP port"),
        (
            ["--public-url", "charger.local"],
            "argument --public-url: 'charger.local' is not an http",
        ),
        (["--public-url", "http://x:port"], "argument --public-url: 'http://x:port' has a port"),
    ],
)
def test_every_bad_command_line_value_is_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--sim", *args])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"pev-charger run: {message}")
    assert captured.err.count("\n") == 1
    assert captured.out == ""
