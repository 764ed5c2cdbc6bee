"""What the station needs from hardware, and nothing more.

Backends (hal/sim for the bench, hal/pi for a Raspberry Pi) implement these. A backend must
provide every abstract method; ``describe()`` is for people and logs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from hal.errors import SerialLinkError


@dataclass(frozen=True, slots=True)
class PowerReading:
    bus_voltage_v: float
    current_a: float
    """Signed: positive into the vehicle."""
    power_w: float
    overflow: bool = False
    timestamp: float = 0.0


class PowerMonitor(ABC):
    """One port's voltage/current sensor."""

    part: str
    max_bus_voltage_v: float

    @abstractmethod
    async def read(self) -> PowerReading:
        """A fresh reading; raises :class:`hal.errors.SensorError` when it cannot be trusted."""

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """The configuration: part, address, range, gain, conversion time, shunt."""


class Relay(ABC):
    """One port's power switch (a DC-rated contactor or MOSFET switch, normally open)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    def open_now(self) -> None:
        """Open synchronously (a GPIO write). Raises :class:`hal.errors.RelayError` when the switch
        cannot be driven; it then reads as closed, since nobody knows it is open."""

    @property
    @abstractmethod
    def is_closed(self) -> bool:
        """The state the contacts are in (on the bench, after the watchdog's say)."""


class SerialLink(ABC):
    """One port's UART: bytes in, bytes out. Lines are the protocol's business."""

    name: str

    @abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abstractmethod
    async def read(self, timeout: float) -> bytes:
        """Whatever has arrived (at least one byte), or ``b""`` after ``timeout`` seconds."""

    @abstractmethod
    async def close(self) -> None: ...

    async def reopen(self) -> None:
        """Open the device again after it went away; raises while it is still absent."""
        raise SerialLinkError(f"{self.name} cannot be reopened")


class PlugDetect(ABC):
    """The connector's detect pin: it breaks before the power pins, so an unplug is seen first."""

    @abstractmethod
    def plugged(self) -> bool | None:
        """True while a plug is in, False once it is out, None when this connector cannot tell.

        A read is a GPIO level, cheap enough for every poll.
        """


class Watchdog(ABC):
    """The board's hardware watchdog: relays hold only while it is kicked."""

    hold_time_s: float

    @abstractmethod
    def kick(self) -> None: ...

    @abstractmethod
    def stop(self) -> None:
        """Stop kicking: every relay drops within ``hold_time_s``."""
