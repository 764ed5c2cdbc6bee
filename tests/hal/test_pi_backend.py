"""The Raspberry Pi backend, as far as a machine without a Pi allows.

``FakeGpioChip`` below stands in for the Raspberry Pi's GPIO chip, which cannot exist on this
machine; it is installed as the ``RPi.GPIO`` module only inside these tests.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from hal.errors import BackendUnavailable

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
    with pytest.raises(BackendUnavailable, match=r"pev-charger\[pi5\]"):
        load_gpio()


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
