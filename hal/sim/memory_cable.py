"""An in-memory serial cable: two byte transports joined back to back, at a modelled baud rate.

It has the shape of PEV Link's :class:`~firmware.pevlink.link.ByteTransport` (and of
:class:`hal.interfaces.SerialLink`), so the station's ports and the vehicles' agents run their real
:class:`~firmware.pevlink.link.Link`, codec, retries and heartbeats over it. Bytes take the time
the wire would: ten bit times a byte (8N1), one after another in each direction, so a 60-byte line
at 115200 baud arrives 5.2 ms after it was written. This is the fast path that replaces the bench's
pseudo-terminals (a kernel round trip and a copying thread per message) when a whole day is
simulated.

One difference from a UART, on purpose: ``read`` on an idle line waits until bytes arrive instead of
returning ``b""`` after ``timeout``. A :class:`~firmware.pevlink.link.Link` only goes round its
loop on an empty read, so nothing observable changes, and a day of idle lines costs no wake-ups.
"""

from __future__ import annotations

import asyncio
from collections import deque

from hal.clock import Clock
from hal.interfaces import SerialLink


class MemoryLine(SerialLink):
    """One end of a :func:`memory_cable`: what it writes arrives at the other end."""

    def __init__(self, clock: Clock, name: str, baud: int | None) -> None:
        self.name = name
        self._clock = clock
        self._byte_s = 10.0 / baud if baud else 0.0
        self._inbox: deque[tuple[float, bytes]] = deque()
        self._arrived = asyncio.Event()
        self._peer: MemoryLine | None = None
        self._line_free_at = 0.0
        self.connected = True
        """False cuts the wire: bytes written in either direction are lost (an unplugged cable)."""
        self.closed = False
        self.bytes_written = 0

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise OSError(f"{self.name}: the line is closed")
        peer = self._peer
        self.bytes_written += len(data)
        if not data or peer is None or not self.connected or peer.closed:
            return
        now = self._clock.monotonic()
        start = max(now, self._line_free_at)
        due = self._line_free_at = start + len(data) * self._byte_s
        peer._inbox.append((due, bytes(data)))
        if due > now:
            # An idle reader wakes once, when the last byte is in (not now, and again then).
            asyncio.get_running_loop().call_later(due - now, peer._arrived.set)
        else:
            peer._arrived.set()

    async def read(self, timeout: float) -> bytes:
        """The bytes that have arrived (at least one); waits while the line is idle."""
        while True:
            if self.closed:
                raise OSError(f"{self.name}: the line is closed")
            if not self._inbox:
                self._arrived.clear()
                await self._arrived.wait()  # set once the bytes written are due, or on close
                continue
            due = self._inbox[0][0]
            now = self._clock.monotonic()
            if due > now:
                await self._clock.sleep(due - now)
                continue
            out = bytearray()
            while self._inbox and self._inbox[0][0] <= now:
                out += self._inbox.popleft()[1]
            return bytes(out)

    async def close(self) -> None:
        self.closed = True
        self._inbox.clear()
        self._arrived.set()


def memory_cable(
    clock: Clock, name: str = "cable", baud: int | None = 115200
) -> tuple[MemoryLine, MemoryLine]:
    """(station end, vehicle end) of a new cable; ``baud=None`` delivers bytes at once."""
    station = MemoryLine(clock, f"{name}/station", baud)
    vehicle = MemoryLine(clock, f"{name}/vehicle", baud)
    station._peer = vehicle
    vehicle._peer = station
    return station, vehicle
