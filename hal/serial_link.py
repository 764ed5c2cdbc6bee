"""Serial links through pyserial, without a thread per port.

The port is opened non-blocking (``timeout=0``) and its file descriptor watched with
``loop.add_reader``, so a read costs nothing while the line is quiet. The same class serves a
Raspberry Pi UART, a USB-serial adapter and the bench's pseudo-terminals.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Callable
from typing import Any

from hal.errors import SerialLinkError
from hal.interfaces import SerialLink

WRITE_TIMEOUT_S = 1.0


def _open_error(path: str, exc: BaseException) -> SerialLinkError:
    err = getattr(exc, "errno", None)
    text = str(exc)
    if (
        err == errno.ENOENT
        or "No such file" in text
        or ("could not open port" in text and ("No such file" in text))
    ):
        return SerialLinkError(f"serial port {path} does not exist; check the device path")
    if err == errno.EACCES or "Permission denied" in text:
        return SerialLinkError(
            f"permission denied on {path}: add your user to the 'dialout' group "
            "(sudo usermod -aG dialout $USER) and log in again"
        )
    if err in (errno.EBUSY, errno.EAGAIN) or "busy" in text.lower() or "lock" in text.lower():
        return SerialLinkError(f"serial port {path} is busy: another program has it open")
    return SerialLinkError(f"cannot open serial port {path}: {text}")


class PySerialLink(SerialLink):
    """An async byte link over an open pyserial port (non-blocking).

    A device that goes away (a USB adapter pulled out, a pty whose other end closed) raises
    :class:`SerialLinkError` on the next read or write instead of reading as silence for ever;
    :meth:`reopen` opens the same path again once the device is back.
    """

    def __init__(
        self,
        port: Any,
        name: str | None = None,
        *,
        opener: Callable[[], Any] | None = None,
    ) -> None:
        self._port = port
        self.name = name or str(getattr(port, "port", "serial"))
        self._closed = False
        self._opener = opener

    @property
    def port(self) -> Any:
        return self._port

    async def read(self, timeout: float) -> bytes:
        if self._closed:
            raise SerialLinkError(f"{self.name} is closed")
        data = self._read_now()
        if data:
            return data
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        try:
            fd = self._port.fileno()
        except Exception as exc:
            raise SerialLinkError(f"{self.name}: the device has gone: {exc}") from exc

        readable = False

        def on_readable() -> None:
            nonlocal readable
            readable = True
            if not ready.done():
                ready.set_result(None)

        def on_timer() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, on_readable)
        # A timer instead of asyncio.wait_for: on Python 3.11, wait_for can swallow a cancellation
        # that arrives together with data, and a reader loop would then never stop.
        timer = loop.call_later(max(0.0, timeout), on_timer)
        try:
            await ready
        finally:
            timer.cancel()
            loop.remove_reader(fd)
        data = self._read_now()
        if not data and readable:
            data = self._read_fd(fd)
        return data

    def _read_now(self) -> bytes:
        try:
            waiting = self._port.in_waiting
            return bytes(self._port.read(waiting or 1)) if waiting else b""
        except (OSError, ValueError) as exc:  # EIO: the device or the pty's other end has gone
            raise SerialLinkError(f"{self.name}: the device has gone: {exc}") from exc
        except Exception as exc:  # pyserial's SerialException on a port closed under us
            raise SerialLinkError(f"{self.name}: read failed: {exc}") from exc

    def _read_fd(self, fd: int) -> bytes:
        """Readable with nothing waiting: either a spurious wake-up or a hang-up (end of file)."""
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise SerialLinkError(f"{self.name}: the device has gone: {exc}") from exc
        if not data:
            raise SerialLinkError(f"{self.name}: the device hung up")
        return data

    async def reopen(self) -> None:
        """Open the same device again (after it went away); raises while it is still absent."""
        if self._opener is None:
            raise SerialLinkError(f"{self.name}: cannot be reopened")
        with contextlib.suppress(Exception):
            self._port.close()
        self._port = self._opener()
        self._closed = False

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise SerialLinkError(f"{self.name} is closed")
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITE_TIMEOUT_S
        while view:
            try:
                sent = self._port.write(view) or 0
            except (OSError, ValueError) as exc:
                raise SerialLinkError(f"{self.name}: write failed: {exc}") from exc
            except Exception as exc:  # pyserial's SerialTimeoutException
                sent = 0
                if loop.time() > deadline:
                    raise SerialLinkError(f"{self.name}: write timed out") from exc
            view = view[sent:]
            if view:
                if loop.time() > deadline:
                    raise SerialLinkError(f"{self.name}: write timed out")
                await asyncio.sleep(0.001)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._port.close()


def open_port(path: str, baud: int = 115200, *, exclusive: bool = True) -> PySerialLink:
    """Open a serial device, pty or pyserial URL with clear errors for the usual problems.

    ``exclusive`` takes pyserial's lock (``flock``) on the device: a second program that asks for
    it too (the station, ``pev-console``, ``pev-vehicle``) is refused instead of reading the same
    line and stealing half its bytes.
    """
    import serial  # pyserial is a core dependency; imported here to keep hal import light

    def opener() -> Any:
        try:
            return serial.serial_for_url(
                path, baudrate=baud, timeout=0, write_timeout=0, exclusive=exclusive
            )
        except (OSError, serial.SerialException, ValueError) as exc:
            raise _open_error(path, exc) from exc

    return PySerialLink(opener(), path, opener=opener)


async def open_serial(path: str, baud: int = 115200, *, exclusive: bool = True) -> PySerialLink:
    """:func:`open_port` for async callers."""
    return open_port(path, baud, exclusive=exclusive)
