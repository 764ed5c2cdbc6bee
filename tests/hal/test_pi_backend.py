"""The Raspberry Pi backend, as far as a machine without a Pi allows.

``FakeGpioChip`` below stands in for the Raspberry Pi's GPIO chip, which cannot exist on this
machine; it is installed as the ``RPi.GPIO`` module only inside these tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest

from hal.errors import BackendUnavailable, SerialLinkError

ROOT = Path(__file__).resolve().parents[2]


class FakeGpioChip(types.ModuleType):
    """A stand-in for the Pi's GPIO chip with the RPi.GPIO API: records every level written."""

    BCM, OUT, IN, PUD_UP, HIGH, LOW = "BCM", "OUT", "IN", "PUD_UP", 1, 0

    def __init__(self) -> None:
        super().__init__("RPi.GPIO")
        self.levels: dict[int, list[int]] = {}
        self.mode: str | None = None

    def setwarnings(self, flag: bool) -> None:
        pass

    def setmode(self, mode: str) -> None:
        self.mode = mode

    def setup(
        self, pin: int, direction: str, initial: int = 0, pull_up_down: str | None = None
    ) -> None:
        self.levels[pin] = [1 if pull_up_down == "PUD_UP" else initial]

    def input(self, pin: int) -> int:
        return self.levels[pin][-1]

    def output(self, pin: int, level: int) -> None:
        self.levels[pin].append(level)

    def cleanup(self) -> None:
        pass


@pytest.fixture
def chip(monkeypatch: pytest.MonkeyPatch) -> FakeGpioChip:
    fake = FakeGpioChip()
    package = types.ModuleType("RPi")
    package.GPIO = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", fake)
    return fake


def test_importing_the_pi_backend_needs_no_pi_packages() -> None:
    code = (
        "import sys\n"
        "import hal.pi.backend, hal.pi.gpio, hal.factory, hal.monitors\n"
        "assert 'RPi' not in sys.modules and 'RPi.GPIO' not in sys.modules\n"
        "assert 'busio' not in sys.modules and 'board' not in sys.modules\n"
        "print('lazy')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.stdout.strip() == "lazy", out.stderr


def test_missing_rpi_gpio_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from hal.pi.gpio import load_gpio

    monkeypatch.setitem(sys.modules, "RPi", None)
    with pytest.raises(BackendUnavailable, match=r"install the 'pi' extra"):
        load_gpio()


# lgpio's behaviour at import, as lgUtil.c has it: change into $LG_WD (else stay in the working
# directory) and create the notification file there; an unwritable directory fails the import.
# This stand-in for rpi-lgpio (which cannot load without a Pi) does the same, as a real package.
LGPIO_STANDIN = """
import os
workdir = os.environ.get("LG_WD") or os.getcwd()
os.chdir(workdir)
open(os.path.join(workdir, ".lgd-nfy-1"), "w").close()
"""


def _stand_in_rpi_lgpio(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "RPi" / "GPIO").mkdir(parents=True)
    (site / "RPi" / "__init__.py").write_text("")
    (site / "RPi" / "GPIO" / "__init__.py").write_text(
        "import lgpio\nBCM = 11\ndef setwarnings(flag): pass\ndef setmode(mode): pass\n"
    )
    (site / "lgpio.py").write_text(LGPIO_STANDIN)
    return site


def _load_gpio_in(site: Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from hal.pi.gpio import load_gpio\nload_gpio()\nimport os\nprint(os.getcwd())\n"
    environ = {k: v for k, v in os.environ.items() if k not in ("LG_WD", "STATE_DIRECTORY")}
    environ.update(env, PYTHONPATH=f"{ROOT}:{site}")
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=60,
    )


def test_lgpio_writes_into_the_services_directory_not_the_working_directory(
    tmp_path: Path,
) -> None:
    site = _stand_in_rpi_lgpio(tmp_path)
    runtime, cwd = tmp_path / "run", tmp_path / "cwd"
    runtime.mkdir()
    cwd.mkdir()
    done = _load_gpio_in(site, cwd, {"RUNTIME_DIRECTORY": str(runtime)})
    assert done.returncode == 0, done.stderr
    assert (runtime / ".lgd-nfy-1").exists() and not list(cwd.iterdir())


def test_an_unusable_lgpio_directory_is_one_clear_error(tmp_path: Path) -> None:
    site = _stand_in_rpi_lgpio(tmp_path)
    done = _load_gpio_in(site, tmp_path, {"LG_WD": str(tmp_path / "gone")})
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "BackendUnavailable: lgpio needs a writable directory" in last
    assert "LG_WD" in last


def test_a_failing_gpio_import_is_one_clear_error(tmp_path: Path) -> None:
    site = _stand_in_rpi_lgpio(tmp_path)
    (site / "lgpio.py").write_text("raise FileNotFoundError(2, 'No such file', '.lgd-nfy0')\n")
    done = _load_gpio_in(site, tmp_path, {})
    last = done.stderr.strip().splitlines()[-1]
    assert "the GPIO library cannot load (FileNotFoundError" in last
    assert "install the 'pi' extra" in last


def test_one_pi_extra_with_rpi_lgpio_and_never_rpi_gpio() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(extras) == {"pi", "dev"}
    names = [re.split(r"[<>=;\s\[]", req, maxsplit=1)[0].lower() for req in extras["pi"]]
    assert "rpi-lgpio" in names and "rpi.gpio" not in names


def test_the_unit_runs_where_lgpio_and_the_records_can_write() -> None:
    unit: dict[str, list[str]] = {}
    for line in (ROOT / "hardware" / "pev-charger.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            unit.setdefault(key, []).append(value)
    assert unit["WorkingDirectory"] == ["/var/lib/pev-charger"]
    assert unit["StateDirectory"] == ["pev-charger"]
    assert unit["RuntimeDirectory"] == ["pev-charger"]
    assert "LG_WD=/run/pev-charger" in unit["Environment"]
    assert int(unit["LimitNOFILE"][0]) >= 4096
    assert unit["SyslogLevelPrefix"] == ["true"]
    assert unit["ExecStart"][0].startswith("/opt/pev-charger/bin/pev-charger run --config /etc/")
    assert unit["ProtectSystem"] == ["strict"]


@pytest.mark.parametrize(
    ("active_high", "closed_level", "open_level"), [(True, 1, 0), (False, 0, 1)]
)
async def test_gpio_relay_drives_the_configured_active_level(
    chip: FakeGpioChip, active_high: bool, closed_level: int, open_level: int
) -> None:
    from hal.pi.gpio import GpioRelay, load_gpio

    relay = GpioRelay(load_gpio(), 17, active_high=active_high)
    assert chip.mode == "BCM"
    assert chip.levels[17] == [open_level]  # set up open
    await relay.close()
    assert relay.is_closed and chip.levels[17][-1] == closed_level
    relay.open_now()
    assert not relay.is_closed and chip.levels[17][-1] == open_level


def test_gpio_watchdog_toggles_and_stops_low(chip: FakeGpioChip) -> None:
    from hal.pi.gpio import GpioWatchdog, load_gpio

    watchdog = GpioWatchdog(load_gpio(), 4)
    for _ in range(4):
        watchdog.kick()
    watchdog.stop()
    assert chip.levels[4] == [0, 1, 0, 1, 0, 0]


def test_the_detect_pin_is_pulled_up_and_a_plug_pulls_it_low(chip: FakeGpioChip) -> None:
    from hal.pi.gpio import GpioPlugDetect

    detect = GpioPlugDetect(chip, 22)
    assert not detect.plugged()  # pulled up: nothing in the connector
    chip.levels[22].append(chip.LOW)  # the plug ties the pin to ground
    assert detect.plugged()


def _pi_config(uart: str) -> Any:
    from hal.config import parse_hal_config

    port = {"id": 1, "relay_gpio": 17, "uart": uart, "max_current_a": 5.0}
    return parse_hal_config({"hal": {"backend": "pi"}, "ports": [port]}, "station.toml")


@pytest.fixture
def no_sensors(monkeypatch: pytest.MonkeyPatch) -> None:
    """No INA228 can answer on this machine: the backend gets no I2C bus and no monitor."""
    monkeypatch.setattr("hal.pi.backend.open_i2c", lambda bus: object())
    monkeypatch.setattr("hal.pi.backend.monitor_for", lambda port, bus, clock: object())


async def test_the_station_holds_its_uarts_exclusively(
    chip: FakeGpioChip, no_sensors: None
) -> None:
    from hal.clock import SimClock
    from hal.pi.backend import build
    from hal.serial_link import open_serial

    controller, device = os.openpty()
    path = os.ttyname(device)
    try:
        hardware = build(_pi_config(path), SimClock())
        with pytest.raises(SerialLinkError, match=f"serial port {path} is busy"):
            await open_serial(path)  # what pev-console does
        await hardware.aclose()
        console = await open_serial(path)  # free again once the station has stopped
        with pytest.raises(SerialLinkError, match="is busy"):
            build(_pi_config(path), SimClock())  # and the station does not share it either
        await console.close()
    finally:
        os.close(controller)
        os.close(device)
