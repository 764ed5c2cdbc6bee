"""An external-device port: a simulated pack on the port, and no simulated protocol agent.

Whatever speaks PEV Link on the port's pty (an outside vehicle through a USB-serial adapter,
``pev-vehicle --serial``, ``pev-console``, ``pev-conformance``) is the vehicle's brain; the bench
provides only its battery, so the station measures a real pack voltage when its switch closes and
a real current while it charges. The pack draws what the device reports drawing (``TEL i``): the
device's own charge controller decides the current (§5), and the bench makes the electrical side
follow, as a pack behind that controller would. The bench reads the device's lines on the cable
itself; the station is not involved.
"""

from __future__ import annotations

from firmware.pevlink import LineBuffer, ProtocolError, Telemetry, decode
from host.vehicle.model import SimVehicle


class ExternalPack:
    """The world's load for a port with an outside device: a pack that follows the device's TEL."""

    def __init__(self, vehicle: SimVehicle) -> None:
        self.vehicle = vehicle
        self.reported_a = 0.0
        """The current the device last reported drawing (TEL i); written by the cable's thread."""
        self._lines = LineBuffer()

    def hear(self, data: bytes) -> None:
        """Bytes from the device towards the station (called on the cable's copying thread)."""
        for item in self._lines.feed(data):
            if isinstance(item, bytes):
                try:
                    message = decode(item).message
                except ProtocolError:
                    continue
                if isinstance(message, Telemetry):
                    self.reported_a = max(0.0, message.current_a)

    def advance(self, dt_s: float, supply_closed: bool) -> None:
        self.vehicle.set_grant(self.reported_a if supply_closed else 0.0)
        self.vehicle.advance(dt_s, supply_closed)

    @property
    def terminal_voltage_v(self) -> float:
        return self.vehicle.terminal_voltage_v

    @property
    def current_a(self) -> float:
        return self.vehicle.current_a

    def view(self) -> dict[str, object]:
        return {
            "model": self.vehicle.spec.id,
            "name": self.vehicle.spec.name,
            "reported_a": self.reported_a,
            **self.vehicle.snapshot(),
        }
