"""Deliberately broken peers, each wrong in one way, for the conformance kit to catch.

They are the reference vehicle and station with one rule broken: a subclass or a transport
wrapper, so that everything else they do is the reference behaviour.
"""

from __future__ import annotations

import types

from firmware.pevlink import Grant, GrantReply, Message, Power
from firmware.pevlink.errors import PevLinkError
from firmware.pevlink.link import ByteTransport
from firmware.station.at_rest import verify_at_rest
from firmware.station.port import PortController, PortState
from firmware.station.safety import Trip
from firmware.station.states import PortEvent
from host.vehicle.agent import VehicleAgent


class NoTelemetryVehicle(VehicleAgent):
    """Never sends TEL (its link still sends HB when idle)."""

    async def _send_telemetry(self) -> None:
        return


class StubbornVehicle(VehicleAgent):
    """Confirms a lowered grant but goes on drawing the higher one."""

    async def _on_request(self, message: Message) -> Message:
        if isinstance(message, Grant) and self.power_on and message.current_a < self.grant_a:
            return GrantReply(message.current_a)
        return await super()._on_request(message)


def crc16_poly8005(data: bytes) -> int:
    """The wrong checksum: CRC-16 with polynomial 0x8005 instead of 0x1021 (same init 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


class _Rewriting:
    """A transport that rewrites each whole line the agent writes."""

    def __init__(self, inner: ByteTransport) -> None:
        self.inner = inner

    async def read(self, timeout: float) -> bytes:
        return await self.inner.read(timeout)

    async def write(self, data: bytes) -> None:
        out = b"".join(self.rewrite(line) for line in data.splitlines(keepends=True))
        await self.inner.write(out)

    def rewrite(self, line: bytes) -> bytes:
        return line


class WrongCrcTransport(_Rewriting):
    def rewrite(self, line: bytes) -> bytes:
        star = line.rfind(b"*")
        if not line.startswith(b"$") or star < 0:
            return line
        body = line[1:star]
        return b"$" + body + b"*" + f"{crc16_poly8005(body):04X}".encode() + b"\r\n"


class NoEchoTransport(_Rewriting):
    """Replies go out under the next number, not the request's."""

    def rewrite(self, line: bytes) -> bytes:
        if not line.startswith(b"$R"):
            return line
        from firmware.pevlink import crc16

        seq = (int(line[2:4], 16) + 1) % 256
        body = f"R{seq:02X}".encode() + line[4 : line.rfind(b"*")]
        return b"$" + body + b"*" + f"{crc16(body):04X}".encode() + b"\r\n"


async def _admit_before_grant(self: PortController, current_a: float, why: str) -> bool:
    """PortController.admit with the order broken: switch and POWER on=1 first, GRANT after."""
    session = self.session
    if self.state != PortState.WAITING or self.battery is None or session is None or self.busy:
        return False
    async with self.lock:
        try:
            self.move(PortEvent.ADMIT)
            await self.io.relay.close()
            trip = await verify_at_rest(self, self.clock.monotonic())
            if trip is not None:
                self.trip(trip)
                return False
            self.verified = True
            await self.link.request(Power(1))
            reply = await self.link.request(Grant(current_a, self.battery.v_max_v, why[:16]))
            self.grant_a = min(current_a, getattr(reply, "current_a", current_a))
            session.power_on(self.clock.monotonic())
            self.move(PortEvent.POWERED)
            return True
        except (PevLinkError, OSError) as exc:
            self.trip(Trip("link", f"The vehicle did not complete the start: {exc}"))
            return False


def power_before_grant(port: PortController) -> None:
    """Make one port close its switch and send POWER on=1 before the vehicle accepted a GRANT."""
    port.admit = types.MethodType(_admit_before_grant, port)  # type: ignore[method-assign]
