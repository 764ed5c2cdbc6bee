"""What the station needs from hardware, and nothing more.

Backends (hal/sim for the bench, hal/pi for a Raspberry Pi) implement these. A backend must
provide every abstract method; ``describe()`` is for people and logs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum, IntFlag

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


class StageMode(Enum):
    """Which limit the stage's regulator holds."""

    CONSTANT_VOLTAGE = "CV"
    CONSTANT_CURRENT = "CC"


class StageProtection(IntFlag):
    """Protection the stage has tripped; a tripped stage has switched its output off."""

    NONE = 0
    OVER_VOLTAGE = 0x01
    OVER_CURRENT = 0x02
    OVER_TEMPERATURE = 0x04
    INPUT_FAULT = 0x08
    NO_BATTERY = 0x10
    """No pack on the output, or one connected in reverse."""
    LINK_TIMEOUT = 0x20
    """The stage stopped because the station's commands stopped reaching it."""
    OTHER = 0x80


@dataclass(frozen=True, slots=True)
class StageLimits:
    """What one stage can do, and the resolution its set points are quantised to."""

    max_voltage_v: float
    max_current_a: float
    voltage_step_v: float
    current_step_a: float


@dataclass(frozen=True, slots=True)
class StageStatus:
    """One read of a stage: its set points as it holds them, and what its output does."""

    voltage_set_v: float
    current_set_a: float
    output_on: bool
    output_voltage_v: float
    output_current_a: float
    mode: StageMode
    protection: StageProtection = StageProtection.NONE
    timestamp: float = 0.0

    @property
    def tripped(self) -> bool:
        return self.protection != StageProtection.NONE


class PowerStage(ABC):
    """One port's programmable CC/CV power stage: it limits the pack's voltage and current.

    Every call is bounded by the backend's deadline on the injected clock. A stage that does not
    answer raises :class:`hal.errors.StageTimeout`; one that answers wrongly raises
    :class:`hal.errors.StageError`. :func:`hal.stages.apply_setpoints` sets and verifies: a
    read-back that differs from what was set raises :class:`hal.errors.StageMismatch`. The station
    treats each of them as a fault of that port. A backend must provide every abstract method.
    """

    part: str

    @property
    @abstractmethod
    def limits(self) -> StageLimits:
        """The part's range and resolution (known once :meth:`open` has identified it)."""

    @abstractmethod
    async def open(self) -> None:
        """Reach the part and identify it; raises :class:`hal.errors.StageError` if it is not the
        part expected."""

    @abstractmethod
    async def set_voltage(self, voltage_v: float) -> None:
        """The constant-voltage limit (the pack's full-charge voltage)."""

    @abstractmethod
    async def set_current(self, current_a: float) -> None:
        """The constant-current limit (the port's grant)."""

    @abstractmethod
    async def set_output(self, on: bool) -> None:
        """Switch the output on or off. Switching on also clears a tripped protection."""

    @abstractmethod
    async def read(self) -> StageStatus: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """The part, model, link and limits, for people and logs."""


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


class TagReader(ABC):
    """An RFID/NFC reader: it reports the UID of a tag held to it, and knows nothing else."""

    @abstractmethod
    async def read_uid(self) -> bytes | None:
        """The UID of a tag newly in the field, once per presentation; None when there is none.

        Returns within a short bounded time; raises ``OSError`` when the reader does not answer.
        """

    @abstractmethod
    async def close(self) -> None: ...

    def describe(self) -> dict[str, object]:
        return {"kind": type(self).__name__}
