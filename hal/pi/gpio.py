"""Relays and the watchdog pin through the RPi.GPIO API, provided by rpi-lgpio on every Pi.

rpi-lgpio is the RPi.GPIO module name and API on the kernel's gpiochip interface (through lgpio),
so one stack serves a Pi 4 and a Pi 5; the original RPi.GPIO cannot find a Pi 5's RP1 chip
("Cannot determine SOC peripheral base address"). The ``pi`` extra installs rpi-lgpio only.

lgpio writes its notification files (``.lgd-nfy*``) into ``$LG_WD``, else into the working
directory, and changes into that directory when it is imported. Under systemd's
``ProtectSystem=strict`` the working directory ``/`` is read-only and the import fails, so
:func:`load_gpio` points ``LG_WD`` at the service's runtime or state directory when it is unset,
checks that the directory is writable first, and turns any import failure into one clear error.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

from hal.errors import BackendUnavailable, RelayError
from hal.interfaces import PlugDetect, Relay, Watchdog

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install the 'pi' extra into the station's venv "
    "(/opt/pev-charger/bin/pip install '.[pi]', see hardware/README.md); if RPi.GPIO is installed "
    "there, remove it first: it shadows rpi-lgpio and does not run on a Pi 5"
)


def lgpio_workdir(environ: MutableMapping[str, str] = os.environ) -> str:
    """Where lgpio will write: ``$LG_WD``, else systemd's runtime or state directory (set as
    ``LG_WD`` for lgpio), else the working directory."""
    if environ.get("LG_WD"):
        return environ["LG_WD"]
    for name in ("RUNTIME_DIRECTORY", "STATE_DIRECTORY"):
        value = environ.get(name, "").split(":")[0]
        if value:
            environ["LG_WD"] = value
            return value
    return os.getcwd()


def load_gpio() -> Any:
    workdir = lgpio_workdir()
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise BackendUnavailable(
            f"lgpio needs a writable directory and {workdir} is not: set LG_WD (the unit sets "
            "RuntimeDirectory=pev-charger and LG_WD=/run/pev-charger) or WorkingDirectory="
        )
    try:
        import RPi.GPIO as GPIO
    except Exception as exc:  # ImportError, RuntimeError (wrong SoC), OSError from lgpio
        raise BackendUnavailable(
            f"the GPIO library cannot load ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
        ) from exc
    if "lgpio" not in sys.modules:
        log.warning("RPi.GPIO is the original library, not rpi-lgpio: it runs on a Pi 4 only")
    GPIO.setwarnings(False)
    GPIO.setmode(GPIO.BCM)
    return GPIO


class GpioRelay(Relay):
    """A relay driver on one BCM pin; ``active_high`` says which level closes it."""

    def __init__(self, gpio: Any, pin: int, *, active_high: bool = True) -> None:
        self._gpio = gpio
        self.pin = pin
        self.active_high = active_high
        self._closed = False
        self.unknown = False
        try:
            gpio.setup(pin, gpio.OUT, initial=self._level(False))
        except Exception as exc:
            raise RelayError(f"GPIO {pin}: cannot set up as output: {exc}") from exc

    def _level(self, closed: bool) -> Any:
        high = closed == self.active_high
        return self._gpio.HIGH if high else self._gpio.LOW

    def _drive(self, closed: bool) -> None:
        try:
            self._gpio.output(self.pin, self._level(closed))
        except Exception as exc:
            # The pin's level is not known any more: count the switch as closed, never as open.
            self.unknown = True
            raise RelayError(f"GPIO {self.pin}: cannot drive the relay: {exc}") from exc
        self._closed = closed
        self.unknown = False

    async def close(self) -> None:
        # A GPIO write takes microseconds: done in place, never queued behind other threads' work.
        self._drive(True)

    async def open(self) -> None:
        self._drive(False)

    def open_now(self) -> None:
        """Open synchronously; raises :class:`RelayError` (and the relay is unknown) on failure."""
        self._drive(False)

    @property
    def is_closed(self) -> bool:
        return self._closed or self.unknown


class GpioPlugDetect(PlugDetect):
    """The connector's detect pin, pulled up on the Pi; a plug ties it to ground."""

    def __init__(self, gpio: Any, pin: int) -> None:
        self._gpio = gpio
        self.pin = pin
        gpio.setup(pin, gpio.IN, pull_up_down=gpio.PUD_UP)

    def plugged(self) -> bool:
        return bool(self._gpio.input(self.pin) == self._gpio.LOW)


class GpioWatchdog(Watchdog):
    """Toggles the pin that retriggers the board's monostable (see hardware/README.md)."""

    def __init__(self, gpio: Any, pin: int, hold_time_s: float = 0.1) -> None:
        self._gpio = gpio
        self.pin = pin
        self.hold_time_s = hold_time_s
        self._level = False
        gpio.setup(pin, gpio.OUT, initial=gpio.LOW)

    def kick(self) -> None:
        self._level = not self._level
        self._gpio.output(self.pin, self._gpio.HIGH if self._level else self._gpio.LOW)

    def stop(self) -> None:
        self._gpio.output(self.pin, self._gpio.LOW)
