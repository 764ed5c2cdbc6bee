"""A station port on an in-memory line: what it writes is kept, nothing ever arrives unasked."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from firmware.station.port import PortController, PortSpec
from firmware.station.safety import SafetyConfig
from hal.clock import SimClock


class MemoryTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    async def read(self, timeout: float) -> bytes:
        await asyncio.sleep(timeout)
        return b""

    async def write(self, data: bytes) -> None:
        self.written.append(bytes(data))


def bench_port(transport: MemoryTransport) -> PortController:
    """A station port as on the bench (12-84 V, 5 A, 420 W), its hardware never touched here."""
    io = SimpleNamespace(link=transport, monitor=None, relay=None)
    return PortController(
        PortSpec(port_id=1, max_current_a=5.0, v_min_v=12.0, v_max_v=84.0, max_power_w=420.0),
        io,  # type: ignore[arg-type]
        SimClock(),
        SafetyConfig(),
        station_name="pev-charger",
        on_change=lambda port: None,
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)
