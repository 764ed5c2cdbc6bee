"""Relays and the watchdog pin through the RPi.GPIO API.

On a Raspberry Pi 4 and earlier that is RPi.GPIO itself. On a Raspberry Pi 5, RPi.GPIO cannot find
the RP1 chip ("Cannot determine SOC peripheral base address"); install the ``pi5`` extra instead,
which provides rpi-lgpio: the same ``RPi.GPIO`` module name and API, on the kernel's gpiochip
interface. Nothing here changes between the two.
"""

from __future__ import annotations

from typing import Any

from hal.errors import BackendUnavailable, RelayError
from hal.interfaces import PlugDetect, Relay, Watchdog


def load_gpio() -> Any:
    try:
        import RPi.GPIO as GPIO
    except (ImportError, RuntimeError) as exc:
        raise BackendUnavailable(
            f"RPi.GPIO is not usable here ({exc}). On a Raspberry Pi 4 or earlier: "
            "pip install 'pev-charger[pi]'; on a Raspberry Pi 5: pip uninstall RPi.GPIO && "
            "pip install 'pev-charger[pi5]' (rpi-lgpio)"
        ) from exc
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
