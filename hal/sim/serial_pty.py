"""A simulated serial cable made of two real pseudo-terminals.

Each end is a pty slave with a path, opened with pyserial exactly as a UART device would be: the
station opens one, and a simulated vehicle, the serial console or a person opens the other. A small
thread copies bytes between the two pty masters (as ``socat pty,raw pty,raw`` would), so either side
can come and go; when nobody holds the far end, bytes are dropped, as on an unplugged cable.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import struct
import termios
import threading
import tty
from collections.abc import Callable

from hal.serial_link import PySerialLink

_CHUNK = 4096


class PtyCable:
    def __init__(self, name: str = "cable") -> None:
        self.name = name
        self._a_master, self._a_slave = os.openpty()
        self._b_master, self._b_slave = os.openpty()
        for fd in (self._a_master, self._a_slave, self._b_master, self._b_slave):
            tty.setraw(fd)
        for fd in (self._a_master, self._b_master):
            os.set_blocking(fd, False)
        self.station_path = os.ttyname(self._a_slave)
        self.peer_path = os.ttyname(self._b_slave)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self.connected = True
        """False cuts the wire: bytes are dropped in both directions (an unplugged cable)."""
        self.bytes_copied = 0
        self.tap: Callable[[bytes], None] | None = None
        """Sees every byte the far end sends towards the station (a bench's meter of what the
        device says). It runs on the copying thread, so it must be quick and thread-safe."""
        self._copying = False
        self._thread = threading.Thread(target=self._run, name=f"pty-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pairs = {self._a_master: self._b_master, self._b_master: self._a_master}
        while not self._stop:
            try:
                readable, _, _ = select.select([*pairs, self._wake_r], [], [], 0.5)
            except (OSError, ValueError):
                return
            for fd in readable:
                if fd == self._wake_r:
                    continue
                self._copying = True
                try:
                    data = os.read(fd, _CHUNK)
                except OSError as exc:
                    self._copying = False
                    if exc.errno in (errno.EAGAIN, errno.EIO):
                        continue
                    return
                if data and self.connected:
                    self._forward(pairs[fd], data)
                    if fd == self._b_master and self.tap is not None:
                        self.tap(data)
                self._copying = False

    def queued(self) -> tuple[int, int, int, int]:
        """Bytes waiting in each of the cable's four queues: written by the station, written by
        the far end (both not yet copied), and copied towards the station and towards the far
        end (not yet read). A test in simulated time waits for these to drain before it moves
        the clock, so a machine busy elsewhere cannot turn a pty's delay into a protocol timeout.
        """
        if self._stop:
            return (0, 0, 0, 0)
        counts = []
        for fd in (self._a_master, self._b_master, self._a_slave, self._b_slave):
            try:
                raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
                counts.append(struct.unpack("i", raw)[0])
            except OSError:
                counts.append(0)
        return (counts[0] + int(self._copying), counts[1], counts[2], counts[3])

    def _forward(self, fd: int, data: bytes) -> None:
        with contextlib.suppress(OSError):  # a full buffer on an unread end: bytes are lost
            os.write(fd, data)
            self.bytes_copied += len(data)

    def close(self) -> None:
        if self._stop:
            return
        self._stop = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(timeout=2.0)
        for fd in (
            self._a_master,
            self._a_slave,
            self._b_master,
            self._b_slave,
            self._wake_r,
            self._wake_w,
        ):
            with contextlib.suppress(OSError):
                os.close(fd)


def open_peer(path: str, baud: int = 115200) -> PySerialLink:
    """Open a pty end (or any serial device) with pyserial, non-blocking."""
    import serial

    def opener() -> serial.Serial:
        port = serial.Serial(path, baudrate=baud, timeout=0, write_timeout=0)
        # A connector that was not plugged in heard nothing: drop what the line held before.
        port.reset_input_buffer()
        return port

    return PySerialLink(opener(), path, opener=opener)
