"""The hardware layer's errors. Each also inherits the builtin it resembles."""

from __future__ import annotations


class HalError(Exception):
    """Base of every hardware-layer error."""


class SensorError(HalError, OSError):
    """A power monitor could not be read; the station treats it as a port fault."""


class ImplausibleReading(SensorError):
    """The sensor answered, but with a value that cannot be trusted (overflow, out of range)."""


class SensorOverflow(ImplausibleReading):
    """The current is beyond the shunt's range: most likely a real over-current, not a dead part."""


class RelayError(HalError, OSError):
    """A relay could not be driven."""


class StageError(HalError, OSError):
    """A power stage could not be driven or read; the station treats it as a fault of that port."""


class StageTimeout(StageError, TimeoutError):
    """The stage did not answer within its deadline (a cut cable, a hung part, a dead port)."""


class StageMismatch(StageError):
    """The stage answered, but reads back something else than was set: its output is unknown."""


class SerialLinkError(HalError, OSError):
    """A serial port could not be opened or used."""


class ConfigError(HalError, ValueError):
    """A hardware configuration that cannot be used; the message names file, port and key."""


class BackendUnavailable(HalError, ImportError):
    """A backend's packages are not installed (for example the Pi backend on a laptop)."""
