"""A simulated I2C bus with the busio interface, so the real adafruit drivers run against it.

Devices are register models (:class:`RegisterDevice`) at 7-bit addresses. A transfer to an absent
address fails with ``OSError(EREMOTEIO)``, as Linux reports a missing ACK; a device can be told to
fail its next transfers, for the sensor-error paths.

A register read (the drivers' write-then-read) is one call on the model, with no copy beyond the
answer: the safety loop reads every sensor four times per watchdog hold, and on the bench this bus
and its models stand where a real bus costs the daemon nothing but the wait.
"""

from __future__ import annotations

import errno
import functools
import threading
from collections.abc import Callable
from typing import Protocol


class RegisterDevice(Protocol):
    def read_register(self, register: int, length: int) -> bytes: ...

    def write_register(self, register: int, data: bytes) -> None: ...


class StreamDevice(Protocol):
    """A device whose transfers are whole messages, not register accesses (a PN532's frames)."""

    def i2c_write(self, data: bytes) -> None: ...

    def i2c_read(self, length: int) -> bytes: ...


class SimI2C:
    """busio.I2C look-alike: try_lock, unlock, writeto, readfrom_into, writeto_then_readfrom."""

    def __init__(self) -> None:
        self._devices: dict[int, RegisterDevice] = {}
        self._streams: dict[int, StreamDevice] = {}
        self._pointer: dict[int, int] = {}
        self._lock = threading.Lock()
        """Held between ``try_lock`` and ``unlock`` (busio's bus lock)."""
        self.try_lock: Callable[[], bool] = functools.partial(self._lock.acquire, False)
        """busio's ``try_lock``: the lock's own acquire, without waiting (no Python frame)."""
        self.fail_next: dict[int, int] = {}
        """Address -> number of transfers that will fail with EREMOTEIO (a flaky wire)."""
        self.transfers = 0

    def add_device(self, address: int, device: RegisterDevice) -> None:
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"I2C address 0x{address:02X} is outside 0x03..0x77")
        self._devices[address] = device

    def add_stream_device(self, address: int, device: StreamDevice) -> None:
        """A device that takes each write and answers each read whole (no register pointer)."""
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"I2C address 0x{address:02X} is outside 0x03..0x77")
        self._streams[address] = device

    def device(self, address: int) -> RegisterDevice:
        return self._devices[address]

    # --- busio interface --------------------------------------------------------------------------

    def unlock(self) -> None:
        if self._lock.locked():  # not locked: nothing to do, as busio
            self._lock.release()

    def scan(self) -> list[int]:
        return sorted({*self._devices, *self._streams})

    def deinit(self) -> None:
        self._devices.clear()
        self._streams.clear()

    def _failing(self, address: int) -> bool:
        """Whether this transfer is one of those told to fail (and count it)."""
        remaining = self.fail_next.get(address, 0)
        if not remaining:
            return False
        if remaining == 1:
            del self.fail_next[address]
        else:
            self.fail_next[address] = remaining - 1
        return True

    def _target(self, address: int) -> RegisterDevice:
        self.transfers += 1
        if self._failing(address):
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        device = self._devices.get(address)
        if device is None:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return device

    def _stream(self, address: int) -> StreamDevice | None:
        """The stream device at ``address`` (counted and failed like any transfer), or None."""
        if address not in self._streams:
            return None
        self.transfers += 1
        if self._failing(address):
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return self._streams[address]

    def writeto(
        self, address: int, buffer: bytes | bytearray, *, start: int = 0, end: int | None = None
    ) -> None:
        stream = self._stream(address)
        if stream is not None:
            if buffer[start:end]:
                stream.i2c_write(bytes(buffer[start:end]))
            return
        device = self._target(address)
        data = bytes(buffer[start:end])
        if not data:
            return  # an address probe
        self._pointer[address] = data[0]
        if len(data) > 1:
            device.write_register(data[0], data[1:])

    def readfrom_into(
        self, address: int, buffer: bytearray, *, start: int = 0, end: int | None = None
    ) -> None:
        stop = len(buffer) if end is None else end
        stream = self._stream(address)
        if stream is not None:
            buffer[start:stop] = stream.i2c_read(stop - start)
            return
        device = self._target(address)
        data = device.read_register(self._pointer.get(address, 0), stop - start)
        buffer[start:stop] = data

    def writeto_then_readfrom(
        self,
        address: int,
        buffer_out: bytes | bytearray,
        buffer_in: bytearray,
        *,
        out_start: int = 0,
        out_end: int | None = None,
        in_start: int = 0,
        in_end: int | None = None,
    ) -> None:
        device = self._devices.get(address)
        if device is None or self.fail_next or address in self._streams:
            self.writeto(address, buffer_out, start=out_start, end=out_end)
            self.readfrom_into(address, buffer_in, start=in_start, end=in_end)
            return
        # The common case in one step: two transfers (the register pointer, then the read).
        self.transfers += 2
        out = buffer_out[out_start:out_end]
        if out:
            register = self._pointer[address] = out[0]
            if len(out) > 1:
                device.write_register(register, bytes(out[1:]))
        else:
            register = self._pointer.get(address, 0)
        stop = len(buffer_in) if in_end is None else in_end
        buffer_in[in_start:stop] = device.read_register(register, stop - in_start)
